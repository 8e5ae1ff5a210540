import type { Snapshot } from '../snapshot.js';
import { color, fit, fmtAge, fmtBytes, fmtPct, fmtUsd } from '../text.js';

/** The proxies in aggregate (cache, prefetch, write-back) and the cost meter. */
export function proxyLines(snap: Snapshot, width: number, height: number): string[] {
  const p = snap.proxies;
  const row = (label: string, value: string, c?: string): string => {
    const v = fit(value, Math.max(0, width - 11), 'right');
    return `${fit(label, 10)} ${c ? color(c, v) : v}`;
  };
  const lagColor = p.wbLagUsMax > 60_000_000 ? 'red' : p.wbLagUsMax > 10_000_000 ? 'yellow' : undefined;
  const lines = [
    row('cache hit', fmtPct(p.hitRatio), p.hitRatio !== null && p.hitRatio < 0.5 ? 'yellow' : 'green'),
    row('prefetch q', String(p.prefetchQueued)),
    row('wb backlog', fmtBytes(p.wbBacklogBytes)),
    row('wb lag', fmtAge(p.wbLagUsMax), lagColor),
    row('cost cloud', fmtUsd(snap.cost.cloudUsd), 'magenta'),
    row('cost onprm', fmtUsd(snap.cost.onpremUsd), 'magenta'),
    row('proxies', String(p.byVm.length)),
  ];
  return lines.slice(0, height);
}
