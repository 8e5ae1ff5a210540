import { describe, expect, it } from 'vitest';
import { SparseStore } from '../src/proxy/stores/sparse-store.js';
import { SnapshotDelta } from '../src/providers/emulated/hypervisor/snapshot-disk.js';

function base(): SparseStore {
  const s = new SparseStore('base', 1 << 20);
  s.writeSync(0, Buffer.alloc(8192, 0xaa));
  return s;
}

describe('SnapshotDelta', () => {
  it('reads the frozen state until written, then the delta; partial writes keep the rest of the block', async () => {
    const frozen = base();
    const d = new SnapshotDelta(frozen, 't');
    expect((await d.read(0, 4)).equals(Buffer.alloc(4, 0xaa))).toBe(true);
    await d.write(100, Buffer.from('hello'));
    const block = await d.read(0, 4096);
    expect(block.subarray(100, 105).toString()).toBe('hello');
    expect(block[99]).toBe(0xaa);
    expect(block[105]).toBe(0xaa);
    // The frozen state never changes.
    expect(frozen.readSync(100, 5).equals(Buffer.alloc(5, 0xaa))).toBe(true);
    // A read spanning delta and frozen blocks stitches both.
    const span = await d.read(4000, 8192);
    expect(span[0]).toBe(0xaa);
    expect(span[4191]).toBe(0xaa);
    expect(span[5000]).toBe(0);
    expect(d.deltaBytes()).toBe(4096);
  });

  it('zeroes and trims in the delta only, and reports extents of both', async () => {
    const frozen = base();
    const d = new SnapshotDelta(frozen, 't');
    await d.writeZeroes(4096, 4096);
    expect((await d.read(4096, 4096)).every((b) => b === 0)).toBe(true);
    expect(frozen.readSync(4096, 1)[0]).toBe(0xaa);
    await d.write(65536, Buffer.alloc(4096, 1));
    const ext = await d.extents(0, 1 << 20);
    expect(ext[0]).toEqual({ offset: 0, length: 4096, type: 'data' });
    expect(ext[1]).toEqual({ offset: 4096, length: 4096, type: 'zero' });
    const typeAt = (off: number): string | undefined => ext.find((e) => e.offset <= off && off < e.offset + e.length)?.type;
    expect(typeAt(65536)).toBe('data');
    expect(typeAt(512 * 1024)).toBe('hole');
    expect(ext.reduce((a, e) => a + e.length, 0)).toBe(1 << 20);
  });

  it('refuses writes past the end like any device', async () => {
    const d = new SnapshotDelta(base(), 't');
    await expect(d.write((1 << 20) - 2, Buffer.alloc(4))).rejects.toMatchObject({ code: 'E_NOSPC' });
  });
});
