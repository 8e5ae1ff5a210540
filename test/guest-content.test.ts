import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CONTENT_BLOCK_BYTES, REGION_BLOCKS, REGION_BYTES } from '../src/providers/emulated/guest/content.js';
import { DEFAULT_MIX, normalizeMix } from '../src/providers/emulated/guest/content-mix.js';
import { countKinds } from '../src/providers/emulated/guest/generated-disk.js';
import { ImageContent } from '../src/providers/emulated/guest/image-content.js';

const GiB = 1024 ** 3;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('generated disk content', () => {
  it('is a pure function of (seed, image, block): same seed same bytes, other seed or image other bytes', async () => {
    const a = new ImageContent({ seed: 1, imageId: 'rhel9' }).disk('d1', GiB);
    const b = new ImageContent({ seed: 1, imageId: 'rhel9' }).disk('d2', GiB);
    const c = new ImageContent({ seed: 2, imageId: 'rhel9' }).disk('d1', GiB);
    const d = new ImageContent({ seed: 1, imageId: 'win2019' }).disk('d1', GiB);
    const range: [number, number] = [0, 8 * 1024 * 1024];
    const ha = sha(await a.read(...range));
    expect(sha(await b.read(...range))).toBe(ha); // a clone of the same image shares base content
    expect(sha(await c.read(...range))).not.toBe(ha);
    expect(sha(await d.read(...range))).not.toBe(ha);
    // Unaligned reads see the same bytes as aligned ones.
    const whole = await a.read(0, 3 * REGION_BYTES);
    expect((await a.read(12_345, 70_001)).equals(whole.subarray(12_345, 12_345 + 70_001))).toBe(true);
  });

  it('follows the mix within tolerance over a 1 GiB disk', () => {
    const image = new ImageContent({ seed: 7, imageId: 'img', mix: DEFAULT_MIX });
    const counts = countKinds(image, 0, GiB);
    const mix = normalizeMix(DEFAULT_MIX);
    expect(counts.zero / GiB).toBeCloseTo(mix.zeros, 1);
    expect(Math.abs(counts.zero / GiB - mix.zeros)).toBeLessThan(0.015);
    expect(Math.abs(counts.random / GiB - mix.random)).toBeLessThan(0.015);
    expect(Math.abs(counts.repeated / GiB - mix.repeated)).toBeLessThan(0.01);
    expect(Math.abs(counts.text / GiB - mix.text)).toBeLessThan(0.01);
  });

  it('zero regions are really zero and reported as holes; random is incompressible-looking; text is words', async () => {
    const image = new ImageContent({ seed: 3, imageId: 'img' });
    const disk = image.disk('d', 64 * 1024 * 1024);
    const seen = new Set<string>();
    for (let region = 0; region < 1024 && seen.size < 4; region++) {
      const kind = image.regionKind(region);
      const bytes = await disk.read(region * REGION_BYTES, REGION_BYTES);
      const ext = await disk.extents(region * REGION_BYTES, REGION_BYTES);
      if (kind === 'zero') {
        expect(bytes.every((x) => x === 0)).toBe(true);
        expect(ext).toEqual([{ offset: region * REGION_BYTES, length: REGION_BYTES, type: 'hole' }]);
      } else {
        expect(ext[0]!.type).toBe('data');
        const distinct = new Set(bytes).size;
        if (kind === 'random') expect(distinct).toBeGreaterThan(250);
        if (kind === 'text') {
          expect(bytes.toString('latin1')).toMatch(/^[a-z \n]+$/);
          expect(bytes.toString('latin1').split('\n').length).toBeGreaterThan(20);
        }
      }
      seen.add(kind);
    }
    expect(seen.size).toBe(4);
  });

  it('repeated blocks are byte-identical at several offsets and across disks of one image', async () => {
    const image = new ImageContent({ seed: 5, imageId: 'img', poolBlocks: 64 });
    const disk = image.disk('a', 256 * 1024 * 1024);
    const other = image.disk('b', 256 * 1024 * 1024, { uniqueFraction: 0.5 });
    const byHash = new Map<string, number[]>();
    for (let block = 0; block < disk.blocks; block++) {
      if (image.blockKind(block) !== 'repeated') continue;
      const h = sha(await disk.read(block * CONTENT_BLOCK_BYTES, CONTENT_BLOCK_BYTES));
      byHash.set(h, [...(byHash.get(h) ?? []), block]);
    }
    const dupes = [...byHash.values()].filter((blocks) => blocks.length > 1);
    expect(dupes.length).toBeGreaterThan(32);
    const [first, second] = dupes[0]!;
    expect((await other.read(first! * CONTENT_BLOCK_BYTES, CONTENT_BLOCK_BYTES))
      .equals(await disk.read(second! * CONTENT_BLOCK_BYTES, CONTENT_BLOCK_BYTES))).toBe(true);
    // Unique regions differ between disks, shared ones do not.
    let same = 0;
    let differ = 0;
    for (let region = 0; region < 400; region++) {
      if (image.regionKind(region) !== 'random') continue;
      const x = await disk.read(region * REGION_BYTES, CONTENT_BLOCK_BYTES);
      const y = await other.read(region * REGION_BYTES, CONTENT_BLOCK_BYTES);
      if (x.equals(y)) same++;
      else differ++;
    }
    expect(same).toBeGreaterThan(20);
    expect(differ).toBeGreaterThan(20);
  });

  it('writes go to a sparse overlay; partial writes keep the rest of the block', async () => {
    const image = new ImageContent({ seed: 9, imageId: 'img' });
    const disk = image.disk('d', 16 * 1024 * 1024);
    let block = 0;
    while (image.blockKind(block) !== 'random') block++;
    const at = block * CONTENT_BLOCK_BYTES;
    const before = await disk.read(at, CONTENT_BLOCK_BYTES);
    await disk.write(at + 100, Buffer.from('hello'));
    const after = await disk.read(at, CONTENT_BLOCK_BYTES);
    expect(after.subarray(100, 105).toString()).toBe('hello');
    expect(after.subarray(0, 100).equals(before.subarray(0, 100))).toBe(true);
    expect(after.subarray(105).equals(before.subarray(105))).toBe(true);
    expect(disk.writtenBlocks).toBe(1);
    expect(disk.allocatedBytes()).toBe(CONTENT_BLOCK_BYTES);
    // A trimmed data block reads as zeros and shows as a hole.
    await disk.trim(at, CONTENT_BLOCK_BYTES);
    expect((await disk.read(at, CONTENT_BLOCK_BYTES)).every((x) => x === 0)).toBe(true);
    expect(await disk.extents(at, CONTENT_BLOCK_BYTES)).toEqual([{ offset: at, length: CONTENT_BLOCK_BYTES, type: 'hole' }]);
    await disk.writeZeroes(at, CONTENT_BLOCK_BYTES, { noHole: true });
    expect(await disk.extents(at, CONTENT_BLOCK_BYTES)).toEqual([{ offset: at, length: CONTENT_BLOCK_BYTES, type: 'zero' }]);
    // Writes into a zero region turn it into data there only.
    let zb = 0;
    while (image.blockKind(zb) !== 'zero') zb++;
    await disk.write(zb * CONTENT_BLOCK_BYTES + CONTENT_BLOCK_BYTES, Buffer.alloc(CONTENT_BLOCK_BYTES, 1));
    const regionStart = Math.floor(zb / REGION_BLOCKS) * REGION_BYTES;
    const ext = await disk.extents(regionStart, REGION_BYTES);
    expect(ext.find((e) => e.type === 'data')).toEqual({ offset: zb * CONTENT_BLOCK_BYTES + CONTENT_BLOCK_BYTES, length: CONTENT_BLOCK_BYTES, type: 'data' });
    await expect(disk.read(16 * 1024 * 1024 - 10, 11)).rejects.toMatchObject({ code: 'E_RANGE' });
  });

  it('extents agree block by block with what reads return, after scattered writes, trims and zeroes', async () => {
    const image = new ImageContent({ seed: 21, imageId: 'ext' });
    const size = 8 * 1024 * 1024 + 3 * 4096;
    const disk = image.disk('d', size);
    let x = 12345;
    const rand = (n: number) => { x = (Math.imul(x, 1103515245) + 12345) >>> 0; return x % n; };
    for (let i = 0; i < 60; i++) {
      const offset = rand(size - 70_000);
      const length = 1 + rand(70_000);
      const what = rand(3);
      if (what === 0) await disk.write(offset, Buffer.alloc(length, 1 + rand(255)));
      else if (what === 1) await disk.trim(offset, length);
      else await disk.writeZeroes(offset, length, { noHole: rand(2) === 0 });
    }
    const ext = await disk.extents(4096 * 5 + 100, size - 4096 * 5 - 100);
    expect(ext[0]!.offset).toBe(4096 * 5 + 100);
    expect(ext.reduce((s, e) => s + e.length, 0)).toBe(size - 4096 * 5 - 100);
    // Wherever an extent says hole or zero, the bytes are zero.
    for (const e of ext) {
      if (e.type === 'data') continue;
      const bytes = await disk.read(e.offset, e.length);
      expect(bytes.equals(Buffer.alloc(e.length))).toBe(true);
    }
    // Adjacent extents never share a type (they are merged).
    expect(ext.every((e, i) => i === 0 || e.type !== ext[i - 1]!.type)).toBe(true);
  });

  it('handles a disk whose size is not a whole number of blocks', async () => {
    const image = new ImageContent({ seed: 4, imageId: 'odd', mix: { zeros: 0, random: 1, repeated: 0, text: 0 } });
    const disk = image.disk('d', 10_000);
    const all = await disk.read(0, 10_000);
    expect(all.subarray(8192).equals(Buffer.alloc(1808))).toBe(false);
    await disk.write(9_999, Buffer.from([7]));
    const after = await disk.read(0, 10_000);
    expect(after[9_999]).toBe(7);
    expect(after.subarray(0, 9_999).equals(all.subarray(0, 9_999))).toBe(true);
    await disk.trim(8192, 1808);
    expect((await disk.read(8192, 1808)).equals(Buffer.alloc(1808))).toBe(true);
    // The short last block lives in a partial overlay chunk, so it reports data (that reads as zeros).
    expect(await disk.extents(0, 10_000)).toEqual([{ offset: 0, length: 10_000, type: 'data' }]);
    await disk.trim(0, 4096);
    expect(await disk.extents(0, 10_000)).toEqual([{ offset: 0, length: 4096, type: 'hole' }, { offset: 4096, length: 5904, type: 'data' }]);
    await expect(disk.write(9_999, Buffer.alloc(2))).rejects.toMatchObject({ code: 'E_NOSPC' });
  });

  it('keeps a 100 GiB disk sparse: scattered reads and writes hold only what was written', async () => {
    const image = new ImageContent({ seed: 11, imageId: 'big' });
    const disk = image.disk('d', 100 * GiB);
    const heapBefore = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
    let nonZero = 0;
    const zeros = Buffer.alloc(65536);
    for (let i = 0; i < 2000; i++) {
      const offset = Math.floor(((i * 2654435761) % 100_000) / 100_000 * (100 * GiB - 65536) / 4096) * 4096;
      const b = await disk.read(offset, 65536);
      if (!b.equals(zeros)) nonZero++;
      if (i % 10 === 0) await disk.write(offset, Buffer.alloc(4096, 0xab));
    }
    expect(nonZero).toBeGreaterThan(500);
    expect(disk.allocatedBytes()).toBe(200 * 4096);
    const ext = await disk.extents(0, 100 * GiB);
    const holeBytes = ext.filter((e) => e.type === 'hole').reduce((s, e) => s + e.length, 0);
    expect(holeBytes / (100 * GiB)).toBeGreaterThan(0.45);
    const heapAfter = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
    expect(heapAfter - heapBefore).toBeLessThan(200 * 1024 * 1024);
  });

  // A floor far below what it does (250-600 MiB/s, bench/wan-storage.bench.ts): the machine is shared.
  it('generates quickly (over 50 MiB/s of mixed content even on a busy machine)', async () => {
    const disk = new ImageContent({ seed: 1, imageId: 'speed' }).disk('d', GiB);
    const bytes = 128 * 1024 * 1024;
    const t0 = performanceNow();
    for (let off = 0; off < bytes; off += 1024 * 1024) await disk.read(off, 1024 * 1024);
    const seconds = (performanceNow() - t0) / 1000;
    expect(bytes / seconds).toBeGreaterThan(50 * 1024 * 1024);
  });
});

/** Tests may read real time; src/ may not. */
function performanceNow(): number {
  return globalThis.performance.now();
}
