import type { CloudConfig } from '../providers/emulated/ec2/config.js';
import type { HypervisorLatencies } from '../providers/emulated/hypervisor/hypervisor.js';
import type { BootProfileSpec } from '../providers/emulated/guest/boot-profile.js';
import type { AppRole } from '../providers/emulated/guest/file-view.js';
import type { ContentSpec } from '../providers/emulated/guest/spec.js';
import type { TierConfig } from '../providers/emulated/hypervisor/storage-tier.js';
import type { WanConfig } from '../providers/emulated/wan/wan-link.js';
import type { WorkloadSpec } from '../providers/emulated/workload/spec.js';

/**
 * A scenario after validation: every default filled in, every duration in
 * microseconds, every size in bytes, name patterns expanded. docs/scenarios.md
 * describes the YAML it comes from.
 */
export interface Scenario {
  name: string;
  description: string;
  /** The seed used unless `--seed` overrides it. */
  seed: number;
  durationUs: number;
  /** How often host load and task progress are sampled into the trace and report. */
  sampleEveryUs: number;
  /** How often load curves are re-evaluated (demand is constant in between). */
  tickEveryUs: number;
  datacenter: DatacenterSpec;
  workloads: Record<string, WorkloadSpec>;
  /** The WAN as the link model parsed it; null when the scenario has no `wan:` section. */
  wan: WanConfig | null;
  cloud: CloudConfig;
  policies: Policies;
  timeline: TimelineEvent[];
  expect: Expectation[];
  /** The file (or name) the scenario was read from, for messages. */
  sourceName: string;
}

export interface DatacenterSpec {
  ha: { enabled: boolean; restartUs: number };
  latencies: HypervisorLatencies;
  hosts: HostSpec[];
  storage: StorageTierSpec[];
  images: ImageSpec[];
  vms: VmSpec[];
}

export interface HostSpec {
  id: string;
  cpuCores: number;
  ramMiB: number;
}

/** A storage tier as the storage model parsed it (src/providers/emulated/hypervisor/storage-tier.ts). */
export type StorageTierSpec = TierConfig;

export interface OsSpec {
  family: 'linux' | 'windows';
  distro: string;
  version: string;
}

export interface ImageSpec {
  id: string;
  sizeBytes: number;
  os: OsSpec;
  tier: string | null;
  /** The disk content mix, as the guest content generator parsed it. */
  content: ContentSpec;
  bootProfile: BootProfileSpec;
  /** What the guest's file tree is shaped for (database files, web roots, …). */
  app: AppRole;
}

export type Persistence = 'on-prem' | 'cloud-only';

export interface DiskSpec {
  id: string;
  sizeBytes: number;
  tier: string | null;
  persistence: Persistence;
  /** The image the disk was cloned from; data disks have their own id here. */
  imageId: string;
}

export interface MountSpec {
  path: string;
  persistence: 'persistent' | 'non-persistent';
  sizeBytes: number;
}

export interface VmSpec {
  name: string;
  image: string;
  vcpus: number;
  ramMiB: number;
  /** A host id, or null for automatic placement. */
  host: string | null;
  workload: string;
  disks: DiskSpec[];
  mounts: MountSpec[];
  /** Index of the `datacenter.vms` entry this VM came from (for error messages). */
  entry: number;
}

export interface BurstPolicy {
  enabled: boolean;
  trigger: { hostUtilizationAbove: number; sustainedUs: number };
  release: { hostUtilizationBelow: number; sustainedUs: number };
  /** Workload names eligible to burst; empty means every workload. */
  workloads: string[];
  order: 'batch-first' | 'largest-first' | 'least-io-first';
  maxVms: number;
  maxConcurrentTransfers: number;
  instanceType: string;
  defaultPersistence: Persistence;
  cache: { sizeBytes: number };
  /** Boot streaming: true streams the image's profile, 'recorded' only after an earlier VM of the image recorded its reads (FIG 22), false none. */
  prefetch: boolean | 'recorded';
  writeBack: { rpoUs: number; maxBacklogBytes: number };
  budgetUsdPerHour: number | null;
  /** What to burst: strategy weights and thresholds (src/controller/burst/selection.ts). */
  selection: BurstSelection;
  /** Cloud storage latency above which a burst VM comes home (§5, third system). */
  bringBack: { storageLatencyAboveUs: number };
  /** Where to burst: §6 factor weights over the cloud's zones. */
  targets: { weights: Record<string, number> };
  /** The §7.0 cost model's rates. */
  rates: BurstRates;
  /** How a burst VM's boot is replayed through its cloud proxy. */
  boot: { depth: number; thinkUs: number };
  /** Coarsened application I/O against the cloud proxy: one batch of `ops` every `everyUs`. */
  io: { everyUs: number; ops: number };
  /** Standby for a failed host: VMs HA left down `afterUs` after the failure run in the cloud until the host recovers; null: off. */
  standby: { afterUs: number } | null;
}

export interface BurstSelection {
  weights: Record<string, number>;
  cpuAbove: number;
  horizonHours: number;
  hotSigma: number;
}

export interface BurstRates {
  onpremUsdPerCoreHour: number;
  cloudStorageUsdPerGiBMonth: number;
  egressUsdPerGiB: number;
  /** vCPUs per physical core on-prem (oversubscription), for the on-prem cost of the same work. */
  vcpusPerCore: number;
}

export interface Policies {
  burst: BurstPolicy;
  /** Policy blocks added by other components through `registerPolicy`. */
  [name: string]: unknown;
}

export type TimelineEvent =
  | { atUs: number; event: 'load'; workload: string | null; vms: string | null; factor: number; forUs: number | null; index: number }
  | { atUs: number; event: 'host-fail'; host: string; forUs: number | null; index: number }
  | { atUs: number; event: 'host-recover'; host: string; index: number }
  | { atUs: number; event: 'wan-outage'; forUs: number; reset: boolean; index: number }
  | { atUs: number; event: 'power-off' | 'power-on'; vm: string; index: number }
  | { atUs: number; event: 'snapshot'; vm: string; name: string; memory: boolean; index: number };

export type ExpectOp = '<' | '<=' | '>' | '>=' | '==' | '!=';
export const EXPECT_OPS: readonly ExpectOp[] = ['<', '<=', '>', '>=', '==', '!='];

export interface Expectation {
  id: string;
  metric: string;
  op: ExpectOp;
  value: number | boolean | string | null;
}
