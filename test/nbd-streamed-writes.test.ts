import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ByteQueue } from '../src/proxy/nbd/byte-queue.js';
import { NbdClient, NbdServer } from '../src/proxy/nbd/index.js';
import * as P from '../src/proxy/nbd/protocol.js';
import { SparseStore } from '../src/proxy/stores/sparse-store.js';
import { LiveWorld } from '../src/world/live-world.js';
import type { Transport } from '../src/world/types.js';

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Bytes arriving on a transport, read back in exact amounts. */
class Reader {
  private buf = Buffer.alloc(0);
  private wake: (() => void) | undefined;
  constructor(t: Transport) {
    t.onData((chunk) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      this.wake?.();
    });
  }
  get pending(): number {
    return this.buf.length;
  }
  async take(n: number): Promise<Buffer> {
    while (this.buf.length < n) await new Promise<void>((resolve) => { this.wake = resolve; });
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }
}

function request(type: number, cookie: number, offset: number, length: number): Buffer {
  const h = Buffer.alloc(P.REQUEST_HEADER_BYTES);
  h.writeUInt32BE(P.REQUEST_MAGIC, 0);
  h.writeUInt16BE(type, 6);
  h.writeBigUInt64BE(BigInt(cookie), 8);
  h.writeBigUInt64BE(BigInt(offset), 16);
  h.writeUInt32BE(length, 24);
  return h;
}

/** Fixed newstyle with EXPORT_NAME and no structured replies: every reply is a 16-byte simple reply. */
async function rawSession(world: LiveWorld, address: string, exportName: string): Promise<{ t: Transport; r: Reader }> {
  const t = await world.net.connect(address);
  const r = new Reader(t);
  const greeting = await r.take(18);
  expect(greeting.readBigUInt64BE(0)).toBe(P.NBDMAGIC);
  const flags = Buffer.alloc(4);
  flags.writeUInt32BE(P.FLAG_C_FIXED_NEWSTYLE | P.FLAG_C_NO_ZEROES, 0);
  const name = Buffer.from(exportName);
  const opt = Buffer.alloc(16);
  opt.writeBigUInt64BE(P.IHAVEOPT, 0);
  opt.writeUInt32BE(P.OPT_EXPORT_NAME, 8);
  opt.writeUInt32BE(name.length, 12);
  t.write(Buffer.concat([flags, opt, name]));
  await r.take(10);
  return { t, r };
}

async function simpleReply(r: Reader): Promise<{ cookie: number; errno: number }> {
  const b = await r.take(P.SIMPLE_REPLY_BYTES);
  expect(b.readUInt32BE(0)).toBe(P.SIMPLE_REPLY_MAGIC);
  return { errno: b.readUInt32BE(4), cookie: Number(b.readBigUInt64BE(8)) };
}

/** Send `bytes` in pieces of `piece` bytes with a pause between them, so the server sees many short reads. */
async function dribble(t: Transport, bytes: Buffer, piece: number): Promise<void> {
  for (let at = 0; at < bytes.length; at += piece) {
    t.write(bytes.subarray(at, at + piece));
    await pause(2);
  }
}

describe('ByteQueue with a lent chunk', () => {
  it('keeps only copies of what outlives the lender: take copies, keepLent copies the unread rest', () => {
    const q = new ByteQueue();
    const owned = Buffer.from('abc');
    q.push(owned);
    // Not Buffer.from: small Buffers share one pool, and this one stands for a transport's own buffer.
    const lender = Buffer.alloc(7);
    lender.write('defghij');
    q.pushLent(lender.subarray(0, 6));
    // A peek that straddles chunks is gathered; one inside the lent chunk is a view of it.
    expect(q.peek(4).toString()).toBe('abcd');
    q.skip(3);
    const view = q.peek(2);
    expect(view.buffer).toBe(lender.buffer);
    const taken = q.take(2);
    expect(taken.toString()).toBe('de');
    lender[0] = 0x2e;
    expect(taken.toString()).toBe('de');
    q.keepLent();
    lender.fill(0x2e);
    // The lender reused its buffer: the queue still holds what was unread when it was returned.
    expect(q.length).toBe(4);
    expect(q.take(4).toString()).toBe('fghi');
    expect(taken.toString()).toBe('de');
  });

  it('takeViews hands out views of the lent chunk; nothing is copied when the parser consumed it all', () => {
    const q = new ByteQueue();
    const lender = Buffer.alloc(10);
    lender.write('0123456789');
    q.pushLent(lender);
    const views = q.takeViews(10);
    expect(views.map((v) => v.toString()).join('')).toBe('0123456789');
    expect(views[0]!.buffer).toBe(lender.buffer);
    q.keepLent();
    expect(q.length).toBe(0);
  });
});

describe('LiveNet lends reads from one reused buffer', () => {
  it('an accepted socket delivers every byte in order through the lent buffer, writes back, and closes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'spillway-lentread-'));
    const world = new LiveWorld(1, () => {});
    const received: Buffer[] = [];
    const buffers = new Set<ArrayBufferLike>();
    let lent = false;
    let serverSide: Transport | undefined;
    const closed = new Promise<void>((resolve) => {
      void world.net.listen(`unix:${join(dir, 's.sock')}`, (t) => {
        serverSide = t;
        lent = t.onDataLent?.((chunk) => {
          buffers.add(chunk.buffer);
          // Valid only during the callback: keep a copy.
          received.push(Buffer.from(chunk));
          if (Buffer.concat(received).length === 300_000) t.write(Buffer.from('done'));
        }, 4096) ?? false;
        t.onClose(() => resolve());
      }).then((listener) => listenerReady(listener));
    });
    let listenerReady!: (l: { close(): Promise<void> }) => void;
    const listener = await new Promise<{ close(): Promise<void> }>((resolve) => { listenerReady = resolve; });
    try {
      const client = await world.net.connect(`unix:${join(dir, 's.sock')}`);
      const r = new Reader(client);
      const payload = Buffer.alloc(300_000);
      for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) & 0xff;
      client.write(payload);
      expect((await r.take(4)).toString()).toBe('done');
      expect(lent).toBe(true);
      expect(Buffer.concat(received).equals(payload)).toBe(true);
      // Many reads, one buffer: no read exceeds it.
      expect(received.length).toBeGreaterThan(60);
      expect(received.every((c) => c.length <= 4096)).toBe(true);
      expect(buffers.size).toBe(1);
      client.end();
      await closed;
      expect(serverSide!.closed).toBe(true);
    } finally {
      await listener.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('NBD WRITE payloads streamed into the store', () => {
  it('a write arriving in many short reads lands whole; a refused write is answered only after its payload, and the connection lives on', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'spillway-streamed-'));
    const address = `unix:${join(dir, 's.sock')}`;
    const world = new LiveWorld(1, () => {});
    const sizeBytes = 1024 * 1024;
    const store = new SparseStore('streamed', sizeBytes, 64 * 1024);
    const server = new NbdServer(world, { exports: [{ name: 'd', device: store }] });
    await server.listen(address);
    const { t, r } = await rawSession(world, address, 'd');
    try {
      // 200 KiB at an unaligned offset, across four store chunks, sent 7 KiB at a time.
      const payload = Buffer.alloc(200 * 1024);
      for (let i = 0; i < payload.length; i++) payload[i] = (i * 13 + 5) & 0xff;
      await dribble(t, Buffer.concat([request(P.CMD_WRITE, 1, 70_001, payload.length), payload]), 7 * 1024);
      expect(await simpleReply(r)).toEqual({ cookie: 1, errno: 0 });
      expect((await store.read(70_001, payload.length)).equals(payload)).toBe(true);
      expect((await store.read(70_000, 1))[0]).toBe(0);

      // Past the end: ENOSPC, but not before the whole payload was read (a reply to a request the
      // client is still sending would reach it before the request is in flight on its side).
      const late = Buffer.alloc(64 * 1024, 9);
      const header = request(P.CMD_WRITE, 2, sizeBytes - 1024, late.length);
      await dribble(t, Buffer.concat([header, late.subarray(0, 40 * 1024)]), 8 * 1024);
      await pause(30);
      expect(r.pending).toBe(0);
      await dribble(t, late.subarray(40 * 1024), 8 * 1024);
      expect(await simpleReply(r)).toEqual({ cookie: 2, errno: P.ENOSPC });
      expect((await store.read(sizeBytes - 1024, 1024)).equals(Buffer.alloc(1024))).toBe(true);

      // The stream is still in step: a write and a read pipelined in one send both succeed.
      const small = Buffer.alloc(4096, 0x5a);
      t.write(Buffer.concat([request(P.CMD_WRITE, 3, 4096, small.length), small, request(P.CMD_READ, 4, 4096, 4096)]));
      expect(await simpleReply(r)).toEqual({ cookie: 3, errno: 0 });
      expect(await simpleReply(r)).toEqual({ cookie: 4, errno: 0 });
      expect((await r.take(4096)).equals(small)).toBe(true);
      expect(server.stats.bytesWritten).toBe(payload.length + small.length);
      expect(server.stats.errors).toBe(1);
    } finally {
      t.destroy();
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('many pipelined writes from several connections at once land byte-exact (the nbdcopy pattern)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'spillway-streamed-'));
    const address = `unix:${join(dir, 's.sock')}`;
    const world = new LiveWorld(1, () => {});
    const requestBytes = 256 * 1024;
    const sizeBytes = 16 * requestBytes * 4;
    const store = new SparseStore('streamed', sizeBytes, 256 * 1024);
    const server = new NbdServer(world, { exports: [{ name: 'd', device: store }] });
    await server.listen(address);
    const source = Buffer.alloc(sizeBytes);
    for (let i = 0; i < sizeBytes; i += 4) source.writeUInt32BE((i * 2654435761) >>> 0, i);
    const clients = await Promise.all([0, 1, 2, 3].map(() => NbdClient.connect(world.net, address, { exportName: 'd' })));
    try {
      await Promise.all(clients.map((c, k) => {
        const writes: Array<Promise<void>> = [];
        for (let i = k; i < sizeBytes / requestBytes; i += clients.length) {
          writes.push(c.write(i * requestBytes, source.subarray(i * requestBytes, (i + 1) * requestBytes)));
        }
        return Promise.all(writes);
      }));
      expect((await store.read(0, sizeBytes)).equals(source)).toBe(true);
      expect((await clients[0]!.read(sizeBytes - 3 * requestBytes + 5, 2 * requestBytes)).equals(source.subarray(sizeBytes - 3 * requestBytes + 5, sizeBytes - requestBytes + 5))).toBe(true);
    } finally {
      for (const c of clients) await c.close();
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
