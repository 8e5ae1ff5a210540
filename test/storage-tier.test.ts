import { describe, expect, it } from 'vitest';
import { InputError } from '../src/errors.js';
import { SparseStore } from '../src/proxy/stores/sparse-store.js';
import { StorageTier, TIER_PRESETS, type TierConfig } from '../src/providers/emulated/hypervisor/storage-tier.js';
import { parseTierSpec } from '../src/scenario/storage.js';
import { SimWorld } from '../src/world/sim-world.js';

const MiB = 1024 * 1024;

function setup(config: TierConfig) {
  const world = new SimWorld(1);
  const tier = new StorageTier(world, new SparseStore('disk', 64 * MiB), config);
  const done: number[] = [];
  const track = (p: Promise<unknown>, i: number) => void p.then(() => (done[i] = world.clock.nowUs()));
  return { world, tier, done, track };
}

const tier = (over: Partial<TierConfig>): TierConfig => ({ name: 't', readLatencyUs: 100, writeLatencyUs: 50, iops: 1000, throughputBytesPerS: 100e6, ...over });

describe('StorageTier timing (exact, virtual time)', () => {
  it('one 4 KiB read: transfer rounded up to the microsecond, then latency', async () => {
    const { world, tier: t, done, track } = setup(tier({}));
    track(t.read(0, 4096), 0);
    await world.run();
    expect(done).toEqual([41 + 100]); // 4096 B at 100 MB/s = 40.96 µs
  });

  it('queues on IOPS: ten reads at once start 1 ms apart', async () => {
    const { world, tier: t, done, track } = setup(tier({}));
    for (let k = 0; k < 10; k++) track(t.read(k * 4096, 4096), k);
    await world.run();
    expect(done).toEqual(Array.from({ length: 10 }, (_, k) => k * 1000 + 41 + 100));
    expect(t.stats).toMatchObject({ reads: 10, readBytes: 40960, inFlight: 0, maxQueueWaitUs: 9000 });
  });

  it('queues on throughput: eight 1 MiB reads share one channel', async () => {
    const { world, tier: t, done, track } = setup(tier({ iops: 1_000_000 }));
    for (let k = 0; k < 8; k++) track(t.read(k * MiB, MiB), k);
    await world.run();
    // Transfers run back to back from t=0; each ends at ceil(cumulative bytes / rate).
    expect(done).toEqual(Array.from({ length: 8 }, (_, k) => Math.ceil(((k + 1) * MiB) / 100) + 100));
    expect(done[7]).toBe(83_887 + 100);
  });

  it('fractional IOPS intervals never drift: 3 IOPS gives slots at 0, 333,334, 666,667, 1,000,000', async () => {
    const { world, tier: t, done, track } = setup(tier({ iops: 3 }));
    for (let k = 0; k < 4; k++) track(t.trim(k * 4096, 4096), k);
    await world.run();
    expect(done).toEqual([0, 333_334, 666_667, 1_000_000].map((s) => s + 50));
  });

  it('an idle device starts a new busy period at the next request', async () => {
    const { world, tier: t, done, track } = setup(tier({}));
    track(t.read(0, 4096), 0);
    world.clock.schedule(5_000, () => track(t.read(0, 4096), 1));
    world.clock.schedule(5_100, () => track(t.read(0, 4096), 2));
    await world.run();
    expect(done).toEqual([141, 5_141, 6_141]);
  });

  it('flush completes one write latency after everything admitted before it', async () => {
    const { world, tier: t, done, track } = setup(tier({}));
    track(t.write(0, Buffer.alloc(MiB, 1)), 0);
    track(t.flush(), 1);
    await world.run();
    const writeDone = Math.ceil(MiB / 100) + 50;
    expect(done).toEqual([writeDone, writeDone + 50]);
  });

  it('a queue-depth-1 random reader on the hdd preset gets ~125 IOPS', async () => {
    const { world, tier: t } = setup(TIER_PRESETS.hdd!);
    let finished = -1;
    void (async () => {
      for (let k = 0; k < 100; k++) await t.read(((k * 7919) % 16000) * 4096, 4096);
      finished = world.clock.nowUs();
    })();
    await world.run();
    expect(finished).toBe(100 * (8_000 + Math.ceil(4096 / 200)));
  });

  it('serves the data of the device below, in issue order', async () => {
    const { world, tier: t } = setup(tier({}));
    const got: string[] = [];
    void t.write(8192, Buffer.from('hello'));
    void t.read(8192, 5).then((b) => got.push(b.toString()));
    await world.run();
    expect(got).toEqual(['hello']);
    expect(await t.extents(0, 16384)).toEqual([{ offset: 0, length: 16384, type: 'data' }]);
  });
});

describe('parseTierSpec', () => {
  it('reads presets and scenario mappings', () => {
    expect(parseTierSpec('nvme')).toEqual(TIER_PRESETS.nvme);
    expect(parseTierSpec({ name: 'ssd', readLatency: '200us', writeLatency: '300us', iops: 80000, throughput: '2GiB' })).toEqual({
      name: 'ssd', readLatencyUs: 200, writeLatencyUs: 300, iops: 80000, throughputBytesPerS: 2 * 1024 ** 3,
    });
    expect(parseTierSpec({ name: 'capacity', preset: 'hdd', iops: 5000 })).toEqual({ ...TIER_PRESETS.hdd, name: 'capacity', iops: 5000 });
    expect(parseTierSpec({ name: 'default' })).toEqual({ ...TIER_PRESETS.ssd, name: 'default' });
    expect(parseTierSpec({ name: 'x', throughput: '550MB/s' }).throughputBytesPerS).toBe(550e6);
  });

  it('names the bad field', () => {
    const bad = (raw: unknown, re: RegExp) => {
      expect(() => parseTierSpec(raw, 'datacenter.storage[1]')).toThrow(InputError);
      expect(() => parseTierSpec(raw, 'datacenter.storage[1]')).toThrow(re);
    };
    bad('floppy', /datacenter\.storage\[1\]: expected a tier preset \(nvme, ssd, hdd, archive\)/);
    bad({ name: 'x', iops: 0 }, /datacenter\.storage\[1\]\.iops: expected a number >= 1/);
    bad({ name: 'x', throughput: 'fast' }, /datacenter\.storage\[1\]\.throughput: expected a throughput such as "550MB\/s"/);
    bad({ name: 'x', readLatency: 'soon' }, /datacenter\.storage\[1\]\.readLatency: "soon" is not a duration/);
    bad({ name: 'x', preset: 'tape' }, /datacenter\.storage\[1\]\.preset: expected one of nvme, ssd, hdd, archive/);
    bad({ name: 'x', latency: '1ms' }, /datacenter\.storage\[1\]\.latency: unknown field/);
  });
});
