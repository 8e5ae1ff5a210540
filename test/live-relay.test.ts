import { describe, expect, it } from 'vitest';
import { startRelay } from '../src/world/live-relay.js';
import { LiveWorld, wallMs } from '../src/world/live-world.js';
import type { Transport } from '../src/world/types.js';

/** An echo server on the World's net, and a client that waits for `n` echoed bytes. */
async function echoPair(world: LiveWorld) {
  const server = await world.net.listen('127.0.0.1:0', (t) => t.onData((chunk) => t.write(chunk)));
  return server;
}

function collect(t: Transport): (n: number) => Promise<void> {
  let got = 0;
  let waiter: { n: number; resolve: () => void } | undefined;
  t.onData((chunk) => {
    got += chunk.length;
    if (waiter && got >= waiter.n) waiter.resolve();
  });
  return (n) => new Promise<void>((resolve) => {
    if (got >= n) resolve();
    else waiter = { n, resolve };
  });
}

describe('live WAN relay', () => {
  it('adds the round-trip time and caps the rate of each direction', async () => {
    const world = new LiveWorld(1, () => {});
    const echo = await echoPair(world);
    const relay = await startRelay({ listen: '127.0.0.1:0', target: echo.address, rttUs: 40_000, rateBytesPerS: 1_250_000 });
    const t = await world.net.connect(relay.address);
    const until = collect(t);
    try {
      let t0 = wallMs();
      t.write(Buffer.from('ping'));
      await until(4);
      const rttMs = wallMs() - t0;
      expect(rttMs).toBeGreaterThanOrEqual(39);
      expect(rttMs).toBeLessThan(400);

      // 500 kB at 10 Mbit/s takes 0.4 s one way (plus the RTT and the echo's own serialization, overlapped).
      t0 = wallMs();
      t.write(Buffer.alloc(500_000, 7));
      await until(4 + 500_000);
      const s = (wallMs() - t0) / 1000;
      expect(s).toBeGreaterThanOrEqual(0.4);
      expect(s).toBeLessThan(3);
      expect(relay.stats).toMatchObject({ connections: 1, bytesToTarget: 500_004, bytesFromTarget: 500_004 });
    } finally {
      t.destroy();
      await relay.close();
      await echo.close();
    }
  });
});
