import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The code base is TypeScript strict, but tsx runs it without checking types,
 * so a type error would otherwise only surface in an editor. CI checks here.
 */
describe('typecheck', () => {
  it('tsc --strict finds no errors', () => {
    const root = join(import.meta.dirname, '..');
    let output = '';
    try {
      execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', root, '--noEmit'], { cwd: root, encoding: 'utf8', stdio: 'pipe' });
    } catch (err) {
      output = String((err as { stdout?: string }).stdout ?? err);
    }
    expect(output, output).toBe('');
  }, 300_000);
});
