import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseScenario } from '../src/sim/scenario-file.js';
import { createSimulation } from '../src/sim/simulation.js';
import type { TraceEvent } from '../src/world/types.js';

/**
 * FIG 22 through the machines: with `prefetch: recorded` the first VM of an
 * image boots on demand (nothing to stream yet), the on-prem proxy records
 * the order its session read the blocks in, and the transfer machine's
 * startCacheFill step streams that order to the next VM's cold cache.
 */
const fixture = readFileSync(join(import.meta.dirname, 'fixtures/burst/two-jobs.yaml'), 'utf8');

describe('boot streaming of later VMs of an image (FIG 22)', () => {
  it('the second VM burst from the same image boots faster than the first, from the read order the first one recorded', async () => {
    const text = fixture;
    expect(text).toContain('prefetch: recorded');
    const events: TraceEvent[] = [];
    const sim = await createSimulation(parseScenario(text, 'two-jobs.yaml'), { noBaseline: true, onTrace: (e) => { if (e.type === 'machine.state') events.push(e); } });
    const report = await sim.runToEnd();
    const b = report.burst as any;
    expect(b.vmsBurst).toBe(2);
    const vms = Object.entries(b.vms).filter(([, v]: [string, any]) => v.burst) as Array<[string, any]>;
    const bootAt = (v: any): number => v.timeline.find((t: any) => t.state === 'transfer.stageBoot').atHours;
    const [first, second] = vms.sort((x, y) => bootAt(x[1]) - bootAt(y[1]));
    expect(bootAt(second![1])).toBeGreaterThan(bootAt(first![1]));
    // The first booted on demand only; the second found most of its boot already streamed.
    expect(first![1].prefetchHitRatio).toBeLessThan(second![1].prefetchHitRatio);
    expect(second![1].bootSeconds).toBeLessThan(first![1].bootSeconds * 0.9);
    const byImage = b.bootByImage.img;
    expect(byImage.vms).toBe(2);
    expect(byImage.firstSeconds).toBe(first![1].bootSeconds);
    expect(byImage.laterOverFirst).toBeLessThan(0.9);
    // Both went through the transfer machine's cache-fill and boot steps.
    for (const [name] of vms) {
      const states = events.filter((e) => e.src === `vm/${name}`).map((e) => (e.data as any).state);
      expect(states).toEqual(expect.arrayContaining(['startCacheFill', 'stageBoot', 'targetBoot']));
    }
    console.log(`FIG 22: first boot ${first![1].bootSeconds} s (prefetch hits ${first![1].prefetchHitRatio}), second ${second![1].bootSeconds} s (prefetch hits ${second![1].prefetchHitRatio})`);
  }, 300_000);
});
