import { describe, expect, it } from 'vitest';
import { SparseStore } from '../src/proxy/stores/sparse-store.js';
import { Layer } from '../src/proxy/layer.js';
import { Hints } from './helpers/hints-layer.js';
import { ReadAheadLayer } from '../src/proxy/layers/read-ahead.js';
import { CacheLayer } from '../src/proxy/layers/cache-layer.js';
import { SecureCache } from '../src/proxy/layers/secure-cache.js';
import type { BlockDevice } from '../src/proxy/block-device.js';
import { SimWorld } from '../src/world/sim-world.js';
import type { Clock } from '../src/world/types.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** A remote disk: one round trip per read, plus transfer time, on one serial channel. */
class WanDisk extends Layer {
  readonly name = 'wan';
  private busyUntilUs = 0;
  reads = 0;
  constructor(below: BlockDevice, private readonly clock: Clock) {
    super(below);
  }
  override async read(offset: number, length: number): Promise<Buffer> {
    this.reads++;
    const now = this.clock.nowUs();
    this.busyUntilUs = Math.max(now, this.busyUntilUs) + Math.ceil(length / 12.5);
    await this.clock.sleepUs(this.busyUntilUs + 40_000 - now);
    return this.below.read(offset, length);
  }
}

describe('ReadAheadLayer', () => {
  it('grows the window on sequential access, doubling up to the max', async () => {
    const hints = new Hints(new SparseStore('d', 64 * MiB));
    const ra = new ReadAheadLayer(hints, { minWindowBytes: 64 * KiB, maxWindowBytes: 1 * MiB });
    const windows: number[] = [];
    for (let i = 0; i < 8; i++) {
      await ra.read(i * 16 * KiB, 16 * KiB);
      windows.push(ra.windows()[0]!);
    }
    expect(windows).toEqual([0, 64 * KiB, 128 * KiB, 256 * KiB, 512 * KiB, 1 * MiB, 1 * MiB, 1 * MiB]);
    // Hints start where the reader is and never ask for the same bytes twice.
    expect(hints.hints[0]).toEqual([32 * KiB, 64 * KiB]);
    for (let i = 1; i < hints.hints.length; i++) expect(hints.hints[i]![0]).toBe(hints.hints[i - 1]![0] + hints.hints[i - 1]![1]);
    expect(ra.stats()).toMatchObject({ sequentialReads: 7, randomReads: 1, maxWindowReached: 1 * MiB });
  });

  it('resets on random access and tracks interleaved streams separately', async () => {
    const hints = new Hints(new SparseStore('d', 64 * MiB));
    const ra = new ReadAheadLayer(hints, { minWindowBytes: 64 * KiB, maxWindowBytes: 4 * MiB });
    for (let i = 0; i < 4; i++) {
      await ra.read(i * 4 * KiB, 4 * KiB);
      await ra.read(32 * MiB + i * 4 * KiB, 4 * KiB);
    }
    expect(ra.windows()).toEqual([256 * KiB, 256 * KiB]);
    await ra.read(10 * MiB, 4 * KiB);
    expect(ra.windows()[0]).toBe(0);
    expect(ra.stats()).toMatchObject({ randomReads: 3, sequentialReads: 6 });
  });

  it('cuts a sequential scan over a 40 ms WAN to a fraction of the round trips', async () => {
    const scan = async (withReadAhead: boolean): Promise<{ us: number; wanReads: number }> => {
      const world = new SimWorld(1);
      const disk = new SparseStore('d', 8 * MiB);
      const wan = new WanDisk(disk, world.clock);
      const cache = await SecureCache.open({ key: Buffer.alloc(32, 3), keyEpoch: 1, store: new SparseStore('c', 16 * MiB), capacityBytes: 8 * MiB });
      const cached = new CacheLayer(wan, cache);
      const top = withReadAhead ? new ReadAheadLayer(cached, { maxWindowBytes: 1 * MiB }) : cached;
      const run = (async () => { for (let off = 0; off < 2 * MiB; off += 16 * KiB) await top.read(off, 16 * KiB); })();
      await world.run();
      await run;
      return { us: world.nowUs, wanReads: wan.reads };
    };
    const plain = await scan(false);
    const ahead = await scan(true);
    expect(plain.wanReads).toBe(32); // one per 64 KiB cache block
    expect(ahead.us * 4).toBeLessThan(plain.us);
  });

  it('refuses a window that cannot work', () => {
    expect(() => new ReadAheadLayer(new SparseStore('d', MiB), { minWindowBytes: 2 * MiB, maxWindowBytes: MiB })).toThrow(/minWindowBytes/);
  });
});
