import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The World seam (ARCHITECTURE.md §3): only src/world/live* may use real time,
 * real randomness or real sockets. Everything else reaches them through a World.
 */
const FORBIDDEN: Array<[RegExp, string]> = [
  [/\bDate\.now\(/, 'Date.now()'],
  [/\bnew Date\(/, 'new Date()'],
  [/\bperformance\.now\(/, 'performance.now()'],
  [/(?<![.\w])setTimeout\(/, 'setTimeout()'],
  [/(?<![.\w])setInterval\(/, 'setInterval()'],
  [/(?<![.\w])setImmediate\(/, 'setImmediate()'],
  [/\bprocess\.nextTick\(/, 'process.nextTick()'],
  [/\bqueueMicrotask\(/, 'queueMicrotask()'],
  [/\bMath\.random\(/, 'Math.random()'],
  [/\bprocess\.hrtime/, 'process.hrtime'],
  [/\bcrypto\.random|\brandomBytes\(|\brandomInt\(|\brandomUUID\(|\bgetRandomValues\(/, 'crypto randomness'],
  [/from ['"](node:)?(net|tls|dgram|http|https|http2)['"]/, 'a socket module'],
  [/\bseedrandom\(\s*\)/, 'an unseeded seedrandom()'],
];

function* tsFiles(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* tsFiles(path);
    else if (path.endsWith('.ts')) yield path;
  }
}

describe('determinism seam', () => {
  it('keeps real time, randomness and sockets inside src/world/live*', () => {
    const root = join(import.meta.dirname, '..');
    const leaks: string[] = [];
    for (const file of tsFiles(join(root, 'src'))) {
      const rel = relative(root, file);
      if (/^src\/world\/live/.test(rel)) continue;
      readFileSync(file, 'utf8').split('\n').forEach((line, i) => {
        if (/^\s*(\/\/|\*)/.test(line)) return; // comments may name what they avoid
        // XState's clock contract makes us *define* setTimeout/clearTimeout methods; defining is not calling.
        if (/^\s*(set|clear)Timeout\(\w+\??:/.test(line)) return;
        for (const [re, what] of FORBIDDEN) if (re.test(line)) leaks.push(`${rel}:${i + 1}: ${what}: ${line.trim()}`);
      });
    }
    expect(leaks, `route these through the World (clock, rng, net):\n${leaks.join('\n')}`).toEqual([]);
  });
});
