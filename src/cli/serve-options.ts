import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { InputError } from '../errors.js';
import { parsePairingKey } from '../proxy/link/pairing-key.js';
import { parseDurationUs, parseSizeBytes } from '../util/units.js';
import { parseAddress } from '../world/live-net.js';

/** Flags shared by the serve subcommands, parsed and checked once with errors that name the flag. */
export interface WanShaping {
  rttUs: number;
  rateBytesPerS: number;
}

export async function readPairKey(file: string | undefined): Promise<Buffer> {
  if (!file) throw new InputError('E_MISSING_ARGUMENT', '--pair-key FILE is required (create one with: spillway keygen FILE)');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new InputError('E_BAD_PAIRING_KEY', `--pair-key: cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  return parsePairingKey(text.trim(), `--pair-key ${file}`);
}

export function requireFlag(value: string | undefined, flag: string, what: string): string {
  if (value === undefined || value === '') throw new InputError('E_MISSING_ARGUMENT', `${flag} is required: ${what}`);
  return value;
}

export function checkAddress(value: string, flag: string): string {
  parseAddress(value, flag);
  return value;
}

export function parseShaping(rtt: string | undefined, mbit: string | undefined): WanShaping | undefined {
  if (rtt === undefined && mbit === undefined) return undefined;
  const rttUs = rtt === undefined ? 0 : parseDurationUs(rtt, '--wan-rtt');
  let rateBytesPerS = 0;
  if (mbit !== undefined) {
    const n = Number(mbit);
    if (!Number.isFinite(n) || n <= 0) throw new InputError('E_BAD_RATE', `--wan-mbit: expected a positive number of megabits per second (e.g. 100), got "${mbit}"`);
    rateBytesPerS = (n * 1e6) / 8;
  }
  return { rttUs, rateBytesPerS };
}

export function parsePersistence(value: string | undefined): 'on-prem' | 'cloud-only' {
  const v = value ?? 'on-prem';
  if (v !== 'on-prem' && v !== 'cloud-only') throw new InputError('E_BAD_ARGUMENT', `--persistence: expected on-prem or cloud-only, got "${v}"`);
  return v;
}

export function parseRpoUs(value: string | undefined): number | undefined {
  return value === undefined ? undefined : parseDurationUs(value, '--rpo');
}

/** A duration flag that must be above zero, or undefined when not given. */
export function parsePositiveDurationUs(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const us = parseDurationUs(value, flag);
  if (us < 1000) throw new InputError('E_BAD_DURATION', `${flag}: expected at least 1ms, got "${value}"`);
  return us;
}

export function parseCacheSize(value: string | undefined): number {
  const bytes = parseSizeBytes(requireFlag(value, '--cache-size', 'how much the encrypted cache may hold, e.g. 20GiB'), '--cache-size');
  if (bytes < 1024 * 1024) throw new InputError('E_BAD_SIZE', `--cache-size: at least 1MiB, got ${bytes} bytes`);
  return bytes;
}

/** The disk id a disk image is served under: its file name without the extension. */
export function diskIdFor(image: string): string {
  const name = basename(image).replace(/\.(img|raw|bin|disk)$/i, '');
  return name.replace(/[^A-Za-z0-9._-]/g, '-') || 'disk';
}

export function parseCompression(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 9) throw new InputError('E_BAD_ARGUMENT', `--compression: expected a zlib level from 0 (off) to 9, got "${value}"`);
  return n;
}
