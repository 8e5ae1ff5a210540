import { InputError } from '../errors.js';
import { parseDurationUs, parseSizeBytes } from './units.js';

/**
 * Small validators for config read by hand (the guest I/O profile) and the errors the
 * scenario format's cross-section checks raise. Every error names the field's full path
 * (`cloud.catalog[2].vcpus`) and says what is allowed, and nothing is mutated. The scenario
 * file itself is declared with zod (src/scenario/fields.ts keeps this wording).
 */
export type Raw = Record<string, unknown>;

export function fail(path: string, expected: string, got: unknown): never {
  const shown = got === undefined ? 'nothing' : JSON.stringify(got);
  throw new InputError('E_BAD_FIELD', `${path || '(top level)'}: expected ${expected}, got ${shown}`, { details: { path } });
}

export const join = (path: string, key: string | number): string =>
  typeof key === 'number' ? `${path}[${key}]` : path ? `${path}.${key}` : key;

export function obj(value: unknown, path: string): Raw {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail(path, 'a mapping (key: value)', value);
  return value as Raw;
}

/** Refuse keys the schema does not know, so a typo is an error rather than silently ignored. */
export function known(o: Raw, path: string, keys: readonly string[]): void {
  for (const key of Object.keys(o)) {
    if (!keys.includes(key)) {
      throw new InputError('E_UNKNOWN_FIELD', `${join(path, key)}: unknown field; allowed here: ${keys.join(', ')}`, { details: { path: join(path, key) } });
    }
  }
}

export function str(o: Raw, key: string, path: string, options: { default?: string; allowed?: readonly string[]; pattern?: RegExp } = {}): string {
  const value = o[key] ?? options.default;
  const p = join(path, key);
  if (typeof value !== 'string' || value === '') fail(p, options.allowed ? `one of ${options.allowed.join(', ')}` : 'a non-empty string', value);
  if (options.allowed && !options.allowed.includes(value)) fail(p, `one of ${options.allowed.join(', ')}`, value);
  if (options.pattern && !options.pattern.test(value)) fail(p, `a string matching ${options.pattern}`, value);
  return value;
}

export function num(o: Raw, key: string, path: string, options: { default?: number; min?: number; max?: number; integer?: boolean } = {}): number {
  const value = o[key] ?? options.default;
  const p = join(path, key);
  const { min = -Infinity, max = Infinity, integer = false } = options;
  const what = `${integer ? 'an integer' : 'a number'}${min > -Infinity ? ` >= ${min}` : ''}${max < Infinity ? ` <= ${max}` : ''}`;
  if (typeof value !== 'number' || !Number.isFinite(value) || (integer && !Number.isInteger(value)) || value < min || value > max) fail(p, what, value);
  return value;
}

/**
 * A duration field in microseconds. In the document a bare number means seconds;
 * a numeric `fallback` is already microseconds (a default written in code), a
 * string fallback is parsed like the document's text.
 */
export function duration(o: Raw, key: string, path: string, fallback?: string | number): number {
  if (o[key] === undefined && typeof fallback === 'number') return fallback;
  return parseDurationUs(o[key] ?? fallback, join(path, key));
}

export function size(o: Raw, key: string, path: string, fallback?: string | number): number {
  return parseSizeBytes(o[key] ?? fallback, join(path, key));
}
