import type { Report } from './report.js';
import type { ExportSamples } from './samples.js';

/**
 * The report's charts as SVG, built from the report JSON and the trace samples
 * (src/report/samples.ts): load against capacity per host, WAN throughput, a
 * swimlane of where each VM ran and its lifecycle states, and cost. Pure
 * functions of their input: no clock, no randomness, numbers printed with
 * fixed decimals, so the same run exports the same bytes. All text is escaped.
 */

export interface ExportInput {
  report: Report;
  samples: ExportSamples;
}

/** One chart: markup drawn at the origin, `height` tall, `WIDTH` wide. */
export interface Chart {
  id: string;
  title: string;
  height: number;
  body: string;
}

export const WIDTH = 1200;
const LEFT = 130;
const RIGHT = 20;
const PLOT_W = WIDTH - LEFT - RIGHT;
const US_PER_H = 3_600_000_000;

const HOST_COLORS = ['#4e79a7', '#59a14f', '#9c755f', '#b07aa1', '#76b7b2', '#edc948', '#bab0ac', '#86bcb6', '#8cd17d', '#a0cbe8'];
const CLOUD = '#f28e2b';
const DEMAND = '#e15759';
const GRANTED = '#4e79a7';
const STATE_COLORS = ['#f1ce63', '#ff9d9a', '#79706e', '#d37295', '#fabfd2', '#b6992d', '#499894', '#d4a6c8', '#9d7660', '#e15759'];

export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;')
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '');
}

const f = (x: number): string => (Math.round(x * 10) / 10).toFixed(1);

function text(x: number, y: number, s: string, attrs = ''): string {
  return `<text x="${f(x)}" y="${f(y)}"${attrs ? ` ${attrs}` : ''}>${esc(s)}</text>`;
}

/** "6h", "1d", "1d6h": virtual time since the run began. */
export function hoursLabel(hours: number): string {
  const d = Math.floor(hours / 24 + 1e-9);
  const h = Math.round((hours - d * 24) * 100) / 100;
  if (d === 0) return `${h}h`;
  return h === 0 ? `${d}d` : `${d}d${h}h`;
}

interface TimeScale {
  hours: number;
  x: (hours: number) => number;
}

function timeScale(hours: number): TimeScale {
  const span = Math.max(hours, 1e-6);
  return { hours: span, x: (t) => LEFT + (Math.min(Math.max(t, 0), span) / span) * PLOT_W };
}

function timeAxis(ts: TimeScale, y: number, gridTop: number): string {
  const steps = [0.25, 0.5, 1, 2, 3, 6, 12, 24, 48, 72, 168];
  const step = steps.find((s) => ts.hours / s <= 12) ?? Math.ceil(ts.hours / 12 / 24) * 24;
  const out: string[] = [`<line x1="${LEFT}" y1="${f(y)}" x2="${LEFT + PLOT_W}" y2="${f(y)}" class="axis"/>`];
  for (let t = 0; t <= ts.hours + 1e-9; t += step) {
    const x = ts.x(t);
    out.push(`<line x1="${f(x)}" y1="${f(gridTop)}" x2="${f(x)}" y2="${f(y)}" class="grid"/>`);
    out.push(text(x, y + 14, hoursLabel(t), 'class="tick" text-anchor="middle"'));
  }
  return out.join('');
}

function valueAxis(y0: number, height: number, max: number, unit: string, ticks = 4, prefix = ''): string {
  const out: string[] = [];
  for (let k = 0; k <= ticks; k++) {
    const v = (max * k) / ticks;
    const y = y0 + height - (height * k) / ticks;
    out.push(`<line x1="${LEFT}" y1="${f(y)}" x2="${LEFT + PLOT_W}" y2="${f(y)}" class="grid"/>`);
    out.push(text(LEFT - 6, y + 4, `${prefix}${niceNumber(v)}${unit}`, 'class="tick" text-anchor="end"'));
  }
  return out.join('');
}

/** The next 1, 2, 2.5 or 5 × 10^k at or above x, so axis ticks are round numbers. */
function niceCeil(x: number): number {
  if (!(x > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  return ([1, 2, 2.5, 4, 5, 10].find((m) => m * p >= x - 1e-9) ?? 10) * p;
}

function niceNumber(v: number): string {
  if (v === 0) return '0';
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 10) return v.toFixed(1).replace(/\.0$/, '');
  return v.toFixed(2).replace(/0$/, '').replace(/\.0$/, '');
}

/** A polyline through the points; null breaks it. */
function linePath(points: Array<[number, number] | null>): string {
  let d = '';
  let pen = false;
  for (const p of points) {
    if (p === null) {
      pen = false;
      continue;
    }
    d += `${pen ? 'L' : 'M'}${f(p[0])} ${f(p[1])}`;
    pen = true;
  }
  return d;
}

/** Filled area from the baseline up to the points, one closed shape per unbroken run. */
function areaPath(points: Array<[number, number] | null>, baseY: number): string {
  let d = '';
  let run: Array<[number, number]> = [];
  const flush = (): void => {
    if (run.length > 0) d += `M${f(run[0]![0])} ${f(baseY)}${run.map((p) => `L${f(p[0])} ${f(p[1])}`).join('')}L${f(run[run.length - 1]![0])} ${f(baseY)}Z`;
    run = [];
  };
  for (const p of points) {
    if (p === null) flush();
    else run.push(p);
  }
  flush();
  return d;
}

function legend(x: number, y: number, items: Array<{ label: string; color: string; kind?: 'line' | 'box' | 'dash' }>): string {
  const out: string[] = [];
  let cx = x;
  for (const it of items) {
    if (it.kind === 'line' || it.kind === 'dash') {
      out.push(`<line x1="${f(cx)}" y1="${f(y - 4)}" x2="${f(cx + 16)}" y2="${f(y - 4)}" stroke="${it.color}" stroke-width="2"${it.kind === 'dash' ? ' stroke-dasharray="4 3"' : ''}/>`);
    } else {
      out.push(`<rect x="${f(cx)}" y="${f(y - 10)}" width="12" height="10" fill="${it.color}"/>`);
    }
    out.push(text(cx + 20, y, it.label, 'class="legend"'));
    cx += 28 + it.label.length * 6.5;
  }
  return out.join('');
}

// ---- charts ----------------------------------------------------------------------

/**
 * Per host: demand (line) and granted CPU (area) in cores against the host's
 * cores (dashed), failed periods shaded. The whole data center first.
 */
export function loadChart(r: Report, maxHosts = 24): Chart {
  const { tHours, hostIds, demandRatio, utilization } = r.series;
  const ts = timeScale(r.simulatedHours);
  const rowH = 96;
  const gap = 26;
  const rows: Array<{ label: string; cores: number; demand: Array<number | null>; granted: Array<number | null> }> = [];
  const cores = hostIds.map((id) => r.hosts[id]?.cpuCores ?? 0);
  const sum = (rowsOf: Array<Array<number | null>>) => tHours.map((_, k) => {
    let total = 0;
    let any = false;
    rowsOf.forEach((row, i) => {
      const v = row[k];
      if (v === null || v === undefined) return;
      total += v * cores[i]!;
      any = true;
    });
    return any ? total : null;
  });
  const capacityAll = tHours.map((_, k) => demandRatio.reduce((a, row, i) => a + (row[k] === null || row[k] === undefined ? 0 : cores[i]!), 0));
  rows.push({ label: 'all hosts', cores: cores.reduce((a, b) => a + b, 0), demand: sum(demandRatio), granted: sum(utilization) });
  hostIds.slice(0, maxHosts).forEach((id, i) => {
    rows.push({ label: id, cores: cores[i]!, demand: (demandRatio[i] ?? []).map((v) => (v === null ? null : v * cores[i]!)), granted: (utilization[i] ?? []).map((v) => (v === null ? null : v * cores[i]!)) });
  });
  const out: string[] = [];
  let y = 28;
  out.push(legend(LEFT, 14, [
    { label: 'CPU demand (cores)', color: DEMAND, kind: 'line' },
    { label: 'CPU granted', color: GRANTED },
    { label: 'capacity', color: '#333', kind: 'dash' },
    { label: 'host failed', color: '#bbb' },
  ]));
  rows.forEach((row, idx) => {
    const peak = Math.max(row.cores, ...row.demand.map((v) => v ?? 0));
    const max = niceCeil(peak * 1.05);
    const yOf = (v: number): number => y + rowH - (v / max) * rowH;
    const pts = (vals: Array<number | null>): Array<[number, number] | null> => vals.map((v, k) => (v === null ? null : [ts.x(tHours[k]!), yOf(v)]));
    out.push(`<g class="host" data-host="${esc(row.label)}">`);
    out.push(text(8, y + 12, row.label, 'class="label"'));
    out.push(text(8, y + 27, `${row.cores} cores`, 'class="sub"'));
    out.push(valueAxis(y, rowH, max, '', 2));
    // Failed periods: a sample with no value.
    if (idx > 0) {
      tHours.forEach((t, k) => {
        if (row.demand[k] !== null) return;
        const x0 = ts.x(t - r.series.everyHours / 2);
        const x1 = ts.x(t + r.series.everyHours / 2);
        out.push(`<rect x="${f(x0)}" y="${f(y)}" width="${f(Math.max(0.5, x1 - x0))}" height="${rowH}" class="failed"/>`);
      });
    }
    out.push(`<path d="${areaPath(pts(row.granted), y + rowH)}" fill="${GRANTED}" fill-opacity="0.35" class="series" data-series="granted"/>`);
    out.push(`<path d="${linePath(pts(row.demand))}" fill="none" stroke="${DEMAND}" stroke-width="1.5" class="series" data-series="demand"/>`);
    const capacity = idx === 0 ? pts(capacityAll) : pts(tHours.map(() => row.cores));
    out.push(`<path d="${linePath(capacity)}" fill="none" stroke="#333" stroke-width="1" stroke-dasharray="4 3" class="series" data-series="capacity"/>`);
    out.push(`<line x1="${LEFT}" y1="${f(y + rowH)}" x2="${LEFT + PLOT_W}" y2="${f(y + rowH)}" class="axis"/>`);
    out.push('</g>');
    y += rowH + gap;
  });
  if (hostIds.length > maxHosts) {
    out.push(text(LEFT, y, `… ${hostIds.length - maxHosts} more hosts not drawn (see the JSON report)`, 'class="note"'));
    y += 16;
  }
  out.push(timeAxis(ts, y - gap + 4, y - gap + 4));
  return { id: 'load', title: 'Load vs capacity per host', height: y + 4, body: out.join('') };
}

/** WAN throughput each way (Mbit/s) from `wan.stats` samples; outages shaded. */
export function wanChart(r: Report, s: ExportSamples): Chart {
  const ts = timeScale(r.simulatedHours);
  const h = 150;
  const y = 28;
  const out: string[] = [legend(LEFT, 14, [
    { label: 'to cloud (up)', color: '#4e79a7', kind: 'line' },
    { label: 'from cloud (down)', color: CLOUD, kind: 'line' },
    { label: 'WAN outage', color: '#bbb' },
  ])];
  const mbit = (bps: number): number => (bps * 8) / 1e6;
  const max = niceCeil(Math.max(1, ...s.wan.map((w) => Math.max(mbit(w.upBps), mbit(w.downBps)))) * 1.05);
  out.push(valueAxis(y, h, max, ' Mb/s'));
  let openUs: number | null = null;
  const endH = r.simulatedHours;
  const outageRect = (fromUs: number, toH: number): string => {
    const x0 = ts.x(fromUs / US_PER_H);
    return `<rect x="${f(x0)}" y="${y}" width="${f(Math.max(1, ts.x(toH) - x0))}" height="${h}" class="failed"/>`;
  };
  for (const o of s.wanOutages) {
    if (o.start) openUs = o.tUs;
    else if (openUs !== null) {
      out.push(outageRect(openUs, o.tUs / US_PER_H));
      openUs = null;
    }
  }
  if (openUs !== null) out.push(outageRect(openUs, endH));
  if (s.wan.length === 0) {
    out.push(text(LEFT + PLOT_W / 2, y + h / 2, 'no WAN traffic was sampled in this run', 'class="note" text-anchor="middle"'));
  } else {
    const yOf = (v: number): number => y + h - (v / max) * h;
    // A sample averages the link's sampling period before it. The link stops
    // sampling while idle, so a sample after a quiet gap covers one period, not
    // the gap: the period is the most common spacing between samples.
    const gaps = new Map<number, number>();
    s.wan.forEach((w, k) => {
      if (k > 0) gaps.set(w.tUs - s.wan[k - 1]!.tUs, (gaps.get(w.tUs - s.wan[k - 1]!.tUs) ?? 0) + 1);
    });
    const periodUs = [...gaps].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0]?.[0] ?? s.wan[0]!.tUs;
    const steps = (pick: (w: ExportSamples['wan'][number]) => number): string => {
      const pts: Array<[number, number]> = [];
      let prevUs = 0;
      for (const w of s.wan) {
        const fromUs = Math.max(prevUs, w.tUs - periodUs);
        const v = yOf(mbit(pick(w)));
        if (fromUs > prevUs) pts.push([ts.x(prevUs / US_PER_H), yOf(0)], [ts.x(fromUs / US_PER_H), yOf(0)]);
        pts.push([ts.x(fromUs / US_PER_H), v], [ts.x(w.tUs / US_PER_H), v]);
        prevUs = w.tUs;
      }
      pts.push([ts.x(prevUs / US_PER_H), yOf(0)], [ts.x(endH), yOf(0)]);
      return linePath(pts);
    };
    out.push(`<path d="${steps((w) => w.upBps)}" fill="none" stroke="#4e79a7" stroke-width="1.5" class="series" data-series="wan-up"/>`);
    out.push(`<path d="${steps((w) => w.downBps)}" fill="none" stroke="${CLOUD}" stroke-width="1.5" class="series" data-series="wan-down"/>`);
  }
  out.push(timeAxis(ts, y + h, y));
  return { id: 'wan', title: 'WAN throughput', height: y + h + 24, body: out.join('') };
}

/**
 * One row per VM: where it ran (a colour per host, the cloud, stopped), its
 * lifecycle states from the machines (a thin strip under the row) and its
 * batch task from start to finish (a black rule).
 */
export function vmChart(r: Report, s: ExportSamples, maxVms = 400): Chart {
  const ts = timeScale(r.simulatedHours);
  const names = Object.keys(r.vms);
  const shown = names.slice(0, maxVms);
  const rowH = shown.length > 120 ? 7 : shown.length > 40 ? 11 : 16;
  const hostColor = new Map(r.series.hostIds.map((id, i) => [id, HOST_COLORS[i % HOST_COLORS.length]!]));
  const stateNames = [...new Set([...s.states.map((x) => x.state), ...[...burstTimelines(r).values()].flat().map((t) => t.state)])].sort();
  const stateColor = new Map(stateNames.map((n, i) => [n, STATE_COLORS[i % STATE_COLORS.length]!]));
  const top = 28 + Math.ceil((hostColor.size + 3 + stateNames.length) / 8) * 16;
  const out: string[] = [];
  const legendItems = [
    ...[...hostColor].slice(0, 10).map(([id, color]) => ({ label: `on ${id}`, color })),
    { label: 'in the cloud', color: CLOUD },
    { label: 'stopped', color: '#e0e0e0' },
    { label: 'batch task', color: '#222', kind: 'line' as const },
    ...stateNames.map((n) => ({ label: n, color: stateColor.get(n)! })),
  ];
  for (let k = 0; k < legendItems.length; k += 8) out.push(legend(LEFT, 14 + (k / 8) * 16, legendItems.slice(k, k + 8)));
  const statesByVm = new Map<string, ExportSamples['states']>();
  for (const st of s.states) statesByVm.set(st.vm, [...(statesByVm.get(st.vm) ?? []), st]);
  // The burst section keeps each burst VM's lifecycle timeline: used where the trace had no machine states.
  for (const [vm, timeline] of burstTimelines(r)) {
    if (statesByVm.has(vm) || timeline.length === 0) continue;
    statesByVm.set(vm, timeline.map((t) => ({ tUs: Math.round(t.atHours * US_PER_H), vm, machine: 'burst', state: t.state })));
  }
  for (const st of [...statesByVm.values()].flat()) if (!stateColor.has(st.state)) stateColor.set(st.state, STATE_COLORS[stateColor.size % STATE_COLORS.length]!);
  shown.forEach((name, i) => {
    const vm = r.vms[name]!;
    const y = top + i * rowH;
    out.push(`<g class="vm" data-vm="${esc(name)}">`);
    // Dense swimlanes label every other row so names stay legible.
    if (rowH >= 10 || i % 2 === 0) out.push(text(LEFT - 6, y + rowH - 2, name, `class="${rowH < 14 ? 'tiny' : 'label'}" text-anchor="end"`));
    vm.placements.forEach((p, k) => {
      const endH = vm.placements[k + 1]?.atHours ?? r.simulatedHours;
      const x0 = ts.x(p.atHours);
      const w = ts.x(endH) - x0;
      if (w <= 0) return;
      const color = p.where === 'cloud' ? CLOUD : p.where === 'none' ? '#e0e0e0' : (p.host ? hostColor.get(p.host) : undefined) ?? '#999';
      const label = p.where === 'cloud' ? 'cloud' : p.where === 'none' ? 'stopped' : `on ${p.host ?? '?'}`;
      out.push(`<rect x="${f(x0)}" y="${f(y + 1)}" width="${f(w)}" height="${f(rowH - 3)}" fill="${color}" data-where="${esc(p.where)}"><title>${esc(`${name}: ${label} from ${hoursLabel(p.atHours)} to ${hoursLabel(endH)}`)}</title></rect>`);
    });
    const states = statesByVm.get(name) ?? [];
    const strip = rowH >= 14 ? 4 : 2;
    states.forEach((st, k) => {
      const fromH = st.tUs / US_PER_H;
      const toH = states[k + 1] ? states[k + 1]!.tUs / US_PER_H : fromH;
      const x0 = ts.x(fromH);
      out.push(`<rect x="${f(x0)}" y="${f(y + rowH - 2 - strip)}" width="${f(Math.max(1.5, ts.x(toH) - x0))}" height="${strip}" fill="${stateColor.get(st.state)}" data-state="${esc(st.state)}"><title>${esc(`${name}: ${st.machine} ${st.state} at ${hoursLabel(fromH)}`)}</title></rect>`);
    });
    const task = vm.task;
    if (task && task.startHours !== null) {
      const x0 = ts.x(task.startHours);
      const x1 = ts.x(task.finishHours ?? r.simulatedHours);
      const mid = y + rowH / 2;
      out.push(`<line x1="${f(x0)}" y1="${f(mid)}" x2="${f(x1)}" y2="${f(mid)}" stroke="#222" stroke-width="1.5" class="task"/>`);
      if (task.finishHours !== null) out.push(`<line x1="${f(x1)}" y1="${f(y + 1)}" x2="${f(x1)}" y2="${f(y + rowH - 2)}" stroke="#222" stroke-width="1.5"/>`);
    }
    out.push('</g>');
  });
  let y = top + shown.length * rowH;
  if (names.length > shown.length) {
    out.push(text(LEFT, y + 30, `… ${names.length - shown.length} more VMs not drawn`, 'class="note"'));
    y += 16;
  }
  out.push(timeAxis(ts, y + 2, top));
  return { id: 'vms', title: 'Where each VM ran', height: y + 40, body: out.join('') };
}

/** `report.burst.vms.<name>.timeline` (the controller's section), read defensively: it is another component's shape. */
function burstTimelines(r: Report): Map<string, Array<{ atHours: number; state: string }>> {
  const out = new Map<string, Array<{ atHours: number; state: string }>>();
  const vms = (r.burst as { vms?: unknown } | undefined)?.vms;
  if (!vms || typeof vms !== 'object') return out;
  for (const [name, v] of Object.entries(vms as Record<string, unknown>)) {
    const timeline = (v as { timeline?: unknown } | null)?.timeline;
    if (!Array.isArray(timeline)) continue;
    out.set(name, timeline.filter((t): t is { atHours: number; state: string } =>
      t !== null && typeof t === 'object' && typeof (t as { atHours?: unknown }).atHours === 'number' && typeof (t as { state?: unknown }).state === 'string'));
  }
  return out;
}

/** Cumulative cost from `cost.tick`: cloud spend against keeping the work on-prem. */
export function costChart(r: Report, s: ExportSamples): Chart {
  const ts = timeScale(r.simulatedHours);
  const h = 150;
  const y = 28;
  const out: string[] = [legend(LEFT, 14, [
    { label: 'cloud (cumulative USD)', color: CLOUD, kind: 'line' },
    { label: 'on-prem (cumulative USD)', color: '#4e79a7', kind: 'line' },
  ])];
  const max = niceCeil(Math.max(1, ...s.cost.map((c) => Math.max(c.cloudUsd, c.onpremUsd))) * 1.05);
  out.push(valueAxis(y, h, max, '', 4, '$'));
  if (s.cost.length === 0) {
    out.push(text(LEFT + PLOT_W / 2, y + h / 2, r.mode === 'burst' ? 'no cost samples in this run' : 'no cloud cost: this run did not burst (no-burst baseline)', 'class="note" text-anchor="middle"'));
  } else {
    const yOf = (v: number): number => y + h - (v / max) * h;
    const pts = (pick: (c: ExportSamples['cost'][number]) => number): Array<[number, number]> => s.cost.map((c) => [ts.x(c.tUs / US_PER_H), yOf(pick(c))]);
    out.push(`<path d="${linePath(pts((c) => c.cloudUsd))}" fill="none" stroke="${CLOUD}" stroke-width="1.5" class="series" data-series="cost-cloud"/>`);
    out.push(`<path d="${linePath(pts((c) => c.onpremUsd))}" fill="none" stroke="#4e79a7" stroke-width="1.5" class="series" data-series="cost-onprem"/>`);
  }
  out.push(timeAxis(ts, y + h, y));
  return { id: 'cost', title: 'Cost', height: y + h + 24, body: out.join('') };
}

export function charts(input: ExportInput): Chart[] {
  return [loadChart(input.report), wanChart(input.report, input.samples), vmChart(input.report, input.samples), costChart(input.report, input.samples)];
}

export const CHART_STYLE = `
.axis{stroke:#555;stroke-width:1}
.grid{stroke:#e6e6e6;stroke-width:1}
.tick{font:11px sans-serif;fill:#555}
.label{font:12px sans-serif;fill:#222}
.tiny{font:9px sans-serif;fill:#222}
.sub{font:10px sans-serif;fill:#777}
.legend{font:12px sans-serif;fill:#333}
.note{font:13px sans-serif;fill:#888}
.failed{fill:#bbb;fill-opacity:0.45}
.title{font:bold 16px sans-serif;fill:#111}
.headline{font:13px sans-serif;fill:#333}`;

/** The headline lines shared by the SVG and HTML exports. */
export function headline(r: Report): string[] {
  const b = r.totals.batch;
  const lines = [`${r.totals.vms} VMs on ${r.totals.hosts} hosts (${r.totals.cpuCores} cores), ${hoursLabel(r.simulatedHours)} simulated, seed ${r.seed}, mode ${r.mode}`];
  if (b.tasks > 0) {
    lines.push(b.completionHours === null
      ? `batch: ${b.unfinished} of ${b.tasks} tasks unfinished at the end of the run`
      : `batch: ${b.tasks} tasks finished in ${b.completionHours.toFixed(1)} h (${b.unconstrainedHours.toFixed(1)} h unconstrained, ×${(b.slowdown ?? 0).toFixed(2)})`);
  }
  const passed = r.expectations.filter((e) => e.pass).length;
  lines.push(`peak demand ${(r.totals.saturation.peakDemandRatio * 100).toFixed(0)}% of a host; ${r.totals.saturation.hoursAnyHostSaturated.toFixed(1)} h with a host saturated; expectations ${passed}/${r.expectations.length} passed`);
  return lines;
}

/** Every chart in one standalone SVG document. */
export function renderSvg(input: ExportInput): string {
  const r = input.report;
  const head = headline(r);
  let y = 50 + head.length * 18;
  const parts: string[] = [
    text(20, 30, `spillway report: ${r.scenario}`, 'class="title"'),
    ...head.map((line, i) => text(20, 54 + i * 18, line, 'class="headline"')),
  ];
  for (const c of charts(input)) {
    parts.push(text(20, y + 18, c.title, 'class="title"'));
    parts.push(`<g id="${c.id}" transform="translate(0,${y + 24})">${c.body}</g>`);
    y += c.height + 40;
  }
  return `<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${y}" viewBox="0 0 ${WIDTH} ${y}" font-family="sans-serif">\n` +
    `<title>${esc(`spillway report: ${r.scenario} (seed ${r.seed})`)}</title>\n<style>${CHART_STYLE}</style>\n<rect width="${WIDTH}" height="${y}" fill="#fff"/>\n${parts.join('\n')}\n</svg>\n`;
}
