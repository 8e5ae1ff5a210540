import { describe, expect, it } from 'vitest';
import { InputError } from '../src/errors.js';
import { SimWorld } from '../src/world/sim-world.js';
import type { Transport } from '../src/world/types.js';
import {
  SEGMENTS_PER_TURN, WanLink, idealTransferUs, rtoUs, serializeUs, wanConfig, wireBytesFor, type WanConfig,
} from '../src/providers/emulated/wan/wan-link.js';
import { parseWanConfig } from '../src/scenario/wan.js';

const MBIT = 1e6 / 8;

interface Arrivals {
  bytes: number;
  lastUs: number;
  times: number[];
}

/** A server on `onprem:7000` behind the WAN; returns a function that opens client connections. */
async function setup(seed: number, cfg: WanConfig) {
  const world = new SimWorld(seed);
  const wan = new WanLink(world, cfg);
  world.net.setLink('onprem:7000', wan);
  const servers: Transport[] = [];
  await world.net.listen('onprem:7000', (t) => servers.push(t));
  const connect = async (): Promise<{ client: Transport; server: Transport; got: Arrivals }> => {
    const client = await world.net.connect('onprem:7000');
    const got: Arrivals = { bytes: 0, lastUs: -1, times: [] };
    client.onData((chunk) => {
      got.bytes += chunk.length;
      got.lastUs = world.clock.nowUs();
      got.times.push(world.clock.nowUs());
    });
    return { client, server: servers[servers.length - 1]!, got };
  };
  return { world, wan, connect };
}

describe('WanLink timing (exact, virtual time)', () => {
  it('moves 12.5 MB over 100 Mbit/s, 20 ms one way, in exactly 1 s + 20 ms without framing', async () => {
    const cfg = wanConfig({ rttUs: 40_000, downBytesPerS: 100 * MBIT, headerBytes: 0 });
    const { world, connect } = await setup(1, cfg);
    const { server, got } = await connect();
    server.write(Buffer.alloc(12_500_000, 7));
    await world.run();
    expect(got.bytes).toBe(12_500_000);
    expect(got.lastUs).toBe(1_020_000);
    expect(idealTransferUs(12_500_000, cfg)).toBe(1_020_000);
  });

  it('adds per-segment headers: 12.5 MB with mss 1448 / 52-byte headers', async () => {
    const cfg = wanConfig({ rttUs: 40_000, downBytesPerS: 100 * MBIT });
    const { world, connect } = await setup(1, cfg);
    const { server, got } = await connect();
    server.write(Buffer.alloc(12_500_000, 1));
    await world.run();
    const segments = Math.ceil(12_500_000 / 1448); // 8633
    const wire = 12_500_000 + segments * 52; // 12,948,916 bytes
    expect(wireBytesFor(12_500_000, cfg)).toBe(wire);
    expect(got.lastUs).toBe(20_000 + Math.ceil(wire / 12.5)); // 1,055,914 µs
    expect(got.lastUs).toBe(1_055_914);
  });

  it('streams a long write in turns, each arriving when its last byte would', async () => {
    const cfg = wanConfig({ rttUs: 40_000, downBytesPerS: 100 * MBIT, headerBytes: 0 });
    const { world, connect } = await setup(1, cfg);
    const { server, got } = await connect();
    server.write(Buffer.alloc(3 * 1448 * SEGMENTS_PER_TURN));
    await world.run();
    const turn = 1448 * SEGMENTS_PER_TURN;
    expect(got.times).toEqual([1, 2, 3].map((k) => 20_000 + serializeUs(k * turn, cfg.downBytesPerS)));
  });

  it('shares bandwidth fairly between connections and the last byte still lands at 1 s + 20 ms', async () => {
    const cfg = wanConfig({ rttUs: 40_000, downBytesPerS: 100 * MBIT, headerBytes: 0 });
    const { world, connect } = await setup(1, cfg);
    const a = await connect();
    const b = await connect();
    a.server.write(Buffer.alloc(6_250_000));
    b.server.write(Buffer.alloc(6_250_000));
    await world.run();
    const turn = 1448 * SEGMENTS_PER_TURN;
    const tail = 6_250_000 % turn;
    expect(b.got.lastUs).toBe(1_020_000);
    // a was alone for its first turn, so it stays one turn ahead: its short last turn
    // leaves before b's last full turn and b's own short one.
    expect(a.got.lastUs).toBe(20_000 + serializeUs(12_500_000 - turn - tail, cfg.downBytesPerS));
    // Halfway, each has about half of its bytes: turns alternate (a leads by its head start).
    const half = (g: Arrivals) => g.times.filter((t) => t <= 520_000).length;
    expect(half(a.got) - half(b.got)).toBeGreaterThanOrEqual(1);
    expect(half(a.got) - half(b.got)).toBeLessThanOrEqual(2);
  });

  it('a small reply waits at most two turns behind another connection\'s bulk transfer', async () => {
    const cfg = wanConfig({ rttUs: 40_000, downBytesPerS: 100 * MBIT, headerBytes: 0 });
    const { world, connect } = await setup(1, cfg);
    const bulk = await connect();
    const small = await connect();
    bulk.server.write(Buffer.alloc(12_500_000));
    world.clock.schedule(100_000, () => small.server.write(Buffer.alloc(4096)));
    await world.run();
    const turnUs = serializeUs(1448 * SEGMENTS_PER_TURN, cfg.downBytesPerS);
    expect(small.got.lastUs).toBeGreaterThan(100_000 + 20_000);
    // The turn on the wire finishes, the bulk connection's turn already in line goes, then ours.
    expect(small.got.lastUs).toBeLessThanOrEqual(100_000 + 2 * turnUs + serializeUs(4096, cfg.downBytesPerS) + 20_000);
    expect(bulk.got.lastUs).toBe(20_000 + serializeUs(12_504_096, cfg.downBytesPerS));
  });

  it('end() closes the stream after the last byte has crossed the link', async () => {
    const cfg = wanConfig({ rttUs: 40_000, downBytesPerS: 100 * MBIT, headerBytes: 0 });
    const { world, connect } = await setup(1, cfg);
    const { client, server, got } = await connect();
    let closedAt = -1;
    client.onClose(() => (closedAt = world.clock.nowUs()));
    server.write(Buffer.alloc(1_250_000));
    server.end();
    await world.run();
    expect(got.lastUs).toBe(120_000);
    expect(closedAt).toBe(120_000);
  });

  it('a destroyed connection stops using the link and is forgotten', async () => {
    const cfg = wanConfig({ rttUs: 40_000, downBytesPerS: 100 * MBIT, headerBytes: 0 });
    const { world, wan, connect } = await setup(1, cfg);
    const a = await connect();
    const b = await connect();
    a.server.write(Buffer.alloc(12_500_000));
    world.clock.schedule(100_000, () => { a.client.destroy(); b.server.write(Buffer.alloc(125_000)); });
    await world.run();
    // b waits for the turn on the wire (a's queue is gone), then needs 10 ms + 20 ms.
    const turnUs = serializeUs(1448 * SEGMENTS_PER_TURN, cfg.downBytesPerS);
    expect(b.got.lastUs).toBeLessThanOrEqual(100_000 + turnUs + 10_000 + 20_000);
    expect(a.got.bytes).toBeLessThan(2_000_000);
    expect(wan.stats().down.queuedBytes).toBe(0);
    expect(wan.openConnections).toBe(1);
    b.client.end();
    await world.run();
    expect(wan.openConnections).toBe(0);
  });

  it('uses the up bandwidth towards the server', async () => {
    const cfg = wanConfig({ rttUs: 40_000, downBytesPerS: 100 * MBIT, upBytesPerS: 10 * MBIT, headerBytes: 0 });
    const { world, connect } = await setup(1, cfg);
    const { client, server } = await connect();
    let last = -1;
    server.onData(() => (last = world.clock.nowUs()));
    client.write(Buffer.alloc(1_250_000));
    await world.run();
    expect(last).toBe(1_020_000);
    expect(idealTransferUs(1_250_000, cfg, 'up')).toBe(1_020_000);
  });

  it('stalls for exactly the length of an outage that overlaps the transfer', async () => {
    const cfg = wanConfig({
      rttUs: 40_000, downBytesPerS: 100 * MBIT, headerBytes: 0,
      outages: [{ atUs: 500_000, forUs: 2_000_000, reset: false }],
    });
    const { world, wan, connect } = await setup(1, cfg);
    const { server, got } = await connect();
    server.write(Buffer.alloc(12_500_000));
    const upAt: Array<[number, boolean]> = [];
    for (const t of [499_999, 500_000, 2_499_999, 2_500_000]) world.clock.schedule(t, () => upAt.push([t, wan.isUp]));
    await world.run();
    expect(got.bytes).toBe(12_500_000);
    expect(got.lastUs).toBe(3_020_000);
    expect(got.times.some((t) => t > 500_000 && t < 2_500_000)).toBe(false);
    expect(upAt).toEqual([[499_999, true], [500_000, false], [2_499_999, false], [2_500_000, true]]);
  });

  it('a resetting outage closes open connections with ECONNRESET and later connections work', async () => {
    const cfg = wanConfig({
      rttUs: 40_000, downBytesPerS: 100 * MBIT, headerBytes: 0,
      outages: [{ atUs: 500_000, forUs: 1_000_000, reset: true }],
    });
    const { world, wan, connect } = await setup(1, cfg);
    const events: string[] = [];
    world.trace.subscribe((e, line) => { if (e.type === 'wan.outage') events.push(`${e.t}:${line.slice(line.indexOf('"data":') + 7, -1)}`); });
    const { client, server, got } = await connect();
    let closedAt = -1;
    let code: unknown;
    client.onClose((err) => { closedAt = world.clock.nowUs(); code = (err as { code?: string } | undefined)?.code; });
    server.write(Buffer.alloc(12_500_000));
    let second: Arrivals | undefined;
    world.clock.schedule(1_600_000, () => {
      void connect().then((c) => { second = c.got; c.server.write(Buffer.alloc(125_000)); });
    });
    await world.run();
    expect(closedAt).toBe(500_000);
    expect(code).toBe('ECONNRESET');
    expect(got.bytes).toBeLessThan(12_500_000);
    expect(got.bytes).toBeGreaterThan(5_000_000);
    expect(second!.lastUs).toBe(1_600_000 + 10_000 + 20_000);
    expect(wan.stats().connectionsReset).toBe(1);
    expect(events).toEqual(['500000:{"reset":true,"start":true}', '1500000:{"reset":true,"start":false}']);
  });

  it('an outage added at run time pushes back deliveries already scheduled', async () => {
    const cfg = wanConfig({ rttUs: 40_000, downBytesPerS: 100 * MBIT, headerBytes: 0 });
    const { world, wan, connect } = await setup(1, cfg);
    const { server, got } = await connect();
    server.write(Buffer.alloc(12_500_000));
    world.clock.schedule(1_010_000, () => wan.scheduleOutage(1_015_000, 30_000));
    await world.run();
    expect(got.lastUs).toBe(1_050_000);
    expect(() => wan.scheduleOutage(0, 10)).toThrow(/integer start >= now/);
  });

  it('an outage injected over a configured one only adds the time it does not cover', async () => {
    const cfg = wanConfig({
      rttUs: 40_000, downBytesPerS: 100 * MBIT, headerBytes: 0,
      outages: [{ atUs: 200_000, forUs: 100_000, reset: false }, { atUs: 500_000, forUs: 100_000, reset: false }],
    });
    const { world, wan, connect } = await setup(1, cfg);
    const { server, got } = await connect();
    server.write(Buffer.alloc(12_500_000));
    // 250 ms → 650 ms: covers the rest of the first window, the gap, the second window and 50 ms more.
    world.clock.schedule(250_000, () => wan.scheduleOutage(250_000, 400_000));
    await world.run();
    // Total down time: 200..650 ms = 450 ms.
    expect(got.lastUs).toBe(1_020_000 + 450_000);
    expect(wan.stats().outagesStarted).toBe(4);
  });

  it('charges each lost transmission one RTO and a resend, per the formula, with a fixed seed', async () => {
    const cfg = wanConfig({ rttUs: 40_000, downBytesPerS: 100 * MBIT, lossRate: 0.3 });
    const { world, wan, connect } = await setup(5, cfg);
    const { server, got } = await connect();
    const payload = 10 * 1448; // ten full segments: one turn
    server.write(Buffer.alloc(payload));
    await world.run();
    const lost = wan.stats().down.lostSegments;
    expect(lost).toBeGreaterThan(0);
    const wire = payload + 10 * 52 + lost * (1448 + 52);
    expect(rtoUs(cfg)).toBe(200_000);
    expect(got.lastUs).toBe(serializeUs(wire, cfg.downBytesPerS) + 20_000 + lost * 200_000);
    expect(wan.stats().down.wireBytes).toBe(wire);
  });

  it('loss delays a stream of small messages by p/(1-p) RTOs on average', async () => {
    const p = 0.05;
    const cfg = wanConfig({ rttUs: 40_000, downBytesPerS: 100 * MBIT, lossRate: p, headerBytes: 0 });
    const { world, connect } = await setup(9, cfg);
    const { server, got } = await connect();
    const n = 2000;
    // One 1,000-byte message every second: the link is idle each time, so the extra delay is pure loss.
    for (let i = 0; i < n; i++) world.clock.schedule(i * 1_000_000, () => server.write(Buffer.alloc(1000)));
    await world.run();
    const base = 20_000 + serializeUs(1000, cfg.downBytesPerS);
    const extra = got.times.map((t, i) => t - i * 1_000_000 - base);
    // k lost transmissions cost k RTOs plus k resent segments on the wire.
    const cost = (k: number) => k * 200_000 + serializeUs(1000 + k * 1448, cfg.downBytesPerS) - serializeUs(1000, cfg.downBytesPerS);
    expect(extra.every((e) => [0, 1, 2, 3, 4].some((k) => e === cost(k)))).toBe(true);
    expect(extra.filter((e) => e > 0).length).toBeGreaterThan(50);
    const mean = extra.reduce((a, b) => a + b, 0) / n;
    const expected = (200_000 * p) / (1 - p); // 10,526 µs
    expect(mean).toBeGreaterThan(expected * 0.7);
    expect(mean).toBeLessThan(expected * 1.3);
  });

  it('jitter never reorders a stream and stays within its clip', async () => {
    const cfg = wanConfig({ rttUs: 40_000, downBytesPerS: 1000 * MBIT, headerBytes: 0, jitter: { kind: 'normal', sdUs: 5_000 } });
    const { world, connect } = await setup(3, cfg);
    const { server, got } = await connect();
    for (let i = 0; i < 500; i++) world.clock.schedule(i * 100, () => server.write(Buffer.alloc(100, i % 256)));
    await world.run();
    expect(got.times).toHaveLength(500);
    for (let i = 1; i < got.times.length; i++) expect(got.times[i]!).toBeGreaterThanOrEqual(got.times[i - 1]!);
    // Without the no-reorder rule some of these would have overtaken each other (sd 5 ms, sends 0.1 ms apart).
    const heldBack = got.times.filter((t, i) => i > 0 && t === got.times[i - 1]).length;
    expect(heldBack).toBeGreaterThan(0);
    // Every piece arrives within one-way ± 3 sd of its send (+1 µs serialization), or with the one before it.
    got.times.forEach((t, i) => {
      expect(t).toBeLessThanOrEqual(i * 100 + 20_000 + 15_000 + 1);
      expect(t).toBeGreaterThanOrEqual(i * 100 + 20_000 - 15_000);
    });
  });

  it('pareto jitter has the configured mean extra delay', async () => {
    const cfg = wanConfig({ rttUs: 40_000, downBytesPerS: 1000 * MBIT, headerBytes: 0, jitter: { kind: 'pareto', meanUs: 2_000, shape: 3, maxUs: 1_000_000 } });
    const { world, connect } = await setup(4, cfg);
    const { server, got } = await connect();
    const n = 4000;
    for (let i = 0; i < n; i++) world.clock.schedule(i * 1_000_000, () => server.write(Buffer.alloc(125)));
    await world.run();
    const extra = got.times.map((t, i) => t - i * 1_000_000 - 20_000 - 1);
    expect(Math.min(...extra)).toBeGreaterThanOrEqual(0);
    const mean = extra.reduce((a, b) => a + b, 0) / n;
    expect(mean).toBeGreaterThan(1_700);
    expect(mean).toBeLessThan(2_300);
  });

  it('samples wan.stats while busy and stops when idle, so a run can end', async () => {
    const cfg = wanConfig({ rttUs: 40_000, downBytesPerS: 100 * MBIT, headerBytes: 0, sampleEveryUs: 250_000 });
    const { world, wan, connect } = await setup(1, cfg);
    const samples: Array<Record<string, unknown>> = [];
    world.trace.subscribe((e) => { if (e.type === 'wan.stats') samples.push({ t: e.t, ...e.data }); });
    const { server } = await connect();
    server.write(Buffer.alloc(12_500_000));
    const r = await world.run();
    expect(r.reason).toBe('idle');
    expect(samples[0]).toMatchObject({ t: 250_000, up: true, lossPct: 0 });
    expect(Math.abs((samples[1]!.downBps as number) - 12_500_000)).toBeLessThan(125_000);
    // 250 ms in, ~9.4 MB still queued: RTT = 40 ms + that backlog's serialization time.
    expect(samples[0]!.rttUs as number).toBeGreaterThan(700_000);
    expect(samples.at(-1)!.downBps).toBe(0);
    expect(wan.stats().down).toMatchObject({ deliveredBytes: 12_500_000, wireBytes: 12_500_000, queuedBytes: 0 });
  });

  it('gives the same arrival times for the same seed and different ones for another', async () => {
    const run = async (seed: number) => {
      const cfg = wanConfig({ rttUs: 40_000, downBytesPerS: 100 * MBIT, lossRate: 0.01, jitter: { kind: 'normal', sdUs: 2_000 } });
      const { world, connect } = await setup(seed, cfg);
      const { server, got } = await connect();
      server.write(Buffer.alloc(2_000_000));
      await world.run();
      return got.times;
    };
    expect(await run(11)).toEqual(await run(11));
    expect(await run(11)).not.toEqual(await run(12));
  });
});

describe('parseWanConfig', () => {
  it('reads a scenario section with units', () => {
    const cfg = parseWanConfig({
      rtt: '40ms', bandwidth: '100Mbit', upBandwidth: '20Mbit', jitter: { sd: '2ms' }, loss: 0.001,
      outages: [{ at: '5h', for: '2m', reset: true }],
    });
    expect(cfg).toMatchObject({
      name: 'wan', rttUs: 40_000, downBytesPerS: 12_500_000, upBytesPerS: 2_500_000,
      jitter: { kind: 'normal', sdUs: 2_000 }, lossRate: 0.001, mssBytes: 1448, headerBytes: 52,
      outages: [{ atUs: 5 * 3600e6, forUs: 120e6, reset: true }],
    });
    expect(parseWanConfig({ rtt: '10ms', bandwidth: '1Gbit', jitter: '1ms' }).jitter).toEqual({ kind: 'normal', sdUs: 1000 });
    expect(parseWanConfig({ rtt: '10ms', bandwidth: '1Gbit', jitter: { dist: 'pareto', mean: '3ms' } }).jitter)
      .toEqual({ kind: 'pareto', meanUs: 3000, shape: 2.5, maxUs: 1_000_000 });
  });

  it('names the bad field and what is allowed', () => {
    const bad = (raw: unknown, re: RegExp) => {
      expect(() => parseWanConfig(raw)).toThrow(InputError);
      expect(() => parseWanConfig(raw)).toThrow(re);
    };
    bad({ bandwidth: '1Gbit' }, /wan\.rtt: expected a round-trip time/);
    bad({ rtt: '40ms' }, /wan\.bandwidth: expected a rate/);
    bad({ rtt: '40ms', bandwidth: 'fast' }, /wan\.bandwidth: expected a rate such as "100Mbit"/);
    bad({ rtt: '40ms', bandwidth: '0Mbit' }, /wan\.bandwidth: expected a positive rate/);
    bad({ rtt: '40ms', bandwidth: '1Gbit', loss: 2 }, /wan\.loss: expected a number >= 0 <= 0\.5/);
    bad({ rtt: '40ms', bandwidth: '1Gbit', jitter: { dist: 'gauss' } }, /wan\.jitter\.dist: expected "normal"/);
    bad({ rtt: '40ms', bandwidth: '1Gbit', outages: [{ at: '1h' }] }, /wan\.outages\[0\]\.for: expected a length/);
    bad({ rtt: '40ms', bandwidth: '1Gbit', outages: [{ at: '1h', for: '1h' }, { at: '90m', for: '1m' }] }, /wan\.outages\[1\]: expected an outage that does not overlap/);
    bad({ rtt: '40ms', bandwidth: '1Gbit', latency: '3ms' }, /wan\.latency: unknown field; allowed here: name, rtt/);
    bad({ rtt: '40ms', bandwidth: '1Gbit', outages: [{ at: '1h', for: '1m', rest: true }] }, /wan\.outages\[0\]\.rest: unknown field/);
  });
});
