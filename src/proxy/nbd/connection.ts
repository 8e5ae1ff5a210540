import type { Timer, Transport } from '../../world/types.js';
import type { BlockDevice } from '../block-device.js';
import { SparseStore, type LentBytes } from '../stores/sparse-store.js';
import { ByteQueue } from './byte-queue.js';
import type { ConnectionHost } from './host.js';
import { Negotiation } from './negotiation.js';
import * as P from './protocol.js';
import { blockStatusReply, errorReply, okReply, readHeaderBytes, readReply, writeReadHeader } from './replies.js';
import { ProtocolViolation, Request, validateRequest, type Negotiated } from './request.js';

type Phase = 'negotiating' | 'transmission' | 'closing' | 'closed';

/**
 * Batches below Node's Buffer slab threshold (allocations under 4 KiB are carved from a shared
 * slab) are copied into one write; anything larger goes out as a writev of the pieces. Copying a
 * 4 KiB read's reply into a fresh buffer cost more (an external allocation and its GC) than the
 * writev: fio-style 4 KiB reads, QD1 20-29 -> 15-21 us/op, QD32 6.4-7.6 -> 5.3-6.2 us/op (one
 * process serving and reading over a unix socket; a 16 KiB threshold before).
 */
const SMALL_BATCH_BYTES = 4095;
/**
 * Size of the one read buffer a connection reuses on transports that lend reads (LiveNet), instead
 * of a fresh 64 KiB Buffer per socket read: a unix socket then hands over ~200 KiB per read while a
 * writer keeps it full. Memory per connection, held for its life.
 */
const READ_BUFFER_BYTES = 512 * 1024;
/**
 * What one buffer handed to the transport costs beyond its bytes while the client does not read:
 * node's write request and queue entry and the Buffer object. Measured: ~400 B per reply of a
 * 1-byte READ held for a client that stopped reading; counted here so that bound holds for
 * small replies too (before, 64 MiB of 17-byte replies was ~4 M replies, ~1.6 GB).
 */
const WRITE_OVERHEAD_BYTES = 512;

/** A WRITE to a synchronous store whose payload is copied into the store as it arrives. */
interface StreamedWrite {
  req: Request;
  at: number;
  left: number;
  failure: unknown;
}

/**
 * One client connection: handshake, option haggling, then the transmission
 * phase with requests served concurrently and replied to as they complete.
 * Every handler is guarded: a throwing device becomes an error reply, a
 * malformed stream becomes a disconnect, never a crash.
 */
export class NbdConnection {
  readonly closed: Promise<void>;
  private resolveClosed!: () => void;
  private phase: Phase = 'negotiating';
  private readonly input = new ByteQueue();
  private readonly negotiation: Negotiation;
  /** What the handshake settled; set when the transmission phase starts. */
  private session: Negotiated | undefined;
  /** session.structured, read on every reply. */
  private structured = false;
  /** The export's device when it can be read and written synchronously (served without a promise per request). */
  private syncDevice: SparseStore | undefined;

  private inflight = 0;
  private inflightBytes = 0;
  /** The WRITE whose payload is being received straight into the synchronous store. */
  private streamed: StreamedWrite | undefined;
  /** Bytes of an over-size WRITE payload still to be read and dropped. */
  private discardLeft = 0;
  private afterDiscard: (() => void) | undefined;
  private readingPaused = false;
  private outputBlocked = false;
  /**
   * Bytes handed to the transport since it last drained, counting a lent view at the size of the
   * store chunk it keeps alive: an upper bound on the memory the transport holds.
   */
  private unflushedBytes = 0;
  private outQueue: Buffer[] = [];
  private outQueueBytes = 0;
  /** Loans to end once outQueue is written (store views handed to the socket as READ payloads). */
  private outLoans: LentBytes[] = [];
  /** What the loans in outLoans keep alive beyond the bytes in outQueue. */
  private outHeldBytes = 0;
  private flushScheduled = false;
  /** Set while a lent read is parsed: replies it produces are flushed when parsing returns, not in a microtask. */
  private inReadCallback = false;
  private disconnectRequested = false;
  private pumping = false;
  private readonly src: string;
  private handshakeTimer: Timer | undefined;

  constructor(private readonly server: ConnectionHost, private readonly transport: Transport, readonly id: number) {
    this.closed = new Promise((resolve) => { this.resolveClosed = resolve; });
    this.src = server.options.src;
    this.negotiation = new Negotiation(server, this.input, {
      send: (buffers) => this.send(buffers),
      discard: (bytes, then) => { this.discardLeft = bytes; this.afterDiscard = then; },
      abort: () => {
        this.phase = 'closing';
        this.flushNow();
        this.transport.end();
      },
      enter: (n) => this.enterTransmission(n),
    });
  }

  start(): void {
    // First, while the transport has no listeners: a lent read buffer must be set up before any data.
    const lent = this.transport.onDataLent?.((chunk) => {
      if (this.phase === 'closed' || this.phase === 'closing') return;
      this.input.pushLent(chunk);
      this.inReadCallback = true;
      this.pump();
      this.inReadCallback = false;
      if (this.flushScheduled) this.flushNow();
      // What the parser did not consume must not refer to the transport's buffer once this returns.
      this.input.keepLent();
    }, READ_BUFFER_BYTES) ?? false;
    this.transport.onClose((err) => this.onTransportClosed(err));
    this.transport.onDrain(() => {
      this.unflushedBytes = 0;
      this.outputBlocked = false;
      this.pump();
    });
    if (!lent) {
      this.transport.onData((chunk) => {
        if (this.phase === 'closed' || this.phase === 'closing') return;
        this.input.push(chunk);
        this.pump();
      });
    }
    const greeting = Buffer.allocUnsafe(18);
    greeting.writeBigUInt64BE(P.NBDMAGIC, 0);
    greeting.writeBigUInt64BE(P.IHAVEOPT, 8);
    greeting.writeUInt16BE(P.FLAG_FIXED_NEWSTYLE | P.FLAG_NO_ZEROES, 16);
    this.send([greeting]);
    this.server.world.trace.emit(this.src, 'nbd.open', { conn: this.id, client: this.transport.remoteAddress });
    this.handshakeTimer = this.server.world.clock.schedule(this.server.options.handshakeTimeoutUs, () => {
      this.handshakeTimer = undefined;
      if (this.phase !== 'negotiating') return;
      this.server.handshakeTimedOut(this.transport.remoteAddress);
      this.hardClose('handshake not finished in time');
    });
  }

  /** Still haggling options: no export chosen yet. */
  get negotiating(): boolean {
    return this.phase === 'negotiating';
  }

  /** Close at once (the server needs the slot). */
  drop(reason: string): void {
    this.hardClose(reason);
  }

  /** Finish what is in flight, answer the rest with ESHUTDOWN, then close. */
  async shutdown(): Promise<void> {
    if (this.phase !== 'transmission') this.hardClose('server shutting down');
    else {
      this.disconnectRequested = true;
      this.maybeFinishDisconnect();
      this.pump();
    }
    await this.closed;
  }

  // ---- input parsing ----

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      this.parse();
    } catch (err) {
      this.violation(err instanceof Error ? err.message : String(err));
    } finally {
      this.pumping = false;
    }
  }

  private parse(): void {
    for (;;) {
      if (this.phase === 'closed' || this.phase === 'closing') return;
      if (this.streamed) {
        if (!this.continueStreamedWrite(this.streamed)) return this.wantInput();
        continue;
      }
      if (this.discardLeft > 0) {
        this.discardLeft -= this.input.skip(this.discardLeft);
        if (this.discardLeft > 0) return this.wantInput();
        const then = this.afterDiscard;
        this.afterDiscard = undefined;
        then?.();
        continue;
      }
      if (this.phase === 'negotiating') {
        if (!this.negotiation.step()) return this.wantInput();
        continue;
      }
      if (!this.parseRequest()) return;
    }
  }

  private wantInput(): void {
    this.setReading(true);
  }

  private setReading(on: boolean): void {
    if (on === !this.readingPaused) return;
    this.readingPaused = !on;
    if (on) this.transport.resume?.();
    else this.transport.pause?.();
  }

  private enterTransmission(n: Negotiated): void {
    this.handshakeTimer?.cancel();
    this.handshakeTimer = undefined;
    this.session = n;
    this.structured = n.structured;
    this.syncDevice = isSyncDevice(n.exp.device) ? n.exp.device : undefined;
    this.phase = 'transmission';
    this.server.world.trace.emit(this.src, 'nbd.export', { conn: this.id, export: n.exp.name, structured: n.structured, flags: n.flags });
  }

  // ---- transmission ----

  /** Returns false when parsing must stop (more input needed, throttled, or disconnecting). */
  private parseRequest(): boolean {
    if (this.disconnectRequested) {
      // After DISC (or on shutdown) nothing new is started; the connection closes once in-flight work is answered.
      this.maybeFinishDisconnect();
      return false;
    }
    if (this.input.length < P.REQUEST_HEADER_BYTES) {
      this.wantInput();
      return false;
    }
    const h = this.input.peek(P.REQUEST_HEADER_BYTES);
    if (h.readUInt32BE(0) !== P.REQUEST_MAGIC) throw new ProtocolViolation(`request magic 0x${h.readUInt32BE(0).toString(16)} is not 0x25609513`);
    const req = new Request(h);
    const max = this.server.options.maxPayloadBytes;
    if (req.type === P.CMD_WRITE && req.length > max) {
      // Keep the stream in sync: the payload is on the wire, read and drop it.
      this.input.skip(P.REQUEST_HEADER_BYTES);
      this.countRequest();
      this.replyError(req, P.EINVAL, `WRITE of ${req.length} bytes exceeds the maximum payload of ${max} bytes`);
      this.discardLeft = req.length;
      return true;
    }
    const cost = req.type === P.CMD_READ || req.type === P.CMD_WRITE ? Math.min(req.length, max) : 0;
    // Replies served in this turn wait in outQueue until the flush; one input chunk can hold thousands
    // of READ requests, so hand them to the transport early once they pass the cap (that is what
    // tells whether the client keeps up).
    if (this.outQueueBytes + this.outHeldBytes + this.unflushedBytes > this.server.options.maxInFlightBytes) this.flushNow();
    if (this.inflight >= this.server.options.maxInFlight
      || (this.inflight > 0 && this.inflightBytes + cost > this.server.options.maxInFlightBytes)
      || this.outputBlocked) {
      this.setReading(false);
      return false;
    }
    if (this.syncDevice && req.type === P.CMD_WRITE) {
      this.input.skip(P.REQUEST_HEADER_BYTES);
      this.countRequest();
      this.startStreamedWrite(req);
      return true;
    }
    const payloadBytes = req.type === P.CMD_WRITE ? req.length : 0;
    if (this.input.length < P.REQUEST_HEADER_BYTES + payloadBytes) {
      this.wantInput();
      return false;
    }
    this.input.skip(P.REQUEST_HEADER_BYTES);
    if (this.syncDevice && req.type === P.CMD_READ) {
      this.countRequest();
      this.serveSyncRead(this.syncDevice, req);
      return true;
    }
    const payload = payloadBytes ? this.input.take(payloadBytes) : undefined;
    this.countRequest();
    if (req.type === P.CMD_DISC) {
      this.disconnectRequested = true;
      this.input.clear();
      this.maybeFinishDisconnect();
      return false;
    }
    this.inflight++;
    this.inflightBytes += cost;
    void this.serve(req, payload).then(() => {
      this.inflight--;
      this.inflightBytes -= cost;
      if (this.disconnectRequested) this.maybeFinishDisconnect();
      this.pump();
    });
    return true;
  }

  private countRequest(): void {
    this.server.stats.requests++;
  }

  /** Serve one request; never rejects. */
  private async serve(req: Request, payload: Buffer | undefined): Promise<void> {
    try {
      const problem = this.validate(req);
      if (problem) return this.replyError(req, problem[0], problem[1]);
      const device = this.session!.exp.device;
      const fua = (req.flags & P.CMD_FLAG_FUA) !== 0;
      switch (req.type) {
        case P.CMD_READ: {
          const data = await device.read(req.offset, req.length);
          // A short or long buffer would desynchronize a simple-reply client: refuse it instead.
          if (data.length !== req.length) return this.replyError(req, P.EIO, `${device.name} returned ${data.length} bytes for a read of ${req.length}`);
          this.server.stats.bytesRead += data.length;
          return this.send(readReply(req, data, this.structured));
        }
        case P.CMD_WRITE:
          await device.write(req.offset, payload!, { fua });
          this.server.stats.bytesWritten += req.length;
          return this.replyOk(req);
        case P.CMD_FLUSH:
          await device.flush();
          return this.replyOk(req);
        case P.CMD_TRIM:
          await device.trim(req.offset, req.length, { fua });
          return this.replyOk(req);
        case P.CMD_WRITE_ZEROES:
          await device.writeZeroes(req.offset, req.length, {
            fua, noHole: (req.flags & P.CMD_FLAG_NO_HOLE) !== 0, fastZero: (req.flags & P.CMD_FLAG_FAST_ZERO) !== 0,
          });
          return this.replyOk(req);
        case P.CMD_CACHE:
          await device.prefetch(req.offset, req.length);
          return this.replyOk(req);
        case P.CMD_BLOCK_STATUS: {
          const extents = await device.extents(req.offset, req.length);
          return this.send([blockStatusReply(req, extents)]);
        }
        default:
          return this.replyError(req, P.EINVAL, `unknown command ${req.type}`);
      }
    } catch (err) {
      this.replyFailure(req, err);
    }
  }

  /**
   * A WRITE to an in-memory store: its payload goes into the store piece by piece as the socket
   * delivers it (straight from the transport's read buffer when it lends one), never gathered into
   * one buffer first. The reply leaves once the last byte is stored; a request the store must not
   * take has its payload read and dropped before the error reply, as any other client would see.
   * A connection lost mid-payload leaves that write partly applied: it was never acknowledged, the
   * same as a torn write on a disk.
   */
  private startStreamedWrite(req: Request): void {
    const problem = this.validate(req);
    if (!problem) {
      this.streamed = { req, at: req.offset, left: req.length, failure: undefined };
      return;
    }
    if (req.length === 0) return this.replyError(req, problem[0], problem[1]);
    this.discardLeft = req.length;
    this.afterDiscard = () => this.replyError(req, problem[0], problem[1]);
  }

  /** Store what has arrived of the streamed write; false while more of its payload is to come. */
  private continueStreamedWrite(w: StreamedWrite): boolean {
    const n = Math.min(w.left, this.input.length);
    if (n > 0) {
      const pieces = this.input.takeViews(n);
      w.left -= n;
      if (w.failure === undefined) {
        try {
          for (const piece of pieces) {
            this.syncDevice!.writeSync(w.at, piece);
            w.at += piece.length;
          }
        } catch (err) {
          w.failure = err;
        }
      }
    }
    if (w.left > 0) return false;
    this.streamed = undefined;
    if (w.failure !== undefined) this.replyFailure(w.req, w.failure);
    else {
      this.server.stats.bytesWritten += w.req.length;
      this.replyOk(w.req);
    }
    return true;
  }

  /**
   * READ on an in-memory store, answered in the same turn: the reply lends the store's chunks to
   * the socket (or, on a transport that cannot say when it is done with them, carries a copy).
   */
  private serveSyncRead(device: SparseStore, req: Request): void {
    try {
      const problem = this.validate(req);
      if (problem) return this.replyError(req, problem[0], problem[1]);
      const headerBytes = readHeaderBytes(this.structured);
      this.server.stats.bytesRead += req.length;
      if (this.transport.confirmsWritten) {
        // The socket takes the store's own chunks as the payload: no copy in this process.
        const header = Buffer.allocUnsafe(headerBytes);
        writeReadHeader(header, req, this.structured);
        const lent = device.lend(req.offset, req.length);
        this.send([header, ...lent.views]);
        if (this.phase === 'closed') lent.release();
        else {
          this.outLoans.push(lent);
          this.outHeldBytes += Math.max(0, lent.heldBytes - req.length);
        }
        return;
      }
      // A transport that may keep the buffer without saying when it is done gets a copy of its own.
      const reply = Buffer.allocUnsafe(headerBytes + req.length);
      writeReadHeader(reply, req, this.structured);
      device.readInto(req.offset, req.length, reply, headerBytes);
      this.send([reply]);
    } catch (err) {
      this.replyFailure(req, err);
    }
  }

  private replyFailure(req: Request, err: unknown): void {
    const errno = P.errnoFor(err);
    if (errno === P.EIO) this.server.world.log('warn', this.src, `${P.COMMAND_NAMES[req.type] ?? req.type} failed`, { conn: this.id, error: err instanceof Error ? err.message : String(err) });
    this.replyError(req, errno, err instanceof Error ? err.message : String(err));
  }

  /** The errno and message for a request that must not reach the device, or undefined. */
  private validate(req: Request): [number, string] | undefined {
    return validateRequest(req, this.session!, this.server.options.maxPayloadBytes, this.disconnectRequested || this.server.isShuttingDown);
  }

  private replyOk(req: Request): void {
    this.send([okReply(req)]);
  }

  private replyError(req: Request, errno: number, message: string): void {
    this.server.stats.errors++;
    this.send([errorReply(req, errno, message, this.structured)]);
  }

  // ---- output ----

  private send(buffers: Buffer[]): void {
    if (this.phase === 'closed') return;
    for (const b of buffers) {
      this.outQueue.push(b);
      this.outQueueBytes += b.length;
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // Replies completing in the same turn leave in one writev.
      if (!this.inReadCallback) void Promise.resolve().then(() => this.flushNow());
    }
  }

  private flushNow(): void {
    this.flushScheduled = false;
    if (this.outQueue.length === 0 || this.phase === 'closed') return;
    const out = this.outQueue;
    const bytes = this.outQueueBytes;
    this.outQueue = [];
    this.outQueueBytes = 0;
    const loans = this.outLoans;
    if (loans.length) this.outLoans = [];
    const small = out.length > 1 && bytes <= SMALL_BATCH_BYTES;
    this.unflushedBytes += bytes + this.outHeldBytes + (small ? 1 : out.length) * WRITE_OVERHEAD_BYTES;
    this.outHeldBytes = 0;
    const endLoans = loans.length ? () => { for (const l of loans) l.release(); } : undefined;
    let ok: boolean;
    // Small batches (a few acks) are cheaper copied into one write than corked into a writev.
    if (small) {
      ok = this.transport.write(Buffer.concat(out, bytes));
      endLoans?.();
    } else if (out.length === 1) ok = this.transport.write(out[0]!, endLoans);
    else if (this.transport.writev) ok = this.transport.writev(out, endLoans);
    else {
      ok = true;
      // Writes complete in order: the last one's callback means the whole batch is out.
      for (let i = 0; i < out.length; i++) ok = this.transport.write(out[i]!, i === out.length - 1 ? endLoans : undefined);
    }
    // A socket says "wait" past 16 KiB; replies are bounded by the in-flight cap already, so
    // only stop taking requests when the client is clearly not reading what it asked for.
    if (!ok && !this.transport.closed && this.unflushedBytes > this.server.options.maxInFlightBytes) this.outputBlocked = true;
  }

  // ---- endings ----

  private maybeFinishDisconnect(): void {
    if (this.inflight > 0 || this.phase === 'closed' || this.phase === 'closing') return;
    this.phase = 'closing';
    this.flushNow();
    this.transport.end();
  }

  private violation(message: string): void {
    this.server.stats.protocolViolations++;
    this.server.world.log('warn', this.src, `protocol violation, disconnecting: ${message}`, { conn: this.id });
    this.hardClose(message);
  }

  private hardClose(reason: string): void {
    if (this.phase === 'closed') return;
    this.server.world.trace.emit(this.src, 'nbd.violation', { conn: this.id, reason });
    this.phase = 'closing';
    this.dropOutput();
    this.input.clear();
    this.streamed = undefined;
    this.transport.destroy();
  }

  /** Forget unsent replies; what they lent is handed back (the socket never got it). */
  private dropOutput(): void {
    this.outQueue = [];
    this.outQueueBytes = 0;
    this.outHeldBytes = 0;
    const loans = this.outLoans;
    this.outLoans = [];
    for (const l of loans) l.release();
  }

  private onTransportClosed(err?: Error): void {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    this.handshakeTimer?.cancel();
    this.handshakeTimer = undefined;
    this.input.clear();
    this.streamed = undefined;
    this.dropOutput();
    this.server.world.trace.emit(this.src, 'nbd.close', { conn: this.id, reset: err !== undefined });
    this.resolveClosed();
  }
}

/** Stores whose reads and writes complete synchronously in memory (no I/O to wait for). */
function isSyncDevice(device: BlockDevice): device is SparseStore {
  return device instanceof SparseStore;
}
