import { fieldOf, matchFilters, paginate, parseFilters, parseTagSpecifications, tagSet } from './filters.js';
import { Ec2ApiError, invalid, type Params, type XmlValue } from './query.js';
import { DEVICE_PATTERN, EMULATED_OWNER_ID, VOLUME_SIZE_GIB, checkInstanceId, type Attachment, type Ec2State, type ResponseBody, type Snapshot, type Volume } from './state.js';

/** EC2's EBS actions (volumes: create, attach, detach, delete, describe; snapshots) on the shared state. */
export class VolumeActions {
  constructor(private readonly s: Ec2State) {}

  // ---- volumes -------------------------------------------------------------

  createVolume(p: Params): ResponseBody {
    const zone = p.str('AvailabilityZone');
    if (!this.s.config.zones.includes(zone)) throw invalid('AvailabilityZone', zone, `Allowed zones: ${this.s.config.zones.join(', ')}.`);
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
      const prior = this.s.volumesByToken.get(clientToken);
      if (prior) {
        if (prior.fingerprint !== fingerprint) throw new Ec2ApiError('IdempotentParameterMismatch', `The client token '${clientToken}' was already used with different parameters.`, 400);
        this.s.gate('CreateVolume', p);
        return this.volumeXml(this.s.volumes.get(prior.volumeId)!, false);
      }
    }
    this.s.gate('CreateVolume', p);
    const now = this.s.world.clock.nowUs();
    const vol: Volume = {
      id: this.s.newId('vol'), sizeGiB, type, iops, zone, state: 'creating', attachment: undefined, tags,
      createTimeUs: now, visibleAtUs: this.s.visibleAt(), timer: undefined,
    };
    this.s.volumes.set(vol.id, vol);
    if (clientToken !== undefined) this.s.volumesByToken.set(clientToken, { fingerprint, volumeId: vol.id });
    vol.timer = this.s.after(this.s.draw(4, 1.5, 1), () => {
      vol.timer = undefined;
      if (vol.state === 'creating') vol.state = 'available';
    });
    return this.volumeXml(vol, false);
  }

  attachVolume(p: Params): ResponseBody {
    const vol = this.s.lookupVolume(p.str('VolumeId'));
    const instanceId = p.str('InstanceId');
    const device = p.str('Device');
    if (!DEVICE_PATTERN.test(device)) throw invalid('device', device, `${device} is not a valid EBS device name.`);
    const [inst] = this.s.lookupInstances([checkInstanceId(instanceId)]);
    if (inst!.state !== 'running' && inst!.state !== 'stopped') throw new Ec2ApiError('IncorrectInstanceState', `Instance '${inst!.id}' is not 'running'.`, 400);
    if (inst!.zone !== vol.zone) throw new Ec2ApiError('InvalidVolume.ZoneMismatch', `The volume '${vol.id}' is not in the same availability zone as instance '${inst!.id}'`, 400);
    if (vol.state === 'in-use') throw new Ec2ApiError('VolumeInUse', `${vol.id} is already attached to an instance`, 400);
    if (vol.state !== 'available') throw new Ec2ApiError('IncorrectState', `vol '${vol.id}' is not 'available'.`, 400);
    for (const other of this.s.volumes.values()) {
      if (other.attachment?.instanceId === inst!.id && other.attachment.device === device) {
        throw invalid('device', device, `Attachment point ${device} is already in use`);
      }
    }
    this.s.gate('AttachVolume', p);
    const attachment: Attachment = { instanceId: inst!.id, device, state: 'attaching', timeUs: this.s.world.clock.nowUs(), deleteOnTermination: false };
    vol.attachment = attachment;
    vol.state = 'in-use';
    vol.timer = this.s.after(this.s.draw(2.5, 1, 0.5), () => {
      vol.timer = undefined;
      if (vol.attachment === attachment && attachment.state === 'attaching') attachment.state = 'attached';
    });
    return attachmentXml(vol.id, attachment, this.s.iso(attachment.timeUs));
  }

  detachVolume(p: Params): ResponseBody {
    const vol = this.s.lookupVolume(p.str('VolumeId'));
    const attachment = vol.attachment;
    if (vol.state !== 'in-use' || !attachment) throw new Ec2ApiError('IncorrectState', `Volume '${vol.id}' is in the '${vol.state}' state.`, 400);
    const instanceId = p.optStr('InstanceId');
    if (instanceId !== undefined && instanceId !== attachment.instanceId) {
      throw new Ec2ApiError('InvalidAttachment.NotFound', `Volume '${vol.id}' is not attached to '${instanceId}'.`, 400);
    }
    const owner = this.s.instances.get(attachment.instanceId);
    if (owner?.rootVolumeId === vol.id && owner.state !== 'stopped') {
      throw new Ec2ApiError('IncorrectState', `Unable to detach root volume '${vol.id}' from instance '${owner.id}'`, 400);
    }
    this.s.gate('DetachVolume', p);
    if (attachment.state !== 'detaching') {
      vol.timer?.cancel();
      attachment.state = 'detaching';
      vol.timer = this.s.after(this.s.draw(4, 1.5, 1), () => {
        vol.timer = undefined;
        if (vol.attachment === attachment) {
          vol.attachment = undefined;
          vol.state = 'available';
        }
      });
    }
    return attachmentXml(vol.id, attachment, this.s.iso(attachment.timeUs));
  }

  deleteVolume(p: Params): ResponseBody {
    const vol = this.s.lookupVolume(p.str('VolumeId'));
    if (vol.state === 'in-use') throw new Ec2ApiError('VolumeInUse', `Volume ${vol.id} is currently attached to ${vol.attachment?.instanceId}`, 400);
    if (vol.state !== 'available') throw new Ec2ApiError('IncorrectState', `The volume '${vol.id}' is '${vol.state}'.`, 400);
    this.s.gate('DeleteVolume', p);
    vol.state = 'deleting';
    vol.timer = this.s.after(this.s.draw(2, 0.5, 0.5), () => {
      vol.state = 'deleted';
      this.s.volumes.delete(vol.id);
    });
    return { return: true };
  }

  describeVolumes(p: Params): ResponseBody {
    const ids = p.strList('VolumeId');
    const chosen = ids.map((id) => this.s.lookupVolume(id));
    this.s.gate('DescribeVolumes', p);
    const filters = parseFilters(p, ['volume-id', 'status', 'availability-zone', 'volume-type', 'attachment.instance-id', 'attachment.status', 'tag-key'], true);
    const pool = ids.length ? chosen : [...this.s.volumes.values()].filter((v) => this.s.visible(v) && v.state !== 'deleted');
    const matched = pool.filter((v) => matchFilters(filters, (name) => fieldOf(name, {
      'volume-id': [v.id], status: [v.state], 'availability-zone': [v.zone], 'volume-type': [v.type],
      'attachment.instance-id': v.attachment ? [v.attachment.instanceId] : [], 'attachment.status': v.attachment ? [v.attachment.state] : [],
    }, v.tags)));
    const maxResults = p.optInt('MaxResults', 5, 500);
    const page = paginate(matched, p, 5, 500, maxResults === undefined ? Infinity : 500);
    return { volumeSet: page.items.map((v) => this.volumeXml(v, true)), nextToken: page.nextToken };
  }

  volumeXml(v: Volume, inSet: boolean): { [key: string]: XmlValue } {
    const attachments = v.attachment ? [{ volumeId: v.id, instanceId: v.attachment.instanceId, device: v.attachment.device, status: v.attachment.state, attachTime: this.s.iso(v.attachment.timeUs), deleteOnTermination: v.attachment.deleteOnTermination }] : [];
    return {
      volumeId: v.id,
      size: v.sizeGiB,
      snapshotId: '',
      availabilityZone: v.zone,
      status: v.state,
      createTime: this.s.iso(v.createTimeUs),
      attachmentSet: inSet ? attachments : undefined,
      volumeType: v.type,
      iops: v.iops || undefined,
      encrypted: false,
      multiAttachEnabled: false,
      tagSet: v.tags.size ? tagSet(v.tags) : undefined,
    };
  }

  // ---- snapshots -----------------------------------------------------------

  createSnapshot(p: Params): ResponseBody {
    const vol = this.s.lookupVolume(p.str('VolumeId'));
    if (vol.state === 'creating') throw new Ec2ApiError('IncorrectState', `The volume '${vol.id}' is not yet available.`, 400);
    const tags = parseTagSpecifications(p, ['snapshot']).get('snapshot') ?? new Map<string, string>();
    const description = p.optStr('Description') ?? '';
    this.s.gate('CreateSnapshot', p);
    const snap: Snapshot = {
      id: this.s.newId('snap'), volumeId: vol.id, sizeGiB: vol.sizeGiB, state: 'pending', progressPct: 0,
      startTimeUs: this.s.world.clock.nowUs(), description, tags,
    };
    this.s.snapshots.set(snap.id, snap);
    // Snapshots copy the volume's written blocks: time grows with size.
    const totalUs = this.s.draw(30 + vol.sizeGiB * 0.5, 10, 5);
    this.s.after(totalUs / 2, () => {
      if (snap.state === 'pending') snap.progressPct = 50;
    });
    this.s.after(totalUs, () => {
      if (snap.state === 'pending') {
        snap.state = 'completed';
        snap.progressPct = 100;
      }
    });
    return this.snapshotXml(snap);
  }

  describeSnapshots(p: Params): ResponseBody {
    const ids = p.strList('SnapshotId');
    const missing = ids.filter((id) => !this.s.snapshots.has(id));
    if (missing.length) throw new Ec2ApiError('InvalidSnapshot.NotFound', `The snapshot '${missing.join(', ')}' does not exist.`, 400);
    const owners = p.strList('Owner');
    for (const o of owners) if (o !== 'self' && o !== EMULATED_OWNER_ID) throw invalid('Owner', o, 'Only self (this account) holds snapshots in this emulator.');
    this.s.gate('DescribeSnapshots', p);
    const filters = parseFilters(p, ['snapshot-id', 'volume-id', 'status', 'owner-id', 'tag-key'], true);
    const pool = ids.length ? ids.map((id) => this.s.snapshots.get(id)!) : [...this.s.snapshots.values()];
    const matched = pool.filter((s) => matchFilters(filters, (name) => fieldOf(name, {
      'snapshot-id': [s.id], 'volume-id': [s.volumeId], status: [s.state], 'owner-id': [EMULATED_OWNER_ID],
    }, s.tags)));
    const maxResults = p.optInt('MaxResults', 5, 1000);
    const page = paginate(matched, p, 5, 1000, maxResults === undefined ? Infinity : 1000);
    return { snapshotSet: page.items.map((s) => this.snapshotXml(s)), nextToken: page.nextToken };
  }

  deleteSnapshot(p: Params): ResponseBody {
    const id = p.str('SnapshotId');
    if (!this.s.snapshots.has(id)) throw new Ec2ApiError('InvalidSnapshot.NotFound', `The snapshot '${id}' does not exist.`, 400);
    this.s.gate('DeleteSnapshot', p);
    this.s.snapshots.delete(id);
    return { return: true };
  }

  snapshotXml(s: Snapshot): { [key: string]: XmlValue } {
    return {
      snapshotId: s.id,
      volumeId: s.volumeId,
      status: s.state,
      startTime: this.s.iso(s.startTimeUs),
      progress: `${s.progressPct}%`,
      ownerId: EMULATED_OWNER_ID,
      volumeSize: s.sizeGiB,
      description: s.description,
      encrypted: false,
      storageTier: 'standard',
      tagSet: s.tags.size ? tagSet(s.tags) : undefined,
    };
  }
}

function attachmentXml(volumeId: string, a: Attachment, attachTime: string): ResponseBody {
  return { volumeId, instanceId: a.instanceId, device: a.device, status: a.state, attachTime, deleteOnTermination: a.deleteOnTermination };
}
