import type { HostStats, VmStats } from '../providers/emulated/hypervisor/hypervisor.js';
import type { Expectation, Scenario } from '../scenario/schema.js';
import { US_PER_H } from '../util/units.js';

export interface SeriesPoint {
  tUs: number;
  /** Per host: demand / capacity; null while the host is failed. */
  demandRatio: Array<number | null>;
  /** Per host: granted / capacity; null while the host is failed. */
  utilization: Array<number | null>;
}

export interface ReportInput {
  scenario: Scenario;
  seed: number;
  endUs: number;
  events: number;
  hosts: HostStats[];
  vms: VmStats[];
  /** Time during which at least one host was saturated. */
  anySaturatedUs: number;
  series: SeriesPoint[];
  /** Whatever section builders need from the running simulation; null for an empty run. */
  sim: unknown;
}

export interface TaskReport {
  workVcpuHours: number;
  startHours: number | null;
  finishHours: number | null;
  completionHours: number | null;
  unconstrainedHours: number;
  delayHours: number | null;
  slowdown: number | null;
}

export interface VmReport {
  workload: string;
  kind: string;
  vcpus: number;
  host: string | null;
  moves: number;
  placements: Array<{ atHours: number; where: string; host: string | null }>;
  cpu: { demandVcpuHours: number; grantedVcpuHours: number; servedPct: number | null; starvedHours: number };
  task?: TaskReport;
}

export interface HostReport {
  cpuCores: number;
  peakDemandRatio: number;
  avgUtilization: number;
  hoursSaturated: number;
  failedHours: number;
  demandVcpuHours: number;
  grantedVcpuHours: number;
}

export interface BatchTotals {
  tasks: number;
  finished: number;
  unfinished: number;
  /** From the first task's start to the last task's finish; null while any is unfinished. */
  completionHours: number | null;
  /** The same span if every task had all the cores it asked for. */
  unconstrainedHours: number;
  delayHours: number | null;
  slowdown: number | null;
  meanTaskHours: number | null;
  maxTaskDelayHours: number | null;
}

export interface ExpectationResult extends Expectation {
  actual: unknown;
  pass: boolean;
}

export interface Report {
  scenario: string;
  seed: number;
  traceHash: string;
  simulatedHours: number;
  events: number;
  mode: 'no-burst' | 'burst';
  totals: {
    vms: number;
    hosts: number;
    cpuCores: number;
    batch: BatchTotals;
    saturation: {
      peakDemandRatio: number;
      peakUtilization: number;
      hoursAnyHostSaturated: number;
      hostHoursSaturated: number;
      hostsSaturated: number;
    };
    cpu: { demandVcpuHours: number; grantedVcpuHours: number; unservedVcpuHours: number; steadyServedPct: number | null };
  };
  /** What the data center does without bursting; for a no-burst run, the run itself. */
  baseline: {
    source: 'this-run';
    batchCompletionHours: number | null;
    batchDelayHours: number | null;
    batchSlowdown: number | null;
    hoursAnyHostSaturated: number;
    peakDemandRatio: number;
  };
  vms: Record<string, VmReport>;
  hosts: Record<string, HostReport>;
  /** Sampled every `everyHours`; one row per host, null where the host was failed. */
  series: { everyHours: number; tHours: number[]; hostIds: string[]; demandRatio: Array<Array<number | null>>; utilization: Array<Array<number | null>> };
  expectations: ExpectationResult[];
  [section: string]: unknown;
}

/** The no-burst baseline's figures (ScenarioSimulation.runBaseline), read by the burst section. */
export interface BaselineFigures {
  batchCompletionHours: number | null;
  batchSlowdown: number | null;
  hoursAnyHostSaturated: number;
  peakUtilization: number;
}
