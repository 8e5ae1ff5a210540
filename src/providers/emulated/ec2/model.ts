import type { InstanceState, VolumeState } from '../../../ports/cloud.js';
import type { Rng, Timer, World } from '../../../world/types.js';
import { US_PER_H, US_PER_S } from '../../../util/units.js';
import type { CatalogEntry, CloudConfig } from './config.js';
import { Ec2ApiError, Params, invalid, isoFromEpochMs, type ParamTree, type XmlValue } from './query.js';

/**
 * A stateful EC2 on the World clock. Every request is applied at the virtual
 * instant it was issued; every state change afterwards (boot, stop, attach,
 * snapshot progress) is a scheduled clock event drawn from the seed, so a
 * seed replays the cloud exactly. The model answers in AWS's own response
 * shapes and error codes; `ec2-msw.ts` puts them on the wire.
 */

/** The emulated cloud's wall clock reads this epoch at virtual time zero (2026-01-05T00:00:00Z). */
export const EMULATED_EPOCH_MS = 1_767_571_200_000;
/** AWS documents this fake-looking account id for examples; ours is as fake. */
export const EMULATED_OWNER_ID = '123456789012';

const STATE_CODES: Record<InstanceState, number> = {
  pending: 0, running: 16, 'shutting-down': 32, terminated: 48, stopping: 64, stopped: 80,
};
/** Terminated instances stay visible this long, as on AWS. */
const TERMINATED_VISIBLE_US = US_PER_H;
/** Families counted by the "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances" vCPU quota. */
const STANDARD_FAMILIES = /^[acdhimrtz]/;
const USER_DATA_MAX_BYTES = 16_384;
const VOLUME_SIZE_GIB: Record<string, [number, number]> = {
  gp3: [1, 16_384], gp2: [1, 16_384], io1: [4, 16_384], io2: [4, 65_536], st1: [125, 16_384], sc1: [125, 16_384], standard: [1, 1024],
};
const DEVICE_PATTERN = /^\/dev\/(sd[f-p]|xvd[f-p])$/;

interface Instance {
  id: string;
  type: string;
  zone: string;
  imageId: string;
  state: InstanceState;
  privateIp: string;
  launchTimeUs: number;
  tags: Map<string, string>;
  reservationId: string;
  clientToken: string | undefined;
  userData: string | undefined;
  visibleAtUs: number;
  stateReason: string;
  timer: Timer | undefined;
}

interface Attachment {
  instanceId: string;
  device: string;
  state: 'attaching' | 'attached' | 'detaching';
  timeUs: number;
}

interface Volume {
  id: string;
  sizeGiB: number;
  type: string;
  iops: number;
  zone: string;
  state: VolumeState;
  attachment: Attachment | undefined;
  tags: Map<string, string>;
  createTimeUs: number;
  visibleAtUs: number;
  timer: Timer | undefined;
}

interface Snapshot {
  id: string;
  volumeId: string;
  sizeGiB: number;
  state: 'pending' | 'completed' | 'error';
  progressPct: number;
  startTimeUs: number;
  description: string;
  tags: Map<string, string>;
}

interface Reservation {
  id: string;
  instanceIds: string[];
  fingerprint: string;
}

interface Bucket {
  tokens: number;
  atUs: number;
}

export type ResponseBody = { [key: string]: XmlValue };

export class Ec2Model {
  private readonly instances = new Map<string, Instance>();
  private readonly volumes = new Map<string, Volume>();
  private readonly snapshots = new Map<string, Snapshot>();
  private readonly reservationsByToken = new Map<string, Reservation>();
  private readonly volumesByToken = new Map<string, { fingerprint: string; volumeId: string }>();
  private readonly buckets = new Map<string, Bucket>();
  private readonly catalog: Map<string, CatalogEntry>;
  private readonly ids: Rng;
  private readonly timing: Rng;
  private readonly consistency: Rng;
  private nextIp = 10;

  constructor(private readonly world: World, readonly config: CloudConfig) {
    this.catalog = new Map(config.catalog.map((c) => [c.type, c]));
    this.ids = world.rng('cloud/ec2-ids');
    this.timing = world.rng('cloud/ec2-timing');
    this.consistency = world.rng('cloud/ec2-consistency');
  }

  newRequestId(): string {
    const h = (n: number): string => Array.from({ length: n }, () => this.ids.int(0, 16).toString(16)).join('');
    return `${h(8)}-${h(4)}-4${h(3)}-a${h(3)}-${h(12)}`;
  }

  /** Apply one request now. Throws Ec2ApiError with AWS's code, message and HTTP status. */
  handle(action: string, tree: ParamTree): ResponseBody {
    const p = new Params(tree);
    this.throttle(action);
    if (this.config.unauthorized.includes(action)) {
      throw new Ec2ApiError('UnauthorizedOperation', 'You are not authorized to perform this operation.', 403);
    }
    switch (action) {
      case 'DescribeInstanceTypes': return this.describeInstanceTypes(p);
      case 'DescribeImages': return this.describeImages(p);
      case 'RunInstances': return this.runInstances(p);
      case 'DescribeInstances': return this.describeInstances(p);
      case 'StartInstances': return this.startInstances(p);
      case 'StopInstances': return this.stopInstances(p);
      case 'TerminateInstances': return this.terminateInstances(p);
      case 'ModifyInstanceAttribute': return this.modifyInstanceAttribute(p);
      case 'CreateVolume': return this.createVolume(p);
      case 'AttachVolume': return this.attachVolume(p);
      case 'DetachVolume': return this.detachVolume(p);
      case 'DeleteVolume': return this.deleteVolume(p);
      case 'DescribeVolumes': return this.describeVolumes(p);
      case 'CreateSnapshot': return this.createSnapshot(p);
      case 'DescribeSnapshots': return this.describeSnapshots(p);
      case 'DeleteSnapshot': return this.deleteSnapshot(p);
      case 'CreateTags': return this.createTags(p);
      default:
        throw new Ec2ApiError('InvalidAction', `The action ${action || '(none)'} is not valid for this web service.`, 400);
    }
  }

  /** Standard-family vCPUs held by pending, running, stopping and shutting-down instances. */
  vcpusInUse(): number {
    let used = 0;
    for (const inst of this.instances.values()) {
      if (inst.state === 'stopped' || inst.state === 'terminated') continue;
      if (STANDARD_FAMILIES.test(inst.type)) used += this.catalog.get(inst.type)?.vcpus ?? 0;
    }
    return used;
  }

  /** The user data an instance was launched with, decoded (what the staging image's cloud-init reads). */
  instanceUserData(id: string): string | undefined {
    const data = this.instances.get(id)?.userData;
    return data === undefined ? undefined : Buffer.from(data, 'base64').toString('utf8');
  }

  /** Resources still alive (not terminated/deleted), for cleanup checks. */
  liveResourceIds(): string[] {
    return [
      ...[...this.instances.values()].filter((i) => i.state !== 'terminated').map((i) => i.id),
      ...[...this.volumes.values()].filter((v) => v.state !== 'deleted').map((v) => v.id),
      ...[...this.snapshots.keys()],
    ];
  }

  // ---- gates -------------------------------------------------------------

  private throttle(action: string): void {
    const { perSecond, burst } = this.config.api.rateLimit;
    const now = this.world.clock.nowUs();
    const bucket = this.buckets.get(action) ?? { tokens: burst, atUs: now };
    bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.atUs) / US_PER_S) * perSecond);
    bucket.atUs = now;
    this.buckets.set(action, bucket);
    if (bucket.tokens < 1) throw new Ec2ApiError('RequestLimitExceeded', 'Request limit exceeded.', 503);
    bucket.tokens -= 1;
  }

  /** After validation: DryRun answers here, and scripted faults fire. */
  private gate(action: string, p: Params, placement: Array<{ type: string; zone: string }> = []): void {
    if (p.bool('DryRun')) throw new Ec2ApiError('DryRunOperation', 'Request would have succeeded, but DryRun flag is set.', 412);
    const now = this.world.clock.nowUs();
    for (const fault of this.config.faults) {
      if (now < fault.atUs || now >= fault.untilUs) continue;
      if (fault.error === 'InsufficientInstanceCapacity') {
        if (fault.api ? fault.api !== action : action !== 'RunInstances' && action !== 'StartInstances') continue;
        const hit = placement.find((pl) => (!fault.type || fault.type === pl.type) && (!fault.zone || fault.zone === pl.zone));
        if (!hit) continue;
        const others = this.config.zones.filter((z) => z !== hit.zone);
        throw new Ec2ApiError('InsufficientInstanceCapacity',
          `We currently do not have sufficient ${hit.type} capacity in the Availability Zone you requested (${hit.zone}). Our system will be working on provisioning additional capacity. You can currently get ${hit.type} capacity by not specifying an Availability Zone in your request${others.length ? ` or choosing ${others.join(', ')}` : ''}.`, 500);
      }
      if (fault.api && fault.api !== action) continue;
      if (fault.error === 'RequestLimitExceeded') throw new Ec2ApiError('RequestLimitExceeded', 'Request limit exceeded.', 503);
      if (fault.error === 'InternalError') throw new Ec2ApiError('InternalError', 'An internal error has occurred', 500);
      throw new Ec2ApiError(fault.error, 'The service is unavailable. Try again shortly.', 503);
    }
  }

  private capacityBlocked(type: string, zone: string): boolean {
    const now = this.world.clock.nowUs();
    return this.config.faults.some((f) => f.error === 'InsufficientInstanceCapacity' && now >= f.atUs && now < f.untilUs
      && (!f.api || f.api === 'RunInstances') && (!f.type || f.type === type) && (!f.zone || f.zone === zone));
  }

  private checkQuota(addVcpus: number): void {
    const limit = this.config.quotas.vcpus;
    if (this.vcpusInUse() + addVcpus > limit) {
      throw new Ec2ApiError('VcpuLimitExceeded',
        `You have requested more vCPU capacity than your current vCPU limit of ${limit} allows for the instance bucket that the specified instance type belongs to. Please visit http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit.`, 400);
    }
  }

  // ---- ids, time, visibility -----------------------------------------------

  private newId(prefix: string): string {
    let id: string;
    do {
      id = `${prefix}-0${Array.from({ length: 16 }, () => this.ids.int(0, 16).toString(16)).join('')}`;
    } while (this.instances.has(id) || this.volumes.has(id) || this.snapshots.has(id));
    return id;
  }

  private iso(us: number): string {
    return isoFromEpochMs(EMULATED_EPOCH_MS + us / 1000);
  }

  private after(delayUs: number, fn: () => void): Timer {
    return this.world.clock.schedule(Math.max(1, Math.round(delayUs)), fn);
  }

  private draw(meanS: number, sdS: number, minS: number): number {
    return Math.max(minS, this.timing.normal(meanS, sdS)) * US_PER_S;
  }

  private visibleAt(): number {
    const window = this.config.consistencyWindowUs;
    return this.world.clock.nowUs() + (window > 0 ? this.consistency.int(0, window + 1) : 0);
  }

  private visible(r: { visibleAtUs: number }): boolean {
    return this.world.clock.nowUs() >= r.visibleAtUs;
  }

  private instanceIds(p: Params, name = 'InstanceId', required = true): string[] {
    const ids = p.strList(name);
    if (required && ids.length === 0) throw new Ec2ApiError('MissingParameter', `The request must contain the parameter ${p.path(name)}`, 400);
    for (const id of ids) checkInstanceId(id);
    return ids;
  }

  /** Instances the caller may see by id; unknown or not-yet-visible ids fail together, as AWS reports them. */
  private lookupInstances(ids: string[]): Instance[] {
    const missing = ids.filter((id) => {
      const inst = this.instances.get(id);
      return !inst || !this.visible(inst);
    });
    if (missing.length === 1) throw new Ec2ApiError('InvalidInstanceID.NotFound', `The instance ID '${missing[0]}' does not exist`, 400);
    if (missing.length > 1) throw new Ec2ApiError('InvalidInstanceID.NotFound', `The instance IDs '${missing.join(', ')}' do not exist`, 400);
    return ids.map((id) => this.instances.get(id)!);
  }

  private lookupVolume(id: string): Volume {
    if (!/^vol-[0-9a-f]{8,17}$/.test(id)) throw new Ec2ApiError('InvalidVolumeID.Malformed', `Invalid id: "${id}" (expecting "vol-...")`, 400);
    const vol = this.volumes.get(id);
    if (!vol || !this.visible(vol) || vol.state === 'deleted') throw new Ec2ApiError('InvalidVolume.NotFound', `The volume '${id}' does not exist.`, 400);
    return vol;
  }

  // ---- instances -----------------------------------------------------------

  private setInstanceState(inst: Instance, state: InstanceState, reason = ''): void {
    inst.state = state;
    // AWS stamps the reason with the moment of the transition: "User initiated (2026-01-05 00:05:12 GMT)".
    const at = this.iso(this.world.clock.nowUs()).replace('T', ' ').replace(/\.\d+Z$/, ' GMT');
    inst.stateReason = reason ? `${reason} (${at})` : '';
  }

  private describeInstanceTypes(p: Params): ResponseBody {
    const names = p.strList('InstanceType');
    const unknown = names.filter((n) => !this.catalog.has(n));
    if (unknown.length) throw new Ec2ApiError('InvalidInstanceType', `The following supplied instance types do not exist: [${unknown.join(', ')}]`, 400);
    this.gate('DescribeInstanceTypes', p);
    const filters = parseFilters(p, ['instance-type', 'current-generation']);
    let entries = names.length ? names.map((n) => this.catalog.get(n)!) : [...this.catalog.values()];
    entries = entries.filter((c) => matchFilters(filters, (name) => (name === 'instance-type' ? [c.type] : ['true'])));
    const page = paginate(entries, p, 5, 100, 100);
    return {
      instanceTypeSet: page.items.map((c) => ({
        instanceType: c.type,
        currentGeneration: true,
        vCpuInfo: { defaultVCpus: c.vcpus },
        memoryInfo: { sizeInMiB: Math.round(c.memoryGiB * 1024) },
        ebsInfo: { ebsOptimizedSupport: 'default', ebsOptimizedInfo: { baselineIops: c.ebsIops, maximumIops: c.ebsIops } },
        networkInfo: { networkPerformance: `Up to ${c.networkGbit} Gigabit` },
        hypervisor: 'nitro',
      })),
      nextToken: page.nextToken,
    };
  }

  private describeImages(p: Params): ResponseBody {
    const ids = p.strList('ImageId');
    for (const id of ids) if (!/^ami-[0-9a-f]{8,17}$/.test(id)) throw new Ec2ApiError('InvalidAMIID.Malformed', `Invalid id: "${id}" (expecting "ami-...")`, 400);
    const missing = ids.filter((id) => !this.config.images.some((im) => im.id === id));
    if (missing.length) throw new Ec2ApiError('InvalidAMIID.NotFound', `The image id '[${missing.join(', ')}]' does not exist`, 400);
    // Every emulated image belongs to this account: an owner list without it matches nothing.
    const owners = p.strList('Owner');
    const ownedBySelf = owners.length === 0 || owners.includes('self') || owners.includes(EMULATED_OWNER_ID);
    this.gate('DescribeImages', p);
    const filters = parseFilters(p, ['image-id', 'name', 'state', 'tag-key'], true);
    const images = this.config.images.filter((im) => ownedBySelf && (ids.length === 0 || ids.includes(im.id))
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

  private runInstances(p: Params): ResponseBody {
    const imageId = p.str('ImageId');
    if (!/^ami-[0-9a-f]{8,17}$/.test(imageId)) throw new Ec2ApiError('InvalidAMIID.Malformed', `Invalid id: "${imageId}" (expecting "ami-...")`, 400);
    if (!this.config.images.some((im) => im.id === imageId)) throw new Ec2ApiError('InvalidAMIID.NotFound', `The image id '[${imageId}]' does not exist`, 400);
    const type = p.optStr('InstanceType') ?? 'm1.small';
    const entry = this.catalog.get(type);
    if (!entry) throw new Ec2ApiError('InvalidParameterValue', `Invalid value '${type}' for InstanceType.`, 400);
    const minCount = p.int('MinCount', 1, 1000);
    const maxCount = p.int('MaxCount', 1, 1000);
    if (minCount > maxCount) throw invalid('MinCount', String(minCount), `MinCount must be less than or equal to MaxCount (${maxCount}).`);
    const requestedZone = p.struct('Placement')?.optStr('AvailabilityZone');
    if (requestedZone !== undefined && !this.config.zones.includes(requestedZone)) {
      throw new Ec2ApiError('InvalidParameterValue', `Invalid availability zone: [${requestedZone}]`, 400);
    }
    const userData = p.optStr('UserData');
    if (userData !== undefined) {
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(userData) || userData.length % 4 !== 0) throw invalid('UserData', '(not base64)', 'Invalid BASE64 encoding of user data.');
      if (Buffer.from(userData, 'base64').length > USER_DATA_MAX_BYTES) throw invalid('UserData', '(too long)', `User data is limited to ${USER_DATA_MAX_BYTES} bytes.`);
    }
    const tagSpecs = parseTagSpecifications(p, ['instance', 'volume']);
    const clientToken = p.optStr('ClientToken');
    if (clientToken !== undefined && (clientToken.length > 64 || !/^[\x20-\x7e]+$/.test(clientToken))) {
      throw invalid('ClientToken', clientToken, 'A client token is at most 64 printable ASCII characters.');
    }
    // Idempotency: the same token with the same request returns the original reservation.
    const fingerprint = JSON.stringify([imageId, type, minCount, maxCount, requestedZone ?? '', userData ?? '', [...(tagSpecs.get('instance') ?? [])]]);
    if (clientToken !== undefined) {
      const prior = this.reservationsByToken.get(clientToken);
      if (prior) {
        if (prior.fingerprint !== fingerprint) throw new Ec2ApiError('IdempotentParameterMismatch', `The client token '${clientToken}' was already used with different parameters.`, 400);
        this.gate('RunInstances', p);
        const instances = prior.instanceIds.map((id) => this.instances.get(id)!);
        return { reservationId: prior.id, ownerId: EMULATED_OWNER_ID, groupSet: [], instancesSet: instances.map((i) => this.instanceXml(i)) };
      }
    }
    const zone = requestedZone ?? this.config.zones.find((z) => !this.capacityBlocked(type, z)) ?? this.config.zones[0]!;
    this.gate('RunInstances', p, [{ type, zone }]);
    // Launch as many as the quota allows, at least MinCount (AWS's MinCount/MaxCount contract).
    const perInstance = STANDARD_FAMILIES.test(type) ? entry.vcpus : 0;
    const room = perInstance === 0 ? maxCount : Math.floor((this.config.quotas.vcpus - this.vcpusInUse()) / perInstance);
    const count = Math.min(maxCount, room);
    if (count < minCount) this.checkQuota(perInstance * minCount);
    const reservationId = this.newId('r');
    const now = this.world.clock.nowUs();
    const launched: Instance[] = [];
    for (let n = 0; n < count; n++) {
      const inst: Instance = {
        id: this.newId('i'), type, zone, imageId, state: 'pending',
        privateIp: `10.0.${Math.floor(this.nextIp / 250)}.${(this.nextIp % 250) + 4}`,
        launchTimeUs: now, tags: new Map(tagSpecs.get('instance') ?? []), reservationId, clientToken, userData,
        visibleAtUs: this.visibleAt(), stateReason: '', timer: undefined,
      };
      this.nextIp++;
      this.instances.set(inst.id, inst);
      this.scheduleBoot(inst);
      launched.push(inst);
    }
    if (clientToken !== undefined) this.reservationsByToken.set(clientToken, { id: reservationId, instanceIds: launched.map((i) => i.id), fingerprint });
    return { reservationId, ownerId: EMULATED_OWNER_ID, groupSet: [], instancesSet: launched.map((i) => this.instanceXml(i)) };
  }

  private scheduleBoot(inst: Instance): void {
    const { meanUs, sdUs } = this.config.boot;
    inst.timer = this.after(this.draw(meanUs / US_PER_S, sdUs / US_PER_S, 5), () => {
      inst.timer = undefined;
      if (inst.state === 'pending') this.setInstanceState(inst, 'running');
    });
  }

  private describeInstances(p: Params): ResponseBody {
    const ids = this.instanceIds(p, 'InstanceId', false);
    const filters = parseFilters(p, ['instance-id', 'instance-state-name', 'instance-type', 'availability-zone', 'image-id', 'client-token', 'tag-key'], true);
    const maxResults = p.optInt('MaxResults', 5, 1000);
    if (ids.length && maxResults !== undefined) throw new Ec2ApiError('InvalidParameterCombination', 'The parameter instancesSet cannot be used with the parameter maxResults', 400);
    const chosen = ids.length ? this.lookupInstances(ids) : [...this.instances.values()].filter((i) => this.visible(i));
    this.gate('DescribeInstances', p);
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

  private startInstances(p: Params): ResponseBody {
    const insts = this.lookupInstances(this.instanceIds(p));
    for (const inst of insts) {
      if (inst.state === 'stopping' || inst.state === 'shutting-down' || inst.state === 'terminated') {
        throw new Ec2ApiError('IncorrectInstanceState', `The instance '${inst.id}' is not in a state from which it can be started.`, 400);
      }
    }
    const toStart = insts.filter((i) => i.state === 'stopped');
    this.gate('StartInstances', p, toStart.map((i) => ({ type: i.type, zone: i.zone })));
    this.checkQuota(toStart.reduce((sum, i) => sum + (STANDARD_FAMILIES.test(i.type) ? this.catalog.get(i.type)?.vcpus ?? 0 : 0), 0));
    return {
      instancesSet: insts.map((inst) => {
        const previous = inst.state;
        if (previous === 'stopped') {
          this.setInstanceState(inst, 'pending');
          inst.launchTimeUs = this.world.clock.nowUs();
          this.scheduleBoot(inst);
        }
        return stateChangeXml(inst, previous);
      }),
    };
  }

  private stopInstances(p: Params): ResponseBody {
    const insts = this.lookupInstances(this.instanceIds(p));
    for (const inst of insts) {
      if (inst.state === 'pending' || inst.state === 'shutting-down' || inst.state === 'terminated') {
        throw new Ec2ApiError('IncorrectInstanceState', `The instance '${inst.id}' is not in a state from which it can be stopped.`, 400);
      }
    }
    this.gate('StopInstances', p);
    return {
      instancesSet: insts.map((inst) => {
        const previous = inst.state;
        if (previous === 'running') {
          this.setInstanceState(inst, 'stopping', 'User initiated');
          inst.timer = this.after(this.draw(30, 10, 5), () => {
            inst.timer = undefined;
            if (inst.state === 'stopping') this.setInstanceState(inst, 'stopped', 'User initiated');
          });
        }
        return stateChangeXml(inst, previous);
      }),
    };
  }

  private terminateInstances(p: Params): ResponseBody {
    const insts = this.lookupInstances(this.instanceIds(p));
    this.gate('TerminateInstances', p);
    return {
      instancesSet: insts.map((inst) => {
        const previous = inst.state;
        if (previous !== 'terminated' && previous !== 'shutting-down') {
          inst.timer?.cancel();
          this.setInstanceState(inst, 'shutting-down', 'User initiated');
          inst.timer = this.after(this.draw(20, 5, 3), () => {
            this.setInstanceState(inst, 'terminated', 'User initiated');
            // Data volumes outlive their instance: they detach and become available.
            for (const vol of this.volumes.values()) {
              if (vol.attachment?.instanceId === inst.id) {
                vol.timer?.cancel();
                vol.attachment = undefined;
                vol.state = 'available';
              }
            }
            inst.timer = this.after(TERMINATED_VISIBLE_US, () => this.instances.delete(inst.id));
          });
        }
        return stateChangeXml(inst, previous);
      }),
    };
  }

  private modifyInstanceAttribute(p: Params): ResponseBody {
    const id = checkInstanceId(p.str('InstanceId'));
    const requested = p.struct('InstanceType')?.optStr('Value') ?? (p.optStr('Attribute') === 'instanceType' ? p.str('Value') : undefined);
    if (requested === undefined) throw new Ec2ApiError('MissingParameter', 'The request must contain the parameter InstanceType.Value (the only attribute this emulator changes)', 400);
    if (!this.catalog.has(requested)) throw invalid('InstanceType', requested, `Allowed types: ${[...this.catalog.keys()].join(', ')}.`);
    const [inst] = this.lookupInstances([id]);
    if (inst!.state !== 'stopped') throw new Ec2ApiError('IncorrectInstanceState', `The instance '${inst!.id}' is not in the 'stopped' state.`, 400);
    this.gate('ModifyInstanceAttribute', p);
    inst!.type = requested;
    return { return: true };
  }

  private instanceXml(i: Instance): XmlValue {
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
      launchTime: this.iso(i.launchTimeUs),
      placement: { availabilityZone: i.zone, groupName: '', tenancy: 'default' },
      monitoring: { state: 'disabled' },
      privateIpAddress: i.privateIp,
      groupSet: [],
      stateReason: i.stateReason ? { code: 'Client.UserInitiatedShutdown', message: 'Client.UserInitiatedShutdown: User initiated shutdown' } : undefined,
      architecture: 'x86_64',
      rootDeviceType: 'ebs',
      rootDeviceName: '/dev/xvda',
      blockDeviceMapping: [],
      virtualizationType: 'hvm',
      clientToken: i.clientToken ?? '',
      tagSet: i.tags.size ? tagSet(i.tags) : undefined,
      hypervisor: 'xen',
      ebsOptimized: false,
      enaSupport: true,
    };
  }

  // ---- volumes -------------------------------------------------------------

  private createVolume(p: Params): ResponseBody {
    const zone = p.str('AvailabilityZone');
    if (!this.config.zones.includes(zone)) throw invalid('AvailabilityZone', zone, `Allowed zones: ${this.config.zones.join(', ')}.`);
    const type = p.optStr('VolumeType') ?? 'gp2';
    const range = VOLUME_SIZE_GIB[type];
    if (!range) throw invalid('VolumeType', type, `Allowed types: ${Object.keys(VOLUME_SIZE_GIB).join(', ')}.`);
    const sizeGiB = p.optInt('Size', 0);
    if (sizeGiB === undefined) throw new Ec2ApiError('MissingParameter', 'The request must contain the parameter size or snapshotId', 400);
    if (sizeGiB < range[0] || sizeGiB > range[1]) throw invalid('Size', String(sizeGiB), `For ${type} the size must be from ${range[0]} to ${range[1]} GiB.`);
    const iops = p.optInt('Iops', 100, 256_000) ?? (type === 'gp3' ? 3000 : type === 'gp2' ? Math.min(16_000, Math.max(100, sizeGiB * 3)) : 0);
    const tags = parseTagSpecifications(p, ['volume']).get('volume') ?? new Map<string, string>();
    const clientToken = p.optStr('ClientToken');
    const fingerprint = JSON.stringify([zone, type, sizeGiB, iops, [...tags]]);
    if (clientToken !== undefined) {
      const prior = this.volumesByToken.get(clientToken);
      if (prior) {
        if (prior.fingerprint !== fingerprint) throw new Ec2ApiError('IdempotentParameterMismatch', `The client token '${clientToken}' was already used with different parameters.`, 400);
        this.gate('CreateVolume', p);
        return this.volumeXml(this.volumes.get(prior.volumeId)!, false);
      }
    }
    this.gate('CreateVolume', p);
    const now = this.world.clock.nowUs();
    const vol: Volume = {
      id: this.newId('vol'), sizeGiB, type, iops, zone, state: 'creating', attachment: undefined, tags,
      createTimeUs: now, visibleAtUs: this.visibleAt(), timer: undefined,
    };
    this.volumes.set(vol.id, vol);
    if (clientToken !== undefined) this.volumesByToken.set(clientToken, { fingerprint, volumeId: vol.id });
    vol.timer = this.after(this.draw(4, 1.5, 1), () => {
      vol.timer = undefined;
      if (vol.state === 'creating') vol.state = 'available';
    });
    return this.volumeXml(vol, false);
  }

  private attachVolume(p: Params): ResponseBody {
    const vol = this.lookupVolume(p.str('VolumeId'));
    const instanceId = p.str('InstanceId');
    const device = p.str('Device');
    if (!DEVICE_PATTERN.test(device)) throw invalid('device', device, `${device} is not a valid EBS device name.`);
    const [inst] = this.lookupInstances([checkInstanceId(instanceId)]);
    if (inst!.state !== 'running' && inst!.state !== 'stopped') throw new Ec2ApiError('IncorrectInstanceState', `Instance '${inst!.id}' is not 'running'.`, 400);
    if (inst!.zone !== vol.zone) throw new Ec2ApiError('InvalidVolume.ZoneMismatch', `The volume '${vol.id}' is not in the same availability zone as instance '${inst!.id}'`, 400);
    if (vol.state === 'in-use') throw new Ec2ApiError('VolumeInUse', `${vol.id} is already attached to an instance`, 400);
    if (vol.state !== 'available') throw new Ec2ApiError('IncorrectState', `vol '${vol.id}' is not 'available'.`, 400);
    for (const other of this.volumes.values()) {
      if (other.attachment?.instanceId === inst!.id && other.attachment.device === device) {
        throw invalid('device', device, `Attachment point ${device} is already in use`);
      }
    }
    this.gate('AttachVolume', p);
    const attachment: Attachment = { instanceId: inst!.id, device, state: 'attaching', timeUs: this.world.clock.nowUs() };
    vol.attachment = attachment;
    vol.state = 'in-use';
    vol.timer = this.after(this.draw(2.5, 1, 0.5), () => {
      vol.timer = undefined;
      if (vol.attachment === attachment && attachment.state === 'attaching') attachment.state = 'attached';
    });
    return attachmentXml(vol.id, attachment, this.iso(attachment.timeUs));
  }

  private detachVolume(p: Params): ResponseBody {
    const vol = this.lookupVolume(p.str('VolumeId'));
    const attachment = vol.attachment;
    if (vol.state !== 'in-use' || !attachment) throw new Ec2ApiError('IncorrectState', `Volume '${vol.id}' is in the '${vol.state}' state.`, 400);
    const instanceId = p.optStr('InstanceId');
    if (instanceId !== undefined && instanceId !== attachment.instanceId) {
      throw new Ec2ApiError('InvalidAttachment.NotFound', `Volume '${vol.id}' is not attached to '${instanceId}'.`, 400);
    }
    this.gate('DetachVolume', p);
    if (attachment.state !== 'detaching') {
      vol.timer?.cancel();
      attachment.state = 'detaching';
      vol.timer = this.after(this.draw(4, 1.5, 1), () => {
        vol.timer = undefined;
        if (vol.attachment === attachment) {
          vol.attachment = undefined;
          vol.state = 'available';
        }
      });
    }
    return attachmentXml(vol.id, attachment, this.iso(attachment.timeUs));
  }

  private deleteVolume(p: Params): ResponseBody {
    const vol = this.lookupVolume(p.str('VolumeId'));
    if (vol.state === 'in-use') throw new Ec2ApiError('VolumeInUse', `Volume ${vol.id} is currently attached to ${vol.attachment?.instanceId}`, 400);
    if (vol.state !== 'available') throw new Ec2ApiError('IncorrectState', `The volume '${vol.id}' is '${vol.state}'.`, 400);
    this.gate('DeleteVolume', p);
    vol.state = 'deleting';
    vol.timer = this.after(this.draw(2, 0.5, 0.5), () => {
      vol.state = 'deleted';
      this.volumes.delete(vol.id);
    });
    return { return: true };
  }

  private describeVolumes(p: Params): ResponseBody {
    const ids = p.strList('VolumeId');
    const chosen = ids.map((id) => this.lookupVolume(id));
    this.gate('DescribeVolumes', p);
    const filters = parseFilters(p, ['volume-id', 'status', 'availability-zone', 'volume-type', 'attachment.instance-id', 'attachment.status', 'tag-key'], true);
    const pool = ids.length ? chosen : [...this.volumes.values()].filter((v) => this.visible(v) && v.state !== 'deleted');
    const matched = pool.filter((v) => matchFilters(filters, (name) => fieldOf(name, {
      'volume-id': [v.id], status: [v.state], 'availability-zone': [v.zone], 'volume-type': [v.type],
      'attachment.instance-id': v.attachment ? [v.attachment.instanceId] : [], 'attachment.status': v.attachment ? [v.attachment.state] : [],
    }, v.tags)));
    const maxResults = p.optInt('MaxResults', 5, 500);
    const page = paginate(matched, p, 5, 500, maxResults === undefined ? Infinity : 500);
    return { volumeSet: page.items.map((v) => this.volumeXml(v, true)), nextToken: page.nextToken };
  }

  private volumeXml(v: Volume, inSet: boolean): { [key: string]: XmlValue } {
    const attachments = v.attachment ? [{ volumeId: v.id, instanceId: v.attachment.instanceId, device: v.attachment.device, status: v.attachment.state, attachTime: this.iso(v.attachment.timeUs), deleteOnTermination: false }] : [];
    return {
      volumeId: v.id,
      size: v.sizeGiB,
      snapshotId: '',
      availabilityZone: v.zone,
      status: v.state,
      createTime: this.iso(v.createTimeUs),
      attachmentSet: inSet ? attachments : undefined,
      volumeType: v.type,
      iops: v.iops || undefined,
      encrypted: false,
      multiAttachEnabled: false,
      tagSet: v.tags.size ? tagSet(v.tags) : undefined,
    };
  }

  // ---- snapshots -----------------------------------------------------------

  private createSnapshot(p: Params): ResponseBody {
    const vol = this.lookupVolume(p.str('VolumeId'));
    if (vol.state === 'creating') throw new Ec2ApiError('IncorrectState', `The volume '${vol.id}' is not yet available.`, 400);
    const tags = parseTagSpecifications(p, ['snapshot']).get('snapshot') ?? new Map<string, string>();
    const description = p.optStr('Description') ?? '';
    this.gate('CreateSnapshot', p);
    const snap: Snapshot = {
      id: this.newId('snap'), volumeId: vol.id, sizeGiB: vol.sizeGiB, state: 'pending', progressPct: 0,
      startTimeUs: this.world.clock.nowUs(), description, tags,
    };
    this.snapshots.set(snap.id, snap);
    // Snapshots copy the volume's written blocks: time grows with size.
    const totalUs = this.draw(30 + vol.sizeGiB * 0.5, 10, 5);
    this.after(totalUs / 2, () => {
      if (snap.state === 'pending') snap.progressPct = 50;
    });
    this.after(totalUs, () => {
      if (snap.state === 'pending') {
        snap.state = 'completed';
        snap.progressPct = 100;
      }
    });
    return this.snapshotXml(snap);
  }

  private describeSnapshots(p: Params): ResponseBody {
    const ids = p.strList('SnapshotId');
    const missing = ids.filter((id) => !this.snapshots.has(id));
    if (missing.length) throw new Ec2ApiError('InvalidSnapshot.NotFound', `The snapshot '${missing.join(', ')}' does not exist.`, 400);
    const owners = p.strList('Owner');
    for (const o of owners) if (o !== 'self' && o !== EMULATED_OWNER_ID) throw invalid('Owner', o, 'Only self (this account) holds snapshots in this emulator.');
    this.gate('DescribeSnapshots', p);
    const filters = parseFilters(p, ['snapshot-id', 'volume-id', 'status', 'owner-id', 'tag-key'], true);
    const pool = ids.length ? ids.map((id) => this.snapshots.get(id)!) : [...this.snapshots.values()];
    const matched = pool.filter((s) => matchFilters(filters, (name) => fieldOf(name, {
      'snapshot-id': [s.id], 'volume-id': [s.volumeId], status: [s.state], 'owner-id': [EMULATED_OWNER_ID],
    }, s.tags)));
    const maxResults = p.optInt('MaxResults', 5, 1000);
    const page = paginate(matched, p, 5, 1000, maxResults === undefined ? Infinity : 1000);
    return { snapshotSet: page.items.map((s) => this.snapshotXml(s)), nextToken: page.nextToken };
  }

  private deleteSnapshot(p: Params): ResponseBody {
    const id = p.str('SnapshotId');
    if (!this.snapshots.has(id)) throw new Ec2ApiError('InvalidSnapshot.NotFound', `The snapshot '${id}' does not exist.`, 400);
    this.gate('DeleteSnapshot', p);
    this.snapshots.delete(id);
    return { return: true };
  }

  private snapshotXml(s: Snapshot): { [key: string]: XmlValue } {
    return {
      snapshotId: s.id,
      volumeId: s.volumeId,
      status: s.state,
      startTime: this.iso(s.startTimeUs),
      progress: `${s.progressPct}%`,
      ownerId: EMULATED_OWNER_ID,
      volumeSize: s.sizeGiB,
      description: s.description,
      encrypted: false,
      storageTier: 'standard',
      tagSet: s.tags.size ? tagSet(s.tags) : undefined,
    };
  }

  // ---- tags ---------------------------------------------------------------

  private createTags(p: Params): ResponseBody {
    const ids = p.strList('ResourceId');
    if (ids.length === 0) throw new Ec2ApiError('MissingParameter', 'The request must contain the parameter ResourceId', 400);
    const tags = parseTags(p.structList('Tag'), 'Tag');
    if (tags.size === 0) throw new Ec2ApiError('MissingParameter', 'The request must contain the parameter Tag', 400);
    const targets = ids.map((id) => {
      if (id.startsWith('i-')) return this.lookupInstances([id])[0]!.tags;
      if (id.startsWith('vol-')) return this.lookupVolume(id).tags;
      if (id.startsWith('snap-')) {
        const snap = this.snapshots.get(id);
        if (!snap) throw new Ec2ApiError('InvalidSnapshot.NotFound', `The snapshot '${id}' does not exist.`, 400);
        return snap.tags;
      }
      throw new Ec2ApiError('InvalidID', `The ID '${id}' is not valid`, 400);
    });
    for (const target of targets) {
      const merged = new Set([...target.keys(), ...tags.keys()]);
      if (merged.size > 50) throw new Ec2ApiError('TagLimitExceeded', 'The maximum number of tags per resource (50) would be exceeded.', 400);
    }
    this.gate('CreateTags', p);
    for (const target of targets) for (const [k, v] of tags) target.set(k, v);
    return { return: true };
  }
}


function checkInstanceId(id: string): string {
  if (!/^i-[0-9a-f]{8,17}$/.test(id)) throw new Ec2ApiError('InvalidInstanceID.Malformed', `Invalid id: "${id}" (expecting "i-...")`, 400);
  return id;
}

function stateChangeXml(inst: Instance, previous: InstanceState): XmlValue {
  return {
    instanceId: inst.id,
    currentState: { code: STATE_CODES[inst.state], name: inst.state },
    previousState: { code: STATE_CODES[previous], name: previous },
  };
}

function attachmentXml(volumeId: string, a: Attachment, attachTime: string): ResponseBody {
  return { volumeId, instanceId: a.instanceId, device: a.device, status: a.state, attachTime, deleteOnTermination: false };
}

function tagSet(tags: Map<string, string>): XmlValue {
  return [...tags].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([key, value]) => ({ key, value }));
}

function parseTags(items: Params[], where: string): Map<string, string> {
  const tags = new Map<string, string>();
  items.forEach((t, i) => {
    const key = t.str('Key');
    const value = t.optStr('Value') ?? '';
    if (key.length > 128) throw invalid(`${where}.${i + 1}.Key`, key, 'Tag keys are at most 128 characters.');
    if (value.length > 256) throw invalid(`${where}.${i + 1}.Value`, value, 'Tag values are at most 256 characters.');
    if (key.toLowerCase().startsWith('aws:')) throw invalid(`${where}.${i + 1}.Key`, key, 'Tag keys starting with aws: are reserved.');
    tags.set(key, value);
  });
  return tags;
}

function parseTagSpecifications(p: Params, allowed: string[]): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  p.structList('TagSpecification').forEach((spec, i) => {
    const type = spec.str('ResourceType');
    if (!allowed.includes(type)) throw invalid(`TagSpecification.${i + 1}.ResourceType`, type, `Allowed here: ${allowed.join(', ')}.`);
    out.set(type, new Map([...(out.get(type) ?? []), ...parseTags(spec.structList('Tag'), `TagSpecification.${i + 1}.Tag`)]));
  });
  return out;
}

type Filter = { name: string; values: string[] };

function parseFilters(p: Params, allowed: string[], tagFilters = false): Filter[] {
  return p.structList('Filter').map((f) => {
    const name = f.str('Name');
    if (!allowed.includes(name) && !(tagFilters && name.startsWith('tag:') && name.length > 4)) {
      throw new Ec2ApiError('InvalidParameterValue', `The filter '${name}' is invalid`, 400);
    }
    return { name, values: f.strList('Value') };
  });
}

/** AWS filters: values within one filter OR, filters AND; `*` and `?` are wildcards. */
function matchFilters(filters: Filter[], field: (name: string) => string[]): boolean {
  return filters.every((f) => {
    const actual = field(f.name);
    return f.values.some((pattern) => actual.some((a) => globMatch(pattern, a)));
  });
}

function fieldOf(name: string, fields: Record<string, string[]>, tags: Map<string, string>): string[] {
  if (name === 'tag-key') return [...tags.keys()];
  if (name.startsWith('tag:')) {
    const v = tags.get(name.slice(4));
    return v === undefined ? [] : [v];
  }
  return fields[name] ?? [];
}

function globMatch(pattern: string, value: string): boolean {
  if (!/[*?]/.test(pattern)) return pattern === value;
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
  return re.test(value);
}

function paginate<T>(items: T[], p: Params, min: number, max: number, defaultPage: number): { items: T[]; nextToken: string | undefined } {
  const size = p.optInt('MaxResults', min, max) ?? defaultPage;
  const token = p.optStr('NextToken');
  let start = 0;
  if (token !== undefined) {
    const decoded = /^o(\d+)$/.exec(Buffer.from(token, 'base64').toString('utf8'));
    if (!decoded) throw new Ec2ApiError('InvalidNextToken', 'The specified token is invalid.', 400);
    start = Number(decoded[1]);
  }
  const end = Math.min(items.length, start + size);
  return { items: items.slice(start, end), nextToken: end < items.length ? Buffer.from(`o${end}`).toString('base64') : undefined };
}
