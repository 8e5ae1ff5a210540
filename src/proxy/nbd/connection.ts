import type { Transport } from '../../world/types.js';
import type { BlockDevice, Extent } from '../block-device.js';
import { SparseStore, type LentBytes } from '../stores/sparse-store.js';
import { ByteQueue } from './byte-queue.js';
import * as P from './protocol.js';
import type { ConnectionHost, NbdExport } from './host.js';

type Phase = 'client-flags' | 'options' | 'transmission' | 'closing' | 'closed';

/** Largest option payload accepted; real options are a few hundred bytes (strings cap at 4096). */
const MAX_OPTION_BYTES = 64 * 1024;
const BASE_ALLOCATION_ID = 1;
const ZEROES_124 = Buffer.alloc(124);
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
 * One request header, read without BigInts: the cookie is kept as two 32-bit halves (echoed back
 * as they came) and an offset past 2^53 - 1 reads as MAX_SAFE_INTEGER, which fails the range check.
 */
class Request {
  readonly flags: number;
  readonly type: number;
  readonly cookieHi: number;
  readonly cookieLo: number;
  readonly offset: number;
  readonly length: number;
  constructor(h: Buffer) {
    this.flags = h.readUInt16BE(4);
    this.type = h.readUInt16BE(6);
    this.cookieHi = h.readUInt32BE(8);
    this.cookieLo = h.readUInt32BE(12);
    const offsetHi = h.readUInt32BE(16);
    this.offset = offsetHi >= 0x200000 ? Number.MAX_SAFE_INTEGER : offsetHi * 0x100000000 + h.readUInt32BE(20);
    this.length = h.readUInt32BE(24);
  }

  /** The cookie as the protocol helpers take it (error and block-status replies). */
  get cookie(): bigint {
    return (BigInt(this.cookieHi) << 32n) | BigInt(this.cookieLo);
  }

  /** The cookie at bytes 8-15 of a reply header. */
  writeCookie(b: Buffer): void {
    b.writeUInt32BE(this.cookieHi, 8);
    b.writeUInt32BE(this.cookieLo, 12);
  }
}

class ProtocolViolation extends Error {}

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
  private phase: Phase = 'client-flags';
  private readonly input = new ByteQueue();
  private clientFlags = 0;
  private structured = false;
  /** Export the meta contexts were selected for; contexts apply only to that export. */
  private metaExport: string | undefined;
  private baseAllocation = false;
  private exp: NbdExport | undefined;
  private exportFlags = 0;
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

  constructor(private readonly server: ConnectionHost, private readonly transport: Transport, readonly id: number) {
    this.closed = new Promise((resolve) => { this.resolveClosed = resolve; });
    this.src = server.options.src;
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
      if (this.phase === 'client-flags') {
        if (this.input.length < 4) return this.wantInput();
        this.clientFlags = this.input.take(4).readUInt32BE(0);
        if (this.clientFlags & ~(P.FLAG_C_FIXED_NEWSTYLE | P.FLAG_C_NO_ZEROES)) {
          throw new ProtocolViolation(`client flags 0x${this.clientFlags.toString(16)} include bits the server did not offer`);
        }
        this.phase = 'options';
        continue;
      }
      if (this.phase === 'options') {
        if (!this.parseOption()) return this.wantInput();
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

  // ---- option haggling ----

  /** Returns false when more input is needed. */
  private parseOption(): boolean {
    if (this.input.length < P.OPTION_HEADER_BYTES) return false;
    const header = this.input.peek(P.OPTION_HEADER_BYTES);
    if (header.readBigUInt64BE(0) !== P.IHAVEOPT) throw new ProtocolViolation('option without IHAVEOPT magic');
    const option = header.readUInt32BE(8);
    const length = header.readUInt32BE(12);
    if (length > MAX_OPTION_BYTES) {
      if (option === P.OPT_EXPORT_NAME) throw new ProtocolViolation(`export name of ${length} bytes`);
      this.input.skip(P.OPTION_HEADER_BYTES);
      this.discardLeft = length;
      this.afterDiscard = () => this.optionError(option, P.REP_ERR_TOO_BIG, `option data of ${length} bytes exceeds ${MAX_OPTION_BYTES}`);
      return true;
    }
    if (this.input.length < P.OPTION_HEADER_BYTES + length) return false;
    this.input.skip(P.OPTION_HEADER_BYTES);
    const data = Buffer.from(this.input.take(length));
    this.handleOption(option, data);
    return true;
  }

  private handleOption(option: number, data: Buffer): void {
    switch (option) {
      case P.OPT_EXPORT_NAME: return this.optExportName(data);
      case P.OPT_ABORT:
        this.optionReply(option, P.REP_ACK);
        this.phase = 'closing';
        this.flushNow();
        this.transport.end();
        return;
      case P.OPT_LIST: return this.optList(option, data);
      case P.OPT_INFO:
      case P.OPT_GO: return this.optInfoGo(option, data);
      case P.OPT_STRUCTURED_REPLY:
        if (data.length !== 0) return this.optionError(option, P.REP_ERR_INVALID, 'STRUCTURED_REPLY takes no data');
        this.structured = true;
        return this.optionReply(option, P.REP_ACK);
      case P.OPT_LIST_META_CONTEXT:
      case P.OPT_SET_META_CONTEXT: return this.optMetaContext(option, data);
      case P.OPT_STARTTLS: return this.optionError(option, P.REP_ERR_UNSUP, 'TLS is not offered; the proxy link carries its own encryption');
      default: return this.optionError(option, P.REP_ERR_UNSUP, `option ${option} is not supported`);
    }
  }

  private optExportName(data: Buffer): void {
    const name = data.toString('utf8');
    const exp = this.server.findExport(name);
    // EXPORT_NAME cannot report an error: the spec says to drop the connection.
    if (!exp || this.server.isShuttingDown) throw new ProtocolViolation(`EXPORT_NAME for unknown export "${name}"`);
    this.enterTransmission(exp);
    const reply = Buffer.alloc(10);
    reply.writeBigUInt64BE(BigInt(exp.device.size()), 0);
    reply.writeUInt16BE(this.exportFlags, 8);
    this.send(this.clientFlags & P.FLAG_C_NO_ZEROES ? [reply] : [reply, ZEROES_124]);
  }

  private optList(option: number, data: Buffer): void {
    if (data.length !== 0) return this.optionError(option, P.REP_ERR_INVALID, 'LIST takes no data');
    for (const e of this.server.options.exports) {
      const name = Buffer.from(e.name, 'utf8');
      const desc = Buffer.from(e.description ?? '', 'utf8');
      const body = Buffer.allocUnsafe(4 + name.length + desc.length);
      body.writeUInt32BE(name.length, 0);
      name.copy(body, 4);
      desc.copy(body, 4 + name.length);
      this.optionReply(option, P.REP_SERVER, body);
    }
    this.optionReply(option, P.REP_ACK);
  }

  private optInfoGo(option: number, data: Buffer): void {
    if (data.length < 6) return this.optionError(option, P.REP_ERR_INVALID, 'INFO/GO data is too short');
    const nameLength = data.readUInt32BE(0);
    if (nameLength > data.length - 6) return this.optionError(option, P.REP_ERR_INVALID, 'INFO/GO name length runs past the option data');
    const name = data.toString('utf8', 4, 4 + nameLength);
    const count = data.readUInt16BE(4 + nameLength);
    if (data.length !== 6 + nameLength + 2 * count) return this.optionError(option, P.REP_ERR_INVALID, 'INFO/GO request count does not match the option length');
    const requests = new Set<number>();
    for (let i = 0; i < count; i++) requests.add(data.readUInt16BE(6 + nameLength + 2 * i));
    if (this.server.isShuttingDown) return this.optionError(option, P.REP_ERR_SHUTDOWN, 'server is shutting down');
    const exp = this.server.findExport(name);
    if (!exp) return this.optionError(option, P.REP_ERR_UNKNOWN, `no export named "${name}"`);
    const flags = this.flagsFor(exp);

    if (requests.has(P.INFO_NAME)) {
      const n = Buffer.from(exp.name, 'utf8');
      const body = Buffer.allocUnsafe(2 + n.length);
      body.writeUInt16BE(P.INFO_NAME, 0);
      n.copy(body, 2);
      this.optionReply(option, P.REP_INFO, body);
    }
    if (requests.has(P.INFO_DESCRIPTION) && exp.description) {
      const d = Buffer.from(exp.description, 'utf8');
      const body = Buffer.allocUnsafe(2 + d.length);
      body.writeUInt16BE(P.INFO_DESCRIPTION, 0);
      d.copy(body, 2);
      this.optionReply(option, P.REP_INFO, body);
    }
    if (requests.has(P.INFO_BLOCK_SIZE)) {
      const body = Buffer.allocUnsafe(14);
      body.writeUInt16BE(P.INFO_BLOCK_SIZE, 0);
      body.writeUInt32BE(1, 2);
      body.writeUInt32BE(4096, 6);
      body.writeUInt32BE(this.server.options.maxPayloadBytes, 10);
      this.optionReply(option, P.REP_INFO, body);
    }
    const info = Buffer.allocUnsafe(12);
    info.writeUInt16BE(P.INFO_EXPORT, 0);
    info.writeBigUInt64BE(BigInt(exp.device.size()), 2);
    info.writeUInt16BE(flags, 10);
    this.optionReply(option, P.REP_INFO, info);
    this.optionReply(option, P.REP_ACK);
    if (option === P.OPT_GO) this.enterTransmission(exp);
  }

  private optMetaContext(option: number, data: Buffer): void {
    const set = option === P.OPT_SET_META_CONTEXT;
    if (!this.structured) return this.optionError(option, P.REP_ERR_INVALID, 'negotiate STRUCTURED_REPLY before meta contexts');
    const parsed = parseMetaContextData(data);
    if (typeof parsed === 'string') return this.optionError(option, P.REP_ERR_INVALID, parsed);
    const exp = this.server.findExport(parsed.exportName);
    if (!exp) return this.optionError(option, P.REP_ERR_UNKNOWN, `no export named "${parsed.exportName}"`);
    let matches: boolean;
    if (set) {
      matches = parsed.queries.includes(P.BASE_ALLOCATION);
      this.baseAllocation = matches;
      this.metaExport = exp.name;
    } else {
      matches = parsed.queries.length === 0 || parsed.queries.some((q) => q === 'base:' || q === P.BASE_ALLOCATION);
    }
    if (matches) {
      const name = Buffer.from(P.BASE_ALLOCATION);
      const body = Buffer.allocUnsafe(4 + name.length);
      body.writeUInt32BE(set ? BASE_ALLOCATION_ID : 0, 0);
      name.copy(body, 4);
      this.optionReply(option, P.REP_META_CONTEXT, body);
    }
    this.optionReply(option, P.REP_ACK);
  }

  private flagsFor(exp: NbdExport): number {
    let flags = P.TF_HAS_FLAGS | P.TF_SEND_FLUSH | P.TF_SEND_CACHE;
    if (exp.readOnly) flags |= P.TF_READ_ONLY;
    else flags |= P.TF_SEND_FUA | P.TF_SEND_TRIM | P.TF_SEND_WRITE_ZEROES | P.TF_SEND_FAST_ZERO;
    if (this.structured) flags |= P.TF_SEND_DF;
    if (exp.multiConn ?? true) flags |= P.TF_CAN_MULTI_CONN;
    return flags;
  }

  private enterTransmission(exp: NbdExport): void {
    this.exp = exp;
    this.exportFlags = this.flagsFor(exp);
    this.syncDevice = isSyncDevice(exp.device) ? exp.device : undefined;
    if (this.metaExport !== exp.name) this.baseAllocation = false;
    this.phase = 'transmission';
    this.server.world.trace.emit(this.src, 'nbd.export', { conn: this.id, export: exp.name, structured: this.structured, flags: this.exportFlags });
  }

  private optionReply(option: number, type: number, body?: Buffer): void {
    const header = P.optionReplyHeader(option, type, body?.length ?? 0);
    this.send(body ? [header, body] : [header]);
  }

  private optionError(option: number, type: number, message: string): void {
    this.optionReply(option, type, Buffer.from(message, 'utf8'));
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
      const device = this.exp!.device;
      const fua = (req.flags & P.CMD_FLAG_FUA) !== 0;
      switch (req.type) {
        case P.CMD_READ: {
          const data = await device.read(req.offset, req.length);
          // A short or long buffer would desynchronize a simple-reply client: refuse it instead.
          if (data.length !== req.length) return this.replyError(req, P.EIO, `${device.name} returned ${data.length} bytes for a read of ${req.length}`);
          this.server.stats.bytesRead += data.length;
          return this.replyRead(req, data);
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
          return this.replyBlockStatus(req, extents);
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
      const headerBytes = this.structured ? P.STRUCTURED_HEADER_BYTES + 8 : P.SIMPLE_REPLY_BYTES;
      this.server.stats.bytesRead += req.length;
      if (this.transport.confirmsWritten) {
        // The socket takes the store's own chunks as the payload: no copy in this process.
        const header = Buffer.allocUnsafe(headerBytes);
        this.writeReadHeader(header, req);
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
      this.writeReadHeader(reply, req);
      device.readInto(req.offset, req.length, reply, headerBytes);
      this.send([reply]);
    } catch (err) {
      this.replyFailure(req, err);
    }
  }

  /** A successful READ reply's header (simple, or structured OFFSET_DATA with the offset) at the start of `b`. */
  private writeReadHeader(b: Buffer, req: Request): void {
    if (this.structured) {
      b.writeUInt32BE(P.STRUCTURED_REPLY_MAGIC, 0);
      b.writeUInt16BE(P.REPLY_FLAG_DONE, 4);
      b.writeUInt16BE(P.REPLY_TYPE_OFFSET_DATA, 6);
      req.writeCookie(b);
      b.writeUInt32BE(8 + req.length, 16);
      b.writeUInt32BE(Math.floor(req.offset / 0x100000000), P.STRUCTURED_HEADER_BYTES);
      b.writeUInt32BE(req.offset >>> 0, P.STRUCTURED_HEADER_BYTES + 4);
    } else {
      b.writeUInt32BE(P.SIMPLE_REPLY_MAGIC, 0);
      b.writeUInt32BE(0, 4);
      req.writeCookie(b);
    }
  }

  private replyFailure(req: Request, err: unknown): void {
    const errno = P.errnoFor(err);
    if (errno === P.EIO) this.server.world.log('warn', this.src, `${P.COMMAND_NAMES[req.type] ?? req.type} failed`, { conn: this.id, error: err instanceof Error ? err.message : String(err) });
    this.replyError(req, errno, err instanceof Error ? err.message : String(err));
  }

  /** The errno and message for a request that must not reach the device, or undefined. */
  private validate(req: Request): [number, string] | undefined {
    if (this.disconnectRequested || this.server.isShuttingDown) return [P.ESHUTDOWN, 'server is shutting down'];
    const name = P.COMMAND_NAMES[req.type];
    if (name === undefined) return [P.EINVAL, `unknown command ${req.type}`];
    if (req.flags & ~this.allowedFlags(req.type)) return [P.EINVAL, `${name}: flags 0x${req.flags.toString(16)} are not valid for this command`];
    const readOnly = this.exp!.readOnly ?? false;
    const writes = req.type === P.CMD_WRITE || req.type === P.CMD_TRIM || req.type === P.CMD_WRITE_ZEROES;
    if (writes && readOnly) return [P.EPERM, `${name}: export "${this.exp!.name}" is read-only`];
    if (req.type === P.CMD_FLUSH) {
      return req.offset !== 0 || req.length !== 0 ? [P.EINVAL, 'FLUSH: offset and length must be zero'] : undefined;
    }
    if (req.type === P.CMD_BLOCK_STATUS && !this.baseAllocation) return [P.EINVAL, 'BLOCK_STATUS: no metadata context was negotiated'];
    if (req.length === 0) return [P.EINVAL, `${name}: length must not be zero`];
    if (req.type === P.CMD_READ && req.length > this.server.options.maxPayloadBytes) {
      return [P.EINVAL, `READ of ${req.length} bytes exceeds the maximum payload of ${this.server.options.maxPayloadBytes} bytes`];
    }
    const size = this.exp!.device.size();
    if (req.offset + req.length > size) {
      const errno = req.type === P.CMD_WRITE || req.type === P.CMD_WRITE_ZEROES ? P.ENOSPC : P.EINVAL;
      return [errno, `${name}: ${req.length} bytes at ${req.offset} run past the end of the export (${size} bytes)`];
    }
    return undefined;
  }

  private allowedFlags(type: number): number {
    switch (type) {
      case P.CMD_READ: return P.CMD_FLAG_FUA | (this.structured ? P.CMD_FLAG_DF : 0);
      case P.CMD_WRITE_ZEROES: return P.CMD_FLAG_FUA | P.CMD_FLAG_NO_HOLE | P.CMD_FLAG_FAST_ZERO;
      case P.CMD_BLOCK_STATUS: return P.CMD_FLAG_FUA | P.CMD_FLAG_REQ_ONE;
      default: return P.CMD_FLAG_FUA;
    }
  }

  private replyOk(req: Request): void {
    const b = Buffer.allocUnsafe(P.SIMPLE_REPLY_BYTES);
    b.writeUInt32BE(P.SIMPLE_REPLY_MAGIC, 0);
    b.writeUInt32BE(0, 4);
    req.writeCookie(b);
    this.send([b]);
  }

  private replyRead(req: Request, data: Buffer): void {
    if (!this.structured) {
      this.send([P.simpleReply(req.cookie, 0), data]);
      return;
    }
    const header = P.structuredHeader(req.cookie, P.REPLY_FLAG_DONE, P.REPLY_TYPE_OFFSET_DATA, 8 + data.length, 8);
    header.writeBigUInt64BE(BigInt(req.offset), 20);
    this.send([header, data]);
  }

  private replyBlockStatus(req: Request, extents: Extent[]): void {
    const one = (req.flags & P.CMD_FLAG_REQ_ONE) !== 0;
    const descriptors: Array<[number, number]> = [];
    for (const e of extents) {
      if (e.length <= 0) continue;
      const status = e.type === 'hole' ? P.STATE_HOLE | P.STATE_ZERO : e.type === 'zero' ? P.STATE_ZERO : 0;
      const last = descriptors[descriptors.length - 1];
      if (last && last[1] === status) last[0] += e.length;
      else descriptors.push([e.length, status]);
      if (one && descriptors.length > 1) { descriptors.pop(); break; }
    }
    if (descriptors.length === 0) descriptors.push([req.length, 0]);
    const body = 4 + 8 * descriptors.length;
    const b = P.structuredHeader(req.cookie, P.REPLY_FLAG_DONE, P.REPLY_TYPE_BLOCK_STATUS, body, body);
    b.writeUInt32BE(BASE_ALLOCATION_ID, 20);
    let at = 24;
    for (const [length, status] of descriptors) {
      b.writeUInt32BE(Math.min(length, 0xffffffff), at);
      b.writeUInt32BE(status, at + 4);
      at += 8;
    }
    this.send([b]);
  }

  private replyError(req: Request, errno: number, message: string): void {
    this.server.stats.errors++;
    // A read must get a structured reply once negotiated; other errors prefer it for the message.
    if (this.structured) this.send([P.structuredError(req.cookie, errno, message)]);
    else this.send([P.simpleReply(req.cookie, errno)]);
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
    this.unflushedBytes += bytes + this.outHeldBytes;
    this.outHeldBytes = 0;
    const endLoans = loans.length ? () => { for (const l of loans) l.release(); } : undefined;
    let ok: boolean;
    // Small batches (a few acks) are cheaper copied into one write than corked into a writev.
    if (out.length > 1 && bytes <= SMALL_BATCH_BYTES) {
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

function parseMetaContextData(data: Buffer): { exportName: string; queries: string[] } | string {
  if (data.length < 8) return 'meta context data is too short';
  const nameLength = data.readUInt32BE(0);
  if (nameLength > data.length - 8) return 'meta context export name runs past the option data';
  const exportName = data.toString('utf8', 4, 4 + nameLength);
  let at = 4 + nameLength;
  const count = data.readUInt32BE(at);
  at += 4;
  const queries: string[] = [];
  for (let i = 0; i < count; i++) {
    if (at + 4 > data.length) return 'meta context query count runs past the option data';
    const n = data.readUInt32BE(at);
    at += 4;
    if (at + n > data.length) return 'meta context query runs past the option data';
    queries.push(data.toString('utf8', at, at + n));
    at += n;
  }
  if (at !== data.length) return 'meta context data has trailing bytes';
  return { exportName, queries };
}
