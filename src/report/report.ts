import type { Expectation, Scenario } from '../scenario/schema.js';
import { US_PER_H } from '../util/units.js';
import { REPORT_SECTIONS } from './sections/index.js';
import type { BatchTotals, ExpectationResult, HostReport, Report, ReportInput, TaskReport, VmReport } from './types.js';

export type { BaselineFigures, BatchTotals, ExpectationResult, HostReport, Report, ReportInput, SeriesPoint, TaskReport, VmReport } from './types.js';

/**
 * The run's report as one JSON-ready object. `expect:` clauses address it by
 * dotted path (`totals.batch.completionHours`, `vms.batch-01.task.delayHours`),
 * so its shape is derived from the scenario alone: `reportMetricPaths` builds
 * the report of an empty run and lists its leaves, and a clause naming
 * anything else is a validation error before the run starts.
 *
 * Later components add sections (burst: time to cloud, WAN bytes, cache hit
 * ratio, write-back lag, cost) listed in sections/index.ts; a section builder
 * must return the same keys for an empty run as for a real one.
 */



const h = (us: number): number => round(us / US_PER_H, 4);
const round = (x: number, digits = 3): number => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

const roundOrNull = (x: number | null | undefined): number | null => (x === null || x === undefined ? null : round(x));

export function buildReport(input: ReportInput): Report {
  const { scenario } = input;
  const statsById = new Map(input.vms.map((v) => [v.id, v]));
  const vms: Record<string, VmReport> = {};
  const tasks: TaskReport[] = [];
  let firstStartUs = Infinity;
  let lastFinishUs = -Infinity;
  let lastUnconstrainedUs = -Infinity;
  let steadyDemand = 0;
  let steadyGranted = 0;
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
      tasks.push(task);
      if (t) {
        firstStartUs = Math.min(firstStartUs, t.startedUs);
        lastUnconstrainedUs = Math.max(lastUnconstrainedUs, t.startedUs + unconstrainedUs);
        lastFinishUs = Math.max(lastFinishUs, t.finishedUs ?? Infinity);
      } else {
        firstStartUs = Math.min(firstStartUs, workload.startUs);
        lastUnconstrainedUs = Math.max(lastUnconstrainedUs, workload.startUs + unconstrainedUs);
        lastFinishUs = Infinity;
      }
    } else {
      steadyDemand += demand;
      steadyGranted += granted;
    }
    vms[spec.name] = vm;
  }

  const finished = tasks.filter((t) => t.finishHours !== null).length;
  const done = tasks.length > 0 && finished === tasks.length && Number.isFinite(lastFinishUs);
  const completionUs = done ? lastFinishUs - firstStartUs : null;
  const unconstrainedSpanUs = tasks.length > 0 ? lastUnconstrainedUs - firstStartUs : 0;
  const finishedTasks = tasks.filter((t) => t.completionHours !== null);
  const batch: BatchTotals = {
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

  const hostStats = new Map(input.hosts.map((x) => [x.id, x]));
  const hosts: Record<string, HostReport> = {};
  let cores = 0;
  let peakDemandRatio = 0;
  let hostHoursSaturated = 0;
  let hostsSaturated = 0;
  let demandAll = 0;
  let grantedAll = 0;
  const spanUs = Math.max(1, input.endUs);
  for (const spec of scenario.datacenter.hosts) {
    const s = hostStats.get(spec.id);
    cores += spec.cpuCores;
    const upUs = Math.max(1, spanUs - (s?.failedUs ?? 0));
    hosts[spec.id] = {
      cpuCores: spec.cpuCores,
      peakDemandRatio: round(s?.peakDemandRatio ?? 0),
      avgUtilization: round((s?.grantedVcpuUs ?? 0) / (spec.cpuCores * upUs)),
      hoursSaturated: h(s?.saturatedUs ?? 0),
      failedHours: h(s?.failedUs ?? 0),
      demandVcpuHours: h(s?.demandVcpuUs ?? 0),
      grantedVcpuHours: h(s?.grantedVcpuUs ?? 0),
    };
    peakDemandRatio = Math.max(peakDemandRatio, s?.peakDemandRatio ?? 0);
    hostHoursSaturated += s?.saturatedUs ?? 0;
    if ((s?.saturatedUs ?? 0) > 0) hostsSaturated++;
    demandAll += s?.demandVcpuUs ?? 0;
    grantedAll += s?.grantedVcpuUs ?? 0;
  }
  let peakUtilization = 0;
  for (const p of input.series) for (const u of p.utilization) peakUtilization = Math.max(peakUtilization, u ?? 0);

  const hostIds = scenario.datacenter.hosts.map((x) => x.id);
  const report: Report = {
    scenario: scenario.name,
    seed: input.seed,
    traceHash: '',
    simulatedHours: h(input.endUs),
    events: input.events,
    mode: 'no-burst',
    totals: {
      vms: scenario.datacenter.vms.length,
      hosts: scenario.datacenter.hosts.length,
      cpuCores: cores,
      batch,
      saturation: {
        peakDemandRatio: round(peakDemandRatio),
        peakUtilization: round(peakUtilization),
        hoursAnyHostSaturated: h(input.anySaturatedUs),
        hostHoursSaturated: h(hostHoursSaturated),
        hostsSaturated,
      },
      cpu: {
        demandVcpuHours: h(demandAll),
        grantedVcpuHours: h(grantedAll),
        unservedVcpuHours: h(Math.max(0, demandAll - grantedAll)),
        steadyServedPct: steadyDemand > 0 ? round((100 * steadyGranted) / steadyDemand, 2) : null,
      },
    },
    baseline: {
      source: 'this-run',
      batchCompletionHours: batch.completionHours,
      batchDelayHours: batch.delayHours,
      batchSlowdown: batch.slowdown,
      hoursAnyHostSaturated: h(input.anySaturatedUs),
      peakDemandRatio: round(peakDemandRatio),
    },
    vms,
    hosts,
    series: {
      everyHours: h(scenario.sampleEveryUs),
      tHours: input.series.map((p) => h(p.tUs)),
      hostIds,
      demandRatio: hostIds.map((_, i) => input.series.map((p) => roundOrNull(p.demandRatio[i]))),
      utilization: hostIds.map((_, i) => input.series.map((p) => roundOrNull(p.utilization[i]))),
    },
    expectations: [],
  };
  for (const [name, build] of REPORT_SECTIONS) report[name] = build(input);
  return report;
}

/** The report of a run that has not started: same shape, zero and null values. */
export function emptyReportInput(scenario: Scenario): ReportInput {
  return { scenario, seed: scenario.seed, endUs: 0, events: 0, hosts: [], vms: [], anySaturatedUs: 0, series: [], sim: null };
}

/** Every dotted path an `expect:` clause may name (scalar leaves; lists are not addressable). */
export function reportMetricPaths(scenario: Scenario): Set<string> {
  const out = new Set<string>();
  const walk = (value: unknown, path: string): void => {
    if (Array.isArray(value)) return;
    if (value !== null && typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) walk(v, path ? `${path}.${k}` : k);
      return;
    }
    out.add(path);
  };
  const report = buildReport(emptyReportInput(scenario));
  const { expectations: _e, series: _s, ...rest } = report;
  walk(rest, '');
  return out;
}

export function metricValue(report: Report, path: string): unknown {
  let cur: unknown = report;
  for (const key of path.split('.')) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur)) return undefined;
    cur = (cur as Record<string, unknown>)[key];
  }
  return cur;
}

export function evaluateExpectation(e: Expectation, actual: unknown): boolean {
  const v = e.value;
  if (e.op === '==') return actual === v;
  if (e.op === '!=') return actual !== v;
  if (typeof actual !== 'number' || typeof v !== 'number') return false;
  switch (e.op) {
    case '<': return actual < v;
    case '<=': return actual <= v;
    case '>': return actual > v;
    case '>=': return actual >= v;
  }
}

export function evaluateExpectations(report: Report, expectations: readonly Expectation[]): ExpectationResult[] {
  return expectations.map((e) => {
    const actual = metricValue(report, e.metric) ?? null;
    return { ...e, actual, pass: evaluateExpectation(e, actual) };
  });
}
