import { fail } from '../util/check.js';
import { SCENARIO_LIMITS } from './bounds.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;
const RANGE = /\{(\d+)\.\.(\d+)\}/;

const BAD_NAME = 'a name of letters, digits, - and _ (optionally with one {a..b} range)';

/**
 * How many names `pattern` stands for, or what is expected instead when its range is bad or
 * makes more than `max` names: counted without making them, so a data center's total can be
 * checked before a list of millions is built.
 */
export function nameCount(pattern: string, max: number): number | string {
  const m = RANGE.exec(pattern);
  if (!m) return 1;
  const from = Number(m[1]);
  const to = Number(m[2]);
  if (to < from || to - from >= max) return `a range {a..b} with a <= b and at most ${max} names`;
  return to - from + 1;
}

/**
 * Expand `batch-{01..24}` into batch-01 … batch-24 (the width of the first bound is kept, so
 * 01 pads to two digits), or say what is expected instead. A name without braces stands for
 * itself. Names may not contain dots, because metric paths use them.
 */
export function tryExpandNames(pattern: string, max: number): string[] | string {
  const count = nameCount(pattern, max);
  if (typeof count === 'string') return count;
  const m = RANGE.exec(pattern);
  const names: string[] = [];
  if (!m) {
    names.push(pattern);
  } else {
    const from = Number(m[1]);
    const width = m[1]!.startsWith('0') ? m[1]!.length : 0;
    for (let i = from; i < from + count; i++) names.push(pattern.replace(RANGE, String(i).padStart(width, '0')));
  }
  return names.every((n) => NAME.test(n)) ? names : BAD_NAME;
}

export function expandNames(pattern: string, path: string, max: number = SCENARIO_LIMITS.namesPerRange): string[] {
  const names = tryExpandNames(pattern, max);
  return typeof names === 'string' ? fail(path, names, pattern) : names;
}

/** A glob with `*` wildcards, matched against whole names. */
export function globToRegExp(glob: string): RegExp {
  return new RegExp(`^${glob.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
}

/** Candidates ordered by edit distance to `target`, best first. */
export function closest(target: string, candidates: readonly string[], n = 5): string[] {
  return candidates
    .map((c) => ({ c, d: editDistance(target, c) - (c.endsWith(target.split('.').pop() ?? '') ? 1 : 0) }))
    .sort((a, b) => a.d - b.d || a.c.localeCompare(b.c))
    .slice(0, n)
    .map((x) => x.c);
}

export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}
