import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BufferPool } from '../src/proxy/nbd/buffer-pool.js';
import { NbdClient, NbdServer } from '../src/proxy/nbd/index.js';
import { SparseStore } from '../src/proxy/sparse-store.js';
import { LiveWorld } from '../src/world/live-world.js';

describe('BufferPool', () => {
  it('reuses a buffer of the same size and stays under its byte cap', () => {
    const pool = new BufferPool(3 * 1024);
    const a = pool.take(1024);
    pool.give(a);
    expect(pool.take(1024)).toBe(a);
    expect(pool.take(1024)).not.toBe(a);
    pool.give(Buffer.alloc(1024));
    pool.give(Buffer.alloc(1024));
    pool.give(Buffer.alloc(1024));
    expect(pool.bytes).toBe(3 * 1024);
    pool.give(Buffer.alloc(2048));
    expect(pool.bytes).toBe(2048);
    pool.give(Buffer.alloc(4096));
    expect(pool.bytes).toBe(2048);
  });
});

describe('NBD replies from pooled buffers over a real socket', () => {
  it('every read returns its own bytes while replies reuse buffers, and a later write does not change them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'spillway-pool-'));
    const world = new LiveWorld(1, () => {});
    const blockBytes = 64 * 1024;
    const blocks = 64;
    const store = new SparseStore('pool', blocks * blockBytes);
    for (let i = 0; i < blocks; i++) await store.write(i * blockBytes, Buffer.alloc(blockBytes, i + 1));
    const server = new NbdServer(world, { exports: [{ name: 'd', device: store }] });
    await server.listen(`unix:${join(dir, 's.sock')}`);
    const client = await NbdClient.connect(world.net, `unix:${join(dir, 's.sock')}`, { exportName: 'd' });
    try {
      for (let round = 0; round < 4; round++) {
        const order = Array.from({ length: blocks }, (_, i) => (i * 37 + round) % blocks);
        const reads = await Promise.all(order.map((i) => client.read(i * blockBytes, blockBytes)));
        reads.forEach((data, k) => expect(data.equals(Buffer.alloc(blockBytes, order[k]! + 1))).toBe(true));
      }
      expect(server.replyPool.bytes).toBeGreaterThan(0);
      const held = await client.read(0, blockBytes);
      await client.write(0, Buffer.alloc(blockBytes, 0xaa));
      await Promise.all(Array.from({ length: 16 }, (_, i) => client.read(i * blockBytes, blockBytes)));
      expect(held.equals(Buffer.alloc(blockBytes, 1))).toBe(true);
      expect((await client.read(0, blockBytes)).equals(Buffer.alloc(blockBytes, 0xaa))).toBe(true);
    } finally {
      await client.close();
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
