import type { Report } from './report.js';
import { CHART_STYLE, WIDTH, charts, esc, headline, type ExportInput } from './svg.js';

/**
 * The report as one self-contained HTML page: headline, key totals, the
 * expectations and the charts as inline SVG. No scripts and no external
 * assets, so it opens offline and is safe to attach to a CI run.
 */
export function renderHtml(input: ExportInput): string {
  const r = input.report;
  const sections = charts(input).map((c) =>
    `<section id="${c.id}">\n<h2>${esc(c.title)}</h2>\n<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${c.height}" viewBox="0 0 ${WIDTH} ${c.height}" role="img" aria-label="${esc(c.title)}">${c.body}</svg>\n</section>`);
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${esc(`spillway report: ${r.scenario} (seed ${r.seed})`)}</title>
<style>
body{font:14px/1.4 sans-serif;color:#222;margin:24px;max-width:${WIDTH + 40}px}
h1{font-size:22px;margin:0 0 6px}
h2{font-size:17px;margin:28px 0 6px}
table{border-collapse:collapse;margin:8px 0}
.totals{display:flex;flex-wrap:wrap;gap:8px 28px;align-items:flex-start}
th{background:#f4f4f4}
td,th{padding:3px 10px;border-bottom:1px solid #e3e3e3;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#2e7d32;font-weight:bold}
.fail{color:#c62828;font-weight:bold}
.muted{color:#777}
code{font-size:12px}
${CHART_STYLE}
</style>
</head>
<body>
<h1>${esc(`spillway report: ${r.scenario}`)}</h1>
${headline(r).map((l) => `<p>${esc(l)}</p>`).join('\n')}
<p class="muted">trace <code>${esc(r.traceHash)}</code></p>
${expectationsTable(r)}
${sections.join('\n')}
<h2>Totals</h2>
${totalsTables(r)}
<p class="muted">Per-VM and per-host figures: <code>spillway run --json</code>.</p>
</body>
</html>
`;
}

/**
 * Scalar totals, one small table per section (totals.batch, baseline, and the
 * sections other components add such as burst). Per-VM and per-host leaves are
 * left to the JSON: a hundred VMs would bury the totals.
 */
function totalsTables(r: Report): string {
  const groups = new Map<string, Array<[string, unknown]>>();
  const walk = (value: unknown, path: string, group: string): void => {
    if (Array.isArray(value)) return;
    if (value !== null && typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) {
        if ((k === 'vms' || k === 'hosts') && v !== null && typeof v === 'object') continue;
        const child = path ? `${path}.${k}` : k;
        walk(v, child, v !== null && typeof v === 'object' && !Array.isArray(v) ? child : group);
      }
      return;
    }
    const rows = groups.get(group) ?? [];
    rows.push([path.slice(group.length + 1) || path, value]);
    groups.set(group, rows);
  };
  const skip = new Set(['scenario', 'seed', 'traceHash', 'simulatedHours', 'events', 'mode', 'vms', 'hosts', 'series', 'expectations', 'passed', 'replay']);
  for (const [k, v] of Object.entries(r)) if (!skip.has(k)) walk(v, k, k);
  const tables = [...groups].filter(([, rows]) => rows.length > 0).map(([group, rows]) =>
    `<table>\n<tr><th colspan="2"><code>${esc(group)}</code></th></tr>\n${rows.map(([k, v]) => `<tr><td>${esc(k)}</td><td class="num">${esc(formatValue(v))}</td></tr>`).join('\n')}\n</table>`);
  return `<div class="totals">\n${tables.join('\n')}\n</div>`;
}

function formatValue(v: unknown): string {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toFixed(3).replace(/0+$/, '').replace(/\.$/, '');
  return String(v);
}

function expectationsTable(r: Report): string {
  if (r.expectations.length === 0) return '<h2>Expectations</h2>\n<p class="muted">this scenario has no expect: clauses</p>';
  const rows = r.expectations.map((e) =>
    `<tr><td class="${e.pass ? 'pass' : 'fail'}">${e.pass ? 'PASS' : 'FAIL'}</td><td>${esc(e.id)}</td><td><code>${esc(`${e.metric} ${e.op} ${JSON.stringify(e.value)}`)}</code></td><td class="num">${esc(JSON.stringify(e.actual ?? null))}</td></tr>`);
  return `<h2>Expectations</h2>\n<table>\n<tr><th></th><th>id</th><th>clause</th><th>actual</th></tr>\n${rows.join('\n')}\n</table>`;
}
