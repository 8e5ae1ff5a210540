/**
 * The emulated cloud's configuration: which provider, the instance catalog and prices,
 * quotas, API latency and rate limits, boot times, the eventual consistency window,
 * unauthorized actions and scripted faults. The scenario's `cloud:` section is declared in
 * src/scenario/cloud.ts, with a default for everything.
 */

export interface CatalogEntry {
  type: string;
  vcpus: number;
  memoryGiB: number;
  /** Baseline EBS IOPS the type sustains. */
  ebsIops: number;
  networkGbit: number;
  pricePerHour: number;
}

export interface ImageEntry {
  id: string;
  name: string;
  tags: Record<string, string>;
}

/** A window in which calls fail with a given error code. */
export interface CloudFault {
  atUs: number;
  untilUs: number;
  error: string;
  /** Restrict to one API action (RunInstances, …); InsufficientInstanceCapacity defaults to RunInstances and StartInstances. */
  api?: string;
  type?: string;
  zone?: string;
}

export interface CloudConfig {
  provider: 'emulated' | 'aws';
  region: string;
  zones: string[];
  catalog: CatalogEntry[];
  images: ImageEntry[];
  quotas: { vcpus: number };
  api: {
    latency: { meanUs: number; sdUs: number };
    rateLimit: { perSecond: number; burst: number };
  };
  boot: { meanUs: number; sdUs: number };
  consistencyWindowUs: number;
  unauthorized: string[];
  faults: CloudFault[];
}

/**
 * On-demand Linux prices in us-east-1 (USD per hour) for the types a burst
 * most often lands on. EBS IOPS are the types' baseline (not burst) figures.
 */
export const DEFAULT_CATALOG: readonly CatalogEntry[] = [
  { type: 'm6i.large', vcpus: 2, memoryGiB: 8, ebsIops: 3600, networkGbit: 12.5, pricePerHour: 0.096 },
  { type: 'm6i.xlarge', vcpus: 4, memoryGiB: 16, ebsIops: 6000, networkGbit: 12.5, pricePerHour: 0.192 },
  { type: 'm6i.2xlarge', vcpus: 8, memoryGiB: 32, ebsIops: 12000, networkGbit: 12.5, pricePerHour: 0.384 },
  { type: 'm6i.4xlarge', vcpus: 16, memoryGiB: 64, ebsIops: 20000, networkGbit: 12.5, pricePerHour: 0.768 },
  { type: 'm6i.8xlarge', vcpus: 32, memoryGiB: 128, ebsIops: 40000, networkGbit: 12.5, pricePerHour: 1.536 },
  { type: 'c6i.large', vcpus: 2, memoryGiB: 4, ebsIops: 3600, networkGbit: 12.5, pricePerHour: 0.085 },
  { type: 'c6i.xlarge', vcpus: 4, memoryGiB: 8, ebsIops: 6000, networkGbit: 12.5, pricePerHour: 0.17 },
  { type: 'c6i.2xlarge', vcpus: 8, memoryGiB: 16, ebsIops: 12000, networkGbit: 12.5, pricePerHour: 0.34 },
  { type: 'c6i.4xlarge', vcpus: 16, memoryGiB: 32, ebsIops: 20000, networkGbit: 12.5, pricePerHour: 0.68 },
  { type: 'r6i.large', vcpus: 2, memoryGiB: 16, ebsIops: 3600, networkGbit: 12.5, pricePerHour: 0.126 },
  { type: 'r6i.xlarge', vcpus: 4, memoryGiB: 32, ebsIops: 6000, networkGbit: 12.5, pricePerHour: 0.252 },
  { type: 'r6i.2xlarge', vcpus: 8, memoryGiB: 64, ebsIops: 12000, networkGbit: 12.5, pricePerHour: 0.504 },
];

/** The staging image a burst boots from (ARCHITECTURE.md §1). */
export const DEFAULT_IMAGES: readonly ImageEntry[] = [
  { id: 'ami-0a5ba6e0c57a9e001', name: 'spillway-staging-2026.11', tags: { 'spillway:role': 'staging' } },
];

/** Every EC2 action the emulator serves; `unauthorized` and `faults[].api` must name one of these. */
export const EC2_ACTIONS = [
  'DescribeInstanceTypes', 'DescribeImages', 'RunInstances', 'DescribeInstances', 'StartInstances',
  'StopInstances', 'TerminateInstances', 'ModifyInstanceAttribute', 'CreateVolume', 'AttachVolume',
  'DetachVolume', 'DeleteVolume', 'DescribeVolumes', 'CreateSnapshot', 'DescribeSnapshots', 'DeleteSnapshot',
  'CreateTags', 'DescribeAvailabilityZones', 'DescribeSubnets', 'DescribeSecurityGroups',
] as const;

/** Error codes a fault may inject. */
export const FAULT_ERRORS = [
  'InsufficientInstanceCapacity', 'RequestLimitExceeded', 'InternalError', 'Unavailable', 'ServiceUnavailable',
] as const;
