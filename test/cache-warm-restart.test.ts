import { describe, expect, it } from 'vitest';
import { createCloudProxy, memoryCloudStores, type CloudStores } from '../src/proxy/cloud/index.js';
import { CacheIndex, indexStoreBytes } from '../src/proxy/layers/cache-index.js';
import { SecureCache } from '../src/proxy/layers/secure-cache.js';
import { SparseStore } from '../src/proxy/stores/sparse-store.js';
import { PAIRING_KEY, onpremBed, simulate } from './proxy-link-helpers.js';

const K = 4096;
const DISK = 1 << 22;
const CACHE = 8 << 20;

async function bed(seed: number) {
  const { world, disk, onprem } = await onpremBed(seed, DISK);
  const persistent = () => memoryCloudStores('vm1', DISK, { journalBytes: 16 << 20, cache: { capacityBytes: CACHE, blockBytes: K } });
  const open = (stores: CloudStores) => createCloudProxy(world, {
    name: 'vm1', onprem: 'onprem:7000', pairingKey: PAIRING_KEY, disk: { id: 'vm1', image: 'img' }, stores, rpoUs: 1_000_000,
    cacheCapacityBytes: CACHE, reconnectMinUs: 5_000, readAhead: false, prefetch: { blockBytes: K, maxConcurrent: 1 },
  });
  return { world, disk, onprem, persistent, open };
}

describe('a cache that survives restart', () => {
  it('a cloud proxy restarted over the same stores serves what it cached from the cache (no link READs)', async () => {
    const { world, disk, persistent, open } = await bed(11);
    const stores = persistent();
    const r = await simulate(world, async () => {
      const first = await open(stores);
      await first.device.read(0, 256 * K);
      await first.close();
      const again = await open(stores);
      const wire0 = again.wireBytes();
      const data = await again.device.read(0, 256 * K);
      const out = { data, reads: again.remote.stats.reads, wire: again.wireBytes() - wire0, restored: again.cache.stats().restored };
      await again.close();
      return out;
    });
    expect(r.data.equals(disk.readSync(0, 256 * K))).toBe(true);
    expect(r.restored).toBeGreaterThanOrEqual(256);
    expect(r.reads).toBe(0);
    expect(r.wire).toBeLessThan(4 * K);
  });

  it('a block the guest wrote is never served stale from the cache after the write shipped and the proxy restarted', async () => {
    const { world, disk, persistent, open } = await bed(12);
    const stores = persistent();
    const written = Buffer.alloc(8 * K, 0x3c);
    const r = await simulate(world, async () => {
      const first = await open(stores);
      await first.device.read(0, 64 * K);
      await first.device.write(16 * K, written);
      await first.device.flush();
      await first.drain();
      await first.close();
      // A new writer session forgets the written-granule map: only the cache's own drop keeps it honest.
      const again = await open(stores);
      const out = { data: await again.device.read(0, 64 * K), reads: again.remote.stats.reads };
      await again.close();
      return out;
    });
    const expected = disk.readSync(0, 64 * K);
    expect(expected.subarray(16 * K, 24 * K).equals(written)).toBe(true);
    expect(r.data.equals(expected)).toBe(true);
    // At most the written blocks came from on-prem again (one READ): the rest stayed cached.
    expect(r.reads).toBeLessThanOrEqual(1);
  });

  it('restart storm: a second proxy with the same name and an empty cache pays no per-block signature misses and gets its profile', async () => {
    const { world, onprem, open } = await bed(13);
    const r = await simulate(world, async () => {
      const first = await open(memoryCloudStores('vm1', DISK, { journalBytes: 16 << 20 }));
      for (let b = 0; b < 200; b += 4) await first.device.read(b * K, 4 * K);
      await first.close();
      const answered = onprem.stats().sigsAnswered;
      const second = await open(memoryCloudStores('vm1', DISK, { journalBytes: 16 << 20 }));
      for (let b = 0; b < 200; b += 4) await second.device.read(b * K, 4 * K);
      const out = { ...second.remote.stats, profileBlocks: second.remote.profileBlocks, answered: onprem.stats().sigsAnswered - answered, forgotten: onprem.stats().peerCachesForgotten };
      await second.close();
      return out;
    });
    expect(r.answered).toBe(0);
    expect(r.sigMisses).toBe(0);
    expect(r.refetches).toBe(0);
    expect(r.forgotten).toBe(1);
    expect(r.profileBlocks).toBeGreaterThanOrEqual(200);
  });
});

describe('secure cache index at rest', () => {
  const key = Buffer.alloc(32, 7);
  const fresh = (() => { let n = 0; return () => Buffer.alloc(16, ++n); })();

  async function reopen(store: SparseStore, idx: SparseStore, keyEpoch: number, writer: { epoch: number; fresh: boolean }) {
    const index = await CacheIndex.open(idx, K, fresh);
    await index.reconcile(writer, () => false);
    return { index, cache: await SecureCache.open({ key, keyEpoch, store, capacityBytes: 64 * K, blockBytes: K, index }) };
  }

  it('keeps blocks sealed under earlier epochs readable, seals new ones under the new epoch, and drops a torn slot', async () => {
    const store = new SparseStore('cs', SecureCache.storeBytes(64 * K, K));
    const idx = new SparseStore('ci', indexStoreBytes(64));
    const a = Buffer.alloc(K, 1);
    const b = Buffer.alloc(K, 2);
    const one = await reopen(store, idx, 1, { epoch: 1, fresh: true });
    await one.cache.put(5, a);
    await one.cache.put(6, b);
    await one.cache.persistIndex();
    const two = await reopen(store, idx, 2, { epoch: 1, fresh: false });
    expect(two.cache.stats().restored).toBe(2);
    expect((await two.cache.get(5))!.equals(a)).toBe(true);
    await two.cache.put(7, Buffer.alloc(K, 3));
    await two.cache.persistIndex();
    // A kill -9 mid-put: block 6's slot torn after its record was written.
    const slotOf6 = 1;
    store.writeSync(4096 + slotOf6 * (K + 16) + 100, Buffer.alloc(8, 0xff));
    const three = await reopen(store, idx, 3, { epoch: 1, fresh: false });
    expect(three.cache.blocks()).toEqual([5, 7]);
    expect((await three.cache.get(7))!.equals(Buffer.alloc(K, 3))).toBe(true);
    // The same epoch twice would repeat nonces: refused as before.
    await expect(reopen(store, idx, 3, { epoch: 1, fresh: false })).rejects.toMatchObject({ code: 'E_NONCE_REUSE' });
  });

  it('a damaged store header (one flipped bit of its epoch) starts the cache empty instead of refusing to start', async () => {
    const store = new SparseStore('cs', SecureCache.storeBytes(64 * K, K));
    const idx = new SparseStore('ci', indexStoreBytes(64));
    const one = await reopen(store, idx, 1, { epoch: 1, fresh: true });
    await one.cache.put(5, Buffer.alloc(K, 1));
    await one.cache.persistIndex();
    // Epoch 1 reads as 65537: without a crc the next session's epoch 2 was refused as a reused one.
    store.writeSync(25, Buffer.from([store.readSync(25, 1)[0]! ^ 0x01]));
    const two = await reopen(store, idx, 2, { epoch: 1, fresh: false });
    expect(two.cache.headerDamaged).toBe(true);
    expect(two.cache.blocks()).toEqual([]);
    expect(await two.cache.get(5)).toBeUndefined();
    // The header it wrote is whole again: the next session keeps what this one caches.
    await two.cache.put(6, Buffer.alloc(K, 2));
    await two.cache.persistIndex();
    const three = await reopen(store, idx, 3, { epoch: 1, fresh: false });
    expect(three.cache.headerDamaged).toBe(false);
    expect(three.cache.blocks()).toEqual([6]);
  });

  it('another writer session in between, or a different generation, leaves nothing trusted', async () => {
    const store = new SparseStore('cs', SecureCache.storeBytes(64 * K, K));
    const idx = new SparseStore('ci', indexStoreBytes(64));
    const one = await reopen(store, idx, 1, { epoch: 4, fresh: true });
    await one.cache.put(1, Buffer.alloc(K, 9));
    await one.cache.persistIndex();
    const gen = one.index.generation;
    // Writer session 5 was someone else's: we come back with 6.
    const two = await reopen(store, idx, 2, { epoch: 6, fresh: true });
    expect(two.cache.blocks()).toEqual([]);
    expect(two.index.generation).not.toBe(gen);
  });
});
