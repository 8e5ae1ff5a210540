import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

/**
 * The size rules of the code base (issue 13): no file in src/ over 600
 * lines, no function over 120. Small units are what lets a newcomer find and
 * change one thing; past these sizes a file or function is doing several.
 */
const ROOT = join(import.meta.dirname, '..');
const MAX_FILE_LINES = 600;
const MAX_FUNCTION_LINES = 120;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sources(path);
    return e.name.endsWith('.ts') ? [path] : [];
  });
}

const files = sources(join(ROOT, 'src'));

describe('size limits', () => {
  it(`no file in src/ is over ${MAX_FILE_LINES} lines`, () => {
    const long = files
      .map((f) => ({ file: relative(ROOT, f), lines: readFileSync(f, 'utf8').split('\n').length - 1 }))
      .filter((f) => f.lines > MAX_FILE_LINES);
    expect(long).toEqual([]);
  });

  it(`no function in src/ is over ${MAX_FUNCTION_LINES} lines`, () => {
    const long: string[] = [];
    for (const f of files) {
      const sf = ts.createSourceFile(f, readFileSync(f, 'utf8'), ts.ScriptTarget.Latest, true);
      const visit = (node: ts.Node): void => {
        if (ts.isFunctionLike(node) && 'body' in node && node.body) {
          const from = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
          const to = sf.getLineAndCharacterOfPosition(node.getEnd()).line;
          if (to - from + 1 > MAX_FUNCTION_LINES) {
            const name = 'name' in node && node.name ? (node.name as ts.Node).getText(sf) : ts.SyntaxKind[node.kind];
            long.push(`${relative(ROOT, f)}:${from + 1} ${name} (${to - from + 1} lines)`);
          }
        }
        ts.forEachChild(node, visit);
      };
      visit(sf);
    }
    expect(long).toEqual([]);
  });
});
