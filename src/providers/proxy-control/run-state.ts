import { SpillwayError } from '../../errors.js';
import type { Listener, Transport, World } from '../../world/types.js';
import { FrameCipher, NONCE_BYTES, proof, proofMatches, sessionKeys } from '../../proxy/link/secure-channel.js';

/**
 * Run-state mirroring over the WAN (FIG 15, §3.2). The on-prem side serves a
 * stream; the cloud side (the standby target's receiver) dials it, as the
 * cloud proxy dials the link, so only on-prem listens. Both ends prove the
 * pairing key (the link's challenge-response) and every frame is sealed with
 * AES-256-GCM per direction. A round is DATA frames then END; it is done when
 * the receiver ACKs the byte count, so its duration is what the WAN took.
 *
 * What is shipped is run state by size only: the emulated hypervisor models a
 * VM's memory as a size and a dirty rate, not page contents, so the payload
 * is seeded filler of exactly the dirty byte count.
 */

const FRAME_PAYLOAD_BYTES = 256 * 1024;
const MAX_FRAME_BYTES = FRAME_PAYLOAD_BYTES + 64;
const T_DATA = 1;
const T_END = 2;
const T_ACK = 3;
const T_HELLO = 4;
const PROOF_BYTES = 32;

export const E_RUNSTATE = 'E_RUNSTATE';

/** A byte queue that hands out exact lengths without re-concatenating everything it holds. */
class Inbox {
  private chunks: Buffer[] = [];
  private head = 0;
  length = 0;
  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.length += chunk.length;
  }
  take(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0]!;
      const k = Math.min(n - filled, c.length - this.head);
      c.copy(out, filled, this.head, this.head + k);
      filled += k;
      this.head += k;
      if (this.head === c.length) { this.chunks.shift(); this.head = 0; }
    }
    this.length -= n;
    return out;
  }
  peekU32(): number {
    const b = Buffer.allocUnsafe(4);
    let filled = 0;
    let pos = this.head;
    for (const c of this.chunks) {
      const k = Math.min(4 - filled, c.length - pos);
      c.copy(b, filled, pos, pos + k);
      filled += k;
      pos = 0;
      if (filled === 4) break;
    }
    return b.readUInt32BE(0);
  }
}

/** One authenticated, sealed, framed stream end. */
class SealedEnd {
  private readonly inbox = new Inbox();
  private drainWaiters: Array<() => void> = [];
  private phase: 'hello' | 'proof' | 'open' = 'hello';
  private tx: FrameCipher | null = null;
  private rx: FrameCipher | null = null;
  private clientNonce: Buffer | null = null;
  private serverNonce: Buffer | null = null;
  onOpen: () => void = () => undefined;
  onFrame: (body: Buffer) => void = () => undefined;
  onFail: (err: Error) => void = () => undefined;

  constructor(readonly transport: Transport, private readonly key: Buffer, private readonly role: 'server' | 'client', private readonly world: World) {
    transport.onDrain(() => { const w = this.drainWaiters; this.drainWaiters = []; w.forEach((f) => f()); });
    transport.onData((chunk) => {
      this.inbox.push(chunk);
      try {
        this.pump();
      } catch (err) {
        this.onFail(err as Error);
        transport.destroy(err as Error);
      }
    });
    if (role === 'client') {
      this.clientNonce = world.unpredictable('runstate.nonce', NONCE_BYTES);
      transport.write(this.clientNonce);
    }
  }

  private pump(): void {
    for (;;) {
      if (this.role === 'server' && this.phase === 'hello') {
        if (this.inbox.length < NONCE_BYTES) return;
        this.clientNonce = this.inbox.take(NONCE_BYTES);
        this.serverNonce = this.world.unpredictable('runstate.nonce', NONCE_BYTES);
        this.transport.write(Buffer.concat([this.serverNonce, proof(this.key, 'server', this.clientNonce, this.serverNonce)]));
        this.phase = 'proof';
      } else if (this.role === 'server' && this.phase === 'proof') {
        if (this.inbox.length < PROOF_BYTES) return;
        const got = this.inbox.take(PROOF_BYTES);
        if (!proofMatches(proof(this.key, 'client', this.clientNonce!, this.serverNonce!), got)) throw new SpillwayError(E_RUNSTATE, 'run-state peer failed the pairing-key proof');
        this.open();
      } else if (this.role === 'client' && this.phase === 'hello') {
        if (this.inbox.length < NONCE_BYTES + PROOF_BYTES) return;
        this.serverNonce = this.inbox.take(NONCE_BYTES);
        const got = this.inbox.take(PROOF_BYTES);
        if (!proofMatches(proof(this.key, 'server', this.clientNonce!, this.serverNonce), got)) throw new SpillwayError(E_RUNSTATE, 'run-state server failed the pairing-key proof');
        this.transport.write(proof(this.key, 'client', this.clientNonce!, this.serverNonce));
        this.open();
      } else {
        if (this.inbox.length < 4) return;
        const len = this.inbox.peekU32();
        if (len > MAX_FRAME_BYTES) throw new SpillwayError(E_RUNSTATE, `run-state frame of ${len} bytes is larger than ${MAX_FRAME_BYTES}`);
        if (this.inbox.length < 4 + len) return;
        this.inbox.take(4);
        this.onFrame(this.rx!.open(this.inbox.take(len)));
      }
    }
  }

  private open(): void {
    const keys = sessionKeys(this.key, this.clientNonce!, this.serverNonce!);
    this.tx = new FrameCipher(this.role === 'client' ? keys.c2s : keys.s2c);
    this.rx = new FrameCipher(this.role === 'client' ? keys.s2c : keys.c2s);
    this.phase = 'open';
    this.onOpen();
  }

  /** Seal and queue one frame; resolves when the transport takes more (backpressure). */
  async send(body: Buffer): Promise<void> {
    if (!this.tx) throw new SpillwayError(E_RUNSTATE, 'run-state stream is not open yet');
    const sealed = this.tx.seal(body);
    const head = Buffer.allocUnsafe(4);
    head.writeUInt32BE(sealed.length, 0);
    const more = this.transport.writev ? this.transport.writev([head, sealed]) : this.transport.write(Buffer.concat([head, sealed]));
    if (!more && !this.transport.closed) await new Promise<void>((resolve) => this.drainWaiters.push(resolve));
  }
}

function header(type: number, round: number, extra = 0): Buffer {
  const b = Buffer.allocUnsafe(5 + extra);
  b.writeUInt8(type, 0);
  b.writeUInt32BE(round, 1);
  return b;
}

/** The on-prem end: ships rounds of run state to the receiver registered for a target. */
export class RunStateServer {
  private listener: Listener | null = null;
  private readonly peers = new Map<string, { end: SealedEnd; acks: Map<number, (bytes: number) => void> }>();
  private readonly arrivals = new Map<string, Array<() => void>>();
  private filler: Buffer | null = null;
  bytesSent = 0;

  constructor(private readonly world: World, private readonly key: Buffer, private readonly address: string) {}

  async start(): Promise<void> {
    this.listener = await this.world.net.listen(this.address, (t) => this.accept(t));
  }

  private accept(t: Transport): void {
    const end = new SealedEnd(t, this.key, 'server', this.world);
    let target: string | null = null;
    const acks = new Map<number, (bytes: number) => void>();
    end.onFrame = (body) => {
      const type = body.readUInt8(0);
      if (type === T_HELLO) {
        target = body.subarray(1).toString('utf8');
        this.peers.set(target, { end, acks });
        const waiting = this.arrivals.get(target) ?? [];
        this.arrivals.delete(target);
        waiting.forEach((w) => w());
      } else if (type === T_ACK) {
        const round = body.readUInt32BE(1);
        const bytes = Number(body.readBigUInt64BE(5));
        acks.get(round)?.(bytes);
        acks.delete(round);
      }
    };
    end.onFail = (err) => this.world.log('warn', 'proxy/runstate', `run-state connection refused: ${err.message}`);
    t.onClose(() => { if (target && this.peers.get(target)?.end === end) this.peers.delete(target); });
  }

  /** Resolve once the receiver of `target` is connected. */
  private async peer(target: string): Promise<{ end: SealedEnd; acks: Map<number, (bytes: number) => void> }> {
    for (;;) {
      const p = this.peers.get(target);
      if (p) return p;
      await new Promise<void>((resolve) => { const list = this.arrivals.get(target) ?? []; list.push(resolve); this.arrivals.set(target, list); });
    }
  }

  /** Ship `bytes` of run state for `round` to `target`; resolves when the receiver acknowledged all of it. */
  async ship(target: string, round: number, bytes: number): Promise<void> {
    const { end, acks } = await this.peer(target);
    if (!this.filler) {
      const rng = this.world.rng('runstate.filler');
      this.filler = Buffer.allocUnsafe(FRAME_PAYLOAD_BYTES);
      for (let i = 0; i < FRAME_PAYLOAD_BYTES; i += 4) this.filler.writeUInt32LE(rng.u32(), i);
    }
    const acked = new Promise<number>((resolve) => acks.set(round, resolve));
    const closed = new Promise<never>((_, reject) => end.transport.onClose((err) => reject(new SpillwayError(E_RUNSTATE, `run-state stream to ${target} closed during round ${round}`, { cause: err }))));
    closed.catch(() => undefined);
    for (let sent = 0; sent < bytes;) {
      const n = Math.min(FRAME_PAYLOAD_BYTES, bytes - sent);
      await end.send(Buffer.concat([header(T_DATA, round), this.filler.subarray(0, n)]));
      sent += n;
      this.bytesSent += n;
    }
    const fin = header(T_END, round, 8);
    fin.writeBigUInt64BE(BigInt(bytes), 5);
    await end.send(fin);
    const got = await Promise.race([acked, closed]);
    if (got !== bytes) throw new SpillwayError(E_RUNSTATE, `receiver of ${target} acknowledged ${got} bytes of round ${round}, ${bytes} were sent`);
  }

  async close(): Promise<void> {
    for (const p of this.peers.values()) p.end.transport.destroy();
    this.peers.clear();
    await this.listener?.close();
  }
}

/** The cloud end for one standby target: receives rounds and acknowledges what arrived. */
export class RunStateReceiver {
  bytesReceived = 0;
  roundsReceived = 0;
  private end: SealedEnd | null = null;

  constructor(private readonly world: World, private readonly key: Buffer, readonly targetId: string) {}

  async connect(address: string): Promise<void> {
    const t = await this.world.net.connect(address);
    const end = new SealedEnd(t, this.key, 'client', this.world);
    this.end = end;
    const rounds = new Map<number, number>();
    await new Promise<void>((resolve, reject) => {
      end.onFail = reject;
      t.onClose((err) => reject(new SpillwayError(E_RUNSTATE, `run-state connection to ${address} closed during the handshake`, { cause: err })));
      end.onOpen = () => {
        void end.send(Buffer.concat([Buffer.from([T_HELLO]), Buffer.from(this.targetId, 'utf8')])).then(resolve, reject);
      };
    });
    end.onFrame = (body) => {
      const type = body.readUInt8(0);
      const round = body.readUInt32BE(1);
      if (type === T_DATA) {
        const n = body.length - 5;
        rounds.set(round, (rounds.get(round) ?? 0) + n);
        this.bytesReceived += n;
      } else if (type === T_END) {
        const got = rounds.get(round) ?? 0;
        rounds.delete(round);
        this.roundsReceived++;
        const ack = header(T_ACK, round, 8);
        ack.writeBigUInt64BE(BigInt(got), 5);
        void end.send(ack).catch(() => undefined);
      }
    };
  }

  get connected(): boolean {
    return this.end !== null && !this.end.transport.closed;
  }

  close(): void {
    this.end?.transport.destroy();
    this.end = null;
  }
}

const PAGE_BYTES = 4096;

/**
 * Which run state is dirty, by expectation: the guest writes pages uniformly
 * at random at the hypervisor's dirty rate R (bytes/s) over M bytes of
 * memory, so after t seconds the clean fraction of what was clean is
 * exp(-R·t/M) — writes to already-dirty pages add nothing. A hot VM thus
 * saturates at its whole memory instead of growing past it. Time counts as
 * running when the VM ran at either end of the interval (a power-off seen
 * only at the next round is charged: sending too much is safe, too little is not).
 */
export class DirtyModel {
  private dirty = 0;
  private lastUs: number;
  lastLinkRateBytesPerS = 0;

  constructor(readonly memoryBytes: number, readonly rateBytesPerS: number, nowUs: number, private wasRunning: boolean) {
    this.lastUs = nowUs;
  }

  /** Dirty bytes now (whole pages). */
  accrue(nowUs: number, runningNow: boolean): number {
    const M = this.memoryBytes;
    const dt = (nowUs - this.lastUs) / 1e6;
    if ((this.wasRunning || runningNow) && this.rateBytesPerS > 0 && dt > 0 && M > 0) {
      this.dirty = M - (M - this.dirty) * Math.exp((-this.rateBytesPerS * dt) / M);
    }
    this.lastUs = nowUs;
    this.wasRunning = runningNow;
    return Math.min(M, Math.round(this.dirty / PAGE_BYTES) * PAGE_BYTES);
  }

  /** What must be sent now; the pages count as clean once taken. */
  take(nowUs: number, runningNow: boolean): number {
    const d = this.accrue(nowUs, runningNow);
    this.dirty = 0;
    return d;
  }
}
