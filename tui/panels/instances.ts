import type { Snapshot } from '../snapshot.js';
import { color, esc, fit } from '../text.js';

const STATE_COLOR: Record<string, string> = { running: 'green', pending: 'yellow', stopping: 'yellow', 'shutting-down': 'gray', terminated: 'gray', stopped: 'gray' };

/** Cloud instances: id, state, type and the VM on it; live ones first. */
export function instanceLines(snap: Snapshot, width: number, height: number, scroll = 0): string[] {
  if (snap.instances.length === 0) return ['{gray-fg}no cloud instances{/gray-fg}'];
  const list = snap.instances.slice(Math.max(0, Math.min(scroll, snap.instances.length - height)));
  const idW = Math.min(19, Math.floor(width * 0.4), Math.max(6, ...snap.instances.map((i) => [...i.id].length)));
  const stateW = width >= 44 ? 13 : 8;
  const typeW = width >= 44 ? 10 : 0;
  const vmW = Math.max(4, width - idW - stateW - typeW - (typeW ? 3 : 2));
  const lines: string[] = [];
  const room = list.length > height ? height - 1 : height;
  for (const i of list.slice(0, room)) {
    const parts = [esc(fit(i.id, idW)), color(STATE_COLOR[i.state] ?? 'white', esc(fit(i.state, stateW)))];
    if (typeW) parts.push(esc(fit(i.type, typeW)));
    parts.push(esc(fit(i.vm ?? '—', vmW)));
    lines.push(parts.join(' '));
  }
  if (room < list.length) lines.push(`{gray-fg}+${list.length - room} more{/gray-fg}`);
  return lines;
}
