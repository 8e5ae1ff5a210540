/**
 * What a scenario says about a workload. The four kinds differ in what
 * matters: a batch job has a fixed amount of work whose completion time is
 * the key metric; database, web and trading VMs are steady services whose
 * CPU demand follows a load curve and must be served as it arrives.
 */

export type WorkloadKind = 'batch' | 'database' | 'web' | 'trading';
export const WORKLOAD_KINDS: readonly WorkloadKind[] = ['batch', 'database', 'web', 'trading'];

/** One point of a 24-hour profile: at `hour` (0..24) the load is `factor` × base. */
export interface DailyPoint {
  hour: number;
  factor: number;
}

/** Unpredictable bursts (trading): Poisson arrivals, exponential lengths. */
export interface SpikeSpec {
  perHour: number;
  factor: number;
  meanDurationUs: number;
}

interface WorkloadCommon {
  name: string;
  /** Standard deviation of the per-tick multiplicative noise (0.05 = ±5%). */
  noise: number;
  /** Guest memory dirtied per second while running (cut-over convergence). */
  dirtyRateBytesPerS: number;
}

export interface SteadyWorkloadSpec extends WorkloadCommon {
  kind: 'database' | 'web' | 'trading';
  /** Average demand as a fraction of the VM's vCPUs (web: of the tier's vCPUs). */
  base: number;
  daily: DailyPoint[];
  spikes: SpikeSpec | null;
}

export interface BatchWorkloadSpec extends WorkloadCommon {
  kind: 'batch';
  /** Work each VM running this workload must complete, in vCPU-hours. */
  workVcpuHours: number;
  /** When the task starts, virtual time from the start of the run. */
  startUs: number;
  /** Fraction of the VM's vCPUs the task keeps busy while it runs. */
  parallelism: number;
  /** Demand (fraction of vCPUs) before the task starts and after it finishes. */
  idle: number;
}

export type WorkloadSpec = SteadyWorkloadSpec | BatchWorkloadSpec;

export const isBatch = (w: WorkloadSpec): w is BatchWorkloadSpec => w.kind === 'batch';

/** Default daily profiles, as factors of `base` (they average about 1 over a day). */
export const DEFAULT_DAILY: Record<SteadyWorkloadSpec['kind'], DailyPoint[]> = {
  // Business hours bump, a nightly maintenance dip.
  database: [
    { hour: 0, factor: 0.85 }, { hour: 3, factor: 0.75 }, { hour: 8, factor: 1.05 },
    { hour: 12, factor: 1.15 }, { hour: 17, factor: 1.1 }, { hour: 21, factor: 0.95 },
  ],
  // Diurnal consumer traffic: trough before dawn, peak in the evening.
  web: [
    { hour: 0, factor: 0.8 }, { hour: 4, factor: 0.55 }, { hour: 9, factor: 1.0 },
    { hour: 13, factor: 1.15 }, { hour: 20, factor: 1.3 }, { hour: 23, factor: 1.0 },
  ],
  // Market hours.
  trading: [
    { hour: 0, factor: 0.6 }, { hour: 9, factor: 0.7 }, { hour: 9.5, factor: 1.4 },
    { hour: 16, factor: 1.3 }, { hour: 16.5, factor: 0.8 }, { hour: 23, factor: 0.6 },
  ],
};

export const DEFAULT_NOISE: Record<WorkloadKind, number> = { batch: 0.02, database: 0.04, web: 0.06, trading: 0.1 };
