import { describe, expect, it } from 'vitest';
import { BlockError } from '../src/proxy/block-device.js';
import { createCloudProxy, memoryCloudStores, type CloudStores } from '../src/proxy/cloud/index.js';
import { createOnpremProxy } from '../src/proxy/onprem/index.js';
import { E_NOT_HELD, ReadPath } from '../src/proxy/layers/read-path.js';
import { SecureCache } from '../src/proxy/layers/secure-cache.js';
import { SparseStore } from '../src/proxy/stores/sparse-store.js';
import { SimWorld } from '../src/world/sim-world.js';
import { LiveWorld } from '../src/world/live-world.js';
import { directLink } from '../src/world/sim-net.js';
import { PAIRING_KEY, onpremBed, randomBytes, simulate } from './proxy-link-helpers.js';

const K = 4096;
const DISK = 1 << 22;

async function bed(seed: number) {
  const { world, disk, onprem } = await onpremBed(seed, DISK);
  const stores = memoryCloudStores('vm1', DISK, { journalBytes: 16 << 20 });
  const open = (s: CloudStores = stores, rpoUs = 10_000_000) => createCloudProxy(world, {
    name: 'vm1', onprem: 'onprem:7000', pairingKey: PAIRING_KEY, disk: { id: 'vm1', image: 'img' }, stores: s, rpoUs,
    cacheCapacityBytes: 8 << 20, reconnectMinUs: 5_000,
  });
  return { world, disk, onprem, stores, open };
}

/** A block device that counts reads, for checking which FIG 5 source served a read. */
function counted(device: SparseStore): SparseStore & { reads: number } {
  const d = device as SparseStore & { reads: number };
  d.reads = 0;
  const read = d.read.bind(d);
  d.read = async (o, l) => { d.reads++; return read(o, l); };
  return d;
}

describe('read path (FIG 5, FIG 14)', () => {
  it('serves from the cache, then local drives, then sibling clones, then the remote; fills the cache', async () => {
    const world = new SimWorld(1);
    const content = randomBytes(world.rng('c'), 64 * K);
    const remote = counted(new SparseStore('remote', 64 * K));
    remote.writeSync(0, content);
    const local = new SparseStore('local', 64 * K);
    local.writeSync(0, content.subarray(0, 8 * K));
    const siblingStore = new SparseStore('sibling', 64 * K);
    siblingStore.writeSync(8 * K, content.subarray(8 * K, 16 * K));
    const sibling = {
      ...siblingStore, name: 'sibling', size: () => 64 * K,
      read: async (o: number, l: number) => {
        if (o >= 8 * K && o + l <= 16 * K) return siblingStore.readSync(o, l);
        throw new BlockError(E_NOT_HELD, 'not here');
      },
    } as unknown as SparseStore;
    const cache = await SecureCache.open({ key: Buffer.alloc(32, 1), keyEpoch: 1, store: new SparseStore('cs', 2 << 20), capacityBytes: 256 * K, blockBytes: K });
    const rp = new ReadPath({ world, cache, remote, locals: [{ device: local, holds: (o, l) => o + l <= 8 * K }], siblings: [sibling] });
    expect((await rp.read(0, 4 * K)).equals(content.subarray(0, 4 * K))).toBe(true);
    expect((await rp.read(8 * K, 4 * K)).equals(content.subarray(8 * K, 12 * K))).toBe(true);
    expect((await rp.read(32 * K, 4 * K)).equals(content.subarray(32 * K, 36 * K))).toBe(true);
    expect(rp.counters).toMatchObject({ localBlocks: 4, siblingBlocks: 4, remoteBlocks: 4, remoteFetches: 1 });
    expect(remote.reads).toBe(1);
    // Now all three ranges are cached: no source below is asked again.
    await rp.read(0, 4 * K);
    await rp.read(8 * K, 4 * K);
    await rp.read(32 * K, 4 * K);
    expect(rp.counters.cacheBlocks).toBe(12);
    expect(remote.reads).toBe(1);
    // Its clean view serves another clone only what it holds.
    const view = rp.cleanView();
    expect((await view.read(32 * K, 4 * K)).equals(content.subarray(32 * K, 36 * K))).toBe(true);
    await expect(view.read(48 * K, K)).rejects.toMatchObject({ code: E_NOT_HELD });
    await expect(rp.write()).rejects.toMatchObject({ code: 'E_READONLY' });
  });
});

describe('cloud edge proxy', () => {
  it('a remote signature reply is served from the cache when the content is there (dedup)', async () => {
    const { world, disk, open } = await bed(2);
    const block = randomBytes(world.rng('dup'), K);
    for (let i = 0; i < 16; i++) disk.writeSync((600 + i * 7) * K, block);
    const r = await simulate(world, async () => {
      const p = await open();
      await p.device.read(600 * K, K);
      const w0 = p.wireBytes();
      for (let i = 1; i < 16; i++) expect((await p.device.read((600 + i * 7) * K, K)).equals(block)).toBe(true);
      const wire = p.wireBytes() - w0;
      const stats = { ...p.remote.stats };
      await p.close();
      return { wire, stats };
    });
    expect(r.stats.sigHits).toBe(15);
    expect(r.wire).toBeLessThan(15 * K / 4);
  });

  it('an acknowledged write survives a crash before it shipped: the restart replays the journal and ships it', async () => {
    const { world, disk, open } = await bed(3);
    const data = Buffer.alloc(3 * K, 0x5e);
    await simulate(world, async () => {
      const p = await open(undefined, 60_000_000);
      await p.device.write(100 * K, data);
      expect(p.writeBehind.stats().backlogBytes).toBeGreaterThan(0);
      p.crash();
      expect(disk.readSync(100 * K, 3 * K).equals(data)).toBe(false);
      const again = await open();
      expect((await again.device.read(100 * K, 3 * K)).equals(data)).toBe(true);
      await again.drain();
      await again.close();
    });
    expect(disk.readSync(100 * K, 3 * K).equals(data)).toBe(true);
  });

  it('a second session with fresh stores (a new cloud host, a wiped cache dir) ships its writes; its seqs are its own', async () => {
    const { world, disk, onprem, open } = await bed(13);
    const first = Buffer.alloc(2 * K, 0x11);
    const second = Buffer.alloc(2 * K, 0x22);
    const grants = await simulate(world, async () => {
      const a = await open(memoryCloudStores('a', DISK));
      await a.device.write(10 * K, first);
      await a.drain();
      await a.close();
      // The journal of this session starts empty, so its first group is seq 1 again.
      const b = await open(memoryCloudStores('b', DISK));
      await b.device.write(20 * K, second);
      await b.drain();
      await b.close();
      return [a.remote.writer, b.remote.writer];
    });
    expect(disk.readSync(10 * K, 2 * K).equals(first)).toBe(true);
    expect(disk.readSync(20 * K, 2 * K).equals(second)).toBe(true);
    expect(grants.map((g) => [g!.epoch, g!.fresh])).toEqual([[1, true], [2, true]]);
    expect(onprem.appliers.get('vm1')!.duplicates).toBe(0);
  });

  it('a session that resumes over its stores after another writer came does not serve its stale copy of on-prem writes', async () => {
    const { world, disk, open } = await bed(14);
    const storesA = memoryCloudStores('a', DISK);
    const seen = await simulate(world, async () => {
      const a = await open(storesA);
      await a.device.write(30 * K, Buffer.alloc(K, 0xa1));
      await a.drain();
      await a.close();
      const b = await open(memoryCloudStores('b', DISK));
      await b.device.write(30 * K, Buffer.alloc(K, 0xb2));
      await b.drain();
      await b.close();
      const again = await open(storesA);
      const byte = (await again.device.read(30 * K, K))[0];
      await again.close();
      return { byte, fresh: again.remote.writer!.fresh };
    });
    expect(seen).toEqual({ byte: 0xb2, fresh: true });
    expect(disk.readSync(30 * K, 1)[0]).toBe(0xb2);
  });

  it('a link drop mid-batch loses nothing and applies nothing twice', async () => {
    const { world, disk, onprem, open } = await bed(4);
    const model = disk.readSync(0, DISK);
    await simulate(world, async () => {
      const p = await open(undefined, 1_000_000);
      for (let i = 0; i < 40; i++) {
        const d = randomBytes(world.rng('w'), 16 * K);
        await p.device.write(i * 16 * K, d);
        d.copy(model, i * 16 * K);
      }
      const drained = p.drain();
      // Cut the link while the groups are on the wire, twice.
      await world.clock.sleepUs(10_000);
      p.link.dropConnection();
      await world.clock.sleepUs(30_000);
      onprem.dropConnections();
      await drained;
      await p.close();
    });
    expect(disk.readSync(0, DISK).equals(model)).toBe(true);
    for (const [, n] of onprem.appliers.get('vm1')!.applications) expect(n).toBe(1);
  });

  it('pushed blocks fill the cache, a warm re-read goes to no source below the cache, and proxy.stats is traced', async () => {
    const { world, open } = await bed(5);
    const events: Array<Record<string, unknown>> = [];
    world.trace.subscribe((e) => { if (e.type === 'proxy.stats') events.push(e.data); });
    await simulate(world, async () => {
      const p = await open();
      await p.device.read(0, 64 * K);
      for (let i = 0; i < 8; i++) await p.device.read(64 * K + i * 64 * K, 64 * K); // sequential: read-ahead pushes
      await world.clock.sleepUs(500_000);
      const before = { ...p.readPath.counters };
      await p.device.read(0, 8 * 64 * K);
      expect(p.readPath.counters.remoteFetches).toBe(before.remoteFetches);
      expect(p.readPath.counters.cacheBlocks - before.cacheBlocks).toBeGreaterThanOrEqual(8 * 16);
      expect(p.readPath.counters.pushedBlocks).toBeGreaterThan(0);
      p.emitStats();
      await p.close();
    });
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ cacheCapacity: 8 << 20 });
    expect(events[0]!.guestBytes).toBe(17 * 64 * K);
  });
});

describe('cloud edge proxy: profile streaming into a small cache', () => {
  it('reads after pushes never pay a second round trip, even with signature pushes and a cache smaller than the stream', async () => {
    const world = new SimWorld(9);
    world.net.setLink('onprem:7000', directLink(world.clock, 20_000));
    const disk = new SparseStore('disk', DISK);
    const rng = world.rng('content');
    const pool = [randomBytes(rng, K), randomBytes(rng, K)];
    for (let b = 0; b < 512; b++) disk.writeSync(b * K, b % 3 === 0 ? pool[b % 2]! : randomBytes(rng, K));
    await createOnpremProxy(world, { address: 'onprem:7000', pairingKey: PAIRING_KEY, disks: [{ id: 'a', device: disk, image: 'img' }, { id: 'b', device: disk, image: 'img' }] });
    const order = Array.from({ length: 512 }, (_, i) => i * K);
    const mk = (name: string, id: string, cacheCapacityBytes: number) => createCloudProxy(world, {
      name, onprem: 'onprem:7000', pairingKey: PAIRING_KEY, disk: { id, image: 'img' },
      stores: memoryCloudStores(name, DISK, { journalBytes: 8 << 20 }), cacheCapacityBytes, readAhead: false,
    });
    const stats = await simulate(world, async () => {
      const a = await mk('a', 'a', 8 << 20);
      for (const o of order) await a.device.read(o, K);
      await a.close();
      const b = await mk('b', 'b', 256 * K);
      await world.clock.sleepUs(5_000);
      for (const o of order) expect((await b.device.read(o, K)).equals(disk.readSync(o, K))).toBe(true);
      const r = { ...b.remote.stats, pushWaits: b.readPath.counters.pushWaits, fetches: b.readPath.counters.remoteFetches };
      await b.close();
      return r;
    });
    expect(stats.pushedMisses).toBe(0);
    expect(stats.refetches).toBe(0);
    expect(stats.fetches).toBeLessThan(20);
  });
});

describe('live (LiveWorld, TCP on loopback)', () => {
  it('serves reads and ships writes through both proxies over real sockets', async () => {
    const world = new LiveWorld(42, () => undefined);
    const disk = new SparseStore('disk', DISK);
    disk.writeSync(0, Buffer.alloc(64 * K, 7));
    const onprem = await createOnpremProxy(world, { address: '127.0.0.1:0', pairingKey: PAIRING_KEY, disks: [{ id: 'vm1', device: disk }] });
    const proxy = await createCloudProxy(world, {
      name: 'vm1', onprem: onprem.address, pairingKey: PAIRING_KEY, disk: { id: 'vm1' },
      stores: memoryCloudStores('vm1', DISK, { journalBytes: 16 << 20 }), cacheCapacityBytes: 1 << 20,
    });
    try {
      expect((await proxy.device.read(0, 64 * K)).equals(Buffer.alloc(64 * K, 7))).toBe(true);
      await proxy.device.write(K, Buffer.alloc(K, 1));
      await proxy.drain();
      expect(disk.readSync(K, K).equals(Buffer.alloc(K, 1))).toBe(true);
    } finally {
      await proxy.close();
      await onprem.close();
    }
  });
});
