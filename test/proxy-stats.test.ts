import { describe, expect, it } from 'vitest';
import { SparseStore } from '../src/proxy/stores/sparse-store.js';
import { Layer } from '../src/proxy/layer.js';
import { LatencyHistogram, StatsLayer, StatsRegistry, emitProxyStats, proxyStatsData } from '../src/proxy/layers/stats.js';
import { CacheLayer } from '../src/proxy/layers/cache-layer.js';
import { SecureCache } from '../src/proxy/layers/secure-cache.js';
import type { BlockDevice } from '../src/proxy/block-device.js';
import { SimWorld } from '../src/world/sim-world.js';
import type { Clock } from '../src/world/types.js';

class Slow extends Layer {
  readonly name = 'slow';
  constructor(below: BlockDevice, private readonly clock: Clock, private readonly us: number) {
    super(below);
  }
  override async read(offset: number, length: number): Promise<Buffer> {
    await this.clock.sleepUs(this.us);
    return this.below.read(offset, length);
  }
}

describe('LatencyHistogram', () => {
  it('buckets on a log2 scale and reports percentiles as bucket upper edges', () => {
    const h = new LatencyHistogram();
    for (const us of [0, 1, 2, 3, 100, 100, 100, 1000, 5000, 70_000]) h.record(us);
    const s = h.snapshot();
    expect(s.count).toBe(10);
    expect(s.buckets.slice(0, 3)).toEqual([1, 1, 2]); // 0 | [1,2) | [2,4)
    expect(s.buckets[7]).toBe(3); // [64,128)
    expect(s.p50Us).toBe(127);
    expect(s.p99Us).toBe(70_000);
    expect(s.maxUs).toBe(70_000);
    expect(s.meanUs).toBe(Math.round(76_306 / 10));
  });
});

describe('StatsLayer and registry', () => {
  it('measures latency per op on the world clock, counts bytes and errors by code', async () => {
    const world = new SimWorld(1);
    const registry = new StatsRegistry();
    const disk = new SparseStore('disk', 1024 * 1024);
    const remote = new StatsLayer(new Slow(disk, world.clock, 40_000), { clock: world.clock, registry, name: 'remote' });
    const cache = await SecureCache.open({ key: Buffer.alloc(32, 9), keyEpoch: 1, store: new SparseStore('c', 4 * 1024 * 1024), capacityBytes: 1024 * 1024 });
    const top = new StatsLayer(new CacheLayer(remote, cache), { clock: world.clock, registry, name: 'guest' });
    registry.source('secure-cache', () => cache.stats());
    const run = (async () => {
      await top.read(0, 4096); // miss: one WAN trip
      await top.read(0, 4096); // hit: no time
      await top.read(100, 10);
      await top.write(0, Buffer.alloc(8));
      await top.read(2 * 1024 * 1024, 1).catch(() => undefined);
    })();
    await world.run();
    await run;
    const snap = registry.snapshot();
    expect(snap.guest!.counters).toMatchObject({ readOps: 4, readBytes: 4096 * 2 + 10, writeOps: 1, writeBytes: 8, 'errors.E_RANGE': 1 });
    expect(snap.guest!.latency.read!.count).toBe(4);
    expect(snap.guest!.latency.read!.maxUs).toBe(40_000);
    expect(snap.guest!.latency.read!.p50Us).toBe(0);
    expect(snap.remote!.counters.readOps).toBe(1);
    expect(snap['secure-cache']!.counters).toMatchObject({ hits: 2, misses: 1 });
  });

  it('builds the proxy.stats event from whatever sources exist', async () => {
    const world = new SimWorld(4);
    const cache = await SecureCache.open({ key: Buffer.alloc(32, 2), keyEpoch: 1, store: new SparseStore('c', 1024 * 1024), capacityBytes: 256 * 1024 });
    await cache.put(0, Buffer.alloc(4096, 1));
    await cache.get(0);
    await cache.get(1);
    const data = proxyStatsData({ cache, wireBytes: () => 123, guestBytes: () => 456 });
    expect(data).toEqual({
      cacheHits: 1, cacheMisses: 1, cacheBytes: 4096, cacheCapacity: 256 * 1024, prefetchQueued: 0, prefetchHits: 0,
      wbBacklogBytes: 0, wbLagUs: 0, wireBytes: 123, guestBytes: 456,
    });
    emitProxyStats(world, 'proxy/cloud/vm-1', { cache });
    expect(world.trace.count).toBe(1);
  });
});
