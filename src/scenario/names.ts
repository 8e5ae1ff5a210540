import { fail } from '../util/check.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;
const RANGE = /\{(\d+)\.\.(\d+)\}/;

/**
 * Expand `batch-{01..24}` into batch-01 … batch-24 (the width of the first
 * bound is kept, so 01 pads to two digits). A name without braces stands for
 * itself. Names may not contain dots, because metric paths use them.
 */
export function expandNames(pattern: string, path: string): string[] {
  const m = RANGE.exec(pattern);
  let names: string[];
  if (!m) {
    names = [pattern];
  } else {
    const from = Number(m[1]);
    const to = Number(m[2]);
    if (to < from || to - from >= 100_000) fail(path, 'a range {a..b} with a <= b and at most 100000 names', pattern);
    const width = m[1]!.startsWith('0') ? m[1]!.length : 0;
    names = [];
    for (let i = from; i <= to; i++) names.push(pattern.replace(RANGE, String(i).padStart(width, '0')));
  }
  for (const n of names) if (!NAME.test(n)) fail(path, 'a name of letters, digits, - and _ (optionally with one {a..b} range)', pattern);
  return names;
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

function editDistance(a: string, b: string): number {
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
