import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { BlockError, E_FAST_ZERO_UNSUPPORTED, E_IO, type BlockDevice, type ZeroOptions } from '../src/proxy/block-device.js';
import { Layer } from '../src/proxy/layer.js';
import { NbdClient, NbdNegotiation, NbdServer, nbd as P, type NbdExport } from '../src/proxy/nbd/index.js';
import { SparseStore } from '../src/proxy/stores/sparse-store.js';
import { LiveWorld } from '../src/world/live-world.js';
import { SimWorld } from '../src/world/sim-world.js';
import type { Transport } from '../src/world/types.js';

const MiB = 1024 * 1024;
const dir = mkdtempSync(join(tmpdir(), 'spillway-nbd-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A device whose calls can be held, failed or recorded. */
class ScriptedDevice extends Layer {
  readonly name = 'scripted';
  calls: string[] = [];
  concurrent = 0;
  maxConcurrent = 0;
  concurrentBytes = 0;
  maxConcurrentBytes = 0;
  gate: Promise<void> | undefined;
  failNext: string | undefined;
  readDelays = new Map<number, Promise<void>>();
  refuseFastZero = false;

  override async read(offset: number, length: number): Promise<Buffer> {
    this.calls.push(`read ${offset} ${length}`);
    return this.track(length, async () => {
      await this.readDelays.get(offset);
      return this.below.read(offset, length);
    });
  }
  override async write(offset: number, data: Uint8Array, options?: { fua?: boolean }): Promise<void> {
    this.calls.push(`write ${offset} ${data.length}${options?.fua ? ' fua' : ''}`);
    return this.track(data.length, () => this.below.write(offset, data, options));
  }
  override async flush(): Promise<void> {
    this.calls.push('flush');
    return this.below.flush();
  }
  override async writeZeroes(offset: number, length: number, options?: ZeroOptions): Promise<void> {
    this.calls.push(`zero ${offset} ${length}${options?.noHole ? ' nohole' : ''}${options?.fastZero ? ' fast' : ''}`);
    if (options?.fastZero && this.refuseFastZero) throw new BlockError(E_FAST_ZERO_UNSUPPORTED, 'zeroing is slow here');
    return this.below.writeZeroes(offset, length, options);
  }
  override async trim(offset: number, length: number): Promise<void> {
    this.calls.push(`trim ${offset} ${length}`);
    return this.below.trim(offset, length);
  }
  override async prefetch(offset: number, length: number): Promise<void> {
    this.calls.push(`prefetch ${offset} ${length}`);
    return this.below.prefetch(offset, length);
  }

  private async track<T>(bytes: number, fn: () => Promise<T>): Promise<T> {
    this.concurrent++;
    this.concurrentBytes += bytes;
    this.maxConcurrent = Math.max(this.maxConcurrent, this.concurrent);
    this.maxConcurrentBytes = Math.max(this.maxConcurrentBytes, this.concurrentBytes);
    try {
      await this.gate;
      if (this.failNext) {
        const code = this.failNext;
        this.failNext = undefined;
        throw new BlockError(code, 'injected failure');
      }
      return await fn();
    } finally {
      this.concurrent--;
      this.concurrentBytes -= bytes;
    }
  }
}

let sockets = 0;
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function serve(exports: Array<Partial<NbdExport> & { device: BlockDevice }>, options: { maxInFlight?: number; maxInFlightBytes?: number; maxPayloadBytes?: number } = {}) {
  const world = new LiveWorld(1, () => {});
  const server = new NbdServer(world, { exports: exports.map((e, i) => ({ name: e.name ?? `disk${i}`, ...e })), ...options });
  const listener = await server.listen(`unix:${join(dir, `s${sockets++}.sock`)}`);
  cleanups.push(() => server.close());
  return { world, server, address: listener.address };
}

async function client(address: string, world: LiveWorld, exportName = 'disk0', options: { structured?: boolean } = {}) {
  const c = await NbdClient.connect(world.net, address, { exportName, ...options });
  cleanups.push(() => c.close().catch(() => undefined));
  return c;
}

async function negotiation(address: string, world: LiveWorld) {
  const t = await world.net.connect(address);
  cleanups.push(async () => t.destroy());
  const n = new NbdNegotiation(t);
  await n.start();
  return { n, t };
}

function closedPromise(t: Transport): Promise<void> {
  return new Promise((resolve) => t.onClose(() => resolve()));
}

function errnoOf(err: unknown): number | undefined {
  return (err as BlockError).details?.errno as number | undefined;
}

describe('nbd handshake and options', () => {
  it('lists exports and answers INFO with name, description, size, flags and block size', async () => {
    const { world, address } = await serve([
      { name: 'disk0', device: new SparseStore('a', 8 * MiB), description: 'first disk' },
      { name: 'ro', device: new SparseStore('b', 4 * MiB), readOnly: true },
    ]);
    const { n } = await negotiation(address, world);
    expect(await n.listExports()).toEqual([{ name: 'disk0', description: 'first disk' }, { name: 'ro', description: '' }]);
    const info = await n.info(P.OPT_INFO, 'disk0');
    expect(info).toMatchObject({ name: 'disk0', size: 8 * MiB, description: 'first disk', blockSize: { minimum: 1, preferred: 4096, maximum: 32 * MiB } });
    const want = P.TF_HAS_FLAGS | P.TF_SEND_FLUSH | P.TF_SEND_FUA | P.TF_SEND_TRIM | P.TF_SEND_WRITE_ZEROES | P.TF_CAN_MULTI_CONN | P.TF_SEND_CACHE | P.TF_SEND_FAST_ZERO;
    expect(info.flags).toBe(want);
    expect(await n.negotiateStructured()).toBe(true);
    expect((await n.info(P.OPT_INFO, 'disk0')).flags).toBe(want | P.TF_SEND_DF);
    const ro = await n.info(P.OPT_INFO, 'ro');
    expect(ro.flags & P.TF_READ_ONLY).toBe(P.TF_READ_ONLY);
    expect(ro.flags & (P.TF_SEND_TRIM | P.TF_SEND_WRITE_ZEROES | P.TF_SEND_FUA)).toBe(0);
    // The empty name is the default export.
    expect((await n.info(P.OPT_INFO, '')).name).toBe('disk0');
  });

  it('refuses unknown exports, unknown options, STARTTLS and malformed option data with the right reply types', async () => {
    const { world, address } = await serve([{ device: new SparseStore('a', MiB) }]);
    const { n } = await negotiation(address, world);
    const last = async (opt: number, data?: Buffer) => (await n.option(opt, data)).at(-1)!.type;
    const go = Buffer.alloc(4 + 4 + 2);
    go.writeUInt32BE(4, 0);
    go.write('nope', 4);
    expect(await last(P.OPT_GO, go)).toBe(P.REP_ERR_UNKNOWN);
    expect(await last(P.OPT_GO, Buffer.alloc(3))).toBe(P.REP_ERR_INVALID);
    expect(await last(P.OPT_STARTTLS)).toBe(P.REP_ERR_UNSUP);
    expect(await last(P.OPT_EXTENDED_HEADERS)).toBe(P.REP_ERR_UNSUP);
    expect(await last(4242)).toBe(P.REP_ERR_UNSUP);
    expect(await last(P.OPT_LIST, Buffer.alloc(1))).toBe(P.REP_ERR_INVALID);
    expect(await last(P.OPT_STRUCTURED_REPLY, Buffer.alloc(2))).toBe(P.REP_ERR_INVALID);
    // Meta contexts need structured replies first.
    await expect(n.metaContext(P.OPT_SET_META_CONTEXT, 'disk0', [P.BASE_ALLOCATION])).rejects.toThrow(/0x80000003/);
    // An oversized option is read, dropped and refused; the connection lives on.
    expect(await last(P.OPT_INFO, Buffer.alloc(200 * 1024))).toBe(P.REP_ERR_TOO_BIG);
    await n.negotiateStructured();
    expect(await n.metaContext(P.OPT_LIST_META_CONTEXT, 'disk0', [])).toEqual([{ id: 0, name: 'base:allocation' }]);
    expect(await n.metaContext(P.OPT_LIST_META_CONTEXT, 'disk0', ['base:'])).toEqual([{ id: 0, name: 'base:allocation' }]);
    expect(await n.metaContext(P.OPT_LIST_META_CONTEXT, 'disk0', ['x-other:thing'])).toEqual([]);
    expect(await n.metaContext(P.OPT_SET_META_CONTEXT, 'disk0', ['base:allocation'])).toEqual([{ id: 1, name: 'base:allocation' }]);
    const info = await n.info(P.OPT_GO, 'disk0');
    expect(info.size).toBe(MiB);
  });

  it('serves EXPORT_NAME (old-style entry) with and without the 124 zero bytes', async () => {
    const { world, address } = await serve([{ device: new SparseStore('a', 2 * MiB) }]);
    for (const noZeroes of [true, false]) {
      const t = await world.net.connect(address);
      const n = new NbdNegotiation(t);
      await n.start(P.FLAG_C_FIXED_NEWSTYLE | (noZeroes ? P.FLAG_C_NO_ZEROES : 0));
      n.noZeroes = noZeroes;
      const info = await n.exportName('disk0');
      expect(info.size).toBe(2 * MiB);
      expect(info.flags & P.TF_HAS_FLAGS).toBe(1);
      t.destroy();
    }
  });

  it('drops the connection for an unknown EXPORT_NAME, bad option magic and unknown client flags; ABORT gets an ACK', async () => {
    const { world, server, address } = await serve([{ device: new SparseStore('a', MiB) }]);
    {
      const { n, t } = await negotiation(address, world);
      const closed = closedPromise(t);
      n.sendOption(P.OPT_EXPORT_NAME, Buffer.from('missing'));
      await closed;
    }
    {
      const { t } = await negotiation(address, world);
      const closed = closedPromise(t);
      t.write(Buffer.alloc(16, 0x41));
      await closed;
    }
    {
      const t = await world.net.connect(address);
      const n = new NbdNegotiation(t);
      const closed = closedPromise(t);
      await n.start(0x80);
      await closed;
    }
    {
      const { n, t } = await negotiation(address, world);
      const closed = closedPromise(t);
      expect((await n.option(P.OPT_ABORT))[0]!.type).toBe(P.REP_ACK);
      await closed;
    }
    expect(server.stats.protocolViolations).toBe(3);
  });
});

describe('nbd transmission', () => {
  it('serves every command with structured replies', async () => {
    const store = new SparseStore('a', 16 * MiB);
    const dev = new ScriptedDevice(store);
    const { world, address } = await serve([{ device: dev }]);
    const c = await client(address, world);
    expect(c.info.structured).toBe(true);
    expect(c.info.baseAllocationId).toBe(1);
    const data = Buffer.alloc(200 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + 3) & 0xff;
    await c.write(MiB, data, { fua: true });
    expect((await c.read(MiB, data.length)).equals(data)).toBe(true);
    expect((await c.read(MiB + 5, 100, { df: true })).equals(data.subarray(5, 105))).toBe(true);
    await c.flush();
    await c.prefetch(0, 64 * 1024);
    await c.trim(MiB, 64 * 1024);
    await c.writeZeroes(2 * MiB, 128 * 1024, { noHole: true });
    await c.writeZeroes(3 * MiB, 64 * 1024, { fastZero: true });
    expect(dev.calls).toEqual([
      `write ${MiB} ${data.length} fua`, `read ${MiB} ${data.length}`, `read ${MiB + 5} 100`, 'flush',
      'prefetch 0 65536', `trim ${MiB} 65536`, `zero ${2 * MiB} 131072 nohole`, `zero ${3 * MiB} 65536 fast`,
    ]);
    expect(await c.extents(0, 4 * MiB)).toEqual([
      { offset: 0, length: MiB + 64 * 1024, type: 'hole' },
      { offset: MiB + 64 * 1024, length: 192 * 1024, type: 'data' },
      { offset: MiB + 256 * 1024, length: MiB - 256 * 1024, type: 'hole' },
      { offset: 2 * MiB, length: 128 * 1024, type: 'zero' },
      { offset: 2 * MiB + 128 * 1024, length: 2 * MiB - 128 * 1024, type: 'hole' },
    ]);
    expect(await c.extents(MiB + 64 * 1024, MiB, { reqOne: true })).toEqual([{ offset: MiB + 64 * 1024, length: 192 * 1024, type: 'data' }]);
    expect((await c.read(MiB, 64 * 1024)).equals(Buffer.alloc(64 * 1024))).toBe(true);
  });

  it('speaks simple replies to a client without structured replies, errors included', async () => {
    const { world, address } = await serve([{ device: new SparseStore('a', MiB) }]);
    const c = await client(address, world, 'disk0', { structured: false });
    expect(c.info.structured).toBe(false);
    expect(c.flags & P.TF_SEND_DF).toBe(0);
    await c.write(0, Buffer.from('hello'));
    const r = await c.request(P.CMD_READ, 0, 0, 5);
    expect(r).toMatchObject({ error: 0, structured: false, chunks: 1 });
    expect(r.data!.toString()).toBe('hello');
    expect((await c.request(P.CMD_READ, 0, MiB, 5)).error).toBe(P.EINVAL);
    // BLOCK_STATUS without a negotiated context is refused, and DF is not valid without structured replies.
    expect((await c.request(P.CMD_BLOCK_STATUS, 0, 0, 512)).error).toBe(P.EINVAL);
    expect((await c.request(P.CMD_READ, P.CMD_FLAG_DF, 0, 5)).error).toBe(P.EINVAL);
    expect((await c.read(0, 5)).toString()).toBe('hello');
  });

  it('answers bad requests with the errno the spec asks for and keeps the connection', async () => {
    const dev = new ScriptedDevice(new SparseStore('a', MiB));
    const { world, address } = await serve([{ device: dev }, { name: 'ro', device: new SparseStore('r', MiB), readOnly: true }], { maxPayloadBytes: 64 * 1024 });
    const c = await client(address, world);
    const err = async (type: number, flags: number, offset: number, length: number, payload?: Buffer) => {
      const r = await c.request(type, flags, offset, length, payload);
      return [r.error, r.structured] as const;
    };
    expect(await err(P.CMD_READ, 0, MiB - 10, 20)).toEqual([P.EINVAL, true]);
    expect(await err(P.CMD_WRITE, 0, MiB - 10, 20, Buffer.alloc(20))).toEqual([P.ENOSPC, true]);
    expect(await err(P.CMD_WRITE_ZEROES, 0, MiB, 512)).toEqual([P.ENOSPC, true]);
    expect(await err(P.CMD_TRIM, 0, MiB, 512)).toEqual([P.EINVAL, true]);
    expect(await err(P.CMD_CACHE, 0, 2 ** 40, 512)).toEqual([P.EINVAL, true]);
    expect(await err(P.CMD_BLOCK_STATUS, 0, MiB - 1, 2)).toEqual([P.EINVAL, true]);
    expect(await err(P.CMD_READ, 0, 2 ** 62, 1)).toEqual([P.EINVAL, true]);
    expect(await err(99, 0, 0, 0)).toEqual([P.EINVAL, true]);
    expect(await err(P.CMD_READ, P.CMD_FLAG_NO_HOLE, 0, 512)).toEqual([P.EINVAL, true]);
    expect(await err(P.CMD_WRITE, P.CMD_FLAG_REQ_ONE, 0, 4, Buffer.alloc(4))).toEqual([P.EINVAL, true]);
    expect(await err(P.CMD_FLUSH, 0, 4096, 0)).toEqual([P.EINVAL, true]);
    expect(await err(P.CMD_READ, 0, 0, 0)).toEqual([P.EINVAL, true]);
    // Over the maximum payload: error reply, payload read and dropped, stream still in sync.
    expect(await err(P.CMD_WRITE, 0, 0, 128 * 1024, Buffer.alloc(128 * 1024, 9))).toEqual([P.EINVAL, true]);
    expect(await err(P.CMD_READ, 0, 0, 128 * 1024)).toEqual([P.EINVAL, true]);
    await c.write(0, Buffer.from('still here'));
    expect((await c.read(0, 10)).toString()).toBe('still here');
    // Device failures map through errnoFor.
    dev.failNext = E_IO;
    expect(errnoOf(await c.read(0, 10).catch((e) => e))).toBe(P.EIO);
    dev.refuseFastZero = true;
    expect(errnoOf(await c.writeZeroes(0, 4096, { fastZero: true }).catch((e) => e))).toBe(P.ENOTSUP);
    expect(dev.calls.filter((x) => x.startsWith('write'))).toEqual(['write 0 10']);

    const ro = await client(address, world, 'ro');
    expect(ro.flags & P.TF_READ_ONLY).toBe(P.TF_READ_ONLY);
    expect(errnoOf(await ro.write(0, Buffer.alloc(512)).catch((e) => e))).toBe(P.EPERM);
    expect((await ro.request(P.CMD_TRIM, 0, 0, 512)).error).toBe(P.EPERM);
    expect((await ro.request(P.CMD_WRITE_ZEROES, 0, 0, 512)).error).toBe(P.EPERM);
    expect((await ro.read(0, 512)).equals(Buffer.alloc(512))).toBe(true);
  });

  it('drops the connection on a bad request magic', async () => {
    const { world, server, address } = await serve([{ device: new SparseStore('a', MiB) }]);
    const c = await client(address, world);
    const pending = c.read(0, 4096);
    const bad = P.requestHeader(0, P.CMD_READ, 77n, 0, 512);
    bad.writeUInt32BE(0xdeadbeef, 0);
    (c as unknown as { negotiation: NbdNegotiation }).negotiation.transport.write(bad);
    // The read sent before the garbage may or may not be answered; the connection must end either way.
    await pending.catch(() => undefined);
    await expect(c.read(0, 512)).rejects.toThrow(/closed/);
    expect(server.stats.protocolViolations).toBe(1);
  });

  it('replies out of order while many requests are in flight', async () => {
    const dev = new ScriptedDevice(new SparseStore('a', 4 * MiB));
    const { world, address } = await serve([{ device: dev }]);
    const c = await client(address, world);
    let release!: () => void;
    dev.readDelays.set(0, new Promise((r) => { release = r; }));
    const order: number[] = [];
    const slow = c.read(0, 4096).then(() => order.push(0));
    const fast = Array.from({ length: 64 }, (_, i) => c.read((i + 1) * 4096, 4096).then(() => order.push(i + 1)));
    await Promise.all(fast);
    expect(order).toHaveLength(64);
    expect(c.inFlight).toBe(1);
    release();
    await slow;
    expect(order.at(-1)).toBe(0);
  });

  it('bounds per-connection work: stops reading at the in-flight cap and catches up when released', async () => {
    const dev = new ScriptedDevice(new SparseStore('a', 64 * MiB));
    const { world, server, address } = await serve([{ device: dev }], { maxInFlight: 8, maxInFlightBytes: 4 * MiB, maxPayloadBytes: MiB });
    const c = await client(address, world);
    let open!: () => void;
    dev.gate = new Promise((r) => { open = r; });
    const payload = Buffer.alloc(512 * 1024, 1);
    // 48 MiB of writes pipelined at once, against a server allowed 4 MiB in flight.
    const writes = Array.from({ length: 96 }, (_, i) => c.write(i * payload.length, payload));
    await new Promise((r) => world.clock.schedule(300_000, () => r(undefined)));
    expect(dev.maxConcurrent).toBeLessThanOrEqual(8);
    expect(dev.maxConcurrentBytes).toBeLessThanOrEqual(4 * MiB);
    expect(dev.concurrent).toBeGreaterThan(0);
    open();
    await Promise.all(writes);
    expect(server.stats.requests).toBeGreaterThanOrEqual(96);
    expect(dev.maxConcurrentBytes).toBeLessThanOrEqual(4 * MiB);
    expect((await c.read(95 * payload.length, 16)).equals(payload.subarray(0, 16))).toBe(true);
  });

  it('finishes requests in flight on DISC and on server shutdown', async () => {
    const dev = new ScriptedDevice(new SparseStore('a', MiB));
    const { world, server, address } = await serve([{ device: dev }]);
    const c = await client(address, world);
    let open!: () => void;
    dev.gate = new Promise((r) => { open = r; });
    const w = c.write(0, Buffer.from('durable'));
    while (dev.concurrent === 0) await new Promise((r) => world.clock.schedule(1000, () => r(undefined)));
    const closing = server.close();
    open();
    await w;
    await closing;
    expect((await dev.read(0, 7)).toString()).toBe('durable');
    await expect(world.net.connect(address)).rejects.toThrow();
  });
});

describe('nbd server robustness', () => {
  it('survives seeded random requests and garbage: every one is answered or the connection is dropped, and the server keeps serving', async () => {
    const { world, server, address } = await serve([{ device: new SparseStore('a', 4 * MiB) }], { maxPayloadBytes: 256 * 1024 });
    const rng = world.rng('fuzz');
    for (let round = 0; round < 6; round++) {
      const c = await client(address, world, 'disk0', { structured: rng.chance(0.5) });
      const replies: Array<Promise<unknown>> = [];
      for (let i = 0; i < 40; i++) {
        const type = rng.chance(0.8) ? rng.int(0, 8) : rng.int(8, 65536);
        const flags = rng.chance(0.7) ? 0 : rng.int(0, 65536);
        const offset = rng.chance(0.8) ? rng.int(0, 4 * MiB) : rng.int(0, 2 ** 31) * 4096;
        const length = rng.chance(0.8) ? rng.int(0, 128 * 1024) : rng.int(0, 2 ** 31);
        if (type === P.CMD_DISC) continue;
        const payload = type === P.CMD_WRITE && length <= 512 * 1024 ? Buffer.alloc(length, i) : undefined;
        if (type === P.CMD_WRITE && !payload) continue;
        replies.push(c.request(type, flags, offset, length, payload).then((r) => expect(r.error === 0 || r.error in P.ERRNO_NAMES).toBe(true)));
      }
      await Promise.all(replies);
      // Then garbage: the server drops this connection and nothing else.
      const t = (c as unknown as { negotiation: NbdNegotiation }).negotiation.transport;
      const closed = closedPromise(t);
      const junk = Buffer.alloc(64);
      for (let i = 0; i < junk.length; i++) junk[i] = rng.int(0, 256);
      t.write(junk);
      await closed;
    }
    const fresh = await client(address, world);
    await fresh.write(0, Buffer.from('alive'));
    expect((await fresh.read(0, 5)).toString()).toBe('alive');
    expect(server.stats.protocolViolations).toBe(6);
  });
});

describe('nbd in a simulation', () => {
  it('runs on virtual time and gives the same trace hash for the same seed', async () => {
    const runOnce = async () => {
      const world = new SimWorld(7);
      const server = new NbdServer(world, { exports: [{ name: 'vm', device: new SparseStore('vm', 8 * MiB) }] });
      await server.listen('cloud:10809');
      const flow = (async () => {
        const c = await NbdClient.connect(world.net, 'cloud:10809', { exportName: 'vm' });
        await Promise.all(Array.from({ length: 16 }, (_, i) => c.write(i * 65536, Buffer.alloc(65536, i))));
        const back = await Promise.all(Array.from({ length: 16 }, (_, i) => c.read(i * 65536, 65536)));
        await c.close();
        return back.every((b, i) => b.equals(Buffer.alloc(65536, i)));
      })();
      await world.run();
      const ok = await flow;
      await server.close();
      return { ok, hash: world.trace.hash(), count: world.trace.count };
    };
    const a = await runOnce();
    const b = await runOnce();
    expect(a.ok).toBe(true);
    expect(a.count).toBeGreaterThanOrEqual(3);
    expect(a.hash).toBe(b.hash);
  });
});
