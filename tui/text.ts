import blessed from 'blessed';

/**
 * Text helpers for panels. Everything that came from a trace (VM names,
 * messages, states) is untrusted: a name could carry blessed tags or terminal
 * escape sequences, so it is sanitized and escaped before it is drawn.
 */

// C0/C1 controls and DEL: a raw ESC in a VM name could move the cursor or change the terminal's mode.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;

export function sanitize(text: string): string {
  return text.replace(CONTROL, '?');
}

/** Fit plain text into exactly `width` columns: truncated with an ellipsis, or padded. */
export function fit(text: string, width: number, align: 'left' | 'right' = 'left'): string {
  if (width <= 0) return '';
  const chars = [...sanitize(text)];
  if (chars.length > width) return width === 1 ? '…' : chars.slice(0, width - 1).join('') + '…';
  const pad = ' '.repeat(width - chars.length);
  return align === 'left' ? chars.join('') + pad : pad + chars.join('');
}

/** Truncate without padding. */
export function clip(text: string, width: number): string {
  const chars = [...sanitize(text)];
  if (chars.length <= width) return chars.join('');
  return width <= 1 ? '…'.slice(0, width) : chars.slice(0, width - 1).join('') + '…';
}

/** Sanitize, then escape blessed tags. Use for every untrusted string drawn with `tags: true`. */
export function esc(text: string): string {
  return blessed.escape(sanitize(text));
}

/** Wrap already-escaped text in a color tag. */
export function color(name: string, escapedText: string): string {
  return `{${name}-fg}${escapedText}{/${name}-fg}`;
}

/** Plain text width of a line, ignoring tags (for asserting that lines fit). */
export function plainWidth(tagged: string): number {
  return [...blessed.stripTags(tagged)].length;
}

/** A horizontal bar: `fraction` of `width` filled. Over-full bars fill completely. */
export function bar(fraction: number, width: number): string {
  if (width <= 0) return '';
  const f = Math.max(0, Math.min(1, Number.isFinite(fraction) ? fraction : 0));
  const full = Math.round(f * width);
  return '█'.repeat(full) + '░'.repeat(width - full);
}

const SPARKS = '▁▂▃▄▅▆▇█';

/** A sparkline of the last `width` values, scaled to their own maximum. */
export function sparkline(values: readonly number[], width: number): string {
  if (width <= 0) return '';
  const tail = values.slice(-width);
  const max = Math.max(0, ...tail);
  const line = tail.map((v) => (max <= 0 ? SPARKS[0]! : SPARKS[Math.min(7, Math.floor((Math.max(0, v) / max) * 7.999))]!)).join('');
  return line.padStart(width, ' ');
}

export function fmtRate(bytesPerS: number): string {
  const units = ['B/s', 'KB/s', 'MB/s', 'GB/s'];
  let v = bytesPerS;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return `${v.toFixed(i === 0 || v >= 100 ? 0 : 1)}${units[i]}`;
}

export function fmtBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(i === 0 || v >= 100 ? 0 : 1)}${units[i]}`;
}

export function fmtPct(ratio: number | null): string {
  return ratio === null ? '—' : `${(ratio * 100).toFixed(1)}%`;
}

export function fmtUsd(usd: number): string {
  return usd >= 10_000 ? `$${Math.round(usd).toLocaleString('en-US')}` : `$${usd.toFixed(2)}`;
}

/** Virtual time since the start as H:MM:SS (hours grow past 99 if they must). */
export function fmtClock(us: number): string {
  const total = Math.floor(Math.max(0, us) / 1_000_000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = total % 60;
  return `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}`;
}

/** A short duration: 45s, 12m03s, 3h05m. */
export function fmtAge(us: number): string {
  const total = Math.floor(Math.max(0, us) / 1_000_000);
  if (total < 60) return `${total}s`;
  if (total < 3600) return `${Math.floor(total / 60)}m${String(total % 60).padStart(2, '0')}s`;
  return `${Math.floor(total / 3600)}h${String(Math.floor((total % 3600) / 60)).padStart(2, '0')}m`;
}

export function fmtSpeed(speed: number): string {
  return speed >= 1 ? `${Number.isInteger(speed) ? speed : speed.toFixed(1)}x` : `1/${Math.round(1 / speed)}x`;
}
