import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CATALOGUE, isBadInputCode, meaningOf, type ErrorCodeGroup } from '../src/error-codes.js';
import { ERRORS_DOC, renderErrorsDoc } from './helpers/errors-doc.js';

/**
 * One catalogue of stable codes (src/error-codes.ts): every 'E_…' literal the code base raises or
 * branches on is listed there with its meaning, every listed code is used, and docs/errors.md is
 * the catalogue rendered.
 */
const CATALOGUE_FILE = 'src/error-codes.ts';

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return /\.(ts|js)$/.test(name) ? [path] : [];
  });
}

/** code → files that write it as a literal, outside the catalogue itself. */
function literals(): Map<string, string[]> {
  const found = new Map<string, string[]>();
  for (const file of ['src', 'tui', 'bin'].flatMap(sources)) {
    if (file === CATALOGUE_FILE) continue;
    for (const m of readFileSync(file, 'utf8').matchAll(/['"`](E_[A-Z0-9_]+)['"`]/g)) {
      const files = found.get(m[1]!) ?? [];
      if (!files.includes(file)) files.push(file);
      found.set(m[1]!, files);
    }
  }
  return found;
}

const groups = Object.values(ERROR_CATALOGUE) as ErrorCodeGroup[];
const catalogued = groups.flatMap((g) => Object.keys(g.codes));

describe('error-code catalogue', () => {
  const used = literals();

  it('lists every code used in src, tui and bin', () => {
    const missing = [...used].filter(([code]) => meaningOf(code) === undefined).map(([code, files]) => `${code} (${files.join(', ')})`);
    expect(missing, 'add these to src/error-codes.ts (or use a catalogued code that means the same)').toEqual([]);
  });

  it('lists only codes that are used', () => {
    expect(catalogued.filter((code) => !used.has(code)), 'remove these from src/error-codes.ts').toEqual([]);
  });

  it('lists each code once, in one group, with a meaning', () => {
    expect(catalogued.filter((code, i) => catalogued.indexOf(code) !== i)).toEqual([]);
    for (const code of catalogued) {
      expect(code).toMatch(/^E_[A-Z0-9_]+$/);
      expect(meaningOf(code)!.length, code).toBeGreaterThan(10);
    }
  });

  it('E_BAD_* is the bad-input rule of the CLI (exit 2), no other code is', () => {
    expect(catalogued.filter(isBadInputCode).length).toBeGreaterThan(5);
    expect(isBadInputCode('E_BAD_ARGUMENT')).toBe(true);
    expect(isBadInputCode('E_LINK_DOWN')).toBe(false);
  });

  it(`${ERRORS_DOC} is the catalogue rendered (regenerate: npm run docs:errors)`, () => {
    expect(readFileSync(ERRORS_DOC, 'utf8')).toBe(renderErrorsDoc());
  });
});
