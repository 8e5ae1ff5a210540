import { InputError } from '../errors.js';

/** Virtual and real time are integer microseconds everywhere; these name the conversions. */
export const US_PER_MS = 1_000;
export const US_PER_S = 1_000_000;
export const US_PER_MIN = 60 * US_PER_S;
export const US_PER_H = 60 * US_PER_MIN;

export const msToUs = (ms: number): number => Math.round(ms * US_PER_MS);
export const sToUs = (s: number): number => Math.round(s * US_PER_S);

const DURATION_UNITS_US: Record<string, number> = {
  us: 1, µs: 1, ms: US_PER_MS, s: US_PER_S, m: US_PER_MIN, min: US_PER_MIN, h: US_PER_H, d: 24 * US_PER_H,
};

/**
 * Parse "250ms", "30s", "1h30m", "2d" (or a bare number of seconds) into microseconds.
 * `field` names what is being parsed so the error can say where the bad value was.
 */
export function parseDurationUs(value: unknown, field = 'duration'): number {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return Math.round(value * US_PER_S);
  if (typeof value !== 'string' || value.trim() === '') {
    throw new InputError('E_BAD_DURATION', `${field}: expected a duration such as "500ms", "30s", "2h" or "1h30m", got ${JSON.stringify(value)}`);
  }
  const text = value.trim();
  const re = /(\d+(?:\.\d+)?)\s*(us|µs|ms|s|min|m|h|d)/gy;
  let total = 0;
  let consumed = 0;
  for (let match = re.exec(text); match; match = re.exec(text)) {
    total += Number(match[1]) * DURATION_UNITS_US[match[2]!]!;
    consumed = re.lastIndex;
  }
  if (consumed !== text.length || consumed === 0) {
    if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * US_PER_S);
    throw new InputError('E_BAD_DURATION', `${field}: "${value}" is not a duration; use a number with a unit: us, ms, s, m, h, d (e.g. "90s", "1h30m")`);
  }
  return Math.round(total);
}

const SIZE_UNITS: Record<string, number> = {
  b: 1, k: 1024, kb: 1000, kib: 1024, m: 1024 ** 2, mb: 1000 ** 2, mib: 1024 ** 2,
  g: 1024 ** 3, gb: 1000 ** 3, gib: 1024 ** 3, t: 1024 ** 4, tb: 1000 ** 4, tib: 1024 ** 4,
};

/** Parse "4KiB", "10G", "512MB", or a bare byte count. */
export function parseSizeBytes(value: unknown, field = 'size'): number {
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0) return value;
  const match = typeof value === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value) : null;
  const unit = match ? (match[2] || 'b').toLowerCase() : '';
  if (!match || !(unit in SIZE_UNITS)) {
    throw new InputError('E_BAD_SIZE', `${field}: expected a size such as "4KiB", "512MiB", "20GiB" or a byte count, got ${JSON.stringify(value)}`);
  }
  return Math.round(Number(match[1]) * SIZE_UNITS[unit]!);
}

/** Parse "100Mbit", "1Gbit", "12.5MB/s" into bytes per second. */
export function parseRateBytesPerS(value: unknown, field = 'rate'): number {
  if (typeof value === 'number' && value > 0) return value;
  const match = typeof value === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*(kbit|mbit|gbit|kb\/s|mb\/s|gb\/s|kib\/s|mib\/s|gib\/s)\s*$/i.exec(value) : null;
  if (!match) {
    throw new InputError('E_BAD_RATE', `${field}: expected a rate such as "100Mbit", "1Gbit" or "50MB/s", got ${JSON.stringify(value)}`);
  }
  const n = Number(match[1]);
  const factor: Record<string, number> = {
    kbit: 1e3 / 8, mbit: 1e6 / 8, gbit: 1e9 / 8, 'kb/s': 1e3, 'mb/s': 1e6, 'gb/s': 1e9,
    'kib/s': 1024, 'mib/s': 1024 ** 2, 'gib/s': 1024 ** 3,
  };
  return n * factor[match[2]!.toLowerCase()]!;
}

export function formatDurationUs(us: number): string {
  if (us < US_PER_MS) return `${us}us`;
  if (us < US_PER_S) return `${(us / US_PER_MS).toFixed(us % US_PER_MS ? 1 : 0)}ms`;
  if (us < US_PER_MIN) return `${(us / US_PER_S).toFixed(us % US_PER_S ? 2 : 0)}s`;
  const totalS = Math.round(us / US_PER_S);
  const h = Math.floor(totalS / 3600);
  const m = Math.floor((totalS % 3600) / 60);
  const s = totalS % 60;
  return h ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(s).padStart(2, '0')}s`;
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}
