import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileStore } from '../src/proxy/stores/file-store.js';
import { SecureCache } from '../src/proxy/layers/secure-cache.js';
import { SimWorld } from '../src/world/sim-world.js';

const dir = mkdtempSync(join(tmpdir(), 'spillway-file-store-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const GiB = 1024 ** 3;

describe('FileStore', () => {
  it('is a sparse file: a write far out costs one block, and it reads back after reopen', async () => {
    const path = join(dir, 'disk.img');
    const f = await FileStore.open(path, { sizeBytes: 10 * GiB });
    expect(f.size()).toBe(10 * GiB);
    expect(await f.extents(0, 4096)).toEqual([{ offset: 0, length: 4096, type: 'hole' }]);
    await f.write(7 * GiB + 3, Buffer.from('far out'));
    await f.flush();
    expect(statSync(path).blocks * 512).toBeLessThan(1024 * 1024);
    expect(await f.extents(0, 4096)).toEqual([{ offset: 0, length: 4096, type: 'data' }]);
    await f.close();
    const g = await FileStore.open(path);
    expect(g.size()).toBe(10 * GiB);
    expect((await g.read(7 * GiB, 10)).subarray(3).toString()).toBe('far out');
    expect((await g.read(0, 16)).equals(Buffer.alloc(16))).toBe(true);
    await g.close();
  });

  it('zeroes by writing zeros, refuses FAST_ZERO, and checks ranges', async () => {
    const f = await FileStore.open(join(dir, 'z.img'), { sizeBytes: 3 * 1024 * 1024 });
    await f.write(0, Buffer.alloc(3 * 1024 * 1024, 0xee));
    await f.trim(1000, 2 * 1024 * 1024 + 5);
    const back = await f.read(0, 3 * 1024 * 1024);
    expect(back.subarray(0, 1000).every((b) => b === 0xee)).toBe(true);
    expect(back.subarray(1000, 1000 + 2 * 1024 * 1024 + 5).every((b) => b === 0)).toBe(true);
    expect(back[1000 + 2 * 1024 * 1024 + 5]).toBe(0xee);
    await expect(f.writeZeroes(0, 10, { fastZero: true })).rejects.toMatchObject({ code: 'E_FAST_ZERO_UNSUPPORTED' });
    await expect(f.write(3 * 1024 * 1024 - 2, Buffer.alloc(4))).rejects.toMatchObject({ code: 'E_NOSPC' });
    await expect(f.read(-1, 4)).rejects.toMatchObject({ code: 'E_RANGE' });
    await f.close();
    await expect(f.read(0, 1)).rejects.toMatchObject({ code: 'E_CLOSED' });
  });

  it('opens read-only without changing the file, and refuses writes', async () => {
    const path = join(dir, 'ro.img');
    await (await FileStore.open(path, { sizeBytes: 8192 })).close();
    const ro = await FileStore.open(path, { readOnly: true });
    await expect(ro.write(0, Buffer.alloc(1))).rejects.toMatchObject({ code: 'E_READONLY' });
    await ro.close();
    await expect(FileStore.open(join(dir, 'missing.img'), { readOnly: true })).rejects.toMatchObject({ code: 'E_IO' });
  });

  it('runs inside a simulation through world.external, and backs a secure cache in a cache dir', async () => {
    const world = new SimWorld(1);
    const run = (async () => {
      const store = await FileStore.open(join(dir, 'cache.bin'), { sizeBytes: 1024 * 1024, world, latencyUs: 100 });
      const cache = await SecureCache.open({ key: Buffer.alloc(32, 4), keyEpoch: 1, store, capacityBytes: 256 * 1024, blockBytes: 4096 });
      await cache.put(3, Buffer.alloc(4096, 0x61));
      const back = await cache.get(3);
      await store.close();
      return back;
    })();
    await world.run();
    expect((await run)!.equals(Buffer.alloc(4096, 0x61))).toBe(true);
    expect(world.nowUs).toBeGreaterThanOrEqual(500);
  });
});
