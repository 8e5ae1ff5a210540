import { SpillwayError } from '../errors.js';

/**
 * The Cloud port, shaped after EC2 (the one cloud we drive). Implemented once
 * with @aws-sdk/client-ec2 (`aws/ec2-cloud.ts`); in simulations the same
 * adapter talks to the emulated EC2 through msw.
 */

export type InstanceState = 'pending' | 'running' | 'stopping' | 'stopped' | 'shutting-down' | 'terminated';
export type VolumeState = 'creating' | 'available' | 'in-use' | 'deleting' | 'deleted' | 'error';

export type Tags = Record<string, string>;

export interface InstanceTypeInfo {
  name: string;
  vcpus: number;
  memoryMiB: number;
  /** Baseline EBS IOPS the type sustains. */
  ebsIops: number;
  networkGbit: number;
  pricePerHourUsd: number;
  /** CPU architectures the type runs (`x86_64`, `arm64`, …), when the provider says. */
  architectures?: string[];
  /** `hvm`, `paravirtual`. */
  virtualizationTypes?: string[];
  /** `legacy-bios`, `uefi`. */
  bootModes?: string[];
}

export interface ImageInfo {
  id: string;
  name: string;
  tags: Tags;
  /** `available`, `pending`, `failed`, … (absent when the provider does not say). */
  state?: string;
  architecture?: string;
  virtualizationType?: string;
  /** Absent on EC2 when the image boots in the instance type's default mode (legacy BIOS on x86). */
  bootMode?: string;
  /** `ebs` or `instance-store`. */
  rootDeviceType?: string;
}

export interface CloudInstance {
  id: string;
  type: string;
  state: InstanceState;
  zone: string;
  imageId: string;
  privateIp?: string;
  /** When it launched, in microseconds since the adapter's clock epoch (world time for the emulator, Unix time live). */
  launchTimeUs?: number;
  tags: Tags;
}

export interface CloudVolume {
  id: string;
  sizeGiB: number;
  type: string;
  zone: string;
  state: VolumeState;
  attachedTo?: string;
  device?: string;
  /** The volume goes away with the instance it is attached to (EC2 root volumes). */
  deleteOnTermination?: boolean;
  tags: Tags;
}

export interface CloudSnapshot {
  id: string;
  volumeId: string;
  state: 'pending' | 'completed' | 'error';
  tags: Tags;
}

export interface RunInstancesRequest {
  /** Idempotency token: a repeated call with the same token returns the same instances. */
  clientToken: string;
  imageId: string;
  instanceType: string;
  zone?: string;
  count: number;
  /** Launch fewer than `count`, down to this many, when capacity or quota is short (EC2 MinCount; default `count`). */
  minCount?: number;
  /** Staging-image connection parameters and provisioning data (base64-encoded by the adapter). */
  userData?: string;
  tags?: Tags;
}

export interface InstanceFilter {
  ids?: string[];
  states?: InstanceState[];
  tags?: Tags;
}

export interface VolumeFilter {
  ids?: string[];
  tags?: Tags;
}

export interface Cloud {
  /** Tagged onto everything this run creates (`spillway:run`). */
  readonly runId: string;
  describeInstanceTypes(names?: string[]): Promise<InstanceTypeInfo[]>;
  describeImages(filter?: { ids?: string[]; tags?: Tags }): Promise<ImageInfo[]>;
  runInstances(request: RunInstancesRequest): Promise<CloudInstance[]>;
  describeInstances(filter?: InstanceFilter): Promise<CloudInstance[]>;
  startInstances(ids: string[]): Promise<void>;
  stopInstances(ids: string[]): Promise<void>;
  terminateInstances(ids: string[]): Promise<void>;
  /** Change the type of a stopped instance (scale up). */
  modifyInstanceType(id: string, type: string): Promise<void>;
  createVolume(request: { sizeGiB: number; type?: string; zone: string; tags?: Tags; clientToken?: string }): Promise<CloudVolume>;
  attachVolume(volumeId: string, instanceId: string, device: string): Promise<void>;
  detachVolume(volumeId: string): Promise<void>;
  deleteVolume(volumeId: string): Promise<void>;
  describeVolumes(filter?: VolumeFilter): Promise<CloudVolume[]>;
  createSnapshot(volumeId: string, tags?: Tags): Promise<CloudSnapshot>;
  describeSnapshots(filter?: { ids?: string[]; tags?: Tags }): Promise<CloudSnapshot[]>;
  deleteSnapshot(snapshotId: string): Promise<void>;
  createTags(resourceIds: string[], tags: Tags): Promise<void>;
  /**
   * Running On-Demand standard vCPU quota and current use. EC2 itself cannot
   * report the limit (that is Service Quotas, L-1216C47A): `limitSource` says
   * whether it was configured, learned from a VcpuLimitExceeded answer, or is
   * unknown (then `limit` is Infinity).
   */
  vcpuQuota(): Promise<{ limit: number; used: number; limitSource?: 'configured' | 'learned' | 'unknown' }>;
}

/** A cloud API error. `code` is the provider's own (InsufficientInstanceCapacity, …). */
export class CloudError extends SpillwayError {
  constructor(code: string, message: string, readonly retryable: boolean, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(code, message, options);
  }
}

/**
 * Launch errors that no other instance type, zone or VM gets past: the run's
 * image, network, permissions or account are wrong. A controller that sees
 * one stops launching instead of failing every VM the same way.
 * `InvalidParameterCombination` is left out on purpose: EC2 also answers it
 * for one type's limits (a virtualization type, EBS optimization), which
 * another type gets past.
 */
export const RUN_FATAL_LAUNCH_CODES = new Set([
  'InvalidAMIID.NotFound', 'InvalidAMIID.Malformed', 'InvalidAMIID.Unavailable', 'UnauthorizedOperation', 'AuthFailure',
  'OptInRequired', 'Blocked', 'PendingVerification', 'InvalidSubnetID.NotFound', 'InvalidSubnetID.Malformed',
  'InvalidGroup.NotFound', 'InvalidGroupId.Malformed', 'E_CLOUD_CREDENTIALS',
]);

/** Codes that a caller may retry after a backoff. */
export const RETRYABLE_CLOUD_CODES = new Set([
  'RequestLimitExceeded', 'InsufficientInstanceCapacity', 'InternalError', 'ServiceUnavailable',
  'InvalidInstanceID.NotFound', 'InvalidVolume.NotFound', 'IncorrectState',
  'IncorrectInstanceState', 'Unavailable', 'E_CLOUD_TRANSPORT',
]);
