import type { InstanceState, VolumeState } from '../../../ports/cloud.js';
import type { Rng, Timer, World } from '../../../world/types.js';
import { US_PER_H, US_PER_S } from '../../../util/units.js';
import type { CatalogEntry, CloudConfig } from './config.js';
import { emulatedNetwork, type EmulatedNetwork, type LaunchNetwork } from './network-layout.js';
import { Ec2ApiError, isoFromEpochMs, type Params, type XmlValue } from './query.js';

/**
 * The emulated EC2's state and the rules every action shares: the resource
 * maps, the seeded streams (ids, timing, consistency), throttling, scripted
 * faults and DryRun, quota, ids, visibility and lookups. The actions live in
 * instances.ts and volumes.ts; model.ts routes requests to them.
 */

/** The emulated cloud's wall clock reads this epoch at virtual time zero (2026-01-05T00:00:00Z). */
export const EMULATED_EPOCH_MS = 1_767_571_200_000;
/** AWS documents this fake-looking account id for examples; ours is as fake. */
export const EMULATED_OWNER_ID = '123456789012';

export const STATE_CODES: Record<InstanceState, number> = {
  pending: 0, running: 16, 'shutting-down': 32, terminated: 48, stopping: 64, stopped: 80,
};
/** Terminated instances stay visible this long, as on AWS. */
export const TERMINATED_VISIBLE_US = US_PER_H;
/** Families counted by the "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances" vCPU quota. */
export const STANDARD_FAMILIES = /^[acdhimrtz]/;
export const USER_DATA_MAX_BYTES = 16_384;
export const VOLUME_SIZE_GIB: Record<string, [number, number]> = {
  gp3: [1, 16_384], gp2: [1, 16_384], io1: [4, 16_384], io2: [4, 65_536], st1: [125, 16_384], sc1: [125, 16_384], standard: [1, 1024],
};
export const DEVICE_PATTERN = /^\/dev\/(sd[f-p]|xvd[f-p])$/;
/** Every emulated image's root device: an 8 GiB gp3 volume per instance, as a small Linux AMI has. */
export const ROOT_DEVICE = { name: '/dev/xvda', sizeGiB: 8, type: 'gp3', iops: 3000 } as const;

export interface Instance {
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
  network: LaunchNetwork;
  /** The volume made from the image at launch, deleted when the instance terminates. */
  rootVolumeId: string;
}

export interface Attachment {
  instanceId: string;
  device: string;
  state: 'attaching' | 'attached' | 'detaching';
  timeUs: number;
  /** Root volumes go with their instance; attached data volumes outlive it. */
  deleteOnTermination: boolean;
}

export interface Volume {
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

export interface Snapshot {
  id: string;
  volumeId: string;
  sizeGiB: number;
  state: 'pending' | 'completed' | 'error';
  progressPct: number;
  startTimeUs: number;
  description: string;
  tags: Map<string, string>;
}

export interface Reservation {
  id: string;
  instanceIds: string[];
  fingerprint: string;
}

export interface Bucket {
  tokens: number;
  atUs: number;
}

export type ResponseBody = { [key: string]: XmlValue };

export class Ec2State {
  readonly instances = new Map<string, Instance>();
  readonly volumes = new Map<string, Volume>();
  readonly snapshots = new Map<string, Snapshot>();
  readonly reservationsByToken = new Map<string, Reservation>();
  readonly volumesByToken = new Map<string, { fingerprint: string; volumeId: string }>();
  readonly buckets = new Map<string, Bucket>();
  readonly rootVolumeIds: Rng;
  readonly network: EmulatedNetwork;
  readonly catalog: Map<string, CatalogEntry>;
  readonly ids: Rng;
  readonly timing: Rng;
  readonly consistency: Rng;
  nextIp = 10;

  constructor(readonly world: World, readonly config: CloudConfig) {
    this.catalog = new Map(config.catalog.map((c) => [c.type, c]));
    this.ids = world.rng('cloud/ec2-ids');
    this.timing = world.rng('cloud/ec2-timing');
    this.consistency = world.rng('cloud/ec2-consistency');
    this.rootVolumeIds = world.rng('cloud/ec2-root-volume-ids');
    this.network = emulatedNetwork(config.region, config.zones);
  }

  newRequestId(): string {
    const h = (n: number): string => Array.from({ length: n }, () => this.ids.int(0, 16).toString(16)).join('');
    return `${h(8)}-${h(4)}-4${h(3)}-a${h(3)}-${h(12)}`;
  }


  vcpusInUse(): number {
    let used = 0;
    for (const inst of this.instances.values()) {
      if (inst.state === 'stopped' || inst.state === 'terminated') continue;
      if (STANDARD_FAMILIES.test(inst.type)) used += this.catalog.get(inst.type)?.vcpus ?? 0;
    }
    return used;
  }


  // ---- gates -------------------------------------------------------------

  throttle(action: string): void {
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
  gate(action: string, p: Params, placement: Array<{ type: string; zone: string }> = []): void {
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

  capacityBlocked(type: string, zone: string): boolean {
    const now = this.world.clock.nowUs();
    return this.config.faults.some((f) => f.error === 'InsufficientInstanceCapacity' && now >= f.atUs && now < f.untilUs
      && (!f.api || f.api === 'RunInstances') && (!f.type || f.type === type) && (!f.zone || f.zone === zone));
  }

  checkQuota(addVcpus: number): void {
    const limit = this.config.quotas.vcpus;
    if (this.vcpusInUse() + addVcpus > limit) {
      throw new Ec2ApiError('VcpuLimitExceeded',
        `You have requested more vCPU capacity than your current vCPU limit of ${limit} allows for the instance bucket that the specified instance type belongs to. Please visit http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit.`, 400);
    }
  }

  // ---- ids, time, visibility -----------------------------------------------

  /** A fresh id; root volumes draw from a stream of their own so the other resources' ids do not move. */
  newId(prefix: string, rng: Rng = this.ids): string {
    let id: string;
    do {
      id = `${prefix}-0${Array.from({ length: 16 }, () => rng.int(0, 16).toString(16)).join('')}`;
    } while (this.instances.has(id) || this.volumes.has(id) || this.snapshots.has(id));
    return id;
  }

  iso(us: number): string {
    return isoFromEpochMs(EMULATED_EPOCH_MS + us / 1000);
  }

  after(delayUs: number, fn: () => void): Timer {
    return this.world.clock.schedule(Math.max(1, Math.round(delayUs)), fn);
  }

  draw(meanS: number, sdS: number, minS: number): number {
    return Math.max(minS, this.timing.normal(meanS, sdS)) * US_PER_S;
  }

  visibleAt(): number {
    const window = this.config.consistencyWindowUs;
    return this.world.clock.nowUs() + (window > 0 ? this.consistency.int(0, window + 1) : 0);
  }

  visible(r: { visibleAtUs: number }): boolean {
    return this.world.clock.nowUs() >= r.visibleAtUs;
  }

  instanceIds(p: Params, name = 'InstanceId', required = true): string[] {
    const ids = p.strList(name);
    if (required && ids.length === 0) throw new Ec2ApiError('MissingParameter', `The request must contain the parameter ${p.path(name)}`, 400);
    for (const id of ids) checkInstanceId(id);
    return ids;
  }

  /** Instances the caller may see by id; unknown or not-yet-visible ids fail together, as AWS reports them. */
  lookupInstances(ids: string[]): Instance[] {
    const missing = ids.filter((id) => {
      const inst = this.instances.get(id);
      return !inst || !this.visible(inst);
    });
    if (missing.length === 1) throw new Ec2ApiError('InvalidInstanceID.NotFound', `The instance ID '${missing[0]}' does not exist`, 400);
    if (missing.length > 1) throw new Ec2ApiError('InvalidInstanceID.NotFound', `The instance IDs '${missing.join(', ')}' do not exist`, 400);
    return ids.map((id) => this.instances.get(id)!);
  }

  lookupVolume(id: string): Volume {
    if (!/^vol-[0-9a-f]{8,17}$/.test(id)) throw new Ec2ApiError('InvalidVolumeID.Malformed', `Invalid id: "${id}" (expecting "vol-...")`, 400);
    const vol = this.volumes.get(id);
    if (!vol || !this.visible(vol) || vol.state === 'deleted') throw new Ec2ApiError('InvalidVolume.NotFound', `The volume '${id}' does not exist.`, 400);
    return vol;
  }

  // ---- instances -----------------------------------------------------------

  setInstanceState(inst: Instance, state: InstanceState, reason = ''): void {
    inst.state = state;
    // AWS stamps the reason with the moment of the transition: "User initiated (2026-01-05 00:05:12 GMT)".
    const at = this.iso(this.world.clock.nowUs()).replace('T', ' ').replace(/\.\d+Z$/, ' GMT');
    inst.stateReason = reason ? `${reason} (${at})` : '';
  }
}

export function checkInstanceId(id: string): string {
  if (!/^i-[0-9a-f]{8,17}$/.test(id)) throw new Ec2ApiError('InvalidInstanceID.Malformed', `Invalid id: "${id}" (expecting "i-...")`, 400);
  return id;
}
