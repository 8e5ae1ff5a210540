import { describe, expect, it } from 'vitest';
import { CloudError } from '../src/ports/cloud.js';
import { backoffDelayUs, withRetry } from '../src/providers/aws/retry.js';
import { SimWorld } from '../src/world/sim-world.js';
import { expectCloudError, inSim, traceOf } from './cloud-helpers.js';

const STAGING = 'ami-0a5ba6e0c57a9e001';

describe('eventual consistency', () => {
  const CONFIG = { consistencyWindowMs: 5000, api: { latency: { meanMs: 40, sdMs: 5 } } };

  it('DescribeInstances right after RunInstances answers InvalidInstanceID.NotFound, then the retry helper gets through', async () => {
    const { result, events } = await inSim(21, CONFIG, async (cloud, world) => {
      const launched = await cloud.runInstances({ clientToken: 'ec', imageId: STAGING, instanceType: 'm6i.large', count: 3 });
      const ids = launched.map((i) => i.id);
      const first = await expectCloudError(cloud.describeInstances({ ids }), 'InvalidInstanceID.NotFound');
      const byTag = await cloud.describeInstances({ tags: { 'spillway:run': 'run-test' } });
      const startUs = world.clock.nowUs();
      let tries = 0;
      const seen = await withRetry(world.clock, world.rng('test/retry'), () => { tries++; return cloud.describeInstances({ ids }); }, { baseDelayUs: 250_000, attempts: 12 });
      return { ids, first, byTagCount: byTag.length, seen, tries, waitedUs: world.clock.nowUs() - startUs };
    });
    expect(result.first.retryable).toBe(true);
    // A filter (rather than ids) does not fail; it simply does not list the instances yet.
    expect(result.byTagCount).toBeLessThan(3);
    expect(result.seen.map((i) => i.id)).toEqual(result.ids);
    expect(result.tries).toBeGreaterThan(1);
    expect(result.waitedUs).toBeLessThanOrEqual(5_000_000 + 2_000_000);
    const calls = traceOf(events, 'cloud.call').filter((c) => c.api === 'DescribeInstances');
    expect(calls.some((c) => c.ok === false && c.code === 'InvalidInstanceID.NotFound')).toBe(true);
    expect(calls.at(-1)).toMatchObject({ ok: true });
  });

  it('tagging a just-created instance can fail the same way, and succeeds after the window', async () => {
    const { result } = await inSim(22, CONFIG, async (cloud, world) => {
      const [inst] = await cloud.runInstances({ clientToken: 'tag', imageId: STAGING, instanceType: 'm6i.large', count: 1 });
      await world.clock.sleepUs(6_000_000);
      await cloud.createTags([inst!.id], { owner: 'burst' });
      return (await cloud.describeInstances({ ids: [inst!.id] }))[0]!.tags;
    });
    expect(result.owner).toBe('burst');
  });
});

describe('retry helper (src/providers/aws/retry.ts)', () => {
  it('backs off with capped full jitter', () => {
    const rng = new SimWorld(1).rng('t');
    for (let attempt = 1; attempt <= 12; attempt++) {
      const d = backoffDelayUs(attempt, rng, 100_000, 5_000_000);
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThanOrEqual(Math.min(5_000_000, 100_000 * 2 ** (attempt - 1)));
    }
  });

  it('does not retry a non-retryable error, gives up after `attempts`, and honours the deadline', async () => {
    const world = new SimWorld(3);
    const rng = world.rng('t');
    let calls = 0;
    const fatal = new CloudError('InvalidParameterValue', 'no', false);
    const flaky = new CloudError('RequestLimitExceeded', 'slow down', true);
    const outcomes: unknown[] = [];
    void withRetry(world.clock, rng, async () => { calls++; throw fatal; }).catch((e: unknown) => outcomes.push(e));
    void withRetry(world.clock, rng, async () => { throw flaky; }, { attempts: 3, onRetry: () => outcomes.push('retry') }).catch((e: unknown) => outcomes.push(e));
    void withRetry(world.clock, rng, async () => { throw flaky; }, { attempts: 100, baseDelayUs: 1_000_000, deadlineUs: 5_000_000 }).catch((e: unknown) => outcomes.push(['deadline', world.clock.nowUs()]));
    await world.run();
    expect(calls).toBe(1);
    expect(outcomes.filter((o) => o === 'retry')).toHaveLength(2);
    expect(outcomes).toContain(fatal);
    expect(outcomes).toContain(flaky);
    const deadline = outcomes.find((o) => Array.isArray(o)) as [string, number];
    expect(deadline[1]).toBeLessThanOrEqual(5_000_000);
  });

  it('waits in virtual time, not real time', async () => {
    const world = new SimWorld(4);
    let n = 0;
    let value: string | undefined;
    void withRetry(world.clock, world.rng('t'), async () => {
      if (++n < 6) throw new CloudError('InternalError', 'x', true);
      return 'ok';
    }, { baseDelayUs: 10_000_000, maxDelayUs: 600_000_000 }).then((v) => { value = v; });
    const real = performance.now();
    await world.run();
    expect(value).toBe('ok');
    expect(world.nowUs).toBeGreaterThan(1_000_000);
    expect(performance.now() - real).toBeLessThan(2000);
  });
});
