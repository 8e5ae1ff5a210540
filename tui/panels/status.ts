import type { Frame } from '../frame.js';
import { clip, color, esc, fit, fmtClock, fmtSpeed, fmtUsd } from '../text.js';

/** The top line: mode, scenario, seed, virtual clock, pace and the cost meter. */
export function headerLine(frame: Frame, width: number): string {
  const { snap, playback } = frame;
  const clock = snap.clock;
  const speed = fmtSpeed(playback.speed);
  const state = playback.done ? `■ done ${speed}` : playback.paused ? `⏸ ${speed} paused` : `▶ ${speed}`;
  const pos = playback.endUs !== null ? `${fmtClock(playback.positionUs)}/${fmtClock(playback.endUs)}` : fmtClock(playback.positionUs);
  const cost = fmtUsd(snap.cost.cloudUsd + snap.cost.onpremUsd);
  const parts: Array<[string, string | null]> = [
    [playback.kind === 'replay' ? 'REPLAY' : playback.reviewing ? 'LIVE·REVIEW' : 'LIVE', playback.reviewing ? 'yellow' : 'cyan'],
    [`T+${pos}`, 'white'],
    [state, playback.paused || playback.done ? 'yellow' : 'green'],
    [`seed ${clock.seed ?? '?'}`, null],
    [`cost ${cost}`, 'magenta'],
    [clip(clock.scenario ?? '(no run.start)', 24), null],
  ];
  // Drop the least useful parts first when the line is too narrow: the scenario, then the cost (the proxies panel shows it too).
  const visible = parts.map(() => true);
  const plainLen = (): number => parts.reduce((n, [t], i) => n + (visible[i] ? [...t].length + 3 : 0), 0);
  for (const i of [5, 4, 0]) if (plainLen() > width) visible[i] = false;
  const line = parts
    .filter((_, i) => visible[i])
    .map(([t, c]) => (c ? color(c, esc(t)) : esc(t)))
    .join(' │ ');
  return ` ${line}`;
}

/** Help and quit first: on a narrow terminal the tail is what gets cut. */
export function keyHints(playback: { canSeek: boolean }): string {
  return playback.canSeek
    ? '? help  q quit  space pause  +/- speed  ←/→ step  [/] seek  / filter  enter detail  tab focus'
    : '? help  q quit  space pause  +/- speed  / filter  enter detail  tab focus';
}

/** The bottom line: the filter being typed, else a message or warning, else key hints. */
export function footerLine(frame: Frame, width: number): string {
  const { view } = frame;
  if (view.editingFilter) return `{yellow-fg}/{/yellow-fg}${esc(clip(view.filterDraft, width - 3))}█`;
  const filter = view.filter ? `{yellow-fg}[/${esc(clip(view.filter, 20))}]{/yellow-fg} ` : '';
  if (frame.message) return filter + color('cyan', esc(clip(frame.message, width - 25)));
  if (frame.warning) return filter + color('yellow', esc(clip(`⚠ ${frame.warning}`, width - 25)));
  return filter + esc(fit(keyHints(frame.playback), width - (view.filter ? Math.min(view.filter.length, 20) + 4 : 0)).trimEnd());
}
