import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NbdClient, NbdServer } from '../src/proxy/nbd/index.js';
import * as P from '../src/proxy/nbd/protocol.js';
import { SparseStore } from '../src/proxy/stores/sparse-store.js';
import { LiveWorld } from '../src/world/live-world.js';

const concat = (views: Buffer[]): Buffer => Buffer.concat(views);

describe('SparseStore.lend', () => {
  it('lent views keep their bytes while the chunks are written, zeroed and trimmed', async () => {
    const store = new SparseStore('lend', 64 * 1024, 4096);
    await store.write(0, Buffer.alloc(3 * 4096, 7));
    const lent = store.lend(2048, 8192);
    expect(store.openLoans()).toBe(1);
    expect(lent.heldBytes).toBe(3 * 4096);
    await store.write(0, Buffer.alloc(4096, 1));
    await store.write(4096 + 100, Buffer.alloc(10, 2));
    await store.writeZeroes(8192 + 10, 20);
    await store.trim(8192, 4096);
    expect(concat(lent.views).equals(Buffer.alloc(8192, 7))).toBe(true);
    const now = await store.read(0, 3 * 4096);
    expect(now.subarray(0, 4096).equals(Buffer.alloc(4096, 1))).toBe(true);
    expect(now.subarray(4096 + 100, 4096 + 110).equals(Buffer.alloc(10, 2))).toBe(true);
    expect(now.subarray(8192).equals(Buffer.alloc(4096))).toBe(true);
    lent.release();
    lent.release();
    expect(store.openLoans()).toBe(0);
  });

  it('an old loan ending does not end a newer loan of a chunk that was trimmed and written again', async () => {
    const store = new SparseStore('lend', 16 * 1024, 4096);
    await store.write(0, Buffer.alloc(4096, 1));
    const old = store.lend(0, 4096);
    await store.trim(0, 4096);
    await store.write(0, Buffer.alloc(4096, 2));
    const newer = store.lend(0, 4096);
    old.release();
    await store.write(0, Buffer.alloc(100, 3));
    expect(concat(old.views).equals(Buffer.alloc(4096, 1))).toBe(true);
    expect(concat(newer.views).equals(Buffer.alloc(4096, 2))).toBe(true);
    expect(store.openLoans()).toBe(1);
    newer.release();
    expect(store.openLoans()).toBe(0);
  });

  it('writes go in place once a loan is released (no copy), and holes are lent as zeros that hold nothing', async () => {
    const store = new SparseStore('lend', 64 * 1024, 4096);
    await store.write(4096, Buffer.alloc(4096, 3));
    const first = store.lend(4096, 4096);
    first.release();
    await store.write(4096, Buffer.alloc(4096, 4));
    // The released view is the chunk itself, so it sees the write: nothing was copied for it.
    expect(first.views[0]!.equals(Buffer.alloc(4096, 4))).toBe(true);

    const holes = store.lend(0, 3 * 4096);
    expect(holes.heldBytes).toBe(4096);
    expect(concat(holes.views).equals(Buffer.concat([Buffer.alloc(4096), Buffer.alloc(4096, 4), Buffer.alloc(4096)]))).toBe(true);
    holes.release();
    const none = store.lend(8192, 100);
    expect(none.heldBytes).toBe(0);
    expect(store.openLoans()).toBe(0);
    expect(() => store.lend(60 * 1024, 8192)).toThrow(/past the end|out of range|beyond/i);
  });
});

describe('NBD READ replies lent from the store over a real socket', () => {
  it('every read returns its own bytes, every loan ends once the socket wrote it, and a held reply is not changed by a later write', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'spillway-lend-'));
    const world = new LiveWorld(1, () => {});
    const blockBytes = 64 * 1024;
    const blocks = 64;
    const store = new SparseStore('lend', blocks * blockBytes, 256 * 1024);
    for (let i = 0; i < blocks; i++) await store.write(i * blockBytes, Buffer.alloc(blockBytes, i + 1));
    const server = new NbdServer(world, { exports: [{ name: 'd', device: store }] });
    await server.listen(`unix:${join(dir, 's.sock')}`);
    const client = await NbdClient.connect(world.net, `unix:${join(dir, 's.sock')}`, { exportName: 'd' });
    try {
      for (let round = 0; round < 4; round++) {
        const order = Array.from({ length: blocks }, (_, i) => (i * 37 + round) % blocks);
        // Reads straddling chunk boundaries and holes-free small reads in the same batch.
        const reads = await Promise.all(order.map((i) => client.read(i * blockBytes, blockBytes)));
        reads.forEach((data, k) => expect(data.equals(Buffer.alloc(blockBytes, order[k]! + 1))).toBe(true));
        const small = await Promise.all(order.slice(0, 16).map((i) => client.read(i * blockBytes + 100, 4096)));
        small.forEach((data, k) => expect(data.equals(Buffer.alloc(4096, order[k]! + 1))).toBe(true));
      }
      const straddle = await client.read(4 * blockBytes - 10, 20);
      expect(straddle.equals(Buffer.concat([Buffer.alloc(10, 4), Buffer.alloc(10, 5)]))).toBe(true);
      expect(store.openLoans()).toBe(0);
      const held = await client.read(0, blockBytes);
      await client.write(0, Buffer.alloc(blockBytes, 0xaa));
      await Promise.all(Array.from({ length: 16 }, (_, i) => client.read(i * blockBytes, blockBytes)));
      expect(held.equals(Buffer.alloc(blockBytes, 1))).toBe(true);
      expect((await client.read(0, blockBytes)).equals(Buffer.alloc(blockBytes, 0xaa))).toBe(true);
      expect(store.openLoans()).toBe(0);
    } finally {
      await client.close();
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a client that stops reading its READ replies', () => {
  it('stops the server taking requests once what the socket holds, counted at lent chunk size, passes the cap; all replies arrive once it reads again', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'spillway-lend-'));
    const world = new LiveWorld(1, () => {});
    const chunkBytes = 256 * 1024;
    const chunks = 256;
    const store = new SparseStore('lend', chunks * chunkBytes, chunkBytes);
    for (let i = 0; i < chunks; i++) store.writeSync(i * chunkBytes, Buffer.alloc(chunkBytes, i % 251));
    const capBytes = 4 * 1024 * 1024;
    const server = new NbdServer(world, { exports: [{ name: 'd', device: store }], maxInFlightBytes: capBytes });
    const sock = join(dir, 's.sock');
    await server.listen(`unix:${sock}`);
    const t = await world.net.connect(`unix:${sock}`);
    let received = 0;
    t.onData((chunk) => { received += chunk.length; });
    try {
      // Old-style handshake: EXPORT_NAME, simple replies (16-byte header + payload per READ).
      const opt = Buffer.alloc(4 + 16 + 1);
      opt.writeUInt32BE(P.FLAG_C_FIXED_NEWSTYLE | P.FLAG_C_NO_ZEROES, 0);
      opt.writeBigUInt64BE(P.IHAVEOPT, 4);
      opt.writeUInt32BE(P.OPT_EXPORT_NAME, 12);
      opt.writeUInt32BE(1, 16);
      opt.write('d', 20);
      t.write(opt);
      const handshakeBytes = 18 + 10;
      while (received < handshakeBytes) await new Promise((r) => setTimeout(r, 5));
      t.pause!();
      // 4 KiB reads, each from a different chunk: each reply keeps a whole 256 KiB chunk alive.
      const reads = 2048;
      const requests = Buffer.concat(Array.from({ length: reads }, (_, i) =>
        P.requestHeader(0, P.CMD_READ, BigInt(i), (i % chunks) * chunkBytes, 4096)));
      t.write(requests);
      await new Promise((r) => setTimeout(r, 300));
      const taken = server.stats.requests;
      // Counted at 4 KiB per reply the cap would allow ~1000 replies; at chunk size ~16 plus what the kernel took.
      expect(taken).toBeGreaterThan(0);
      expect(taken).toBeLessThan(200);
      t.resume!();
      const expected = handshakeBytes + reads * (P.SIMPLE_REPLY_BYTES + 4096);
      for (let i = 0; i < 400 && received < expected; i++) await new Promise((r) => setTimeout(r, 10));
      expect(received).toBe(expected);
      expect(server.stats.requests).toBe(reads);
      expect(store.openLoans()).toBe(0);
    } finally {
      t.destroy();
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
