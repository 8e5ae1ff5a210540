import { describe, expect, it } from 'vitest';
import { SimWorld } from '../src/world/sim-world.js';
import { EventQueue } from '../src/world/scheduler.js';

describe('EventQueue', () => {
  it('orders by due time, then by insertion sequence', () => {
    const q = new EventQueue();
    const seen: string[] = [];
    q.push(20, () => seen.push('c'));
    q.push(10, () => seen.push('a'));
    q.push(10, () => seen.push('b'));
    const cancelled = q.push(5, () => seen.push('x'));
    q.cancel(cancelled);
    for (let e = q.pop(); e; e = q.pop()) e.fn!();
    expect(seen).toEqual(['a', 'b', 'c']);
    expect(q.size).toBe(0);
  });
});

describe('SimWorld', () => {
  it('runs timers in virtual time without real waiting', async () => {
    const world = new SimWorld(1);
    const at: number[] = [];
    world.clock.schedule(3_600_000_000, () => at.push(world.clock.nowUs()));
    world.clock.schedule(5, () => at.push(world.clock.nowUs()));
    const result = await world.run();
    expect(at).toEqual([5, 3_600_000_000]);
    expect(result.reason).toBe('idle');
  });

  it('drains promise work before virtual time advances', async () => {
    const world = new SimWorld(1);
    const log: string[] = [];
    const task = async () => {
      await world.clock.sleepUs(100);
      await Promise.resolve();
      await Promise.resolve();
      log.push(`woke@${world.clock.nowUs()}`);
      await world.clock.sleepUs(50);
      log.push(`again@${world.clock.nowUs()}`);
    };
    void task();
    world.clock.schedule(101, () => log.push(`timer@${world.clock.nowUs()}`));
    await world.run();
    expect(log).toEqual(['woke@100', 'timer@101', 'again@150']);
  });

  it('holds virtual time still for external ops and delivers at issue + latency, in issue order', async () => {
    const world = new SimWorld(7);
    const got: string[] = [];
    world.clock.schedule(10, () => {
      // The slow real op was issued first, so it is delivered first at equal latency.
      void world.external(() => new Promise<string>((r) => setTimeout(() => r('slow'), 20)), 1000).then((v) => got.push(`${v}@${world.clock.nowUs()}`));
      void world.external(async () => 'fast', 1000).then((v) => got.push(`${v}@${world.clock.nowUs()}`));
      void world.external(async () => { throw new Error('boom'); }, 500).catch((e: Error) => got.push(`${e.message}@${world.clock.nowUs()}`));
    });
    world.clock.schedule(20, () => got.push(`tick@${world.clock.nowUs()}`));
    await world.run();
    expect(got).toEqual(['tick@20', 'boom@510', 'slow@1010', 'fast@1010']);
  });

  it('gives each label an independent, reproducible stream', () => {
    const a = new SimWorld(42);
    const b = new SimWorld(42);
    const c = new SimWorld(43);
    const draw = (w: SimWorld, label: string) => Array.from({ length: 5 }, () => w.rng(label).u32());
    const a1 = draw(a, 'wan');
    draw(a, 'disk'); // another component drawing does not shift 'wan'
    expect(draw(b, 'wan')).toEqual(a1);
    expect(draw(c, 'wan')).not.toEqual(a1);
    expect(draw(a, 'wan')).not.toEqual(a1); // same label continues the stream
  });

  it('stops at --until and leaves later events queued', async () => {
    const world = new SimWorld(1);
    let fired = 0;
    world.clock.schedule(10, () => fired++);
    world.clock.schedule(1000, () => fired++);
    const r = await world.run({ untilUs: 500 });
    expect(r).toMatchObject({ reason: 'until', nowUs: 500 });
    expect(fired).toBe(1);
    await world.run();
    expect(fired).toBe(2);
  });

  it('drives XState delays through its clock contract (milliseconds)', async () => {
    const world = new SimWorld(1);
    const fired: number[] = [];
    const id = world.clock.setTimeout(() => fired.push(world.clock.nowUs()), 2.5);
    world.clock.setTimeout(() => fired.push(world.clock.nowUs()), 1);
    world.clock.clearTimeout(id);
    await world.run();
    expect(fired).toEqual([1000]);
  });
});

describe('SimWorld pacing', () => {
  it('holds virtual time back to a pacer and keeps event order', async () => {
    const world = new SimWorld(1);
    let allowedUs = 0;
    const waits: number[] = [];
    world.pacer = {
      reached: (due) => due <= allowedUs,
      // Each wait lets the pacing clock move 1 ms, as a wall clock would.
      waitUntil: async (due) => { waits.push(due); allowedUs += 1000; },
    };
    const seen: number[] = [];
    world.clock.schedule(2500, () => seen.push(world.clock.nowUs()));
    world.clock.schedule(0, () => seen.push(world.clock.nowUs()));
    await world.run();
    expect(seen).toEqual([0, 2500]);
    expect(waits).toEqual([2500, 2500, 2500]);
  });
});

describe('realTimePacer', () => {
  it('never lets virtual time run ahead of the wall clock (scaled by speed)', async () => {
    const { realTimePacer, wallMs } = await import('./helpers/live-clock.js');
    const world = new SimWorld(1);
    const start = wallMs();
    world.pacer = realTimePacer(10, start);
    let firedAtWallMs = 0;
    world.clock.schedule(300_000, () => { firedAtWallMs = wallMs(); });
    await world.run();
    // 300 ms of virtual time at 10x takes at least 30 ms of real time.
    expect(firedAtWallMs - start).toBeGreaterThanOrEqual(29);
  });

  it('hands the real event loop a turn while a run that is behind its pace works through its events', async () => {
    const { realTimePacer, wallMs } = await import('./helpers/live-clock.js');
    const world = new SimWorld(1);
    // Far behind: every event is long due, so the pacer never has to wait for the wall clock.
    world.pacer = realTimePacer(1e9, wallMs() - 1000);
    let turnAtEvent: number | null = null;
    let events = 0;
    setTimeout(() => { turnAtEvent = events; }, 0);
    for (let i = 0; i < 200; i++) {
      world.clock.schedule(i, () => {
        events++;
        const until = wallMs() + 1;
        while (wallMs() < until) { /* an event that costs 1 ms of CPU */ }
      });
    }
    await world.run();
    expect(events).toBe(200);
    // The loop got its turn partway, not only once all 200 ms of events were done.
    expect(turnAtEvent).not.toBeNull();
    expect(turnAtEvent!).toBeLessThan(200);
  });
});
