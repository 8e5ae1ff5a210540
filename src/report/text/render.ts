import { burstSummaryLines } from './burst.js';
import { scaleOutSummaryLines } from './scale-out.js';
import { migrationSummaryLines } from './migration-wave.js';
import { resourcesLeftLines } from './resources-left.js';
import type { Report } from '../report.js';

/**
 * The report as text for a terminal: the headline (batch completion against
 * the unconstrained time), host saturation over time as a strip per host,
 * the slowest batch tasks, and the expectations with pass/fail.
 */
const BARS = ' ▁▂▃▄▅▆▇█';

export function renderReport(r: Report, options: { width?: number; sourceName?: string } = {}): string {
  const width = Math.max(40, Math.min(options.width ?? 100, 160));
  const t = r.totals;
  const out: string[] = [];
  const hh = (x: number | null): string => (x === null ? '—' : `${x.toFixed(1)} h`);
  const pct = (x: number | null): string => (x === null ? '—' : `${(x * 100).toFixed(0)}%`);
  out.push(`${r.scenario}: ${t.vms} VMs on ${t.hosts} hosts (${t.cpuCores} cores), ${r.simulatedHours.toFixed(1)} h simulated, seed ${r.seed}`);
  out.push(`mode: ${modeText(r)}`);
  out.push(...burstSummaryLines(r));
  out.push(...scaleOutSummaryLines(r));
  out.push(...migrationSummaryLines(r));
  out.push('');
  const b = t.batch;
  if (b.tasks > 0) {
    out.push(`Batch: ${b.tasks} tasks, ${b.finished} finished${b.unfinished ? `, ${b.unfinished} UNFINISHED at the end of the run` : ''}`);
    out.push(`  completion ${hh(b.completionHours)} vs ${hh(b.unconstrainedHours)} unconstrained` +
      (b.delayHours !== null ? `  → delay ${hh(b.delayHours)} (×${b.slowdown?.toFixed(2)})` : ''));
    if (b.meanTaskHours !== null) out.push(`  mean task ${hh(b.meanTaskHours)}, worst task delay ${hh(b.maxTaskDelayHours)}`);
  } else {
    out.push('Batch: no batch tasks in this scenario');
  }
  const s = t.saturation;
  out.push('');
  out.push(`Hosts: peak demand ${pct(s.peakDemandRatio)} of capacity; ${hh(s.hoursAnyHostSaturated)} with some host saturated; ` +
    `${s.hostHoursSaturated.toFixed(1)} host-hours saturated across ${s.hostsSaturated} host(s)`);
  out.push(`CPU: ${t.cpu.demandVcpuHours.toFixed(0)} vCPU-h wanted, ${t.cpu.grantedVcpuHours.toFixed(0)} granted, ${t.cpu.unservedVcpuHours.toFixed(0)} deferred; ` +
    `steady services got ${t.cpu.steadyServedPct === null ? '—' : `${t.cpu.steadyServedPct.toFixed(1)}%`} of their demand`);
  out.push('');
  out.push(...renderStrips(r, width));
  out.push('');
  out.push(...renderHosts(r));
  const batchVms = Object.entries(r.vms).filter(([, v]) => v.task).sort((a, b) => (b[1].task!.delayHours ?? Infinity) - (a[1].task!.delayHours ?? Infinity));
  if (batchVms.length > 0) {
    out.push('');
    out.push('Slowest batch tasks:');
    out.push(`  ${'vm'.padEnd(16)} ${'host'.padEnd(10)} ${'start'.padStart(8)} ${'finish'.padStart(8)} ${'took'.padStart(8)} ${'alone'.padStart(8)} ${'delay'.padStart(8)}`);
    for (const [name, v] of batchVms.slice(0, 8)) {
      const k = v.task!;
      out.push(`  ${name.padEnd(16)} ${(v.host ?? '—').padEnd(10)} ${hh(k.startHours).padStart(8)} ${hh(k.finishHours).padStart(8)} ${hh(k.completionHours).padStart(8)} ${hh(k.unconstrainedHours).padStart(8)} ${hh(k.delayHours).padStart(8)}`);
    }
    if (batchVms.length > 8) out.push(`  … ${batchVms.length - 8} more (see --json)`);
  }
  const left = resourcesLeftLines(r);
  if (left.length) out.push('', ...left);
  if (r.expectations.length > 0) {
    out.push('');
    out.push('Expectations:');
    for (const e of r.expectations) {
      out.push(`  ${e.pass ? 'PASS' : 'FAIL'}  ${e.id}: ${e.metric} ${e.op} ${JSON.stringify(e.value)} (actual ${JSON.stringify(e.actual)})`);
    }
  }
  out.push('');
  out.push(`trace ${r.traceHash}`);
  return out.join('\n');
}

/** Demand / capacity over time, one strip per host; ▇ and above means saturated. */
function renderStrips(r: Report, width: number): string[] {
  const { tHours, hostIds, demandRatio } = r.series;
  if (tHours.length === 0) return [];
  const label = Math.max(...hostIds.map((id) => id.length), 4);
  const cols = Math.max(10, width - label - 4);
  const buckets = Math.min(cols, tHours.length);
  const per = tHours.length / buckets;
  const strip = (values: Array<number | null>): string => {
    let line = '';
    for (let c = 0; c < buckets; c++) {
      const from = Math.floor(c * per);
      const to = Math.max(from + 1, Math.floor((c + 1) * per));
      let peak = 0;
      let failed = 0;
      for (let i = from; i < to; i++) {
        const v = values[i];
        if (v === null || v === undefined) failed++;
        else peak = Math.max(peak, v);
      }
      if (failed === to - from) {
        line += '×';
        continue;
      }
      // Eight levels up to 100%; anything over capacity shows as a full block.
      line += peak > 1 + 1e-9 ? '█' : BARS[Math.min(7, Math.round(peak * 7))]!;
    }
    return line;
  };
  const out = [`Host demand / capacity over ${r.simulatedHours.toFixed(0)} h (each column ${(r.simulatedHours / buckets).toFixed(2)} h; █ saturated, × host failed):`];
  hostIds.forEach((id, i) => out.push(`  ${id.padEnd(label)} |${strip(demandRatio[i] ?? [])}|`));
  // The whole data center: total demand over the capacity of the hosts that are up.
  const cores = hostIds.map((id) => r.hosts[id]?.cpuCores ?? 0);
  const total = tHours.map((_, k) => {
    let demand = 0;
    let capacity = 0;
    demandRatio.forEach((row, i) => {
      const v = row[k];
      if (v === null || v === undefined) return;
      demand += v * cores[i]!;
      capacity += cores[i]!;
    });
    return capacity > 0 ? demand / capacity : null;
  });
  out.push(`  ${'all'.padEnd(label)} |${strip(total)}|`);
  const axis = [...' '.repeat(buckets)];
  for (let hour = 0; hour <= r.simulatedHours; hour += 24) {
    const c = Math.min(buckets - 1, Math.round((hour / Math.max(1e-9, r.simulatedHours)) * buckets));
    const text = `${hour / 24}d`;
    if (c + text.length > buckets) continue;
    for (let j = 0; j < text.length && c + j < buckets; j++) axis[c + j] = text[j]!;
  }
  out.push(`  ${''.padEnd(label)}  ${axis.join('')}`);
  return out;
}

function renderHosts(r: Report): string[] {
  const out = [`  ${'host'.padEnd(10)} ${'cores'.padStart(6)} ${'peak'.padStart(7)} ${'avg use'.padStart(8)} ${'saturated'.padStart(10)} ${'failed'.padStart(8)}`];
  for (const [id, h] of Object.entries(r.hosts)) {
    out.push(`  ${id.padEnd(10)} ${String(h.cpuCores).padStart(6)} ${`${(h.peakDemandRatio * 100).toFixed(0)}%`.padStart(7)} ${`${(h.avgUtilization * 100).toFixed(0)}%`.padStart(8)} ${`${h.hoursSaturated.toFixed(1)} h`.padStart(10)} ${(h.failedHours ? `${h.failedHours.toFixed(1)} h` : '—').padStart(8)}`);
  }
  return out;
}

/** What ran: bursting, or which other cloud policy, or none (the plain on-prem run). */
function modeText(r: Report): string {
  if (r.mode === 'burst') return 'burst';
  const enabled = (section: unknown): boolean => (section as { enabled?: boolean } | undefined)?.enabled === true;
  const others = [enabled(r.scaleOut) ? 'scale-out by cloning' : '', enabled(r.migration) ? 'permanent migration wave' : ''].filter(Boolean);
  return others.length ? `${others.join(', ')} (bursting off)` : 'no bursting (everything stays on-prem)';
}
