import net from 'node:net';
import { formatAddress, parseAddress } from './live-net.js';
import { listenError } from './net-errors.js';

export interface RelayOptions {
  /** Where the relay listens ("127.0.0.1:0" picks a free port, or unix:/path). */
  listen: string;
  /** Where each accepted connection is forwarded. */
  target: string;
  /** Round-trip time added by the relay (half each way), microseconds. */
  rttUs: number;
  /** Bandwidth of each direction, shared by every connection through the relay (0 = unlimited). */
  rateBytesPerS: number;
}

export interface RelayStats {
  connections: number;
  bytesToTarget: number;
  bytesFromTarget: number;
}

export interface Relay {
  readonly address: string;
  readonly stats: RelayStats;
  close(): Promise<void>;
}

/** Bytes a direction may hold before its sender is paused: a few bandwidth-delay products. */
const MIN_QUEUE_BYTES = 4 * 1024 * 1024;
/** Big reads are cut so the rate limit paces the link smoothly rather than in bursts. */
const SLICE_BYTES = 64 * 1024;

interface Slice {
  data: Buffer;
  arriveMs: number;
  to: net.Socket;
  from: net.Socket;
}

/**
 * One direction of the emulated WAN: a FIFO serialized at `rate` (shared by
 * all connections, as one physical link is) followed by a fixed one-way delay.
 */
class Direction {
  private readonly queue: Slice[] = [];
  private head = 0;
  private linkFreeMs = 0;
  private queuedBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly paused = new Set<net.Socket>();

  constructor(private readonly delayMs: number, private readonly rateBytesPerMs: number, private readonly limitBytes: number, private readonly count: (n: number) => void) {}

  send(data: Buffer, from: net.Socket, to: net.Socket): void {
    const now = performance.now();
    for (let at = 0; at < data.length; at += SLICE_BYTES) {
      const piece = data.subarray(at, Math.min(data.length, at + SLICE_BYTES));
      const start = Math.max(now, this.linkFreeMs);
      const done = this.rateBytesPerMs > 0 ? start + piece.length / this.rateBytesPerMs : start;
      this.linkFreeMs = done;
      this.queue.push({ data: piece, arriveMs: done + this.delayMs, from, to });
      this.queuedBytes += piece.length;
    }
    if (this.queuedBytes > this.limitBytes && !this.paused.has(from)) {
      this.paused.add(from);
      from.pause();
    }
    this.arm();
  }

  private arm(): void {
    if (this.timer || this.head >= this.queue.length) return;
    const wait = Math.max(0, this.queue[this.head]!.arriveMs - performance.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.deliver();
    }, wait);
  }

  private deliver(): void {
    const now = performance.now();
    while (this.head < this.queue.length && this.queue[this.head]!.arriveMs <= now + 0.5) {
      const s = this.queue[this.head++]!;
      this.queuedBytes -= s.data.length;
      if (!s.to.destroyed) s.to.write(s.data);
      this.count(s.data.length);
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    if (this.queuedBytes <= this.limitBytes / 2 && this.paused.size) {
      for (const s of this.paused) if (!s.destroyed) s.resume();
      this.paused.clear();
    }
    this.arm();
  }

  /** Close `to` once everything queued for it has been delivered. */
  endAfterQueued(to: net.Socket): void {
    const last = [...this.queue.slice(this.head)].reverse().find((s) => s.to === to);
    const wait = last ? Math.max(0, last.arriveMs - performance.now()) + 1 : this.delayMs;
    setTimeout(() => to.end(), wait);
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/**
 * A userspace WAN emulator (the netem qdisc is not available here): a TCP/unix
 * relay that adds a fixed RTT and caps bandwidth per direction. Used by
 * `serve --wan-rtt/--wan-mbit` and the NBD benchmark.
 */
export async function startRelay(options: RelayOptions): Promise<Relay> {
  const delayMs = options.rttUs / 2 / 1000;
  const rateBytesPerMs = options.rateBytesPerS / 1000;
  const limit = Math.max(MIN_QUEUE_BYTES, Math.ceil(rateBytesPerMs * options.rttUs / 1000 * 4));
  const stats: RelayStats = { connections: 0, bytesToTarget: 0, bytesFromTarget: 0 };
  const up = new Direction(delayMs, rateBytesPerMs, limit, (n) => { stats.bytesToTarget += n; });
  const down = new Direction(delayMs, rateBytesPerMs, limit, (n) => { stats.bytesFromTarget += n; });
  const target = parseAddress(options.target, 'relay target');
  const sockets = new Set<net.Socket>();

  const server = net.createServer({ noDelay: true, allowHalfOpen: true }, (client) => {
    stats.connections++;
    const upstream = target.kind === 'unix' ? net.connect(target.path) : net.connect(target.port, target.host);
    upstream.setNoDelay(true);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => { client.destroy(); upstream.destroy(); });
    }
    client.on('data', (d: Buffer) => up.send(d, client, upstream));
    upstream.on('data', (d: Buffer) => down.send(d, upstream, client));
    client.on('end', () => up.endAfterQueued(upstream));
    upstream.on('end', () => down.endAfterQueued(client));
  });
  const listen = parseAddress(options.listen, 'relay listen');
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(listenError(options.listen, `relay: ${err.message}`, (err as NodeJS.ErrnoException).code, err)));
    if (listen.kind === 'unix') server.listen(listen.path, resolve);
    else server.listen(listen.port, listen.host, resolve);
  });
  const bound = server.address();
  const address = typeof bound === 'object' && bound ? formatAddress({ kind: 'tcp', host: bound.address, port: bound.port }) : options.listen;
  return {
    address,
    stats,
    close: () => new Promise<void>((resolve) => {
      up.stop();
      down.stop();
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}
