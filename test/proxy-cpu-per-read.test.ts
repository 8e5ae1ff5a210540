import { describe, expect, it } from 'vitest';
import { createHash, randomBytes as cryptoRandom } from 'node:crypto';
import { deflateRawSync } from 'node:zlib';
import { BlockError, E_INTEGRITY } from '../src/proxy/block-device.js';
import { contentSignature, looksRandom } from '../src/proxy/link/payload.js';
import { ReadPath } from '../src/proxy/layers/read-path.js';
import { SecureCache } from '../src/proxy/layers/secure-cache.js';
import { signatureOf } from '../src/proxy/layers/secure-cache-seal.js';
import { SparseStore } from '../src/proxy/stores/sparse-store.js';
import { SimWorld } from '../src/world/sim-world.js';
import { randomBytes } from './proxy-link-helpers.js';

const K = 4096;

/** Let promise chains that need no clock (the in-memory stores) run to the end. */
async function settle(): Promise<void> {
  for (let i = 0; i < 50; i++) await Promise.resolve();
}

/** A SparseStore that counts the I/O calls that reach it. */
class CountingStore extends SparseStore {
  reads = 0;
  writes = 0;
  /** While set, writes wait for it: a slow disk under the cache. */
  gate: Promise<void> | null = null;
  override async read(offset: number, length: number): Promise<Buffer> {
    this.reads++;
    return super.read(offset, length);
  }
  override async write(offset: number, data: Uint8Array): Promise<void> {
    this.writes++;
    if (this.gate) await this.gate;
    return super.write(offset, data);
  }
}

async function openCache(blocks: number, store = new CountingStore('cs', 4096 + blocks * (K + 16) + 4096)) {
  const cache = await SecureCache.open({ key: Buffer.alloc(32, 7), keyEpoch: 1, store, capacityBytes: blocks * K, blockBytes: K });
  store.reads = 0;
  store.writes = 0;
  return { cache, store };
}

/** A remote of random content that counts the reads that reach it. */
function countedRemote(world: SimWorld, bytes: number): { content: Buffer; remote: SparseStore; reads: { n: number } } {
  const content = randomBytes(world.rng('c'), bytes);
  const remote = new SparseStore('remote', bytes);
  remote.writeSync(0, content);
  const reads = { n: 0 };
  const read = remote.read.bind(remote);
  remote.read = async (o, l) => { reads.n++; return read(o, l); };
  return { content, remote, reads };
}

describe('cloud proxy CPU per read', () => {
  it('putMany seals a run of blocks into adjacent slots with one store write; getMany reads them back with one store read', async () => {
    const { cache, store } = await openCache(64);
    const world = new SimWorld(3);
    const data = randomBytes(world.rng('c'), 16 * K);
    const installed = await cache.putMany(Array.from({ length: 16 }, (_, i) => ({ block: 100 + i, data: data.subarray(i * K, (i + 1) * K) })), 1);
    expect(installed).toEqual(new Array(16).fill(true));
    expect(store.writes).toBe(1);
    const back = await cache.getMany([99, ...Array.from({ length: 16 }, (_, i) => 100 + i)]);
    expect(back[0]).toBeUndefined();
    expect(Buffer.concat(back.slice(1) as Buffer[]).equals(data)).toBe(true);
    expect(store.reads).toBe(1);
    expect(cache.stats()).toMatchObject({ hits: 16, misses: 1, puts: 16 });
    // Each block is still sealed on its own: one flipped byte fails only its block, loudly.
    const slot = 5;
    const at = 4096 + slot * (K + 16) + 10;
    const byte = store.readSync(at, 1);
    store.writeSync(at, Buffer.from([byte[0]! ^ 1]));
    await expect(cache.getMany([104, 105, 106])).rejects.toMatchObject({ code: E_INTEGRITY });
    expect(cache.has(105)).toBe(false);
    expect((await cache.get(104))!.equals(data.subarray(4 * K, 5 * K))).toBe(true);
    expect(cache.stats().integrityFailures).toBe(1);
  });

  it('a short last block and a non-adjacent slot are written and read correctly within a batch', async () => {
    const { cache, store } = await openCache(8);
    const a = Buffer.alloc(K, 'a');
    const b = Buffer.alloc(1000, 'b');
    const c = Buffer.alloc(K, 'c');
    // Slots 0, 1 (short), 2: the short block ends a run, so two writes.
    expect(await cache.putMany([{ block: 0, data: a }, { block: 1, data: b }, { block: 2, data: c }], 0)).toEqual([true, true, true]);
    expect(store.writes).toBe(2);
    const got = await cache.getMany([2, 1, 0]);
    expect(got[0]!.equals(c)).toBe(true);
    expect(got[1]!.equals(b)).toBe(true);
    expect(got[2]!.equals(a)).toBe(true);
  });

  it('putMany honours fill tickets per block: a block written while it was fetched is not installed', async () => {
    const { cache } = await openCache(8);
    const t1 = cache.beginFill(1);
    const t2 = cache.beginFill(2);
    cache.invalidate(2 * K, 1);
    const ok = await cache.putMany([{ block: 1, data: Buffer.alloc(K, 1), ticket: t1 }, { block: 2, data: Buffer.alloc(K, 2), ticket: t2 }], 0);
    expect(ok).toEqual([true, false]);
    expect(cache.has(1)).toBe(true);
    expect(cache.has(2)).toBe(false);
    expect(cache.stats().putsDropped).toBe(1);
  });

  it('findBySignature answers repeated content from memory while the cache holds it, and forgets it with its last holder', async () => {
    const { cache, store } = await openCache(16);
    const text = Buffer.alloc(K, 'boot script line ');
    for (let b = 0; b < 8; b++) await cache.put(b * 2, text, 0);
    store.reads = 0;
    const sig = signatureOf(text);
    for (let i = 0; i < 10; i++) expect((await cache.findBySignature(sig))!.equals(text)).toBe(true);
    expect(store.reads).toBe(1);
    expect(cache.stats().dedupHits).toBe(10);
    for (let b = 0; b < 8; b++) cache.invalidate(b * 2 * K, K);
    expect(await cache.findBySignature(sig)).toBeUndefined();
  });

  it('one-shot sha256 signatures equal the streaming hash', () => {
    const block = cryptoRandom(K);
    const expected = createHash('sha256').update(block).digest();
    expect(signatureOf(block).equals(expected)).toBe(true);
    expect(contentSignature(block).equals(expected)).toBe(true);
  });

  it('a read returns as soon as its data is fetched; the cache fill finishes behind it and a re-read joins it', async () => {
    const world = new SimWorld(5);
    const { content, remote, reads } = countedRemote(world, 64 * K);
    const { cache, store } = await openCache(64);
    let open!: () => void;
    store.gate = new Promise<void>((resolve) => { open = resolve; });
    const rp = new ReadPath({ world, cache, remote });
    expect((await rp.read(0, 8 * K)).equals(content.subarray(0, 8 * K))).toBe(true);
    expect(cache.has(0)).toBe(false);
    // The fill is still in flight: a second read joins it instead of fetching again.
    expect((await rp.read(K, 2 * K)).equals(content.subarray(K, 3 * K))).toBe(true);
    expect(reads.n).toBe(1);
    expect(rp.counters.joinedBlocks).toBe(2);
    open();
    store.gate = null;
    await settle();
    expect(cache.has(0) && cache.has(7)).toBe(true);
    expect((await rp.read(0, 8 * K)).equals(content.subarray(0, 8 * K))).toBe(true);
    expect(reads.n).toBe(1);
  });

  it('a cache store that fails loses only the cache copy: the read is served and the failure counted', async () => {
    const world = new SimWorld(6);
    const content = randomBytes(world.rng('c'), 16 * K);
    const remote = new SparseStore('remote', 16 * K);
    remote.writeSync(0, content);
    const { cache, store } = await openCache(16);
    store.write = async () => { throw new BlockError('E_IO', 'disk gone'); };
    const rp = new ReadPath({ world, cache, remote });
    expect((await rp.read(0, 4 * K)).equals(content.subarray(0, 4 * K))).toBe(true);
    await settle();
    expect(rp.counters.cacheWriteFailures).toBe(1);
    expect(cache.has(0)).toBe(false);
  });

  it('random-looking runs skip the trial deflate; text, zeros and mixed runs do not', () => {
    let missed = 0;
    for (let i = 0; i < 200; i++) if (!looksRandom(cryptoRandom(K))) missed++;
    expect(missed).toBeLessThan(3);
    const text = Buffer.from('#!/bin/sh\n# boot script line, libraries and config text\n'.repeat(80)).subarray(0, K);
    expect(looksRandom(text)).toBe(false);
    expect(looksRandom(Buffer.alloc(K))).toBe(false);
    expect(looksRandom(Buffer.concat([cryptoRandom(K), text]))).toBe(false);
    expect(deflateRawSync(Buffer.concat([cryptoRandom(K), text])).length).toBeLessThan(K * 1.5);
    expect(looksRandom(Buffer.concat([cryptoRandom(K), cryptoRandom(K)]))).toBe(true);
  });
});

describe('pushes are cached behind the foreground', () => {
  it('a block pushed while a read looks in the cache serves that read: it is not fetched again', async () => {
    const world = new SimWorld(9);
    const { content, remote, reads } = countedRemote(world, 64 * K);
    const { cache, store } = await openCache(64);
    await cache.put(0, content.subarray(0, K), 1);
    const rp = new ReadPath({ world, cache, remote });
    // Block 0 is cached, block 1 is not: the read awaits the cache's store read, and block 1's push lands then.
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const read = store.read.bind(store);
    store.read = async (o, l) => { await gate; return read(o, l); };
    const got = rp.read(0, 2 * K);
    await settle();
    await rp.acceptPush(K, content.subarray(K, 2 * K));
    release();
    expect((await got).equals(content.subarray(0, 2 * K))).toBe(true);
    expect(reads.n).toBe(0);
  });


  it('a pushed block serves a read at once, is sealed into the cache on a later tick, and is dropped on close', async () => {
    const world = new SimWorld(8);
    const { content, remote, reads } = countedRemote(world, 64 * K);
    const { cache, store } = await openCache(64);
    const rp = new ReadPath({ world, cache, remote });
    await rp.acceptPush(0, content.subarray(0, 32 * K));
    expect(rp.counters.pushedBlocks).toBe(32);
    // Not sealed yet: accepting a push does no cache work in the push's own turn.
    expect(cache.stats().blocks).toBe(0);
    expect(store.writes).toBe(0);
    expect((await rp.read(4 * K, 8 * K)).equals(content.subarray(4 * K, 12 * K))).toBe(true);
    expect(reads.n).toBe(0);
    await world.run({ untilUs: world.clock.nowUs() + 1 });
    await rp.settlePushes();
    expect(cache.stats().blocks).toBe(32);
    // 32 adjacent 4 KiB blocks: one 128 KiB store write.
    expect(store.writes).toBe(1);
    // Blocks a read used were cached as demand blocks: only the 24 unread ones count as prefetched.
    await rp.read(0, 32 * K);
    expect(cache.stats().prefetchHits).toBe(24);
    expect(reads.n).toBe(0);
    await rp.acceptPush(32 * K, content.subarray(32 * K, 40 * K));
    await rp.close();
    expect(rp.counters.pushesDropped).toBe(8);
    expect(cache.has(32)).toBe(false);
  });
});
