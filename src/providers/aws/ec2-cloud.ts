import {
  AttachVolumeCommand, CreateSnapshotCommand, CreateTagsCommand, CreateVolumeCommand, DeleteSnapshotCommand,
  DeleteVolumeCommand, DescribeAvailabilityZonesCommand, DescribeImagesCommand, DescribeInstancesCommand, DescribeInstanceTypesCommand,
  DescribeSnapshotsCommand, DescribeSubnetsCommand, DescribeVolumesCommand, DetachVolumeCommand, EC2Client, ModifyInstanceAttributeCommand,
  RunInstancesCommand, StartInstancesCommand, StopInstancesCommand, TerminateInstancesCommand,
  type Filter, type Instance, type InstanceStateChange, type Snapshot, type Tag, type TagSpecification, type Volume,
  type AttachVolumeCommandOutput, type DescribeAvailabilityZonesCommandOutput, type DescribeSubnetsCommandOutput, type CreateSnapshotCommandOutput, type CreateTagsCommandOutput, type CreateVolumeCommandOutput, type DeleteSnapshotCommandOutput, type DeleteVolumeCommandOutput, type DescribeImagesCommandOutput, type DescribeInstanceTypesCommandOutput, type DescribeInstancesCommandOutput, type DescribeSnapshotsCommandOutput, type DescribeVolumesCommandOutput, type DetachVolumeCommandOutput, type ModifyInstanceAttributeCommandOutput, type RunInstancesCommandOutput, type StartInstancesCommandOutput, type StopInstancesCommandOutput, type TerminateInstancesCommandOutput,
  type _InstanceType, type VolumeType as SdkVolumeType, type ResourceType,
} from '@aws-sdk/client-ec2';
import type { AwsCredentialIdentity } from '@aws-sdk/types';
import { createHash } from 'node:crypto';
import type { World } from '../../world/types.js';
import {
  CloudError, RETRYABLE_CLOUD_CODES,
  type Cloud, type CloudInstance, type CloudSnapshot, type CloudVolume, type ImageInfo, type InstanceFilter,
  type InstanceState, type InstanceTypeInfo, type RunInstancesRequest, type Tags, type VolumeFilter, type VolumeState,
} from '../../ports/cloud.js';
import { DEFAULT_CATALOG } from '../emulated/ec2/config.js';
import { attachRecorder, type WireRecord } from './recorder.js';

/**
 * The Cloud port on EC2, through the real @aws-sdk/client-ec2. The same class
 * drives live AWS, the emulated EC2 (msw) and a replayed recording: only the
 * endpoint and credentials differ.
 *
 * SDK retries are off (`maxAttempts: 1`): a retry inside the SDK would wait on
 * real timers, outside virtual time. Callers retry with `providers/retry.ts`.
 */

export const RUN_TAG = 'spillway:run';
export const TRACE_SRC = 'cloud/ec2';

export interface Ec2CloudOptions {
  world: World;
  runId: string;
  region: string;
  /** Emulator or replay endpoint; live AWS when absent. */
  endpoint?: string;
  /** Static credentials (emulator, replay). Absent: the SDK's default chain, with `profile` if given. */
  credentials?: AwsCredentialIdentity;
  profile?: string;
  /** Modeled latency of one call, for `world.external` (a LiveWorld ignores it). */
  latencyUs?: () => number;
  /** On-demand USD per hour by type: EC2 has no price API. Defaults to the built-in catalog's prices. */
  prices?: Record<string, number>;
  /** The operator's Running On-Demand Standard vCPU quota (Service Quotas L-1216C47A). */
  vcpuLimit?: number;
  /**
   * Issue calls one at a time, in call order. The emulator needs this: its
   * model must see requests in issue order, not in the order real I/O
   * happens to complete, or a seed would not replay.
   */
  sequential?: boolean;
  /** Epoch (ms) that `launchTimeUs` counts from. */
  epochMs?: number;
  /** Receives a secret-free copy of every request and response on the wire (`--record`). */
  record?: (entry: WireRecord) => void;
  /**
   * The staging image every launch boots: unnamed type listings keep only the
   * types that can boot it (its architecture, virtualization and boot mode).
   */
  stagingImage?: ImageInfo;
  /** Where launches go on the operator's network (live: `--subnet`, `--security-group`, `--instance-profile`). */
  launch?: LaunchSettings;
}

export interface LaunchSettings {
  /** The subnet to launch into, per availability zone (from `describeSubnets`). */
  subnetByZone?: Record<string, string>;
  securityGroupIds?: string[];
  /** An instance profile name, or its ARN. */
  instanceProfile?: string;
}

export interface SubnetInfo {
  id: string;
  zone: string;
  vpcId: string;
  state: string;
}

/** EC2 refuses a ClientToken over 64 ASCII characters. */
const CLIENT_TOKEN_MAX = 64;

const STANDARD_FAMILIES = /^[acdhimrtz]/;
/** Tail of the in-flight queue per endpoint, for `sequential` adapters. */
const SEQUENCES = new Map<string, Promise<void>>();

/** Normal latency around a mean, never below 1 ms: the default external-op latency model. */
export function normalLatencyUs(world: World, meanUs: number, sdUs: number): () => number {
  const rng = world.rng('cloud/api-latency');
  return () => Math.max(1000, Math.round(rng.normal(meanUs, sdUs)));
}

export class Ec2Cloud implements Cloud {
  readonly runId: string;
  readonly client: EC2Client;
  private readonly world: World;
  private readonly latencyUs: () => number;
  private readonly prices: Record<string, number>;
  private readonly epochMs: number;
  private readonly configuredLimit: number | undefined;
  private learnedLimit: number | undefined;
  private readonly sequenceKey: string | undefined;
  private readonly observed = new Map<string, { type: string | undefined; state: InstanceState }>();
  private readonly typeVcpus = new Map<string, number>();
  private readonly stagingImage: ImageInfo | undefined;
  private readonly launch: LaunchSettings;

  constructor(options: Ec2CloudOptions) {
    this.world = options.world;
    this.stagingImage = options.stagingImage;
    this.launch = options.launch ?? {};
    this.runId = options.runId;
    this.latencyUs = options.latencyUs ?? normalLatencyUs(options.world, 120_000, 40_000);
    this.prices = options.prices ?? Object.fromEntries(DEFAULT_CATALOG.map((c) => [c.type, c.pricePerHour]));
    this.epochMs = options.epochMs ?? 0;
    this.configuredLimit = options.vcpuLimit;
    // Every adapter on one endpoint shares one queue, so two adapters on one model stay in issue order too.
    this.sequenceKey = options.sequential ? options.endpoint ?? `region:${options.region}` : undefined;
    this.client = new EC2Client({
      region: options.region,
      maxAttempts: 1,
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      ...(options.credentials ? { credentials: options.credentials } : {}),
      ...(options.profile ? { profile: options.profile } : {}),
    });
    if (options.record) attachRecorder(this.client, options.record);
  }

  destroy(): void {
    this.client.destroy();
  }

  // ---- the port ------------------------------------------------------------

  /**
   * Named types come back as asked (a type without a known price is refused:
   * EC2 has no price API and a guessed $0 would win every cost comparison).
   * The unnamed listing is every type the staging image can boot and that has
   * a price; the rest are left out, never priced at zero.
   */
  async describeInstanceTypes(names?: string[]): Promise<InstanceTypeInfo[]> {
    const types = await this.listTypes(names, names?.length ? [] : this.launchableFilters());
    if (names?.length) {
      const unpriced = types.filter((t) => this.prices[t.name] === undefined).map((t) => t.name);
      if (unpriced.length) {
        throw new CloudError('E_UNPRICED_TYPE', `no price is known for ${unpriced.join(', ')}: add ${unpriced.length > 1 ? 'them' : 'it'} to cloud.catalog with pricePerHour`, false, { details: { types: unpriced } });
      }
    }
    return types.filter((t) => this.prices[t.name] !== undefined).map((t) => ({ ...t, pricePerHourUsd: this.prices[t.name]! }));
  }

  private launchableFilters(): Filter[] {
    const image = this.stagingImage;
    if (!image) return [];
    return [
      ...(image.architecture ? [{ Name: 'processor-info.supported-architecture', Values: [image.architecture] }] : []),
      ...(image.virtualizationType ? [{ Name: 'supported-virtualization-type', Values: [image.virtualizationType] }] : []),
      ...(image.bootMode ? [{ Name: 'supported-boot-mode', Values: [image.bootMode] }] : []),
    ];
  }

  private async listTypes(names: string[] | undefined, filters: Filter[]): Promise<InstanceTypeInfo[]> {
    const out: InstanceTypeInfo[] = [];
    let token: string | undefined;
    do {
      const page = await this.send<DescribeInstanceTypesCommandOutput>('DescribeInstanceTypes', new DescribeInstanceTypesCommand({
        ...(names?.length ? { InstanceTypes: names as _InstanceType[] } : {}), ...(filters.length ? { Filters: filters } : {}), ...(token ? { NextToken: token } : {}),
      }));
      for (const t of page.InstanceTypes ?? []) {
        const name = t.InstanceType ?? '';
        const vcpus = t.VCpuInfo?.DefaultVCpus ?? 0;
        this.typeVcpus.set(name, vcpus);
        out.push({
          name,
          vcpus,
          memoryMiB: t.MemoryInfo?.SizeInMiB ?? 0,
          ebsIops: t.EbsInfo?.EbsOptimizedInfo?.BaselineIops ?? 0,
          networkGbit: parseNetworkGbit(t.NetworkInfo?.NetworkPerformance),
          // Unpriced types are filtered by the caller; NaN never leaves this class.
          pricePerHourUsd: this.prices[name] ?? NaN,
          ...(t.ProcessorInfo?.SupportedArchitectures ? { architectures: [...t.ProcessorInfo.SupportedArchitectures] } : {}),
          ...(t.SupportedVirtualizationTypes ? { virtualizationTypes: [...t.SupportedVirtualizationTypes] } : {}),
          ...(t.SupportedBootModes ? { bootModes: [...t.SupportedBootModes] } : {}),
        });
      }
      token = page.NextToken;
    } while (token);
    return out;
  }

  async describeImages(filter: { ids?: string[]; tags?: Tags } = {}): Promise<ImageInfo[]> {
    const out = await this.send<DescribeImagesCommandOutput>('DescribeImages', new DescribeImagesCommand({
      ...(filter.ids?.length ? { ImageIds: filter.ids } : { Owners: ['self'] }),
      ...(filter.tags ? { Filters: tagFilters(filter.tags) } : {}),
    }));
    return (out.Images ?? []).map((im) => ({
      id: im.ImageId ?? '', name: im.Name ?? '', tags: fromTags(im.Tags),
      ...(im.State ? { state: im.State } : {}),
      ...(im.Architecture ? { architecture: im.Architecture } : {}),
      ...(im.VirtualizationType ? { virtualizationType: im.VirtualizationType } : {}),
      ...(im.BootMode ? { bootMode: im.BootMode } : {}),
      ...(im.RootDeviceType ? { rootDeviceType: im.RootDeviceType } : {}),
    }));
  }

  /** The region's availability zones that are up (not Local Zones or Wavelength). */
  async describeAvailabilityZones(): Promise<string[]> {
    const out = await this.send<DescribeAvailabilityZonesCommandOutput>('DescribeAvailabilityZones', new DescribeAvailabilityZonesCommand({
      Filters: [{ Name: 'zone-type', Values: ['availability-zone'] }, { Name: 'state', Values: ['available'] }],
    }));
    return (out.AvailabilityZones ?? []).map((z) => z.ZoneName ?? '').filter((z) => z !== '').sort();
  }

  async describeSubnets(ids: string[]): Promise<SubnetInfo[]> {
    const out = await this.send<DescribeSubnetsCommandOutput>('DescribeSubnets', new DescribeSubnetsCommand({ SubnetIds: ids }));
    return (out.Subnets ?? []).map((n) => ({ id: n.SubnetId ?? '', zone: n.AvailabilityZone ?? '', vpcId: n.VpcId ?? '', state: n.State ?? '' }));
  }

  async runInstances(request: RunInstancesRequest): Promise<CloudInstance[]> {
    const tags = this.withRunTag(request.tags);
    const net = this.launch;
    const subnet = net.subnetByZone ? this.subnetFor(net.subnetByZone, request.zone) : undefined;
    const profile = net.instanceProfile;
    const out = await this.send<RunInstancesCommandOutput>('RunInstances', new RunInstancesCommand({
      ClientToken: this.scopedToken(request.clientToken),
      ImageId: request.imageId,
      InstanceType: request.instanceType as _InstanceType,
      MinCount: request.minCount ?? request.count,
      MaxCount: request.count,
      // A subnet fixes the zone: EC2 takes it from there.
      ...(subnet ? { SubnetId: subnet } : request.zone ? { Placement: { AvailabilityZone: request.zone } } : {}),
      ...(net.securityGroupIds?.length ? { SecurityGroupIds: net.securityGroupIds } : {}),
      ...(profile ? { IamInstanceProfile: profile.startsWith('arn:') ? { Arn: profile } : { Name: profile } } : {}),
      ...(request.userData !== undefined ? { UserData: Buffer.from(request.userData, 'utf8').toString('base64') } : {}),
      // The root volume is tagged too, so cleanup can account for it.
      TagSpecifications: [tagSpec('instance', tags), tagSpec('volume', tags)],
    }));
    return (out.Instances ?? []).map((i) => this.instance(i));
  }

  async describeInstances(filter: InstanceFilter = {}): Promise<CloudInstance[]> {
    const filters: Filter[] = [];
    if (filter.states?.length) filters.push({ Name: 'instance-state-name', Values: filter.states });
    if (filter.tags) filters.push(...tagFilters(filter.tags));
    const out: CloudInstance[] = [];
    let token: string | undefined;
    do {
      const page = await this.send<DescribeInstancesCommandOutput>('DescribeInstances', new DescribeInstancesCommand({
        ...(filter.ids?.length ? { InstanceIds: filter.ids } : {}),
        ...(filters.length ? { Filters: filters } : {}),
        ...(token ? { NextToken: token } : {}),
      }));
      for (const r of page.Reservations ?? []) for (const i of r.Instances ?? []) out.push(this.instance(i));
      token = page.NextToken;
    } while (token);
    return out;
  }

  async startInstances(ids: string[]): Promise<void> {
    const out = await this.send<StartInstancesCommandOutput>('StartInstances', new StartInstancesCommand({ InstanceIds: ids }));
    this.stateChanges(out.StartingInstances);
  }

  async stopInstances(ids: string[]): Promise<void> {
    const out = await this.send<StopInstancesCommandOutput>('StopInstances', new StopInstancesCommand({ InstanceIds: ids }));
    this.stateChanges(out.StoppingInstances);
  }

  async terminateInstances(ids: string[]): Promise<void> {
    const out = await this.send<TerminateInstancesCommandOutput>('TerminateInstances', new TerminateInstancesCommand({ InstanceIds: ids }));
    this.stateChanges(out.TerminatingInstances);
  }

  async modifyInstanceType(id: string, type: string): Promise<void> {
    await this.send<ModifyInstanceAttributeCommandOutput>('ModifyInstanceAttribute', new ModifyInstanceAttributeCommand({ InstanceId: id, InstanceType: { Value: type } }));
    const seen = this.observed.get(id);
    if (seen) seen.type = type;
  }

  async createVolume(request: { sizeGiB: number; type?: string; zone: string; tags?: Tags; clientToken?: string }): Promise<CloudVolume> {
    const out = await this.send<CreateVolumeCommandOutput>('CreateVolume', new CreateVolumeCommand({
      Size: request.sizeGiB,
      VolumeType: (request.type ?? 'gp3') as SdkVolumeType,
      AvailabilityZone: request.zone,
      ...(request.clientToken ? { ClientToken: this.scopedToken(request.clientToken) } : {}),
      TagSpecifications: [tagSpec('volume', this.withRunTag(request.tags))],
    }));
    return volume(out);
  }

  async attachVolume(volumeId: string, instanceId: string, device: string): Promise<void> {
    await this.send<AttachVolumeCommandOutput>('AttachVolume', new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId, Device: device }));
  }

  async detachVolume(volumeId: string): Promise<void> {
    await this.send<DetachVolumeCommandOutput>('DetachVolume', new DetachVolumeCommand({ VolumeId: volumeId }));
  }

  async deleteVolume(volumeId: string): Promise<void> {
    await this.send<DeleteVolumeCommandOutput>('DeleteVolume', new DeleteVolumeCommand({ VolumeId: volumeId }));
  }

  async describeVolumes(filter: VolumeFilter = {}): Promise<CloudVolume[]> {
    const out: CloudVolume[] = [];
    let token: string | undefined;
    do {
      const page = await this.send<DescribeVolumesCommandOutput>('DescribeVolumes', new DescribeVolumesCommand({
        ...(filter.ids?.length ? { VolumeIds: filter.ids } : {}),
        ...(filter.tags ? { Filters: tagFilters(filter.tags) } : {}),
        ...(token ? { NextToken: token } : {}),
      }));
      out.push(...(page.Volumes ?? []).map(volume));
      token = page.NextToken;
    } while (token);
    return out;
  }

  async createSnapshot(volumeId: string, tags?: Tags): Promise<CloudSnapshot> {
    const out = await this.send<CreateSnapshotCommandOutput>('CreateSnapshot', new CreateSnapshotCommand({
      VolumeId: volumeId,
      Description: `spillway run ${this.runId}`,
      TagSpecifications: [tagSpec('snapshot', this.withRunTag(tags))],
    }));
    return snapshot(out);
  }

  async describeSnapshots(filter: { ids?: string[]; tags?: Tags } = {}): Promise<CloudSnapshot[]> {
    const out: CloudSnapshot[] = [];
    let token: string | undefined;
    do {
      const page = await this.send<DescribeSnapshotsCommandOutput>('DescribeSnapshots', new DescribeSnapshotsCommand({
        OwnerIds: ['self'],
        ...(filter.ids?.length ? { SnapshotIds: filter.ids } : {}),
        ...(filter.tags ? { Filters: tagFilters(filter.tags) } : {}),
        ...(token ? { NextToken: token } : {}),
      }));
      out.push(...(page.Snapshots ?? []).map(snapshot));
      token = page.NextToken;
    } while (token);
    return out;
  }

  async deleteSnapshot(snapshotId: string): Promise<void> {
    await this.send<DeleteSnapshotCommandOutput>('DeleteSnapshot', new DeleteSnapshotCommand({ SnapshotId: snapshotId }));
  }

  async createTags(resourceIds: string[], tags: Tags): Promise<void> {
    await this.send<CreateTagsCommandOutput>('CreateTags', new CreateTagsCommand({ Resources: resourceIds, Tags: toTags(tags) }));
  }

  /**
   * Use is counted from DescribeInstances (pending, running, stopping and
   * shutting-down instances of the standard families, the whole account in
   * this region, not only this run) with vCPUs from DescribeInstanceTypes.
   * The limit is not readable through EC2 (DescribeAccountAttributes'
   * max-instances is documented as no longer reflecting it), so it is the
   * configured value, else the one AWS stated in a VcpuLimitExceeded answer.
   */
  async vcpuQuota(): Promise<{ limit: number; used: number; limitSource: 'configured' | 'learned' | 'unknown' }> {
    const live = await this.describeInstances({ states: ['pending', 'running', 'stopping', 'shutting-down'] });
    const standard = live.filter((i) => STANDARD_FAMILIES.test(i.type));
    const unknownTypes = [...new Set(standard.map((i) => i.type))].filter((t) => !this.typeVcpus.has(t));
    if (unknownTypes.length) await this.listTypes(unknownTypes, []);
    const used = standard.reduce((sum, i) => sum + (this.typeVcpus.get(i.type) ?? 0), 0);
    if (this.configuredLimit !== undefined) return { limit: this.configuredLimit, used, limitSource: 'configured' };
    if (this.learnedLimit !== undefined) return { limit: this.learnedLimit, used, limitSource: 'learned' };
    return { limit: Infinity, used, limitSource: 'unknown' };
  }

  // ---- plumbing ------------------------------------------------------------

  /**
   * One SDK call: an external op on the World, traced, errors mapped to
   * CloudError. Public for tools that need calls the port does not name
   * (DryRun permission checks).
   */
  async send<O>(api: string, command: { readonly input: object }): Promise<O> {
    const clock = this.world.clock;
    const startUs = clock.nowUs();
    const send = (): Promise<O> => this.client.send(command as never) as Promise<O>;
    try {
      const out = await this.world.external(() => this.issue(send), this.latencyUs());
      this.world.trace.emit(TRACE_SRC, 'cloud.call', { api, ok: true, latencyUs: clock.nowUs() - startUs });
      return out;
    } catch (err) {
      const mapped = this.toCloudError(api, err);
      this.world.trace.emit(TRACE_SRC, 'cloud.call', { api, ok: false, code: mapped.code, latencyUs: clock.nowUs() - startUs });
      throw mapped;
    }
  }

  private issue<O>(send: () => Promise<O>): Promise<O> {
    const key = this.sequenceKey;
    if (key === undefined) return send();
    const result = (SEQUENCES.get(key) ?? Promise.resolve()).then(send);
    const tail = result.then(() => undefined, () => undefined);
    SEQUENCES.set(key, tail);
    // Forget an idle queue so a long-lived process does not keep one per endpoint forever.
    void tail.then(() => { if (SEQUENCES.get(key) === tail) SEQUENCES.delete(key); });
    return result;
  }

  private toCloudError(api: string, err: unknown): CloudError {
    const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number; requestId?: string }; $fault?: string };
    // The SDK puts $metadata on every error it throws, a refused connection included: only an HTTP status means EC2 answered.
    if (e && typeof e === 'object' && e.$metadata?.httpStatusCode !== undefined && e.name) {
      if (e.name === 'VcpuLimitExceeded') {
        const stated = /vCPU limit of (\d+)/.exec(e.message ?? '');
        if (stated) this.learnedLimit = Number(stated[1]);
      }
      const status = e.$metadata.httpStatusCode;
      // Any 5xx is the service's own trouble and worth another try.
      const retryable = RETRYABLE_CLOUD_CODES.has(e.name) || (status !== undefined && status >= 500);
      return new CloudError(e.name, `${api}: ${e.message ?? e.name}`, retryable, {
        cause: scrubbed(e), details: { api, httpStatus: status, requestId: e.$metadata.requestId },
      });
    }
    if (e?.name === 'CredentialsProviderError') {
      return new CloudError('E_CLOUD_CREDENTIALS', `${api}: no AWS credentials could be loaded (${e.message ?? ''})`, false, { cause: scrubbed(e), details: { api } });
    }
    return new CloudError('E_CLOUD_TRANSPORT', `${api}: ${e?.message ?? String(err)}`, true, { cause: scrubbed(e), details: { api } });
  }

  /**
   * EC2 keeps a ClientToken for the account, not the run: a second run
   * sending the machines' tokens again would get the first run's instance, or
   * IdempotentParameterMismatch. The token sent is scoped to the run id
   * (hashed when the pair would pass EC2's 64 characters).
   */
  scopedToken(token: string): string {
    const scoped = `${this.runId}:${token}`;
    if (scoped.length <= CLIENT_TOKEN_MAX) return scoped;
    return `${this.runId.slice(0, 20)}:${createHash('sha256').update(scoped).digest('hex').slice(0, CLIENT_TOKEN_MAX - 21)}`;
  }

  private subnetFor(byZone: Record<string, string>, zone: string | undefined): string {
    const subnet = zone ? byZone[zone] : Object.values(byZone)[0];
    if (!subnet) {
      throw new CloudError('E_NO_SUBNET', `no subnet was given for zone ${zone}: pass --subnet for a subnet there (given: ${Object.entries(byZone).map(([z, id]) => `${id} in ${z}`).join(', ')})`, false);
    }
    return subnet;
  }

  private withRunTag(tags: Tags = {}): Tags {
    return { ...tags, [RUN_TAG]: this.runId };
  }

  private instance(i: Instance): CloudInstance {
    const out: CloudInstance = {
      id: i.InstanceId ?? '',
      type: i.InstanceType ?? '',
      state: (i.State?.Name ?? 'pending') as InstanceState,
      zone: i.Placement?.AvailabilityZone ?? '',
      imageId: i.ImageId ?? '',
      tags: fromTags(i.Tags),
      ...(i.PrivateIpAddress ? { privateIp: i.PrivateIpAddress } : {}),
      ...(i.LaunchTime ? { launchTimeUs: (i.LaunchTime.getTime() - this.epochMs) * 1000 } : {}),
    };
    this.observe(out.id, out.state, out.type);
    return out;
  }

  private stateChanges(changes: InstanceStateChange[] | undefined): void {
    for (const c of changes ?? []) if (c.InstanceId && c.CurrentState?.Name) this.observe(c.InstanceId, c.CurrentState.Name as InstanceState);
  }

  private observe(id: string, state: InstanceState, type?: string): void {
    const seen = this.observed.get(id);
    if (seen && seen.state === state) {
      if (type) seen.type = type;
      return;
    }
    const knownType = type ?? seen?.type;
    this.observed.set(id, { type: knownType, state });
    this.world.trace.emit(TRACE_SRC, 'cloud.instance', { id, type: knownType, state });
  }
}

/**
 * The SDK's error keeps the raw HTTP exchange (`$response`), whose request
 * carries the Authorization header: access key id and signature. Anything that
 * printed the cause would leak them, so the cause is a copy without it.
 */
function scrubbed(e: { name?: string; message?: string; $metadata?: object; $fault?: string } | undefined): Error {
  const copy = new Error(e?.message ?? String(e));
  copy.name = e?.name ?? 'Error';
  return Object.assign(copy, {
    ...(e?.$fault ? { $fault: e.$fault } : {}),
    ...(e?.$metadata ? { $metadata: { ...e.$metadata } } : {}),
  });
}

function parseNetworkGbit(text: string | undefined): number {
  const m = /([\d.]+)\s*Gigabit/i.exec(text ?? '');
  return m ? Number(m[1]) : 0;
}

function toTags(tags: Tags): Tag[] {
  return Object.entries(tags).map(([Key, Value]) => ({ Key, Value }));
}

function fromTags(tags: Tag[] | undefined): Tags {
  const out: Tags = {};
  for (const t of tags ?? []) if (t.Key !== undefined) out[t.Key] = t.Value ?? '';
  return out;
}

function tagSpec(resourceType: string, tags: Tags): TagSpecification {
  return { ResourceType: resourceType as ResourceType, Tags: toTags(tags) };
}

function tagFilters(tags: Tags): Filter[] {
  return Object.entries(tags).map(([k, v]) => ({ Name: `tag:${k}`, Values: [v] }));
}

function volume(v: Volume): CloudVolume {
  const attachment = v.Attachments?.[0];
  return {
    id: v.VolumeId ?? '',
    sizeGiB: v.Size ?? 0,
    type: v.VolumeType ?? '',
    zone: v.AvailabilityZone ?? '',
    state: (v.State ?? 'creating') as VolumeState,
    tags: fromTags(v.Tags),
    ...(attachment?.InstanceId ? { attachedTo: attachment.InstanceId } : {}),
    ...(attachment?.Device ? { device: attachment.Device } : {}),
    ...(attachment?.DeleteOnTermination !== undefined ? { deleteOnTermination: attachment.DeleteOnTermination } : {}),
  };
}

function snapshot(s: Snapshot): CloudSnapshot {
  return { id: s.SnapshotId ?? '', volumeId: s.VolumeId ?? '', state: (s.State ?? 'pending') as CloudSnapshot['state'], tags: fromTags(s.Tags) };
}
