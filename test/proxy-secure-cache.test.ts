import { describe, expect, it } from 'vitest';
import { SparseStore } from '../src/proxy/stores/sparse-store.js';
import { CacheLayer } from '../src/proxy/layers/cache-layer.js';
import { SecureCache } from '../src/proxy/layers/secure-cache.js';
import { signatureOf } from '../src/proxy/layers/secure-cache-seal.js';
import type { BlockDevice } from '../src/proxy/block-device.js';
import { Layer } from '../src/proxy/layer.js';
import { createRng } from '../src/world/rng.js';

const KiB = 1024;
const B = 4 * KiB;
const KEY = Buffer.alloc(32, 0x5a);

function storeFor(blocks: number, blockBytes = B): SparseStore {
  return new SparseStore('cache-store', 4096 + blocks * (blockBytes + 16) + 4096);
}

function open(store: SparseStore, capacityBlocks: number, keyEpoch = 1): Promise<SecureCache> {
  return SecureCache.open({ key: KEY, keyEpoch, store, capacityBytes: capacityBlocks * B, blockBytes: B });
}

function block(fill: string, n = B): Buffer {
  return Buffer.alloc(n, fill);
}

/** Counts reads that reach the device below. */
class Counting extends Layer {
  readonly name = 'counting';
  reads = 0;
  bytes = 0;
  override async read(offset: number, length: number): Promise<Buffer> {
    this.reads++;
    this.bytes += length;
    return this.below.read(offset, length);
  }
}

describe('SecureCache', () => {
  it('never lets the plaintext (or the key) reach the backing store', async () => {
    const store = storeFor(64);
    const cache = await open(store, 64);
    const disk = new SparseStore('disk', 64 * B);
    const marker = Buffer.from('SPILLWAY-PLAINTEXT-MARKER:');
    const text = Buffer.alloc(16 * B);
    for (let i = 0; i < text.length; i += marker.length) marker.copy(text, i);
    disk.writeSync(0, text);
    const layer = new CacheLayer(disk, cache);
    expect((await layer.read(0, 16 * B)).equals(text)).toBe(true);
    await layer.write(20 * B, text.subarray(0, 4 * B));
    expect(cache.stats().blocks).toBe(20);
    const raw = store.readSync(0, store.size());
    expect(raw.indexOf(marker.subarray(0, 12))).toBe(-1);
    expect(raw.indexOf(KEY.subarray(0, 16))).toBe(-1);
    // The data is really there, just sealed: a cache hit gives it back without touching the disk.
    expect((await layer.read(20 * B, 4 * B)).equals(text.subarray(0, 4 * B))).toBe(true);
    expect(layer.stats().readHits).toBe(1);
  });

  it('fails loudly with E_INTEGRITY on one flipped byte, never with wrong data', async () => {
    const store = storeFor(8);
    const cache = await open(store, 8);
    const disk = new SparseStore('disk', 8 * B);
    disk.writeSync(0, block('a', 8 * B));
    const layer = new CacheLayer(disk, cache);
    await layer.read(0, 8 * B);
    const raw = store.readSync(0, store.size());
    // Flip a byte in the middle of the third slot's ciphertext.
    const at = 4096 + 2 * (B + 16) + 100;
    store.writeSync(at, Buffer.from([raw[at]! ^ 0x01]));
    const results = await Promise.allSettled([0, 1, 2, 3].map((b) => cache.get(b)));
    const failed = results.filter((r) => r.status === 'rejected');
    expect(failed).toHaveLength(1);
    expect((failed[0] as PromiseRejectedResult).reason.code).toBe('E_INTEGRITY');
    for (const r of results) if (r.status === 'fulfilled') expect(r.value!.equals(block('a'))).toBe(true);
    expect(cache.stats().integrityFailures).toBe(1);
    // The bad block was dropped: the next read through the layer refetches it from below.
    expect((await layer.read(0, 8 * B)).equals(block('a', 8 * B))).toBe(true);

    // A tag flip, and a ciphertext moved into another block's slot, fail the same way.
    const tagAt = 4096 + 5 * (B + 16) + B + 3;
    store.writeSync(tagAt, Buffer.from([raw[tagAt]! ^ 0x80]));
    await expect(layer.read(5 * B, 10)).rejects.toMatchObject({ code: 'E_INTEGRITY' });
    store.writeSync(4096 + 6 * (B + 16), store.readSync(4096 + 7 * (B + 16), B + 16));
    await expect(cache.get(6)).rejects.toMatchObject({ code: 'E_INTEGRITY' });
  });

  it('refuses to reuse a key epoch on the same store (no nonce reuse) and rejects bad keys', async () => {
    const store = storeFor(4);
    await open(store, 4, 7);
    await expect(open(store, 4, 7)).rejects.toMatchObject({ code: 'E_NONCE_REUSE' });
    await expect(open(store, 4, 3)).rejects.toMatchObject({ code: 'E_NONCE_REUSE' });
    await expect(open(store, 4, 8)).resolves.toBeInstanceOf(SecureCache);
    await expect(SecureCache.open({ key: Buffer.alloc(16), keyEpoch: 1, store, capacityBytes: B, blockBytes: B })).rejects.toThrow(/key must be 32 bytes/);
    await expect(open(storeFor(2), 100)).rejects.toMatchObject({ code: 'E_NOSPC' });
  });

  it('evicts the lowest priority first, least recently used within a priority', async () => {
    const cache = await open(storeFor(8), 4);
    await cache.put(0, block('0'), 5);
    await cache.put(1, block('1'), 1);
    await cache.put(2, block('2'), 1);
    await cache.put(3, block('3'), 5);
    await cache.get(1); // 1 is now more recent than 2 among priority 1
    expect(cache.evictionOrder()).toEqual([2, 1, 0, 3]);
    await cache.put(4, block('4'), 3);
    expect(cache.blocks()).toEqual([0, 1, 3, 4]);
    await cache.put(5, block('5'), 3);
    expect(cache.blocks()).toEqual([0, 3, 4, 5]);
    await cache.get(0);
    await cache.put(6, block('6'), 9);
    expect(cache.blocks()).toEqual([0, 3, 5, 6]);
    expect(cache.stats().evictions).toBe(3);
    expect((await cache.get(5))!.equals(block('5'))).toBe(true);
  });

  it('serves dedup by content signature', async () => {
    const cache = await open(storeFor(4), 4);
    await cache.put(3, block('s'), 0);
    expect((await cache.findBySignature(signatureOf(block('s'))))!.equals(block('s'))).toBe(true);
    expect((await cache.findBySignature(signatureOf(block('s')).toString('hex')))!.equals(block('s'))).toBe(true);
    expect(await cache.findBySignature(signatureOf(block('t')))).toBeUndefined();
    expect(cache.signature(3)).toBe(signatureOf(block('s')).toString('hex'));
    cache.invalidate(3 * B + 10, 1);
    expect(await cache.findBySignature(signatureOf(block('s')))).toBeUndefined();
    expect(cache.stats().dedupHits).toBe(2);
  });

  it('resizes online under load: never wrong data, capacity respected, shrink gives space back', async () => {
    const store = storeFor(64);
    const cache = await open(store, 64);
    const rng = createRng(11, 'cache-load');
    const content = (b: number): Buffer => block(String.fromCharCode(65 + (b % 26)));
    const work: Array<Promise<unknown>> = [];
    let wrong = 0;
    for (let round = 0; round < 30; round++) {
      for (let i = 0; i < 20; i++) {
        const b = rng.int(0, 200);
        if (rng.chance(0.5)) work.push(cache.put(b, content(b), rng.int(0, 3)));
        else work.push(cache.get(b).then((d) => { if (d && !d.equals(content(b))) wrong++; }));
      }
      work.push(cache.resize(rng.pick([0, 4, 16, 32, 64]) * B));
      if (round % 5 === 4) await Promise.all(work.splice(0));
    }
    await Promise.all(work);
    await cache.resize(64 * B);
    for (let b = 0; b < 64; b++) await cache.put(b, content(b), 0);
    expect(store.allocatedBytes()).toBeGreaterThan(4 * store.chunkBytes);
    await cache.resize(8 * B);
    expect(wrong).toBe(0);
    expect(cache.stats().blocks).toBeLessThanOrEqual(8);
    for (const b of cache.blocks()) expect((await cache.get(b))!.equals(content(b))).toBe(true);
    for (let b = 300; b < 320; b++) await cache.put(b, content(b), 1);
    expect(cache.stats().blocks).toBe(8);
    // The shrink trimmed the store behind the new end: 8 sealed blocks fit in the first 64 KiB
    // chunk; a SparseStore frees whole chunks only, so the one cut by the old end stays (zeroed).
    expect(store.allocatedBytes()).toBeLessThanOrEqual(2 * store.chunkBytes);
    await expect(cache.resize(1000 * B)).rejects.toMatchObject({ code: 'E_NOSPC' });
  });
});

describe('CacheLayer', () => {
  it('joins a read with a prefetch of the same blocks in flight (one fetch below)', async () => {
    const disk = new SparseStore('disk', 32 * B);
    disk.writeSync(0, block('p', 32 * B));
    const below = new Counting(disk);
    const layer = new CacheLayer(below, await open(storeFor(32), 32));
    const pre = layer.prefetch(0, 8 * B, 0);
    const read = layer.read(2 * B, 3 * B);
    await Promise.all([pre, read]);
    expect(below.reads).toBe(1);
    expect((await read).equals(block('p', 3 * B))).toBe(true);
    expect(layer.stats().joinedFills).toBe(3);
    await layer.read(0, 8 * B);
    expect(below.reads).toBe(1);
    expect(layer.cache.stats().prefetchHits).toBe(8 - 3);
  });

  it('never installs a fill that raced a write', async () => {
    const disk = new SparseStore('disk', 8 * B);
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const slow: BlockDevice = new (class extends Layer {
      readonly name = 'slow';
      override async read(offset: number, length: number): Promise<Buffer> {
        const data = await this.below.read(offset, length);
        await gate;
        return data;
      }
    })(disk);
    const layer = new CacheLayer(slow, await open(storeFor(8), 8));
    const staleRead = layer.read(0, B);
    await new Promise((r) => setImmediate(r)); // the fill has read the old bytes and waits at the gate
    await layer.write(0, block('n'));
    release();
    expect((await staleRead).equals(Buffer.alloc(B))).toBe(true); // the read raced the write: old bytes are a valid answer
    expect((await layer.read(0, B)).equals(block('n'))).toBe(true); // but the cache must not keep the stale one
    await layer.write(B + 5, Buffer.from('partial'));
    expect(layer.cache.has(1)).toBe(false);
    expect((await layer.read(B, 20)).subarray(5, 12).toString()).toBe('partial');
  });
});
