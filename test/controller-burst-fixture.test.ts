import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const fixture = join(root, 'test/fixtures/burst/two-jobs.yaml');

/** One `spillway run <fixture> --json` in its own Node process. */
async function runCli(): Promise<any> {
  const { stdout } = await promisify(execFile)(process.execPath, [join(root, 'bin/spillway.js'), 'run', fixture, '--json'],
    { cwd: root, encoding: 'utf8', timeout: 120_000, maxBuffer: 64 * 1024 * 1024 });
  return JSON.parse(stdout);
}

describe('bursting fixture through the CLI (two jobs, one transfer at a time, same image)', () => {
  // Both processes run at once: the box has two cores and each run is single-threaded.
  const runs = Promise.all([runCli(), runCli()]);

  it('same seed, same trace hash across two CLI processes, and the fixture\'s expectations hold', async () => {
    const [a, b] = await runs;
    expect(a.traceHash).toMatch(/^[0-9a-f]{64}$/);
    expect(b.traceHash).toBe(a.traceHash);
    expect(a.expectations.every((e: { pass: boolean }) => e.pass)).toBe(true);
    expect(a.burst.vmsBurst).toBe(2);
  }, 180_000);

  it('the second VM from the same image finds more of its boot already streamed (FIG 22 hotspot profile)', async () => {
    const [a] = await runs;
    const vms = Object.values(a.burst.vms) as Array<{ timeline: Array<{ atHours: number; state: string }>; cacheHitRatio: number; prefetchHitRatio: number; bootSeconds: number }>;
    const at = (v: (typeof vms)[number]): number => v.timeline.find((t) => t.state === 'transfer.stageBoot')!.atHours;
    const [first, second] = [...vms].sort((x, y) => at(x) - at(y));
    expect(at(second!)).toBeGreaterThan(at(first!));
    expect(second!.prefetchHitRatio).toBeGreaterThan(first!.prefetchHitRatio + 0.05);
    expect(second!.cacheHitRatio).toBeGreaterThan(first!.cacheHitRatio + 0.05);
    expect(second!.bootSeconds).toBeGreaterThan(0);
  }, 180_000);
});
