import { describe, expect, it } from 'vitest';
import { LinkClient, parsePairingKey } from '../src/proxy/link/index.js';
import { createOnpremProxy, Prioritizer } from '../src/proxy/onprem/index.js';
import { SparseStore } from '../src/proxy/stores/sparse-store.js';
import { SimWorld } from '../src/world/sim-world.js';
import { directLink } from '../src/world/sim-net.js';
import { PAIRING_KEY, randomBytes, simulate } from './proxy-link-helpers.js';

const K = 4096;

describe('prioritizer', () => {
  it('FIG 21: boot files sorted by first access, then access count, mapped to block ranges in that order', () => {
    const p = new Prioritizer();
    p.setBootFiles('img', [
      { path: '/usr/lib/late.so', ranges: [{ offset: 40 * K, length: 2 * K }], firstAccess: 9 },
      { path: '/boot/vmlinuz', ranges: [{ offset: 100 * K, length: 3 * K }], firstAccess: 1 },
      { path: '/etc/fstab', ranges: [{ offset: 7 * K, length: K }], firstAccess: 1, accessCount: 5 },
    ]);
    expect(p.profile('img')).toEqual([
      { offset: 7 * K, length: K },
      { offset: 100 * K, length: 3 * K },
      { offset: 40 * K, length: 2 * K },
    ]);
  });

  it('FIG 22: blocks read by more VMs rank higher; each class keeps boot order; only blocks several VMs read stream; recorded blocks precede static files', () => {
    const p = new Prioritizer();
    p.setBootFiles('img', [{ path: '/boot/x', ranges: [{ offset: 500 * K, length: K }], firstAccess: 0 }]);
    // Three sessions of VMs cloned from one image; block 1 and 2 are read by all, 9 by one.
    p.recordRead('img', 'vm-a', 1 * K, K);
    p.recordRead('img', 'vm-a', 9 * K, K);
    p.recordRead('img', 'vm-a', 2 * K, K);
    p.recordRead('img', 'vm-b', 1 * K, 2 * K);
    p.recordRead('img', 'vm-c', 2 * K, K);
    p.recordRead('img', 'vm-c', 1 * K, K);
    expect(p.hotspots('img')).toEqual([{ block: 1, sessions: 3 }, { block: 2, sessions: 3 }]);
    // Block 9 was read by one VM of three: not a hotspot, not streamed.
    expect(p.profile('img')).toEqual([
      { offset: 1 * K, length: 2 * K },
      { offset: 500 * K, length: K },
    ]);
    // A session's own reads do not shape the profile it is offered.
    expect(p.profile('img', 'vm-a').map((r) => r.offset)).toEqual([1 * K, 500 * K]);
  });

  it('FIG 22: a profile asked again follows reads recorded since; callers cannot change the remembered one', () => {
    const p = new Prioritizer();
    p.recordRead('img', 'vm-a', 1 * K, K);
    p.recordRead('img', 'vm-b', 1 * K, K);
    const first = p.profile('img');
    expect(first).toEqual([{ offset: 1 * K, length: K }]);
    first[0]!.length = 99;
    expect(p.profile('img')).toEqual([{ offset: 1 * K, length: K }]);
    p.recordRead('img', 'vm-a', 2 * K, K);
    p.recordRead('img', 'vm-b', 2 * K, K);
    expect(p.profile('img')).toEqual([{ offset: 1 * K, length: 2 * K }]);
    expect(p.hotspotCount('img')).toBe(p.hotspots('img').length);
    expect(p.hotspotCount('img')).toBe(2);
  });

  it('FIG 22: only the first maxSessions sessions of an image shape its profile; a later one is streamed it whole', () => {
    const p = new Prioritizer({ maxSessions: 2 });
    p.recordRead('img', 'vm-a', 1 * K, K);
    p.recordRead('img', 'vm-b', 1 * K, K);
    const before = p.profile('img');
    // A third session reads other blocks: it is not recorded, so nothing it read streams to anyone.
    p.recordRead('img', 'vm-c', 7 * K, K);
    p.recordRead('img', 'vm-d', 7 * K, K);
    expect(p.sessions('img')).toBe(2);
    expect(p.profile('img')).toEqual(before);
    expect(p.profile('img', 'vm-c')).toEqual(before);
    expect(p.profile('img', 'vm-a')).toEqual([{ offset: 1 * K, length: K }]);
  });

  it('FIG 22: with one session recorded its whole first-read order streams', () => {
    const p = new Prioritizer();
    p.recordRead('img', 'vm-a', 9 * K, K);
    p.recordRead('img', 'vm-a', 1 * K, 2 * K);
    expect(p.profile('img')).toEqual([{ offset: 9 * K, length: K }, { offset: 1 * K, length: 2 * K }]);
  });

  it('FIG 23: a read of one block of a group yields the rest of the group, bounded, reads forward first', () => {
    const p = new Prioritizer({ maxGroupPushBytes: 6 * K });
    p.setGroups('img', [[{ offset: 10 * K, length: 4 * K }, { offset: 30 * K, length: 4 * K }], [{ offset: 50 * K, length: K }]]);
    expect(p.groupFor('img', 11 * K, K)).toEqual([{ offset: 12 * K, length: 2 * K }, { offset: 30 * K, length: 4 * K }]);
    expect(p.groupFor('img', 60 * K, K)).toEqual([]);
  });
});

async function onpremBed(seed: number, extra: { bootFiles?: Array<{ path: string; ranges: Array<{ offset: number; length: number }>; firstAccess?: number }>; applyJournal?: SparseStore; disk?: SparseStore } = {}) {
  const world = new SimWorld(seed);
  world.net.setLink('onprem:7000', directLink(world.clock, 5_000));
  const disk = extra.disk ?? new SparseStore('disk', 1 << 22);
  if (!extra.disk) disk.writeSync(0, randomBytes(world.rng('content'), 1 << 21));
  const onprem = await createOnpremProxy(world, {
    address: 'onprem:7000', pairingKey: PAIRING_KEY,
    disks: [
      { id: 'vm1', device: disk, image: 'img', ...(extra.bootFiles ? { bootFiles: extra.bootFiles } : {}), ...(extra.applyJournal ? { applyJournal: extra.applyJournal } : {}) },
      { id: 'vm2', device: disk, image: 'img' },
    ],
  });
  const client = (peer: string) => new LinkClient(world, { address: 'onprem:7000', pairingKey: parsePairingKey(PAIRING_KEY), peer });
  return { world, disk, onprem, client };
}

describe('on-prem proxy', () => {
  it('FIG 23 on the wire: reading one block of a file pushes the rest of the file', async () => {
    const file = [{ offset: 64 * K, length: 32 * K }];
    const { world, disk, client } = await onpremBed(1, { bootFiles: [{ path: '/lib/libc.so', ranges: file }] });
    const c = client('cloud-1');
    const pushed: Array<{ offset: number; length: number }> = [];
    await simulate(world, async () => {
      await c.connect();
      const d = await c.attach('vm1');
      d.onPush((offset, data) => {
        pushed.push({ offset, length: data.length });
        expect(data.equals(disk.readSync(offset, data.length))).toBe(true);
      });
      await d.read(64 * K, K);
      await world.clock.sleepUs(100_000);
    });
    const covered = pushed.reduce((n, p) => n + p.length, 0);
    expect(pushed[0]!.offset).toBe(65 * K);
    expect(covered).toBe(31 * K);
  });

  it('FIG 22 streaming: a new session of the image gets the recorded first-read order of earlier sessions, in order', async () => {
    const { world, client } = await onpremBed(2);
    const order = [300, 301, 302, 17, 18, 200, 5].map((b) => b * K);
    const first = client('cloud-a');
    const second = client('cloud-b');
    const pushedOffsets: number[] = [];
    await simulate(world, async () => {
      await first.connect();
      const a = await first.attach('vm1');
      await a.reportAccess(order.map((offset) => ({ offset, length: K })));
      await second.connect();
      const b = await second.attach('vm2', { blockBytes: K });
      expect(b.profileBlocks).toBe(order.length);
      b.onPush((offset, data, profile) => { if (profile) for (let o = offset; o < offset + data.length; o += K) pushedOffsets.push(o); });
      await b.streamProfile();
      await world.clock.sleepUs(200_000);
    });
    expect(pushedOffsets).toEqual(order);
  });

  it('write groups survive an on-prem restart: the applied seq is remembered and a retry is a duplicate', async () => {
    const applyJournal = new SparseStore('apply-journal', 16 << 20);
    const disk = new SparseStore('disk', 1 << 22);
    const one = await onpremBed(3, { applyJournal, disk });
    const grant = await simulate(one.world, async () => {
      const c = one.client('cloud');
      await c.connect();
      const d = await c.attach('vm1');
      for (let seq = 1; seq <= 3; seq++) await d.applyGroup({ diskId: 'vm1', seq, writes: [{ offset: seq * K, data: Buffer.alloc(K, seq) }] });
      return { epoch: d.writer!.epoch, token: d.writer!.token };
    });
    await one.onprem.close();
    const two = await onpremBed(4, { applyJournal, disk });
    const result = await simulate(two.world, async () => {
      const c = two.client('cloud');
      await c.connect();
      // The writer comes back with the session on-prem granted it (its journal keeps the grant).
      const d = await c.attach('vm1', { writer: { resume: grant, unshipped: true } });
      const lastSeq = d.lastSeqAtAttach;
      await d.applyGroup({ diskId: 'vm1', seq: 3, writes: [{ offset: 3 * K, data: Buffer.alloc(K, 99) }] });
      await d.applyGroup({ diskId: 'vm1', seq: 4, writes: [{ offset: 4 * K, data: Buffer.alloc(K, 4) }] });
      return { lastSeq, stats: d.stats };
    });
    expect(result.lastSeq).toBe(3);
    expect(result.stats.groupsDuplicate).toBe(1);
    expect(disk.readSync(3 * K, K).equals(Buffer.alloc(K, 3))).toBe(true);
    expect(disk.readSync(4 * K, K).equals(Buffer.alloc(K, 4))).toBe(true);
  });

  it('hands out a distinct cache key per disk and an epoch per attach that never repeats for that key', async () => {
    const { world, client } = await onpremBed(5);
    const keys = await simulate(world, async () => {
      const c = client('cloud');
      await c.connect();
      const a = await c.attach('vm1');
      const b = await c.attach('vm2');
      const a2 = await c.attach('vm1', { mode: 'ro' });
      return [a, b, a2].map((d) => ({ key: d.cacheKey.toString('hex'), epoch: d.keyEpoch }));
    });
    expect(keys[0]!.key).not.toBe(keys[1]!.key);
    expect(keys[0]!.key).toBe(keys[2]!.key);
    expect(new Set(keys.map((k) => `${k.key}/${k.epoch}`)).size).toBe(3);
  });
});
