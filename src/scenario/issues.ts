import type { z } from 'zod';
import { InputError } from '../errors.js';
import { join } from '../util/check.js';

/**
 * From the issues a schema found to the one error a user reads: the field path, what is
 * allowed there and the value found, as the hand-written checks wrote them. One error, the
 * first in file order, except that an unknown key comes before the other problems of its
 * mapping (a typo in a key usually also makes a required field "missing").
 */

type Issue = z.core.$ZodIssue;

export interface FieldProblem {
  path: Array<string | number>;
  message: string;
  code: string;
}

export function pathText(base: string, path: ReadonlyArray<PropertyKey>): string {
  return path.reduce<string>((p, k) => join(p, typeof k === 'number' ? k : String(k)), base);
}

/** Issues that say a value is not of a branch's type at all (rather than a bad value of that type). */
const TYPE_MISMATCH = new Set(['invalid_type', 'invalid_value', 'invalid_union']);

/** The issues of the union branch the value was meant for: the first that got past the value's type. */
function flatten(issues: readonly Issue[], prefix: PropertyKey[] = []): Array<Issue & { fullPath: PropertyKey[] }> {
  const out: Array<Issue & { fullPath: PropertyKey[] }> = [];
  for (const iss of issues) {
    const fullPath = [...prefix, ...iss.path];
    if (iss.code === 'invalid_union' && iss.errors.length > 0) {
      const branch = iss.errors.find((b) => b.every((e) => e.path.length > 0 || !TYPE_MISMATCH.has(e.code)));
      if (branch) {
        out.push(...flatten(branch, fullPath));
        continue;
      }
    }
    out.push({ ...iss, fullPath });
  }
  return out;
}

const isPrefix = (p: readonly PropertyKey[], of: readonly PropertyKey[]): boolean => p.length <= of.length && p.every((k, i) => k === of[i]);

export function firstProblem(issues: readonly Issue[]): FieldProblem {
  const all = flatten(issues);
  let chosen = all[0]!;
  for (const iss of all) {
    if (iss.code === 'unrecognized_keys' && isPrefix(iss.fullPath, chosen.fullPath) && (chosen.code !== 'unrecognized_keys' || iss.fullPath.length < chosen.fullPath.length)) chosen = iss;
  }
  const path = chosen.fullPath.map((k) => (typeof k === 'number' ? k : String(k)));
  if (chosen.code === 'unrecognized_keys') return { path: [...path, chosen.keys[0]!], message: chosen.message, code: 'E_UNKNOWN_FIELD' };
  const code = chosen.code === 'custom' && typeof chosen.params?.code === 'string' ? chosen.params.code : 'E_BAD_FIELD';
  return { path, message: chosen.message, code };
}

/** The error for a failed parse of the value at `base` ('' for a whole file). */
export function problemError(issues: readonly Issue[], base: string): InputError {
  const p = firstProblem(issues);
  const path = pathText(base, p.path);
  return new InputError(p.code, `${path || '(top level)'}: ${p.message}`, { details: { path } });
}

/** Parse one section with its schema, throwing the error a user reads for the first problem. */
export function parseSection<S extends z.ZodType>(schema: S, raw: unknown, base: string): z.output<S> {
  const result = schema.safeParse(raw);
  if (!result.success) throw problemError(result.error.issues, base);
  return result.data;
}
