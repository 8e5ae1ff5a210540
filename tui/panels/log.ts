import type { LogEntry, Snapshot } from '../snapshot.js';
import type { ViewState } from '../view-state.js';
import { filterLog } from '../view-state.js';
import { color, esc, fit, fmtClock } from '../text.js';

const LEVEL_COLOR = { info: null, warn: 'yellow', error: 'red' } as const;

export function logLine(e: LogEntry, width: number): string {
  const time = fmtClock(e.t);
  const srcW = Math.min(18, Math.max(8, Math.floor(width * 0.22)));
  const text = `${fit(time, 8, 'right')} ${fit(e.src, srcW)} ${fit(e.text, Math.max(0, width - srcW - 10)).trimEnd()}`;
  const c = LEVEL_COLOR[e.level];
  return c ? color(c, esc(text)) : esc(text);
}

/** The newest entries that pass the filter, newest at the bottom, scrolled back by `logScroll`. */
export function logLines(snap: Snapshot, view: ViewState, width: number, height: number): string[] {
  const entries = filterLog(snap.log, view.filter);
  if (entries.length === 0) return [snap.log.length === 0 ? '{gray-fg}no events yet{/gray-fg}' : '{gray-fg}no event matches the filter{/gray-fg}'];
  const end = Math.max(0, entries.length - view.logScroll);
  return entries.slice(Math.max(0, end - height), end).map((e) => logLine(e, width));
}
