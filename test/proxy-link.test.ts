import { describe, expect, it } from 'vitest';
import { errorCode } from '../src/errors.js';
import { LinkClient, parsePairingKey, E_NOT_PAIRED, E_LEASE_HELD, E_UNKNOWN_DISK, E_TAMPERED, E_WRITER_SUPERSEDED, E_WRITER_UNFINISHED } from '../src/proxy/link/index.js';
import { LinkConnection } from '../src/proxy/link/connection.js';
import { FrameCipher } from '../src/proxy/link/secure-channel.js';
import { TokenBucket } from '../src/proxy/link/token-bucket.js';
import { Op, PROTOCOL_VERSION, jsonPayload, parseJson } from '../src/proxy/link/wire.js';
import { createOnpremProxy, type OnpremProxy } from '../src/proxy/onprem/index.js';
import { Layer } from '../src/proxy/layer.js';
import { SparseStore } from '../src/proxy/stores/sparse-store.js';
import { SimWorld } from '../src/world/sim-world.js';
import { directLink } from '../src/world/sim-net.js';
import { OTHER_KEY, PAIRING_KEY, randomBytes, simulate } from './proxy-link-helpers.js';

const MiB = 1024 * 1024;

async function setup(seed = 1, diskBytes = 4 * MiB): Promise<{ world: SimWorld; disk: SparseStore; onprem: OnpremProxy }> {
  const world = new SimWorld(seed);
  world.net.setLink('onprem:7000', directLink(world.clock, 10_000));
  const disk = new SparseStore('disk', diskBytes);
  const onprem = await createOnpremProxy(world, { address: 'onprem:7000', pairingKey: PAIRING_KEY, disks: [{ id: 'd1', device: disk }] });
  return { world, disk, onprem };
}

const client = (world: SimWorld, peer: string, key = PAIRING_KEY, extra: Partial<ConstructorParameters<typeof LinkClient>[1]> = {}): LinkClient =>
  new LinkClient(world, { address: 'onprem:7000', pairingKey: parsePairingKey(key), peer, reconnectMinUs: 5_000, ...extra });

describe('proxy link: pairing and leases', () => {
  it('refuses a peer with another pairing key with E_NOT_PAIRED, and it never sees data', async () => {
    const { world, disk, onprem } = await setup();
    disk.writeSync(0, Buffer.from('secret boot sector'));
    const intruder = client(world, 'intruder', OTHER_KEY);
    const err = await simulate(world, () => intruder.connect().then(() => null, (e: unknown) => e));
    expect(errorCode(err)).toBe(E_NOT_PAIRED);
    expect((err as Error).message).toMatch(/not paired/);
    await expect(intruder.attach('d1')).rejects.toMatchObject({ code: E_NOT_PAIRED });
    expect(onprem.stats().reads).toBe(0);
  });

  it('the server refuses a client whose proof is wrong (E_NOT_PAIRED), before any request is served', async () => {
    const { world, onprem } = await setup();
    // A raw client that skips checking the server and answers the challenge with garbage.
    const events: string[] = [];
    await simulate(world, async () => {
      const t = await world.net.connect('onprem:7000');
      await new Promise<void>((resolve) => {
        const conn = new LinkConnection(t, {
          clock: world.clock,
          onFrame: (f) => {
            if (f.op === Op.CHALLENGE) {
              conn.send({ op: Op.AUTH, flags: 0, id: 0, payload: jsonPayload({ proof: '00'.repeat(32) }) });
              conn.send({ op: Op.READ, flags: 0, id: 7, payload: Buffer.alloc(12) });
            } else if (f.op === Op.REPLY) {
              events.push(parseJson<{ code: string }>(f.payload, 'err').code);
            }
          },
          onClose: () => resolve(),
        });
        conn.send({ op: Op.HELLO, flags: 0, id: 0, payload: jsonPayload({ v: PROTOCOL_VERSION, nonce: '11'.repeat(16), peer: 'raw', pushWindowBytes: 0, sigs: null }) });
      });
    });
    expect(events).toEqual([E_NOT_PAIRED]);
    expect(onprem.stats().refused).toBe(1);
    expect(onprem.stats().reads).toBe(0);
  });

  it('a second writer of a leased disk is refused with E_LEASE_HELD whatever its name; the holder session may reattach; ro is allowed', async () => {
    const { world } = await setup();
    const a = client(world, 'cloud-a');
    // The same name as the holder: names are not identities.
    const b = client(world, 'cloud-a');
    const result = await simulate(world, async () => {
      await a.connect();
      await b.connect();
      const first = await a.attach('d1');
      const grant = { epoch: first.writer!.epoch, token: first.writer!.token };
      const second = await b.attach('d1').then(() => 'attached', (e: unknown) => errorCode(e));
      const sameNameNoGrant = await a.attach('d1').then(() => 'attached', (e: unknown) => errorCode(e));
      const again = await a.attach('d1', { writer: { resume: grant, unshipped: true } }).then((d) => `attached ${d.writer!.fresh ? 'fresh' : 'resumed'}`, (e: unknown) => errorCode(e));
      const ro = await b.attach('d1', { mode: 'ro' }).then(() => 'attached', (e: unknown) => errorCode(e));
      const unknown = await b.attach('nope').then(() => 'attached', (e: unknown) => errorCode(e));
      return { second, sameNameNoGrant, again, ro, unknown };
    });
    expect(result).toEqual({ second: E_LEASE_HELD, sameNameNoGrant: E_LEASE_HELD, again: 'attached resumed', ro: 'attached', unknown: E_UNKNOWN_DISK });
  });

  it('a new writer follows a writer that ended cleanly; one that did not end blocks it until it returns or is taken over', async () => {
    const { world } = await setup();
    const result = await simulate(world, async () => {
      const a = client(world, 'cloud-a');
      await a.connect();
      const first = await a.attach('d1');
      const firstGrant = { epoch: first.writer!.epoch, token: first.writer!.token };
      await first.close({ ended: false });
      const b = client(world, 'cloud-b');
      await b.connect();
      const whileUnfinished = await b.attach('d1').then(() => 'attached', (e: unknown) => errorCode(e));
      // The unfinished writer comes back with its grant (its journal), ships, and ends cleanly.
      const back = await a.attach('d1', { writer: { resume: firstGrant, unshipped: true } });
      await back.close({ ended: true });
      const second = await b.attach('d1');
      // The first writer's grant is superseded now: with writes left it is refused, with none it gets a new session.
      await second.close({ ended: false });
      const takenOver = await a.attach('d1', { writer: { resume: null, unshipped: false, takeOver: true } });
      const epochs = [first.writer!.epoch, back.writer!.epoch, second.writer!.epoch, takenOver.writer!.epoch];
      await takenOver.close({ ended: true });
      const stale = await a.attach('d1', { writer: { resume: firstGrant, unshipped: true } }).then(() => 'attached', (e: unknown) => errorCode(e));
      const staleEmpty = await a.attach('d1', { writer: { resume: firstGrant, unshipped: false } }).then((d) => (d.writer!.fresh ? 'fresh' : 'resumed'), (e: unknown) => errorCode(e));
      return { whileUnfinished, epochs, stale, staleEmpty };
    });
    expect(result).toEqual({ whileUnfinished: E_WRITER_UNFINISHED, epochs: [1, 1, 2, 3], stale: E_WRITER_SUPERSEDED, staleEmpty: 'fresh' });
  });
});

describe('proxy link: data', () => {
  it('sends zero blocks as markers, skips deflate on random data, and deflates text', async () => {
    const { world, disk, onprem } = await setup(2);
    const rng = world.rng('t');
    disk.writeSync(MiB, randomBytes(rng, 256 * 1024));
    disk.writeSync(2 * MiB, Buffer.from('all work and no play makes jack a dull boy\n'.repeat(6000).slice(0, 256 * 1024)));
    const c = client(world, 'cloud');
    const got = await simulate(world, async () => {
      await c.connect();
      const d = await c.attach('d1');
      const before = c.wireBytes().in;
      const zeros = await d.read(0, 512 * 1024);
      const zeroWire = c.wireBytes().in - before;
      const random = await d.read(MiB, 256 * 1024);
      const randomWire = c.wireBytes().in - before - zeroWire;
      const text = await d.read(2 * MiB, 256 * 1024);
      const textWire = c.wireBytes().in - before - zeroWire - randomWire;
      return { zeros, random, text, zeroWire, randomWire, textWire };
    });
    expect(got.zeros.equals(Buffer.alloc(512 * 1024))).toBe(true);
    expect(got.random.equals(disk.readSync(MiB, 256 * 1024))).toBe(true);
    expect(got.text.equals(disk.readSync(2 * MiB, 256 * 1024))).toBe(true);
    expect(got.zeroWire).toBeLessThan(200);
    expect(got.randomWire).toBeGreaterThan(256 * 1024);
    expect(got.randomWire).toBeLessThan(256 * 1024 + 400);
    expect(got.textWire).toBeLessThan(256 * 1024 / 20);
    expect(onprem.stats().codec.deflateSkipped).toBeGreaterThan(0);
  });

  it('a push chunk whose blocks a READ reply sent or a write changed while it was read from disk pushes the rest, never stale bytes', async () => {
    const world = new SimWorld(5);
    world.net.setLink('onprem:7000', directLink(world.clock, 10_000));
    const store = new SparseStore('disk', 4 * MiB);
    store.writeSync(0, randomBytes(world.rng('t'), MiB));
    // Disk reads take 1 µs per 16 bytes: the 128 KiB push chunk ~8 ms, a 4 KiB READ 256 µs.
    class SlowReads extends Layer {
      readonly name = 'slow-reads';
      override async read(offset: number, length: number): Promise<Buffer> {
        await world.clock.sleepUs(length / 16);
        return super.read(offset, length);
      }
    }
    await createOnpremProxy(world, { address: 'onprem:7000', pairingKey: PAIRING_KEY, disks: [{ id: 'd1', device: new SlowReads(store) }] });
    const K = 4096;
    const newBytes = Buffer.alloc(K, 0x5a);
    const c = client(world, 'cloud');
    const pushed = new Map<number, Buffer>();
    await simulate(world, async () => {
      await c.connect();
      const d = await c.attach('d1');
      d.onPush((offset, data) => { for (let at = 0; at < data.length; at += K) pushed.set((offset + at) / K, data.subarray(at, at + K)); });
      const push = d.requestPush(0, 32 * K);
      // Both reach on-prem while the chunk's disk read is under way.
      await world.clock.sleepUs(1_000);
      const read = d.read(4 * K, K);
      const write = d.applyGroup({ diskId: 'd1', seq: 1, writes: [{ offset: 8 * K, data: newBytes }] });
      await Promise.all([push, read, write]);
      await world.clock.sleepUs(100_000);
    });
    const blocks = [...pushed.keys()].sort((a, b) => a - b);
    // Block 4 went in the READ reply, block 8 changed under the read: the other 30 are pushed.
    expect(blocks).toEqual(Array.from({ length: 32 }, (_, b) => b).filter((b) => b !== 4 && b !== 8));
    for (const b of blocks) expect(pushed.get(b)!.equals(store.readSync(b * K, K))).toBe(true);
    expect(store.readSync(8 * K, K).equals(newBytes)).toBe(true);
  });

  it('counts a closed connection\'s wire bytes once', async () => {
    const { world, disk } = await setup(4);
    disk.writeSync(0, randomBytes(world.rng('t'), 64 * 1024));
    const c = client(world, 'cloud');
    const { open, closed } = await simulate(world, async () => {
      await c.connect();
      const d = await c.attach('d1');
      await d.read(0, 64 * 1024);
      const open = c.wireBytes();
      await c.close();
      await world.clock.sleepUs(1_000);
      return { open, closed: c.wireBytes() };
    });
    expect(open.in).toBeGreaterThan(64 * 1024);
    // Closing adds at most the goodbye, never the connection's bytes a second time.
    expect(closed.in).toBeLessThan(open.in + 1024);
    expect(closed.out).toBeLessThan(open.out + 1024);
  });

  it('answers with a signature when the peer has already received that content, and the cache resolves it', async () => {
    const { world, disk, onprem } = await setup(3);
    const block = randomBytes(world.rng('t'), 4096);
    for (let i = 0; i < 8; i++) disk.writeSync(i * 64 * 1024, block);
    const c = client(world, 'cloud', PAIRING_KEY, { sigs: 'sha256' });
    const seen = new Map<string, Buffer>();
    const got = await simulate(world, async () => {
      await c.connect();
      const d = await c.attach('d1', {
        sigResolver: async (sig) => seen.get(sig.toString('hex')),
      });
      const first = await d.read(0, 4096);
      seen.set((await import('../src/proxy/link/payload.js')).contentSignature(first).toString('hex'), first);
      const before = c.wireBytes().in;
      const rest = [];
      for (let i = 1; i < 8; i++) rest.push(await d.read(i * 64 * 1024, 4096));
      // A lost cache entry is still resolved from the content the link received lately.
      seen.clear();
      const fallback = await d.read(7 * 64 * 1024, 4096);
      return { rest, wire: c.wireBytes().in - before, stats: d.stats, fallback };
    });
    for (const r of got.rest) expect(r.equals(block)).toBe(true);
    expect(got.fallback.equals(block)).toBe(true);
    expect(got.stats.sigHits).toBe(8);
    expect(got.stats.sigMisses).toBe(0);
    expect(got.stats.refetches).toBe(0);
    expect(got.wire).toBeLessThan(4096 + 7 * 200 + 200);
    expect(onprem.stats().codec.sigBytes).toBe(8 * 4096);
  });

  it('reconnects after a drop and retries in-flight reads and write groups; a group is applied once', async () => {
    const { world, disk, onprem } = await setup(4);
    disk.writeSync(0, Buffer.alloc(64 * 1024, 9));
    const c = client(world, 'cloud');
    const states: string[] = [];
    c.onState((s) => states.push(s));
    const out = await simulate(world, async () => {
      await c.connect();
      const d = await c.attach('d1');
      const read = d.read(0, 64 * 1024);
      const group = d.applyGroup({ diskId: 'd1', seq: 1, writes: [{ offset: 8192, data: Buffer.alloc(4096, 1) }, { offset: 16384, length: 4096, zero: true }] });
      // Drop while both are on the wire.
      await world.clock.sleepUs(3_000);
      c.dropConnection();
      const data = await read;
      await group;
      // A retry of an applied group (same seq) is acknowledged without being applied again.
      await d.applyGroup({ diskId: 'd1', seq: 1, writes: [{ offset: 8192, data: Buffer.alloc(4096, 2) }] });
      return { data, stats: d.stats };
    });
    expect(states).toContain('down');
    expect(states.filter((s) => s === 'open').length).toBeGreaterThanOrEqual(2);
    expect(c.stats.retried).toBeGreaterThanOrEqual(1);
    expect(out.data.equals(Buffer.alloc(64 * 1024, 9))).toBe(true);
    expect(disk.readSync(8192, 4096).equals(Buffer.alloc(4096, 1))).toBe(true);
    expect(disk.readSync(16384, 4096).equals(Buffer.alloc(4096))).toBe(true);
    expect(onprem.appliers.get('d1')!.applications.get('1:1')).toBe(1);
    expect(out.stats.groupsDuplicate).toBe(1);
  });

  it('with on-prem gone, a read fails with E_LINK_TIMEOUT after readTimeoutUs while a write group waits; the outage is logged until the link is back', async () => {
    const { world, disk, onprem } = await setup(5);
    disk.writeSync(0, Buffer.alloc(8192, 4));
    const c = client(world, 'cloud', PAIRING_KEY, { readTimeoutUs: 2_000_000, reconnectMaxUs: 1_000_000 });
    const out = await simulate(world, async () => {
      await c.connect();
      const d = await c.attach('d1');
      // The link server stops listening (its leases and sessions stay), as an unreachable on-prem host.
      await onprem.server.close();
      const t0 = world.clock.nowUs();
      const read = await d.read(0, 4096).then(() => null, (err: Error) => err);
      const readFailedAfterUs = world.clock.nowUs() - t0;
      let groupDone = false;
      const group = d.applyGroup({ diskId: 'd1', seq: 1, writes: [{ offset: 0, data: Buffer.alloc(4096, 7) }] }).then(() => { groupDone = true; });
      await world.clock.sleepUs(40_000_000);
      const groupDoneWhileDown = groupDone;
      await onprem.server.start();
      await group;
      return { read, readFailedAfterUs, groupDoneWhileDown };
    });
    expect(errorCode(out.read)).toBe('E_LINK_TIMEOUT');
    expect(out.read!.message).toMatch(/READ got no answer from on-prem within 2s: the link to onprem:7000 is down \(for 2s, \d+ reconnect attempts/);
    expect(out.readFailedAfterUs).toBe(2_000_000);
    expect(out.groupDoneWhileDown).toBe(false);
    expect(disk.readSync(0, 4096).equals(Buffer.alloc(4096, 7))).toBe(true);
    const lines = world.logs.map((l) => l.message);
    expect(lines.some((m) => /^link to onprem:7000 lost/.test(m))).toBe(true);
    expect(lines.some((m) => /^the link to onprem:7000 is down \(for 3\d(\.\d+)?s, \d+ reconnect attempts; last: .*\); 1 requests wait \(reads fail after 2s\)$/.test(m))).toBe(true);
    expect(lines.some((m) => /^link to onprem:7000 is back after 4\d\.\d+s \(\d+ reconnect attempts\); resending 1 requests$/.test(m))).toBe(true);
  });

  it('rate-limits outbound bytes with a token bucket on the world clock', async () => {
    const world = new SimWorld(5);
    world.net.setLink('onprem:7000', directLink(world.clock, 0));
    const disk = new SparseStore('disk', 8 * MiB);
    disk.writeSync(0, randomBytes(world.rng('t'), 4 * MiB));
    await createOnpremProxy(world, { address: 'onprem:7000', pairingKey: PAIRING_KEY, disks: [{ id: 'd1', device: disk }], rateBytesPerS: 1_000_000 });
    const c = client(world, 'cloud');
    const us = await simulate(world, async () => {
      await c.connect();
      const d = await c.attach('d1');
      const t0 = world.clock.nowUs();
      await d.read(0, 2 * MiB);
      return world.clock.nowUs() - t0;
    });
    // 2 MiB at 1 MB/s is about 2.1 s (less the initial burst of 64 KiB).
    expect(us).toBeGreaterThan(2_000_000);
    expect(us).toBeLessThan(2_250_000);
  });

  it('token bucket and frame cipher: exact pacing, and a flipped byte fails authentication', () => {
    const world = new SimWorld(6);
    const bucket = new TokenBucket(world.clock, 1000, 100);
    expect(bucket.delayUs()).toBe(0);
    bucket.take(600);
    expect(bucket.delayUs()).toBe(500_000);
    const key = Buffer.alloc(32, 1);
    const sealed = new FrameCipher(key).seal(Buffer.from('hello'));
    expect(new FrameCipher(key).open(sealed).toString()).toBe('hello');
    sealed[2]! ^= 1;
    expect(() => new FrameCipher(key).open(sealed)).toThrow(expect.objectContaining({ code: E_TAMPERED }));
    // Counters must move in step: a replayed first frame fails as the second.
    const tx = new FrameCipher(key);
    const rx = new FrameCipher(key);
    const f1 = tx.seal(Buffer.from('one'));
    rx.open(f1);
    expect(() => rx.open(f1)).toThrow(expect.objectContaining({ code: E_TAMPERED }));
  });

  it('rejects a malformed pairing key with a clear input error', () => {
    expect(() => parsePairingKey('abc', 'cloud.pairingKey')).toThrow(/cloud.pairingKey: expected a pairing key of 64 hex characters/);
  });
});
