import { z } from 'zod';
import { SpillwayError } from '../errors.js';
import { parseDurationUs, parseRateBytesPerS, parseSizeBytes } from '../util/units.js';
import { closest, editDistance } from './names.js';

/**
 * The building blocks every section of the scenario format is declared with. Each gives the
 * type (for TypeScript and the JSON Schema), the check and the error wording in one place:
 * messages read `expected <what is allowed>, got <the value>`, and the loader puts the field
 * path and the line in front (src/scenario/issues.ts).
 */

/** How a bad value is quoted in a message; a missing one is "nothing". */
export const shown = (value: unknown): string => (value === undefined ? 'nothing' : JSON.stringify(value));

const expected = (what: string) => (iss: { input?: unknown }): string => `expected ${what}, got ${shown(iss.input)}`;

/**
 * A mapping with exactly these keys: an unknown key is an error that lists the keys allowed
 * here and the closest ones to what was written.
 */
export function mapping<S extends z.ZodRawShape>(shape: S) {
  const keys = Object.keys(shape);
  return z.strictObject(shape, {
    error: (iss) => {
      if (iss.code === 'unrecognized_keys') return unknownKeyMessage(iss.keys[0]!, keys);
      if (iss.code === 'invalid_type') return expected('a mapping (key: value)')(iss);
      return undefined;
    },
  });
}

export function unknownKeyMessage(key: string, allowed: readonly string[]): string {
  // A suggestion is only worth making when it differs from the typo in a few letters.
  const [near] = closest(key, allowed, 1);
  const close = near !== undefined && editDistance(key.toLowerCase(), near.toLowerCase()) <= Math.max(2, Math.floor(near.length / 3));
  return `unknown field; allowed here: ${allowed.join(', ')}${close ? ` (did you mean ${near}?)` : ''}`;
}

/**
 * An optional block whose fields all have defaults: absent, it reads as `{}` (the cast: the
 * shape's input type cannot show that every field is optional).
 */
export function section<S extends z.ZodRawShape>(shape: S) {
  return mapping(shape).prefault({} as never);
}

/** A mapping from names the scenario chooses to values. */
export function named<V extends z.ZodType>(value: V) {
  return z.record(z.string(), value, { error: expected('a mapping (key: value)') });
}

export function list<T extends z.ZodType>(item: T, options: { atLeastOne?: string } = {}) {
  const l = z.array(item, { error: expected('a list') });
  return options.atLeastOne === undefined ? l : l.min(1, { error: expected(options.atLeastOne) });
}

export function num(options: { min?: number; max?: number; integer?: boolean } = {}) {
  const { min, max, integer = false } = options;
  const what = `${integer ? 'an integer' : 'a number'}${min !== undefined ? ` >= ${min}` : ''}${max !== undefined ? ` <= ${max}` : ''}`;
  const error = expected(what);
  let n = z.number({ error });
  if (integer) n = n.int({ error });
  if (min !== undefined) n = n.min(min, { error });
  if (max !== undefined) n = n.max(max, { error });
  return n;
}

export function int(options: { min?: number; max?: number } = {}) {
  return num({ ...options, integer: true });
}

export function text(options: { pattern?: RegExp } = {}) {
  const s = z.string({ error: expected('a non-empty string') }).min(1, { error: expected('a non-empty string') });
  return options.pattern ? s.regex(options.pattern, { error: expected(`a string matching ${options.pattern}`) }) : s;
}

export function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, { error: expected(`one of ${values.join(', ')}`) });
}

export function bool() {
  return z.boolean({ error: expected('true or false') });
}

/** Where a transform reports a value the schema's types accept but a rule refuses. */
export interface IssueSink {
  issues: z.core.$ZodRawIssue[];
}

export function refuse(ctx: IssueSink, input: unknown, message: string, path?: PropertyKey[], code?: string): typeof z.NEVER {
  ctx.issues.push({ code: 'custom', message, input, ...(path ? { path } : {}), ...(code ? { params: { code } } : {}) });
  return z.NEVER;
}

/** `expected <what>, got <value>` as a custom issue at `path` (relative to the value being checked). */
export function refuseExpected(ctx: IssueSink, input: unknown, what: string, path?: PropertyKey[]): typeof z.NEVER {
  return refuse(ctx, input, `expected ${what}, got ${shown(input)}`, path);
}

/**
 * A value in units, read by src/util/units.ts: its message (which starts with the field it was
 * given) is kept, with the field left to the loader to put in front. `check` refuses a parsed
 * value, quoting it as written.
 */
interface UnitsOptions {
  /** What is expected, when the parsed value is refused; null accepts it. */
  check?: (parsed: number) => string | null;
  /** What is expected when the field is required and missing ("a round-trip time such as "40ms""). */
  missing?: string;
}

function unitsField(parse: (value: unknown, field: string) => number, example: string, { check, missing }: UnitsOptions) {
  const problem = (value: unknown): { message: string; code: string } => {
    try {
      parse(value, '');
    } catch (err) {
      if (err instanceof SpillwayError) return { message: err.message.replace(/^: /, ''), code: err.code };
      throw err;
    }
    return { message: `expected ${example}, got ${shown(value)}`, code: 'E_BAD_FIELD' };
  };
  return z
    .union([z.number(), z.string()], { error: (iss) => (iss.input === undefined && missing ? `expected ${missing}, got nothing` : problem(iss.input).message) })
    .transform((value, ctx) => {
      let parsed: number;
      try {
        parsed = parse(value, '');
      } catch {
        const p = problem(value);
        return refuse(ctx, value, p.message, undefined, p.code);
      }
      const wrong = check?.(parsed) ?? null;
      return wrong === null ? parsed : refuseExpected(ctx, value, wrong);
    });
}

/** The longest duration virtual time can count in whole microseconds without losing any. */
const MAX_DURATION_US = Number.MAX_SAFE_INTEGER;

/** A duration in microseconds: "500ms", "30s", "1h30m", "2d" or a bare number of seconds. */
export function duration(options: UnitsOptions = {}) {
  return unitsField(parseDurationUs, 'a duration such as "500ms", "30s", "2h" or "1h30m"', {
    ...options,
    check: (us) => (us > MAX_DURATION_US ? 'a duration of at most 285 years (virtual time is counted in microseconds)' : options.check?.(us) ?? null),
  })
    .meta({ 'x-unit': 'duration', description: 'a duration: "500ms", "30s", "5m", "2h", "1d9h" or a number of seconds' });
}

/** A size in bytes: "4KiB", "60GiB", "500MB" or a byte count. */
export function size(options: UnitsOptions = {}) {
  return unitsField(parseSizeBytes, 'a size such as "4KiB", "512MiB", "20GiB"', options)
    .meta({ 'x-unit': 'size', description: 'a size: "4KiB", "60GiB" (binary), "500MB" (decimal) or a byte count' });
}

/** A rate in bytes per second: "100Mbit", "1Gbit", "50MB/s". */
export function rate(options: UnitsOptions = {}) {
  return unitsField(parseRateBytesPerS, 'a rate such as "100Mbit"', options)
    .meta({ 'x-unit': 'rate', description: 'a rate: "100Mbit", "1Gbit", "50MB/s", "200MiB/s" or bytes per second' });
}
