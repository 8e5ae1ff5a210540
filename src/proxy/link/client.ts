import { errorCode, invariant } from '../../errors.js';
import { formatDurationUs } from '../../util/units.js';
import type { Timer, World } from '../../world/types.js';
import { LinkConnection } from './connection.js';
import { FATAL_CODES, LinkError, E_LINK_CLOSED, E_LINK_DOWN, E_LINK_TIMEOUT, E_NOT_PAIRED, E_PROTOCOL } from './errors.js';
import type { AttachMode, AttachReply, AttachReq, AuthMsg, ChallengeMsg, ErrorMsg, HelloMsg, WriterClaim } from './messages.js';
import { NONCE_BYTES, proof, proofMatches, sessionKeys } from './secure-channel.js';
import { F_ERROR, OP_NAMES, Op, PROTOCOL_VERSION, WireReader, WireWriter, jsonPayload, parseJson, type Frame } from './wire.js';
import { RemoteDisk } from './remote-disk.js';
import type { ContentMemo } from '../content-memo.js';

export interface LinkClientOptions {
  address: string;
  pairingKey: Buffer;
  /** This cloud proxy's stable identity (leases and dedup memory are keyed by it). */
  peer: string;
  rateBytesPerS?: number;
  compressionLevel?: number;
  /** Bytes of server pushes allowed in flight; keeps demand replies from queueing behind pushes. */
  pushWindowBytes?: number;
  /** Announce that the cache can answer by sha256 signature. */
  sigs?: 'sha256' | null;
  /** Announce that this client reports its guest's first reads (REPORT). */
  reportsAccess?: boolean;
  /**
   * The generation of the cache behind this client (sent in every HELLO, so a
   * reconnect carries the current one): on-prem forgets what it believed this
   * peer held when it changes. None: a client with no cache.
   */
  cacheGeneration?: () => string;
  reconnectMinUs?: number;
  reconnectMaxUs?: number;
  /**
   * Fail a request that only reads (READ, SIGS, PROFILE, REPORT: a guest may be
   * waiting on it) with E_LINK_TIMEOUT after this long without an answer,
   * across reconnects; none by default. Write groups, flushes, attaches and
   * detaches are kept until answered (write-behind ships by seq and retries).
   */
  readTimeoutUs?: number;
  /** Give up reconnecting after this many failed attempts in a row; never by default. */
  maxReconnectAttempts?: number;
  /** Inflates and signatures by content across the run (a simulation shares one among all its proxies). */
  contentMemo?: ContentMemo;
}

interface Pending {
  id: number;
  op: number;
  flags: number;
  payload: Buffer;
  resolve: (payload: Buffer) => void;
  reject: (err: Error) => void;
  timer: Timer | null;
  sent: number;
}

export interface LinkClientStats {
  requests: number;
  retried: number;
  reconnects: number;
  pushesReceived: number;
  pushBytes: number;
  wireBytesOut: number;
  wireBytesIn: number;
}

type State = 'idle' | 'connecting' | 'open' | 'down' | 'closed' | 'failed';

/** Ops that only read: giving up on one loses nothing, and a guest may be waiting on it. */
const READ_OPS: ReadonlySet<number> = new Set([Op.READ, Op.SIGS, Op.PROFILE, Op.REPORT]);
/**
 * While the link is down, a line saying so (and what waits on it) at most this often, on a failed
 * reconnect attempt: no timer of its own, so a simulation runs the same events as without it.
 */
const OUTAGE_REPORT_US = 30_000_000;

/**
 * The cloud end of the link: one authenticated, encrypted connection that
 * multiplexes requests by id and survives drops. Every request is kept until
 * it is answered; after a reconnect the attached disks are attached again and
 * unanswered requests are sent again. That is safe because every op is
 * idempotent: reads and flushes trivially, write groups by their seq.
 */
export class LinkClient {
  readonly stats: LinkClientStats = { requests: 0, retried: 0, reconnects: 0, pushesReceived: 0, pushBytes: 0, wireBytesOut: 0, wireBytesIn: 0 };
  private state: State = 'idle';
  private conn: LinkConnection | null = null;
  private nextId = 1;
  private readonly inflight = new Map<number, Pending>();
  private readonly disks = new Map<number, RemoteDisk>();
  private nextHandle = 1;
  private failure: Error | null = null;
  private readonly nonceLabel: string;
  private creditOwed = 0;
  private readonly stateCbs = new Set<(state: string, err?: Error) => void>();
  private attempts = 0;
  private reconnectTimer: Timer | null = null;
  /** When the link went down (while state is 'down'). */
  private downSinceUs = 0;
  /** Why the link went down, then why the last reconnect failed. */
  private lastFailure: Error | undefined;
  /** When the outage was last reported. */
  private reportedUs = 0;
  private backlog: (() => string) | undefined;

  constructor(private readonly world: World, readonly options: LinkClientOptions) {
    this.nonceLabel = `link-client/${options.peer}`;
  }

  get connected(): boolean {
    return this.state === 'open';
  }

  get pushWindowBytes(): number {
    return this.options.pushWindowBytes ?? 1024 * 1024;
  }

  /**
   * What waits on the link besides requests (the write-behind backlog, the
   * journal's fill), appended to the outage log lines.
   */
  describeBacklog(fn: () => string): void {
    this.backlog = fn;
  }

  /** Be told when the link goes up or down (for traces and tests). */
  onState(cb: (state: string, err?: Error) => void): () => void {
    this.stateCbs.add(cb);
    return () => this.stateCbs.delete(cb);
  }

  private setState(state: State, err?: Error): void {
    this.state = state;
    this.world.trace.emit(`proxy/cloud/${this.options.peer}`, 'link.state', { state, ...(err ? { code: errorCode(err) ?? 'E_IO' } : {}) });
    for (const cb of this.stateCbs) cb(state, err);
  }

  /** Connect and authenticate. Refused pairing and other fatal errors reject; nothing is retried then. */
  async connect(): Promise<void> {
    if (this.state !== 'idle') throw new LinkError(E_PROTOCOL, `connect() called in state ${this.state}`);
    this.state = 'connecting';
    try {
      await this.open();
    } catch (err) {
      this.fail(err as Error);
      throw err;
    }
  }

  /** Attach a disk on the on-prem side (takes its lease when `mode` is rw). */
  async attach(disk: string, options: { mode?: AttachMode; image?: string; blockBytes?: number; writer?: WriterClaim; sigResolver?: (sig: Buffer) => Promise<Buffer | undefined> } = {}): Promise<RemoteDisk> {
    const handle = this.nextHandle++;
    const mode = options.mode ?? 'rw';
    const req: AttachReq = {
      handle, disk, mode, ...(options.image ? { image: options.image } : {}), blockBytes: options.blockBytes ?? 4096,
      ...(mode === 'rw' ? { writer: options.writer ?? { resume: null, unshipped: false } } : {}),
    };
    const reply = parseJson<AttachReply>(await this.request(Op.ATTACH, 0, jsonPayload(req)), 'ATTACH reply');
    const remote = new RemoteDisk(this, handle, req, reply, options.sigResolver);
    this.disks.set(handle, remote);
    return remote;
  }

  /** Send a request; resolves with the reply payload, rejects with the peer's error code. */
  request(op: number, flags: number, payload: Buffer): Promise<Buffer> {
    if (this.state === 'closed' || this.state === 'failed') {
      return Promise.reject(this.failure ?? new LinkError(E_LINK_CLOSED, 'the link client is closed'));
    }
    this.stats.requests++;
    return new Promise<Buffer>((resolve, reject) => {
      const id = this.nextId++;
      const p: Pending = { id, op, flags, payload, resolve, reject, timer: null, sent: 0 };
      const timeoutUs = this.options.readTimeoutUs;
      if (timeoutUs && READ_OPS.has(op)) {
        p.timer = this.world.clock.schedule(timeoutUs, () => {
          this.inflight.delete(id);
          reject(new LinkError(E_LINK_TIMEOUT, `${OP_NAMES[op]} got no answer from on-prem within ${formatDurationUs(timeoutUs)}: ${this.describeLink()}`));
        });
      }
      // Ids only grow, so a reply (or a resent request's second reply) matches one request at most.
      invariant(!this.inflight.has(id), () => `link request id ${id} reused`);
      this.inflight.set(id, p);
      if (this.state === 'open') this.transmit(p);
    });
  }

  /** Fire-and-forget frames (CREDIT). Lost on a drop, which is fine: a new connection starts with a full window. */
  private sendRaw(op: number, payload: Buffer): void {
    if (this.state === 'open') this.conn!.send({ op, flags: 0, id: 0, payload });
  }

  private transmit(p: Pending): void {
    if (p.sent > 0) this.stats.retried++;
    p.sent++;
    this.conn!.send({ op: p.op, flags: p.flags, id: p.id, payload: p.payload });
  }

  /** Cut the current connection as a WAN drop would (tests, fault injection). */
  dropConnection(): void {
    this.conn?.transport.destroy(new LinkError('ECONNRESET', 'link dropped'));
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.reconnectTimer?.cancel();
    this.state = 'closed';
    this.conn?.end();
    this.conn?.destroy();
    this.rejectAll(new LinkError(E_LINK_CLOSED, 'the link client was closed'));
  }

  /** Forget everything without a goodbye, as a killed process would. */
  crash(): void {
    this.reconnectTimer?.cancel();
    this.state = 'closed';
    this.conn?.transport.destroy(new LinkError('ECONNRESET', 'cloud proxy crashed'));
    for (const p of this.inflight.values()) p.timer?.cancel();
    this.inflight.clear();
  }

  private rejectAll(err: Error): void {
    const all = [...this.inflight.values()];
    this.inflight.clear();
    for (const p of all) { p.timer?.cancel(); p.reject(err); }
  }

  private fail(err: Error): void {
    this.failure = err;
    if (this.state === 'down') this.world.log('error', this.src, `link to ${this.options.address} given up after ${this.attempts} reconnect attempts: ${err.message}`, { code: errorCode(err) ?? 'E_IO' });
    this.setState('failed', err);
    this.rejectAll(err);
  }

  private get src(): string {
    return `proxy/cloud/${this.options.peer}`;
  }

  /** The link's state in words, for errors and log lines. */
  private describeLink(): string {
    if (this.state !== 'down') return `the link to ${this.options.address} is ${this.state === 'open' ? 'up but on-prem has not answered' : this.state}`;
    const why = this.lastFailure ? `; last: ${this.lastFailure.message}` : '';
    return `the link to ${this.options.address} is down (for ${formatDurationUs(this.world.clock.nowUs() - this.downSinceUs)}, ${this.attempts} reconnect attempts${why})`;
  }

  /** What waits on the link: unanswered requests, and what the owner said waits besides. */
  private describeWaiting(): string {
    const reads = this.options.readTimeoutUs ? ` (reads fail after ${formatDurationUs(this.options.readTimeoutUs)})` : ' (reads wait for it)';
    const more = this.backlog?.();
    return `${this.inflight.size} requests wait${reads}${more ? `; ${more}` : ''}`;
  }

  /** A reconnect attempt failed: say the link is still down, what waits, at most every OUTAGE_REPORT_US. */
  private reportOutage(): void {
    const now = this.world.clock.nowUs();
    if (now - this.reportedUs < OUTAGE_REPORT_US) return;
    this.reportedUs = now;
    this.world.log('warn', this.src, `${this.describeLink()}; ${this.describeWaiting()}`);
  }

  /** Connect, handshake, re-attach, then resend what is unanswered. */
  private async open(): Promise<void> {
    const o = this.options;
    const transport = await this.world.net.connect(o.address);
    const clientNonce = this.world.unpredictable(this.nonceLabel, NONCE_BYTES);
    let phase: 'challenge' | 'authok' | 'open' = 'challenge';
    let settle!: { resolve: () => void; reject: (err: Error) => void };
    const handshake = new Promise<void>((resolve, reject) => { settle = { resolve, reject }; });
    let serverNonce: Buffer | null = null;

    const conn: LinkConnection = new LinkConnection(transport, {
      clock: this.world.clock,
      ...(o.rateBytesPerS ? { rateBytesPerS: o.rateBytesPerS } : {}),
      onFrame: (f) => {
        if (phase === 'open') { this.onFrame(f); return; }
        if (f.op === Op.REPLY && (f.flags & F_ERROR)) {
          const e = parseJson<ErrorMsg>(f.payload, 'ERROR');
          settle.reject(new LinkError(e.code, `on-prem proxy refused the link: ${e.message}`));
          conn.destroy();
          return;
        }
        if (phase === 'challenge' && f.op === Op.CHALLENGE) {
          const ch = parseJson<ChallengeMsg>(f.payload, 'CHALLENGE');
          serverNonce = Buffer.from(ch.nonce, 'hex');
          if (!proofMatches(proof(o.pairingKey, 'server', clientNonce, serverNonce), Buffer.from(String(ch.proof), 'hex'))) {
            settle.reject(new LinkError(E_NOT_PAIRED, `the on-prem proxy at ${o.address} is not paired with this cloud proxy (its proof does not match the pairing key)`));
            conn.destroy();
            return;
          }
          conn.send({ op: Op.AUTH, flags: 0, id: 0, payload: jsonPayload({ proof: proof(o.pairingKey, 'client', clientNonce, serverNonce).toString('hex') } satisfies AuthMsg) });
          phase = 'authok';
          return;
        }
        if (phase === 'authok' && f.op === Op.AUTH_OK) {
          const keys = sessionKeys(o.pairingKey, clientNonce, serverNonce!);
          conn.secure(keys.c2s, keys.s2c);
          phase = 'open';
          settle.resolve();
          return;
        }
        settle.reject(new LinkError(E_PROTOCOL, `unexpected frame 0x${f.op.toString(16)} during the handshake`));
        conn.destroy();
      },
      onClose: (err) => {
        this.stats.wireBytesOut += conn.wireBytesOut;
        this.stats.wireBytesIn += conn.wireBytesIn;
        // Its bytes are in the totals now: wireBytes() must not count them again through this.conn.
        const current = this.conn === conn;
        if (current) this.conn = null;
        if (phase !== 'open') {
          settle.reject(new LinkError(E_LINK_DOWN, `link to ${o.address} closed during the handshake`, err ? { cause: err } : {}));
          return;
        }
        if (current) this.lost(err);
      },
    });
    const hello: HelloMsg = { v: PROTOCOL_VERSION, nonce: clientNonce.toString('hex'), peer: o.peer, pushWindowBytes: this.pushWindowBytes, sigs: o.sigs ?? null, reportsAccess: o.reportsAccess ?? false, cache: o.cacheGeneration?.() ?? null };
    conn.send({ op: Op.HELLO, flags: 0, id: 0, payload: jsonPayload(hello) });
    await handshake;
    this.conn = conn;
    this.creditOwed = 0;
    if (this.state === 'down') {
      this.world.log('warn', this.src, `link to ${o.address} is back after ${formatDurationUs(this.world.clock.nowUs() - this.downSinceUs)} (${this.attempts} reconnect attempts); resending ${this.inflight.size} requests`);
    }
    this.attempts = 0;
    this.setState('open');
    // Attach first: the server processes a handle's requests only once its ATTACH is done.
    const pending = [...this.inflight.values()].sort((a, b) => a.id - b.id);
    const reattach = [...this.disks.values()].map((d) => d.reattach());
    for (const p of pending) this.transmit(p);
    await Promise.all(reattach);
    for (const d of this.disks.values()) d.resumePushes();
  }

  private lost(err?: Error): void {
    if (this.state === 'closed' || this.state === 'failed') return;
    this.conn = null;
    this.downSinceUs = this.world.clock.nowUs();
    this.reportedUs = this.downSinceUs;
    this.lastFailure = err;
    this.setState('down', err);
    this.world.log('warn', this.src, `link to ${this.options.address} lost${err ? ` (${err.message})` : ''}; reconnecting; ${this.describeWaiting()}`, err ? { code: errorCode(err) ?? 'E_IO' } : undefined);
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    const o = this.options;
    const min = o.reconnectMinUs ?? 100_000;
    const delay = Math.min(o.reconnectMaxUs ?? 5_000_000, min * 2 ** Math.min(this.attempts, 16));
    this.attempts++;
    this.reconnectTimer = this.world.clock.schedule(delay, () => {
      this.reconnectTimer = null;
      if (this.state !== 'down') return;
      this.stats.reconnects++;
      this.open().catch((err: Error) => {
        if (this.state !== 'down') return;
        this.lastFailure = err;
        this.reportOutage();
        const code = errorCode(err);
        if ((code && FATAL_CODES.has(code)) || (o.maxReconnectAttempts !== undefined && this.attempts >= o.maxReconnectAttempts)) this.fail(err);
        else this.scheduleReconnect();
      });
    });
  }

  private onFrame(f: Frame): void {
    if (f.op === Op.REPLY) {
      const p = this.inflight.get(f.id);
      if (!p) return; // answered before a drop and resent; the first answer won
      this.inflight.delete(f.id);
      p.timer?.cancel();
      if (f.flags & F_ERROR) {
        const e = parseJson<ErrorMsg>(f.payload, 'ERROR');
        p.reject(new LinkError(e.code, e.message));
      } else {
        p.resolve(f.payload);
      }
      return;
    }
    if (f.op === Op.PUSH) {
      this.stats.pushesReceived++;
      this.stats.pushBytes += f.payload.length;
      const r = new WireReader(f.payload);
      const disk = this.disks.get(r.u16());
      disk?.receivePush(r, f.flags);
      this.creditOwed += f.payload.length;
      if (this.creditOwed >= this.pushWindowBytes / 4) {
        this.sendRaw(Op.CREDIT, new WireWriter().u32(this.creditOwed).done());
        this.creditOwed = 0;
      }
      return;
    }
    this.conn?.destroy(new LinkError(E_PROTOCOL, `unexpected frame 0x${f.op.toString(16)} from the server`));
  }

  /** Bytes on the wire both ways, including the current connection. */
  wireBytes(): { out: number; in: number } {
    return {
      out: this.stats.wireBytesOut + (this.conn?.wireBytesOut ?? 0),
      in: this.stats.wireBytesIn + (this.conn?.wireBytesIn ?? 0),
    };
  }

  /** @internal used by RemoteDisk to drop a handle after DETACH. */
  forget(handle: number): void {
    this.disks.delete(handle);
  }
}
