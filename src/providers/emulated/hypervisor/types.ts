import type { BlockDevice } from '../../../proxy/block-device.js';
import { US_PER_S } from '../../../util/units.js';
import type { Timer } from '../../../world/types.js';
import type { DiskLease, GuestConfig, PowerState, SnapshotInfo } from '../../../ports/hypervisor.js';
import type { DiskChain } from './snapshot-disk.js';

/** The emulated hypervisor's definitions, figures and per-object state (hypervisor.ts, cpu-model.ts). */

export interface HypervisorLatencies {
  powerOnUs: number;
  powerOffUs: number;
  deactivateUs: number;
  reactivateUs: number;
  snapshotUs: number;
  /** Added per GiB of guest RAM when a snapshot includes memory; also the rate for capture/restore. */
  memoryPerGiBUs: number;
  revertUs: number;
  deleteSnapshotUs: number;
  updateGuestUs: number;
}

export const DEFAULT_LATENCIES: Readonly<HypervisorLatencies> = {
  powerOnUs: 30 * US_PER_S,
  powerOffUs: 8 * US_PER_S,
  deactivateUs: 5 * US_PER_S,
  reactivateUs: 5 * US_PER_S,
  snapshotUs: 3 * US_PER_S,
  memoryPerGiBUs: 2 * US_PER_S,
  revertUs: 10 * US_PER_S,
  deleteSnapshotUs: 4 * US_PER_S,
  updateGuestUs: 2 * US_PER_S,
};

export interface HaOptions {
  enabled: boolean;
  /** From host failure to the VM running again elsewhere (detection + boot). */
  restartUs: number;
}

export interface HostDef {
  id: string;
  cpuCores: number;
  ramMiB: number;
}

export interface DiskDef {
  id: string;
  sizeBytes: number;
  tier: string;
  imageId: string;
  /** Builds the disk's blocks on first open (generated content; default an empty sparse store). */
  create?: () => BlockDevice;
  /** Stacks layers over the disk's blocks (its storage tier). */
  layers?: (below: BlockDevice) => BlockDevice;
}

export interface VmDef {
  id: string;
  name: string;
  vcpus: number;
  ramMiB: number;
  workload: string;
  /** Batch VMs run at low shares: they get what steady services leave. */
  batch: boolean;
  disks: DiskDef[];
  guest: GuestConfig;
  dirtyRateBytesPerS: number;
}

export interface TaskInfo {
  name: string;
  workVcpuUs: number;
  doneVcpuUs: number;
  /** The cores the task would use with nothing in its way. */
  maxRate: number;
  startedUs: number;
  finishedUs: number | null;
  unconstrainedUs: number;
}

export interface Placement {
  atUs: number;
  where: 'onprem' | 'cloud' | 'none';
  host: string | null;
}

/** Time integrals kept per VM and host for the report (vCPU-µs). */
export interface CpuIntegrals {
  demandVcpuUs: number;
  grantedVcpuUs: number;
  /** Time during which it got less than it asked for. */
  starvedUs: number;
}

export interface HostStats extends CpuIntegrals {
  id: string;
  cpuCores: number;
  saturatedUs: number;
  /** Highest demand / capacity seen at any instant (may exceed 1). */
  peakDemandRatio: number;
  failedUs: number;
}

export interface VmStats extends CpuIntegrals {
  id: string;
  placements: Placement[];
  task: TaskInfo | null;
}

export interface HostState extends HostStats {
  ramMiB: number;
  failed: boolean;
  failedSinceUs: number;
  vms: Set<VmState>;
  demand: number;
  granted: number;
  lastUs: number;
  saturated: boolean;
}

export interface VmState extends VmStats {
  def: VmDef;
  host: HostState | null;
  power: PowerState;
  guest: GuestConfig;
  /** Demand set by the workload driver (ignored while a task runs). */
  baseDemand: number;
  granted: number;
  lastUs: number;
  completion: Timer | null;
  onTaskDone: ((task: TaskInfo) => void) | null;
  /** Cores available where the VM runs outside this hypervisor (a cloud instance); null while it runs here. */
  elsewhereVcpus: number | null;
}

export interface DiskState {
  def: DiskDef;
  vmId: string;
  /** The disk's contents; snapshots swap what is underneath. */
  chain: DiskChain | null;
  device: BlockDevice | null;
  lease: DiskLease | null;
}

export interface SnapshotState extends SnapshotInfo {
  power: PowerState;
  /** Each disk's contents as frozen at snapshot time. */
  frozen: Map<string, BlockDevice>;
}
