import { describe, expect, it } from 'vitest';
import { SparseStore } from '../src/proxy/stores/sparse-store.js';
import { Layer } from '../src/proxy/layer.js';
import { MigrationLayer } from '../src/proxy/layers/migration.js';
import { SimWorld } from '../src/world/sim-world.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** The on-prem source as seen over the WAN: counts every byte read from it. */
class Source extends Layer {
  readonly name = 'source';
  bytes = 0;
  override async read(offset: number, length: number): Promise<Buffer> {
    this.bytes += length;
    return this.below.read(offset, length);
  }
}

function makeDisk(world: SimWorld, size: number, holeFrom = size): SparseStore {
  const disk = new SparseStore('onprem', size);
  const rng = world.rng('content');
  const data = Buffer.alloc(holeFrom);
  for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(rng.u32(), i);
  disk.writeSync(0, data);
  return disk;
}

describe('MigrationLayer', () => {
  it('stops and resumes without re-sending a byte, and ends with the cloud copy equal to the source', async () => {
    const world = new SimWorld(17);
    const SIZE = 4 * MiB;
    const disk = makeDisk(world, SIZE);
    const target = new SparseStore('cloud', SIZE);
    const logStore = new SparseStore('log', 4096);
    const opts = { world, target, logStore, chunkBytes: 64 * KiB, batchChunks: 2, maxIntervalUs: 1_000_000, minIntervalUs: 10_000 };

    const src1 = new Source(disk);
    const m1 = await MigrationLayer.open(src1, opts);
    m1.start();
    // The guest reads while the migration runs: copy-on-read fills chunks out of order.
    expect((await m1.read(3 * MiB + 100, 5000)).equals(disk.readSync(3 * MiB + 100, 5000))).toBe(true);
    await world.advance(5_000_000);
    await m1.stop();
    const first = m1.progress();
    expect(first.transferredBytes).toBeGreaterThan(0);
    expect(first.done).toBe(false);
    expect(first.copyOnReadBytes).toBe(64 * KiB);
    expect(src1.bytes).toBe(first.bytesFetched);

    // "Restart": a new layer over the same cloud storage and log.
    const src2 = new Source(disk);
    const m2 = await MigrationLayer.open(src2, opts);
    expect(m2.progress().transferredBytes).toBe(first.transferredBytes);
    m2.start();
    const done = m2.whenComplete();
    await world.run({ untilUs: world.nowUs + 600_000_000 });
    await done;
    await m2.stop();
    expect(src1.bytes + src2.bytes).toBe(SIZE);
    expect(target.readSync(0, SIZE).equals(disk.readSync(0, SIZE))).toBe(true);
    expect(m2.progress()).toMatchObject({ done: true, remainingBytes: 0, fraction: 1 });
    // Once migrated, reads never touch the source.
    await m2.read(0, SIZE);
    expect(src2.bytes).toBe(SIZE - src1.bytes);
  });

  it('after a crash (no stop) re-fetches at most the chunks not yet persisted in the log', async () => {
    const world = new SimWorld(23);
    const SIZE = 4 * MiB;
    const CHUNK = 64 * KiB;
    const disk = makeDisk(world, SIZE);
    const target = new SparseStore('cloud', SIZE);
    const logStore = new SparseStore('log', 4096);
    const opts = { world, target, logStore, chunkBytes: CHUNK, batchChunks: 3, maxIntervalUs: 500_000, persistEveryChunks: 5 };
    const src1 = new Source(disk);
    const m1 = await MigrationLayer.open(src1, opts);
    m1.start();
    await world.advance(3_000_000);
    m1.kill();
    await world.advance(0);
    const src2 = new Source(disk);
    const m2 = await MigrationLayer.open(src2, opts);
    expect(m2.progress().transferredBytes).toBeGreaterThan(0);
    const lost = m1.progress().transferredBytes - m2.progress().transferredBytes;
    expect(lost).toBeGreaterThan(0); // the crash did cost something: transfers not yet in the persisted log
    expect(lost).toBeLessThan(5 * CHUNK);
    m2.start();
    await world.run({ untilUs: world.nowUs + 600_000_000 });
    await m2.whenComplete();
    expect(target.readSync(0, SIZE).equals(disk.readSync(0, SIZE))).toBe(true);
    expect(src1.bytes + src2.bytes).toBeGreaterThanOrEqual(SIZE);
    expect(src1.bytes + src2.bytes).toBeLessThan(SIZE + 5 * CHUNK);
  });

  it('shortens the sync interval as the remainder shrinks', async () => {
    const world = new SimWorld(3);
    const SIZE = 2 * MiB;
    const m = await MigrationLayer.open(makeDisk(world, SIZE), {
      world, target: new SparseStore('cloud', SIZE), logStore: new SparseStore('log', 4096), chunkBytes: 64 * KiB, batchChunks: 2, maxIntervalUs: 1_000_000,
    });
    const intervals: number[] = [];
    m.start();
    while (!m.progress().done) {
      await world.advance(100_000);
      intervals.push(m.progress().intervalUs);
    }
    const distinct = intervals.filter((v, i) => i === 0 || v !== intervals[i - 1]);
    for (let i = 1; i < distinct.length; i++) expect(distinct[i]!).toBeLessThan(distinct[i - 1]!);
    expect(distinct.length).toBeGreaterThan(5);
    expect(distinct[distinct.length - 1]!).toBeLessThan(100_000);
  });

  it('terminates writes on the cloud storage, without fetching chunks the guest overwrites whole', async () => {
    const world = new SimWorld(5);
    const SIZE = 1 * MiB;
    const disk = makeDisk(world, SIZE);
    const before = disk.readSync(0, SIZE);
    const src = new Source(disk);
    const target = new SparseStore('cloud', SIZE);
    const m = await MigrationLayer.open(src, { world, target, logStore: new SparseStore('log', 4096), chunkBytes: 64 * KiB });
    await m.write(0, Buffer.alloc(64 * KiB, 1)); // whole chunk
    expect(src.bytes).toBe(0);
    await m.write(64 * KiB + 10, Buffer.from('partial')); // needs the rest of the chunk
    expect(src.bytes).toBe(64 * KiB);
    await m.trim(128 * KiB, 64 * KiB);
    expect(disk.readSync(0, SIZE).equals(before)).toBe(true);
    expect((await m.read(0, 4)).equals(Buffer.alloc(4, 1))).toBe(true);
    const chunk1 = await m.read(64 * KiB, 64 * KiB);
    expect(chunk1.subarray(10, 17).toString()).toBe('partial');
    expect(chunk1.subarray(17).equals(before.subarray(64 * KiB + 17, 128 * KiB))).toBe(true);
    expect((await m.read(128 * KiB, 64 * KiB)).equals(Buffer.alloc(64 * KiB))).toBe(true);
    expect(m.progress().chunksWithoutFetch).toBe(2);
  });

  it('skips holes in the background sync instead of fetching zeros', async () => {
    const world = new SimWorld(9);
    const SIZE = 2 * MiB;
    const disk = makeDisk(world, SIZE, 512 * KiB);
    const src = new Source(disk);
    const target = new SparseStore('cloud', SIZE);
    const m = await MigrationLayer.open(src, { world, target, logStore: new SparseStore('log', 4096), chunkBytes: 64 * KiB, maxIntervalUs: 1000 });
    m.start();
    await world.run({ untilUs: 60_000_000 });
    await m.whenComplete();
    expect(src.bytes).toBe(512 * KiB);
    expect(target.readSync(0, SIZE).equals(disk.readSync(0, SIZE))).toBe(true);
    expect(await m.extents(0, SIZE)).toEqual([
      { offset: 0, length: 512 * KiB, type: 'data' },
      { offset: 512 * KiB, length: SIZE - 512 * KiB, type: 'hole' },
    ]);
  });

  it('refuses a target of the wrong size and a bad chunk size', async () => {
    const world = new SimWorld(1);
    const disk = new SparseStore('d', MiB);
    await expect(MigrationLayer.open(disk, { world, target: new SparseStore('t', 2 * MiB), logStore: new SparseStore('l', 4096) })).rejects.toThrow(/must match/);
    await expect(MigrationLayer.open(disk, { world, target: new SparseStore('t', MiB), logStore: new SparseStore('l', 4096), chunkBytes: 1000 })).rejects.toThrow(/chunkBytes/);
  });
});
