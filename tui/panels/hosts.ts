import type { HostView, Snapshot } from '../snapshot.js';
import { bar, color, esc, fit } from '../text.js';

function pct(used: number, total: number): number {
  return total > 0 ? used / total : 0;
}

/** On-prem hosts: a CPU bar whose length is capacity and whose fill is demand; RAM too when there is room. */
export function hostsLines(snap: Snapshot, width: number, height: number, scroll = 0): string[] {
  if (snap.hosts.length === 0) return ['{gray-fg}no host.load samples yet{/gray-fg}'];
  const twoLines = snap.hosts.length * 2 <= height;
  // Scrolled (focus + ↑↓) only when they do not all fit.
  const first = twoLines ? 0 : Math.max(0, Math.min(scroll, snap.hosts.length - height));
  const hosts = snap.hosts.slice(first);
  const nameW = Math.min(10, Math.max(4, ...hosts.map((h) => h.id.length)));
  // name, space, label, bar, pct (5), space, "NNNvm" (5)
  const barW = Math.max(3, width - nameW - 12 - (twoLines ? 4 : 0));
  const lines: string[] = [];
  const shown = twoLines ? hosts : hosts.slice(0, height);
  for (const h of shown) {
    lines.push(hostLine(h, nameW, barW, twoLines ? 'cpu ' : '', pct(h.cpuDemand, h.cpuCapacity), `${fit(String(h.vms), 3, 'right')}vm`));
    if (twoLines) lines.push(hostLine(h, nameW, barW, 'ram ', pct(h.ramUsedMiB, h.ramMiB), '', true));
  }
  if (shown.length < hosts.length) lines[lines.length - 1] = `{gray-fg}+${hosts.length - shown.length + 1} more hosts (tab here, ↓){/gray-fg}`;
  return lines;
}

function hostLine(h: HostView, nameW: number, barW: number, label: string, ratio: number, tail: string, continuation = false): string {
  const name = continuation ? ' '.repeat(nameW) : esc(fit(h.id, nameW));
  if (h.failed && !continuation) return `${name} ${color('red', fit('FAILED', barW + label.length))} ${tail}`;
  const c = ratio > 1 ? 'red' : ratio > 0.85 ? 'yellow' : 'green';
  const pctText = fit(`${Math.round(ratio * 100)}%`, 5, 'right');
  return `${name} ${label}${color(c, bar(ratio, barW))}${pctText} ${tail}`.trimEnd();
}
