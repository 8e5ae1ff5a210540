import { describe, expect, it } from 'vitest';
import { BlockError } from '../src/proxy/block-device.js';
import { SparseStore } from '../src/proxy/stores/sparse-store.js';

const GiB = 1024 ** 3;

describe('SparseStore', () => {
  it('holds a huge disk at the cost of what was written', async () => {
    const disk = new SparseStore('d', 100 * GiB);
    await disk.write(37 * GiB + 123, Buffer.from('hello, spillway'));
    expect(disk.allocatedBytes()).toBe(disk.chunkBytes);
    expect((await disk.read(37 * GiB + 123, 15)).toString()).toBe('hello, spillway');
    expect((await disk.read(0, 8)).equals(Buffer.alloc(8))).toBe(true);
  });

  it('reads and writes across chunk boundaries', async () => {
    const disk = new SparseStore('d', 1024 * 1024, 4096);
    const data = Buffer.alloc(10_000, 7);
    await disk.write(4000, data);
    const back = await disk.read(3990, 10_030);
    expect(back.subarray(0, 10).equals(Buffer.alloc(10))).toBe(true);
    expect(back.subarray(10, 10_010).equals(data)).toBe(true);
    expect(back.subarray(10_010).equals(Buffer.alloc(20))).toBe(true);
  });

  it('reads holes as zeros into a dirty buffer, and a read is not changed by a later write', async () => {
    const disk = new SparseStore('d', 1024 * 1024, 4096);
    await disk.write(4096, Buffer.alloc(4096, 9));
    await disk.writeZeroes(8192, 4096, { noHole: true });
    const target = Buffer.alloc(3 * 4096 + 10, 0xee);
    disk.readInto(2048, 3 * 4096, target, 10);
    expect(target.subarray(0, 10).equals(Buffer.alloc(10, 0xee))).toBe(true);
    expect(target.subarray(10, 10 + 2048).equals(Buffer.alloc(2048))).toBe(true);
    expect(target.subarray(10 + 2048, 10 + 6144).equals(Buffer.alloc(4096, 9))).toBe(true);
    expect(target.subarray(10 + 6144).equals(Buffer.alloc(6144))).toBe(true);
    expect(() => disk.readInto(0, 4096, Buffer.alloc(100), 0)).toThrow(RangeError);
    const before = await disk.read(0, 3 * 4096);
    await disk.write(4096, Buffer.alloc(4096, 1));
    expect(before.subarray(4096, 8192).equals(Buffer.alloc(4096, 9))).toBe(true);
    expect(before.subarray(8192).equals(Buffer.alloc(4096))).toBe(true);
  });

  it('reports holes, zero-allocated and data extents that cover the range exactly', async () => {
    const disk = new SparseStore('d', 64 * 1024, 4096);
    await disk.write(4096, Buffer.alloc(4096, 1));
    await disk.writeZeroes(8192, 8192, { noHole: true });
    await disk.write(20_000, Buffer.alloc(10, 2));
    await disk.trim(4096, 4096);
    expect(await disk.extents(0, 64 * 1024)).toEqual([
      { offset: 0, length: 8192, type: 'hole' },
      { offset: 8192, length: 8192, type: 'zero' },
      { offset: 16384, length: 4096, type: 'data' },
      { offset: 20480, length: 45056, type: 'hole' },
    ]);
    expect(await disk.extents(100, 50)).toEqual([{ offset: 100, length: 50, type: 'hole' }]);
  });

  it('walks only allocated chunks on a huge sparse range', async () => {
    const disk = new SparseStore('d', 1024 * GiB);
    await disk.write(512 * GiB, Buffer.alloc(1, 1));
    const ext = await disk.extents(0, 1024 * GiB);
    expect(ext.map((e) => e.type)).toEqual(['hole', 'data', 'hole']);
    expect(ext.reduce((n, e) => n + e.length, 0)).toBe(1024 * GiB);
  });

  it('refuses out-of-range requests with stable codes', async () => {
    const disk = new SparseStore('d', 1000);
    await expect(disk.read(990, 20)).rejects.toMatchObject({ code: 'E_RANGE' });
    await expect(disk.write(999, Buffer.alloc(2))).rejects.toMatchObject({ code: 'E_NOSPC' });
    await expect(disk.read(-1, 1)).rejects.toBeInstanceOf(BlockError);
    await disk.close();
    await expect(disk.read(0, 1)).rejects.toMatchObject({ code: 'E_CLOSED' });
  });
});
