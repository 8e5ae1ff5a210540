import type { Snapshot } from '../snapshot.js';
import { color, esc, fit, fmtRate, sparkline } from '../text.js';

/** WAN now and recently: a sparkline per measure (throughput, RTT, loss). */
export function wanLines(snap: Snapshot, width: number, height: number): string[] {
  const wan = snap.wan;
  const cur = wan.current;
  if (!cur) return ['{gray-fg}no WAN samples yet{/gray-fg}'];
  const labelW = 14;
  const sparkW = Math.max(0, width - labelW - 1);
  const rows: Array<[string, string, number[], string]> = [
    ['up', fmtRate(cur.upBps), wan.series.map((w) => w.upBps), 'green'],
    ['down', fmtRate(cur.downBps), wan.series.map((w) => w.downBps), 'cyan'],
    ['rtt', `${(cur.rttUs / 1000).toFixed(cur.rttUs < 10_000 ? 1 : 0)}ms`, wan.series.map((w) => w.rttUs), 'yellow'],
    ['loss', `${cur.lossPct.toFixed(2)}%`, wan.series.map((w) => w.lossPct), cur.lossPct > 1 ? 'red' : 'white'],
  ];
  const lines = rows.map(([label, value, series, c]) => `${fit(label, 4)} ${fit(value, labelW - 5, 'right')} ${color(c, sparkline(series, sparkW))}`);
  const status = !cur.up || wan.outage
    ? color('red', esc(fit(`LINK DOWN  outages ${wan.outages}`, width)))
    : `link up  outages ${wan.outages}`;
  lines.push(status);
  return lines.slice(0, height);
}

/** One line of current WAN figures, for the wide layout above the chart. */
export function wanSummary(snap: Snapshot, width: number): string {
  const cur = snap.wan.current;
  if (!cur) return '{gray-fg}no WAN samples yet{/gray-fg}';
  const up = `↑ ${fmtRate(cur.upBps)}`;
  const dn = `↓ ${fmtRate(cur.downBps)}`;
  const rest = `rtt ${(cur.rttUs / 1000).toFixed(1)}ms  loss ${cur.lossPct.toFixed(2)}%  outages ${snap.wan.outages}`;
  if (!cur.up || snap.wan.outage) return color('red', esc(fit(`LINK DOWN  ${up}  ${dn}  ${rest}`, width).trimEnd()));
  // The arrows take the colors of the chart's lines below, which serves as its legend.
  return `${color('green', up)}  ${color('cyan', dn)}  ${esc(fit(rest, Math.max(0, width - up.length - dn.length - 4)).trimEnd())}`;
}

/** Loss and RTT sparklines for the wide layout, under the summary. */
export function wanSparkLines(snap: Snapshot, width: number): string[] {
  const series = snap.wan.series;
  if (series.length === 0) return [];
  const w = Math.max(0, width - 6);
  return [
    `rtt  ${color('yellow', sparkline(series.map((s) => s.rttUs), w))}`,
    `loss ${color('red', sparkline(series.map((s) => s.lossPct), w))}`,
  ];
}
