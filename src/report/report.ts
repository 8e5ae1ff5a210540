import type { Scenario } from '../scenario/schema.js';
import { batchTotals, h, hostFigures, peakUtilization, round, seriesFigures, vmFigures } from './figures.js';
import { REPORT_SECTIONS } from './sections/index.js';
import type { Report, ReportInput } from './types.js';

export type { BaselineFigures, BatchTotals, ExpectationResult, HostReport, Report, ReportInput, SeriesPoint, TaskReport, VmReport } from './types.js';

/**
 * The run's report as one JSON-ready object. `expect:` clauses address it by
 * dotted path (`totals.batch.completionHours`, `vms.batch-01.task.delayHours`),
 * so its shape is derived from the scenario alone: `reportMetricPaths` (expectations.ts) builds
 * the report of an empty run and lists its leaves, and a clause naming
 * anything else is a validation error before the run starts.
 *
 * The figures are computed in figures.ts; expectations.ts evaluates the
 * `expect:` clauses.
 *
 * Later components add sections (burst: time to cloud, WAN bytes, cache hit
 * ratio, write-back lag, cost) listed in sections/index.ts; a section builder
 * must return the same keys for an empty run as for a real one.
 */

export function buildReport(input: ReportInput): Report {
  const { scenario } = input;
  const v = vmFigures(scenario, input.vms);
  const batch = batchTotals(v);
  const hf = hostFigures(scenario, input.hosts, input.endUs);
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
      cpuCores: hf.cores,
      batch,
      saturation: {
        peakDemandRatio: round(hf.peakDemandRatio),
        peakUtilization: round(peakUtilization(input.series)),
        hoursAnyHostSaturated: h(input.anySaturatedUs),
        hostHoursSaturated: h(hf.hostHoursSaturated),
        hostsSaturated: hf.hostsSaturated,
      },
      cpu: {
        demandVcpuHours: h(hf.demandAll),
        grantedVcpuHours: h(hf.grantedAll),
        unservedVcpuHours: h(Math.max(0, hf.demandAll - hf.grantedAll)),
        steadyServedPct: v.steadyDemand > 0 ? round((100 * v.steadyGranted) / v.steadyDemand, 2) : null,
      },
    },
    baseline: {
      source: 'this-run',
      batchCompletionHours: batch.completionHours,
      batchDelayHours: batch.delayHours,
      batchSlowdown: batch.slowdown,
      hoursAnyHostSaturated: h(input.anySaturatedUs),
      peakDemandRatio: round(hf.peakDemandRatio),
    },
    vms: v.vms,
    hosts: hf.hosts,
    series: seriesFigures(scenario, input.series),
    expectations: [],
  };
  for (const [name, build] of REPORT_SECTIONS) report[name] = build(input);
  return report;
}

/** The report of a run that has not started: same shape, zero and null values. */
export function emptyReportInput(scenario: Scenario): ReportInput {
  return { scenario, seed: scenario.seed, endUs: 0, events: 0, hosts: [], vms: [], anySaturatedUs: 0, series: [], sim: null };
}
