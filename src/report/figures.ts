import type { Scenario } from '../scenario/schema.js';
import type { HostStats, VmStats } from '../providers/emulated/hypervisor/hypervisor.js';
import { US_PER_H } from '../util/units.js';
import type { BatchTotals, HostReport, Report, SeriesPoint, TaskReport, VmReport } from './types.js';

/**
 * The report's figures from the hypervisor's integrals: per VM (CPU, placements,
 * its batch task), the batch totals, per host and the saturation they add up
 * to, and the sampled series. buildReport (report.ts) puts them together.
 */

export const h = (us: number): number => round(us / US_PER_H, 4);
export const round = (x: number, digits = 3): number => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

const roundOrNull = (x: number | null | undefined): number | null => (x === null || x === undefined ? null : round(x));

/** Per VM figures, and the spans and steady-service sums the totals need. */
export interface VmFigures {
  vms: Record<string, VmReport>;
  tasks: TaskReport[];
  firstStartUs: number;
  /** Infinity while a task is unfinished (or never started). */
  lastFinishUs: number;
  lastUnconstrainedUs: number;
  steadyDemand: number;
  steadyGranted: number;
}

export function vmFigures(scenario: Scenario, stats: readonly VmStats[]): VmFigures {
  const statsById = new Map(stats.map((v) => [v.id, v]));
  const out: VmFigures = {
    vms: {}, tasks: [], firstStartUs: Infinity, lastFinishUs: -Infinity, lastUnconstrainedUs: -Infinity, steadyDemand: 0, steadyGranted: 0,
  };
  for (const spec of scenario.datacenter.vms) {
    const s = statsById.get(spec.name);
    const workload = scenario.workloads[spec.workload]!;
    const placements = (s?.placements ?? []).map((p) => ({ atHours: h(p.atUs), where: p.where, host: p.host }));
    const demand = s?.demandVcpuUs ?? 0;
    const granted = s?.grantedVcpuUs ?? 0;
    const vm: VmReport = {
      workload: spec.workload,
      kind: workload.kind,
      vcpus: spec.vcpus,
      host: placements[0]?.host ?? null,
      moves: Math.max(0, placements.filter((p) => p.where !== 'none').length - 1),
      placements,
      cpu: { demandVcpuHours: h(demand), grantedVcpuHours: h(granted), servedPct: demand > 0 ? round((100 * granted) / demand, 2) : null, starvedHours: h(s?.starvedUs ?? 0) },
    };
    if (workload.kind === 'batch') {
      const t = s?.task ?? null;
      const maxRate = Math.min(spec.vcpus, workload.parallelism * spec.vcpus);
      const unconstrainedUs = t ? t.unconstrainedUs : Math.ceil((workload.workVcpuHours * US_PER_H) / maxRate);
      const completionUs = t && t.finishedUs !== null ? t.finishedUs - t.startedUs : null;
      const task: TaskReport = {
        workVcpuHours: workload.workVcpuHours,
        startHours: t ? h(t.startedUs) : null,
        finishHours: t && t.finishedUs !== null ? h(t.finishedUs) : null,
        completionHours: completionUs === null ? null : h(completionUs),
        unconstrainedHours: h(unconstrainedUs),
        delayHours: completionUs === null ? null : h(Math.max(0, completionUs - unconstrainedUs)),
        slowdown: completionUs === null ? null : round(completionUs / unconstrainedUs, 3),
      };
      vm.task = task;
      out.tasks.push(task);
      if (t) {
        out.firstStartUs = Math.min(out.firstStartUs, t.startedUs);
        out.lastUnconstrainedUs = Math.max(out.lastUnconstrainedUs, t.startedUs + unconstrainedUs);
        out.lastFinishUs = Math.max(out.lastFinishUs, t.finishedUs ?? Infinity);
      } else {
        out.firstStartUs = Math.min(out.firstStartUs, workload.startUs);
        out.lastUnconstrainedUs = Math.max(out.lastUnconstrainedUs, workload.startUs + unconstrainedUs);
        out.lastFinishUs = Infinity;
      }
    } else {
      out.steadyDemand += demand;
      out.steadyGranted += granted;
    }
    out.vms[spec.name] = vm;
  }
  return out;
}

/** The batch tasks together: from the first start to the last finish, against the unconstrained span. */
export function batchTotals(f: VmFigures): BatchTotals {
  const { tasks, firstStartUs, lastFinishUs, lastUnconstrainedUs } = f;
  const finished = tasks.filter((t) => t.finishHours !== null).length;
  const done = tasks.length > 0 && finished === tasks.length && Number.isFinite(lastFinishUs);
  const completionUs = done ? lastFinishUs - firstStartUs : null;
  const unconstrainedSpanUs = tasks.length > 0 ? lastUnconstrainedUs - firstStartUs : 0;
  const finishedTasks = tasks.filter((t) => t.completionHours !== null);
  return {
    tasks: tasks.length,
    finished,
    unfinished: tasks.length - finished,
    completionHours: completionUs === null ? null : h(completionUs),
    unconstrainedHours: h(unconstrainedSpanUs),
    delayHours: completionUs === null ? null : h(Math.max(0, completionUs - unconstrainedSpanUs)),
    slowdown: completionUs === null || unconstrainedSpanUs <= 0 ? null : round(completionUs / unconstrainedSpanUs, 3),
    meanTaskHours: finishedTasks.length ? round(finishedTasks.reduce((a, t) => a + t.completionHours!, 0) / finishedTasks.length, 4) : null,
    maxTaskDelayHours: finishedTasks.length ? Math.max(...finishedTasks.map((t) => t.delayHours!)) : null,
  };
}

/** Per host figures and what they add up to. */
export interface HostFigures {
  hosts: Record<string, HostReport>;
  cores: number;
  peakDemandRatio: number;
  hostHoursSaturated: number;
  hostsSaturated: number;
  demandAll: number;
  grantedAll: number;
}

export function hostFigures(scenario: Scenario, stats: readonly HostStats[], endUs: number): HostFigures {
  const hostStats = new Map(stats.map((x) => [x.id, x]));
  const out: HostFigures = { hosts: {}, cores: 0, peakDemandRatio: 0, hostHoursSaturated: 0, hostsSaturated: 0, demandAll: 0, grantedAll: 0 };
  const spanUs = Math.max(1, endUs);
  for (const spec of scenario.datacenter.hosts) {
    const s = hostStats.get(spec.id);
    out.cores += spec.cpuCores;
    const upUs = Math.max(1, spanUs - (s?.failedUs ?? 0));
    out.hosts[spec.id] = {
      cpuCores: spec.cpuCores,
      peakDemandRatio: round(s?.peakDemandRatio ?? 0),
      avgUtilization: round((s?.grantedVcpuUs ?? 0) / (spec.cpuCores * upUs)),
      hoursSaturated: h(s?.saturatedUs ?? 0),
      failedHours: h(s?.failedUs ?? 0),
      demandVcpuHours: h(s?.demandVcpuUs ?? 0),
      grantedVcpuHours: h(s?.grantedVcpuUs ?? 0),
    };
    out.peakDemandRatio = Math.max(out.peakDemandRatio, s?.peakDemandRatio ?? 0);
    out.hostHoursSaturated += s?.saturatedUs ?? 0;
    if ((s?.saturatedUs ?? 0) > 0) out.hostsSaturated++;
    out.demandAll += s?.demandVcpuUs ?? 0;
    out.grantedAll += s?.grantedVcpuUs ?? 0;
  }
  return out;
}

/** The highest sampled utilization of any host. */
export function peakUtilization(series: readonly SeriesPoint[]): number {
  let peak = 0;
  for (const p of series) for (const u of p.utilization) peak = Math.max(peak, u ?? 0);
  return peak;
}

/** The sampled series, one row per host. */
export function seriesFigures(scenario: Scenario, series: readonly SeriesPoint[]): Report['series'] {
  const hostIds = scenario.datacenter.hosts.map((x) => x.id);
  return {
    everyHours: h(scenario.sampleEveryUs),
    tHours: series.map((p) => h(p.tUs)),
    hostIds,
    demandRatio: hostIds.map((_, i) => series.map((p) => roundOrNull(p.demandRatio[i]))),
    utilization: hostIds.map((_, i) => series.map((p) => roundOrNull(p.utilization[i]))),
  };
}
