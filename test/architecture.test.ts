import { execFile } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

/**
 * The layout rules of ARCHITECTURE.md §9: one direction of dependence, no
 * cycles, a proxy core that imports only world, util and errors (all checked
 * by dependency-cruiser, .dependency-cruiser.cjs), and no registration by
 * side-effect import (which the checker cannot see: lists are explicit).
 */
const root = join(import.meta.dirname, '..');

function* sourceFiles(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* sourceFiles(path);
    else if (/\.(ts|mjs)$/.test(path)) yield path;
  }
}

describe('architecture', () => {
  it('imports point one way, with no cycles (npm run check:arch)', async () => {
    const bin = join(root, 'node_modules', '.bin', 'depcruise');
    const run = promisify(execFile)(bin, ['src', 'tui', 'bin', '--config', '.dependency-cruiser.cjs', '--output-type', 'err'], { cwd: root, maxBuffer: 1 << 24 });
    const result = await run.then((r) => ({ code: 0, out: r.stdout + r.stderr }), (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }));
    expect(result.code, result.out).toBe(0);
  }, 120_000);

  it('registers nothing by importing a module for its side effects', () => {
    const found: string[] = [];
    for (const dir of ['src', 'tui']) {
      for (const file of sourceFiles(join(root, dir))) {
        const rel = relative(root, file);
        readFileSync(file, 'utf8').split('\n').forEach((line, i) => {
          if (/^import\s+['"]/.test(line)) found.push(`${rel}:${i + 1}: bare import: ${line.trim()}`);
          // (.mjs worker entries call tsx's register(): that installs a loader, it registers no part.)
          if (rel.endsWith('.ts') && /^register\w*\(/.test(line)) found.push(`${rel}:${i + 1}: module-level registration: ${line.trim()}`);
        });
      }
    }
    expect(found, 'list the parts explicitly instead (e.g. scenario/policies/index.ts, report/sections/index.ts)').toEqual([]);
  });
});
