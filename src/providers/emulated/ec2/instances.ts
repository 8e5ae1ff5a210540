import type { InstanceState } from '../../../ports/cloud.js';
import { US_PER_S } from '../../../util/units.js';
import { fieldOf, matchFilters, paginate, parseFilters, parseTagSpecifications, tagSet } from './filters.js';
import { Ec2ApiError, invalid, type Params, type XmlValue } from './query.js';
import { typeTraits } from './type-traits.js';
import type { NetworkActions } from './network.js';
import {
  EMULATED_OWNER_ID, ROOT_DEVICE, STANDARD_FAMILIES, STATE_CODES, TERMINATED_VISIBLE_US, USER_DATA_MAX_BYTES, checkInstanceId,
  type Ec2State, type Instance, type ResponseBody, type Volume,
} from './state.js';

/** EC2's instance actions (types, images, launch, describe, start, stop, terminate, modify) on the shared state. */
export class InstanceActions {
  constructor(private readonly s: Ec2State, private readonly net: NetworkActions) {}

  describeInstanceTypes(p: Params): ResponseBody {
    const names = p.strList('InstanceType');
    const unknown = names.filter((n) => !this.s.catalog.has(n));
    if (unknown.length) throw new Ec2ApiError('InvalidInstanceType', `The following supplied instance types do not exist: [${unknown.join(', ')}]`, 400);
    this.s.gate('DescribeInstanceTypes', p);
    const filters = parseFilters(p, ['instance-type', 'current-generation', 'processor-info.supported-architecture', 'supported-virtualization-type', 'supported-boot-mode']);
    let entries = names.length ? names.map((n) => this.s.catalog.get(n)!) : [...this.s.catalog.values()];
    entries = entries.filter((c) => {
      const traits = typeTraits(c.type);
      return matchFilters(filters, (name) => fieldOf(name, {
        'instance-type': [c.type], 'current-generation': ['true'], 'processor-info.supported-architecture': traits.architectures,
        'supported-virtualization-type': traits.virtualizationTypes, 'supported-boot-mode': traits.bootModes,
      }, new Map()));
    });
    const page = paginate(entries, p, 5, 100, 100);
    return {
      instanceTypeSet: page.items.map((c) => ({
        instanceType: c.type,
        currentGeneration: true,
        supportedUsageClasses: ['on-demand'],
        supportedRootDeviceTypes: ['ebs'],
        supportedVirtualizationTypes: typeTraits(c.type).virtualizationTypes,
        processorInfo: { supportedArchitectures: typeTraits(c.type).architectures },
        supportedBootModes: typeTraits(c.type).bootModes,
        vCpuInfo: { defaultVCpus: c.vcpus },
        memoryInfo: { sizeInMiB: Math.round(c.memoryGiB * 1024) },
        ebsInfo: { ebsOptimizedSupport: 'default', ebsOptimizedInfo: { baselineIops: c.ebsIops, maximumIops: c.ebsIops } },
        networkInfo: { networkPerformance: `Up to ${c.networkGbit} Gigabit` },
        hypervisor: 'nitro',
      })),
      nextToken: page.nextToken,
    };
  }

  describeImages(p: Params): ResponseBody {
    const ids = p.strList('ImageId');
    for (const id of ids) if (!/^ami-[0-9a-f]{8,17}$/.test(id)) throw new Ec2ApiError('InvalidAMIID.Malformed', `Invalid id: "${id}" (expecting "ami-...")`, 400);
    const missing = ids.filter((id) => !this.s.config.images.some((im) => im.id === id));
    if (missing.length) throw new Ec2ApiError('InvalidAMIID.NotFound', `The image id '[${missing.join(', ')}]' does not exist`, 400);
    // Every emulated image belongs to this account: an owner list without it matches nothing.
    const owners = p.strList('Owner');
    const ownedBySelf = owners.length === 0 || owners.includes('self') || owners.includes(EMULATED_OWNER_ID);
    this.s.gate('DescribeImages', p);
    const filters = parseFilters(p, ['image-id', 'name', 'state', 'tag-key'], true);
    const images = this.s.config.images.filter((im) => ownedBySelf && (ids.length === 0 || ids.includes(im.id))
      && matchFilters(filters, (name) => fieldOf(name, { 'image-id': [im.id], name: [im.name], state: ['available'] }, new Map(Object.entries(im.tags)))));
    return {
      imagesSet: images.map((im) => ({
        imageId: im.id,
        imageLocation: `${EMULATED_OWNER_ID}/${im.name}`,
        imageState: 'available',
        imageOwnerId: EMULATED_OWNER_ID,
        isPublic: false,
        architecture: 'x86_64',
        imageType: 'machine',
        name: im.name,
        rootDeviceType: 'ebs',
        rootDeviceName: '/dev/xvda',
        virtualizationType: 'hvm',
        hypervisor: 'xen',
        enaSupport: true,
        tagSet: tagSet(new Map(Object.entries(im.tags))),
      })),
    };
  }

  runInstances(p: Params): ResponseBody {
    const imageId = p.str('ImageId');
    if (!/^ami-[0-9a-f]{8,17}$/.test(imageId)) throw new Ec2ApiError('InvalidAMIID.Malformed', `Invalid id: "${imageId}" (expecting "ami-...")`, 400);
    if (!this.s.config.images.some((im) => im.id === imageId)) throw new Ec2ApiError('InvalidAMIID.NotFound', `The image id '[${imageId}]' does not exist`, 400);
    const type = p.optStr('InstanceType') ?? 'm1.small';
    const entry = this.s.catalog.get(type);
    if (!entry) throw new Ec2ApiError('InvalidParameterValue', `Invalid value '${type}' for InstanceType.`, 400);
    const minCount = p.int('MinCount', 1, 1000);
    const maxCount = p.int('MaxCount', 1, 1000);
    if (minCount > maxCount) throw invalid('MinCount', String(minCount), `MinCount must be less than or equal to MaxCount (${maxCount}).`);
    const requestedZone = p.struct('Placement')?.optStr('AvailabilityZone');
    if (requestedZone !== undefined && !this.s.config.zones.includes(requestedZone)) {
      throw new Ec2ApiError('InvalidParameterValue', `Invalid availability zone: [${requestedZone}]`, 400);
    }
    const userData = p.optStr('UserData');
    if (userData !== undefined) {
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(userData) || userData.length % 4 !== 0) throw invalid('UserData', '(not base64)', 'Invalid BASE64 encoding of user data.');
      if (Buffer.from(userData, 'base64').length > USER_DATA_MAX_BYTES) throw invalid('UserData', '(too long)', `User data is limited to ${USER_DATA_MAX_BYTES} bytes.`);
    }
    const tagSpecs = parseTagSpecifications(p, ['instance', 'volume']);
    const network = this.net.launchNetwork(p, requestedZone, () => this.s.config.zones.find((z) => !this.s.capacityBlocked(type, z)) ?? this.s.config.zones[0]!);
    const clientToken = p.optStr('ClientToken');
    if (clientToken !== undefined && (clientToken.length > 64 || !/^[\x20-\x7e]+$/.test(clientToken))) {
      throw invalid('ClientToken', clientToken, 'A client token is at most 64 printable ASCII characters.');
    }
    // Idempotency: the same token with the same request returns the original reservation.
    const fingerprint = JSON.stringify([imageId, type, minCount, maxCount, requestedZone ?? '', userData ?? '', [...(tagSpecs.get('instance') ?? [])], p.optStr('SubnetId') ?? '', network.groupIds, network.profileArn ?? '']);
    if (clientToken !== undefined) {
      const prior = this.s.reservationsByToken.get(clientToken);
      if (prior) {
        if (prior.fingerprint !== fingerprint) throw new Ec2ApiError('IdempotentParameterMismatch', `The client token '${clientToken}' was already used with different parameters.`, 400);
        this.s.gate('RunInstances', p);
        const instances = prior.instanceIds.map((id) => this.s.instances.get(id)!);
        return { reservationId: prior.id, ownerId: EMULATED_OWNER_ID, groupSet: [], instancesSet: instances.map((i) => this.instanceXml(i)) };
      }
    }
    const zone = network.subnet.zone;
    this.s.gate('RunInstances', p, [{ type, zone }]);
    // Launch as many as the quota allows, at least MinCount (AWS's MinCount/MaxCount contract).
    const perInstance = STANDARD_FAMILIES.test(type) ? entry.vcpus : 0;
    const room = perInstance === 0 ? maxCount : Math.floor((this.s.config.quotas.vcpus - this.s.vcpusInUse()) / perInstance);
    const count = Math.min(maxCount, room);
    if (count < minCount) this.s.checkQuota(perInstance * minCount);
    const reservationId = this.s.newId('r');
    const now = this.s.world.clock.nowUs();
    const launched: Instance[] = [];
    for (let n = 0; n < count; n++) {
      const inst: Instance = {
        id: this.s.newId('i'), type, zone, imageId, state: 'pending',
        privateIp: `10.0.${Math.floor(this.s.nextIp / 250)}.${(this.s.nextIp % 250) + 4}`,
        launchTimeUs: now, tags: new Map(tagSpecs.get('instance') ?? []), reservationId, clientToken, userData,
        visibleAtUs: this.s.visibleAt(), stateReason: '', timer: undefined, network, rootVolumeId: '',
      };
      this.s.nextIp++;
      this.s.instances.set(inst.id, inst);
      inst.rootVolumeId = this.rootVolume(inst, tagSpecs.get('volume')).id;
      this.scheduleBoot(inst);
      launched.push(inst);
    }
    if (clientToken !== undefined) this.s.reservationsByToken.set(clientToken, { id: reservationId, instanceIds: launched.map((i) => i.id), fingerprint });
    return { reservationId, ownerId: EMULATED_OWNER_ID, groupSet: [], instancesSet: launched.map((i) => this.instanceXml(i)) };
  }

  /** The instance's root volume, made from the image at launch: attached, and deleted on termination. */
  private rootVolume(inst: Instance, tags: Map<string, string> | undefined): Volume {
    const vol: Volume = {
      id: this.s.newId('vol', this.s.rootVolumeIds), sizeGiB: ROOT_DEVICE.sizeGiB, type: ROOT_DEVICE.type, iops: ROOT_DEVICE.iops, zone: inst.zone,
      state: 'in-use', attachment: { instanceId: inst.id, device: ROOT_DEVICE.name, state: 'attached', timeUs: inst.launchTimeUs, deleteOnTermination: true },
      tags: new Map(tags ?? []), createTimeUs: inst.launchTimeUs, visibleAtUs: inst.visibleAtUs, timer: undefined,
    };
    this.s.volumes.set(vol.id, vol);
    return vol;
  }

  scheduleBoot(inst: Instance): void {
    const { meanUs, sdUs } = this.s.config.boot;
    inst.timer = this.s.after(this.s.draw(meanUs / US_PER_S, sdUs / US_PER_S, 5), () => {
      inst.timer = undefined;
      if (inst.state === 'pending') this.s.setInstanceState(inst, 'running');
    });
  }

  describeInstances(p: Params): ResponseBody {
    const ids = this.s.instanceIds(p, 'InstanceId', false);
    const filters = parseFilters(p, ['instance-id', 'instance-state-name', 'instance-type', 'availability-zone', 'image-id', 'client-token', 'tag-key'], true);
    const maxResults = p.optInt('MaxResults', 5, 1000);
    if (ids.length && maxResults !== undefined) throw new Ec2ApiError('InvalidParameterCombination', 'The parameter instancesSet cannot be used with the parameter maxResults', 400);
    const chosen = ids.length ? this.s.lookupInstances(ids) : [...this.s.instances.values()].filter((i) => this.s.visible(i));
    this.s.gate('DescribeInstances', p);
    const matched = chosen.filter((i) => matchFilters(filters, (name) => fieldOf(name, {
      'instance-id': [i.id], 'instance-state-name': [i.state], 'instance-type': [i.type], 'availability-zone': [i.zone],
      'image-id': [i.imageId], 'client-token': i.clientToken ? [i.clientToken] : [],
    }, i.tags)));
    const page = paginate(matched, p, 5, 1000, maxResults === undefined ? Infinity : 1000);
    // One reservation per launch, as AWS groups them.
    const byReservation = new Map<string, Instance[]>();
    for (const inst of page.items) byReservation.set(inst.reservationId, [...(byReservation.get(inst.reservationId) ?? []), inst]);
    return {
      reservationSet: [...byReservation].map(([id, insts]) => ({ reservationId: id, ownerId: EMULATED_OWNER_ID, groupSet: [], instancesSet: insts.map((i) => this.instanceXml(i)) })),
      nextToken: page.nextToken,
    };
  }

  startInstances(p: Params): ResponseBody {
    const insts = this.s.lookupInstances(this.s.instanceIds(p));
    for (const inst of insts) {
      if (inst.state === 'stopping' || inst.state === 'shutting-down' || inst.state === 'terminated') {
        throw new Ec2ApiError('IncorrectInstanceState', `The instance '${inst.id}' is not in a state from which it can be started.`, 400);
      }
    }
    const toStart = insts.filter((i) => i.state === 'stopped');
    this.s.gate('StartInstances', p, toStart.map((i) => ({ type: i.type, zone: i.zone })));
    this.s.checkQuota(toStart.reduce((sum, i) => sum + (STANDARD_FAMILIES.test(i.type) ? this.s.catalog.get(i.type)?.vcpus ?? 0 : 0), 0));
    return {
      instancesSet: insts.map((inst) => {
        const previous = inst.state;
        if (previous === 'stopped') {
          this.s.setInstanceState(inst, 'pending');
          inst.launchTimeUs = this.s.world.clock.nowUs();
          this.scheduleBoot(inst);
        }
        return stateChangeXml(inst, previous);
      }),
    };
  }

  stopInstances(p: Params): ResponseBody {
    const insts = this.s.lookupInstances(this.s.instanceIds(p));
    for (const inst of insts) {
      if (inst.state === 'pending' || inst.state === 'shutting-down' || inst.state === 'terminated') {
        throw new Ec2ApiError('IncorrectInstanceState', `The instance '${inst.id}' is not in a state from which it can be stopped.`, 400);
      }
    }
    this.s.gate('StopInstances', p);
    return {
      instancesSet: insts.map((inst) => {
        const previous = inst.state;
        if (previous === 'running') {
          this.s.setInstanceState(inst, 'stopping', 'User initiated');
          inst.timer = this.s.after(this.s.draw(30, 10, 5), () => {
            inst.timer = undefined;
            if (inst.state === 'stopping') this.s.setInstanceState(inst, 'stopped', 'User initiated');
          });
        }
        return stateChangeXml(inst, previous);
      }),
    };
  }

  terminateInstances(p: Params): ResponseBody {
    const insts = this.s.lookupInstances(this.s.instanceIds(p));
    this.s.gate('TerminateInstances', p);
    return {
      instancesSet: insts.map((inst) => {
        const previous = inst.state;
        if (previous !== 'terminated' && previous !== 'shutting-down') {
          inst.timer?.cancel();
          this.s.setInstanceState(inst, 'shutting-down', 'User initiated');
          inst.timer = this.s.after(this.s.draw(20, 5, 3), () => {
            this.s.setInstanceState(inst, 'terminated', 'User initiated');
            // The root volume goes with the instance; data volumes outlive it: they detach and become available.
            for (const vol of [...this.s.volumes.values()]) {
              if (vol.attachment?.instanceId !== inst.id) continue;
              vol.timer?.cancel();
              if (vol.attachment.deleteOnTermination) {
                vol.state = 'deleted';
                this.s.volumes.delete(vol.id);
                continue;
              }
              vol.attachment = undefined;
              vol.state = 'available';
            }
            inst.timer = this.s.after(TERMINATED_VISIBLE_US, () => this.s.instances.delete(inst.id));
          });
        }
        return stateChangeXml(inst, previous);
      }),
    };
  }

  modifyInstanceAttribute(p: Params): ResponseBody {
    const id = checkInstanceId(p.str('InstanceId'));
    const requested = p.struct('InstanceType')?.optStr('Value') ?? (p.optStr('Attribute') === 'instanceType' ? p.str('Value') : undefined);
    if (requested === undefined) throw new Ec2ApiError('MissingParameter', 'The request must contain the parameter InstanceType.Value (the only attribute this emulator changes)', 400);
    if (!this.s.catalog.has(requested)) throw invalid('InstanceType', requested, `Allowed types: ${[...this.s.catalog.keys()].join(', ')}.`);
    const [inst] = this.s.lookupInstances([id]);
    if (inst!.state !== 'stopped') throw new Ec2ApiError('IncorrectInstanceState', `The instance '${inst!.id}' is not in the 'stopped' state.`, 400);
    this.s.gate('ModifyInstanceAttribute', p);
    inst!.type = requested;
    return { return: true };
  }

  /** The EBS volumes attached to the instance, root first, as DescribeInstances lists them. */
  private blockDevices(i: Instance): XmlValue {
    const attached = [...this.s.volumes.values()].filter((v) => v.attachment?.instanceId === i.id);
    attached.sort((a, b) => (a.id === i.rootVolumeId ? -1 : b.id === i.rootVolumeId ? 1 : 0));
    return attached.map((v) => ({
      deviceName: v.attachment!.device,
      ebs: { volumeId: v.id, status: v.attachment!.state, attachTime: this.s.iso(v.attachment!.timeUs), deleteOnTermination: v.attachment!.deleteOnTermination },
    }));
  }

  instanceXml(i: Instance): XmlValue {
    return {
      instanceId: i.id,
      imageId: i.imageId,
      instanceState: { code: STATE_CODES[i.state], name: i.state },
      privateDnsName: `ip-${i.privateIp.replace(/\./g, '-')}.ec2.internal`,
      dnsName: '',
      reason: i.stateReason,
      amiLaunchIndex: 0,
      productCodes: [],
      instanceType: i.type,
      launchTime: this.s.iso(i.launchTimeUs),
      placement: { availabilityZone: i.zone, groupName: '', tenancy: 'default' },
      monitoring: { state: 'disabled' },
      privateIpAddress: i.privateIp,
      ...this.net.instanceFields(i.network),
      stateReason: i.stateReason ? { code: 'Client.UserInitiatedShutdown', message: 'Client.UserInitiatedShutdown: User initiated shutdown' } : undefined,
      architecture: 'x86_64',
      rootDeviceType: 'ebs',
      rootDeviceName: '/dev/xvda',
      blockDeviceMapping: this.blockDevices(i),
      virtualizationType: 'hvm',
      clientToken: i.clientToken ?? '',
      tagSet: i.tags.size ? tagSet(i.tags) : undefined,
      hypervisor: 'xen',
      ebsOptimized: false,
      enaSupport: true,
    };
  }
}

function stateChangeXml(inst: Instance, previous: InstanceState): XmlValue {
  return {
    instanceId: inst.id,
    currentState: { code: STATE_CODES[inst.state], name: inst.state },
    previousState: { code: STATE_CODES[previous], name: previous },
  };
}
