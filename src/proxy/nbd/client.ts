import { SpillwayError } from '../../errors.js';
import type { Net, Transport } from '../../world/types.js';
import { BlockError, E_CLOSED, checkRange, type BlockDevice, type Extent, type WriteOptions, type ZeroOptions } from '../block-device.js';
import { ByteQueue } from './byte-queue.js';
import * as P from './protocol.js';

export interface OptionReply {
  type: number;
  data: Buffer;
}

export interface ExportInfo {
  name: string;
  size: number;
  flags: number;
  description?: string;
  blockSize?: { minimum: number; preferred: number; maximum: number };
  structured: boolean;
  /** Context id for base:allocation when negotiated. */
  baseAllocationId?: number;
}

export interface NbdClientOptions {
  exportName?: string;
  /** Negotiate structured replies (default true). */
  structured?: boolean;
  /** Select base:allocation for BLOCK_STATUS (default true; needs structured replies). */
  blockStatus?: boolean;
  /** Device name for errors and traces. */
  name?: string;
}

/** What the server answered to one transmission request. */
export interface RawReply {
  /** 0 on success, else the NBD errno. */
  error: number;
  message?: string;
  /** READ payload. */
  data?: Buffer;
  /** BLOCK_STATUS descriptors: [length, status]. */
  descriptors?: Array<[number, number]>;
  /** Number of reply chunks (1 for a simple reply). */
  chunks: number;
  structured: boolean;
}

/**
 * The option-haggling phase of a client connection: the greeting is checked
 * on `start`, then options can be sent one at a time. Tests use it to send
 * malformed options; NbdClient.connect uses it to reach transmission.
 */
export class NbdNegotiation {
  readonly input = new ByteQueue();
  private waiter: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | undefined;
  private sink: ((chunk: Buffer) => void) | undefined;
  private closeError: Error | undefined;
  private closeCbs: Array<(err: Error) => void> = [];
  serverFlags = 0;
  noZeroes = false;
  structured = false;

  constructor(readonly transport: Transport) {
    transport.onData((chunk) => {
      if (this.sink) { this.sink(chunk); return; }
      this.input.push(chunk);
      this.wake();
    });
    transport.onClose((err) => {
      this.closeError = err ?? new SpillwayError('E_NBD_CLOSED', 'NBD connection closed');
      const w = this.waiter;
      this.waiter = undefined;
      w?.reject(this.closeError);
      for (const cb of this.closeCbs) cb(this.closeError);
    });
  }

  /** Route further input to `sink` (the transmission-phase parser), starting with what is buffered. */
  handOver(sink: (chunk: Buffer) => void, onClose: (err: Error) => void): void {
    this.sink = sink;
    this.closeCbs.push(onClose);
    if (this.closeError) onClose(this.closeError);
  }

  read(n: number): Promise<Buffer> {
    if (this.input.length >= n) return Promise.resolve(Buffer.from(this.input.take(n)));
    if (this.closeError) return Promise.reject(this.closeError);
    return new Promise((resolve, reject) => { this.waiter = { n, resolve, reject }; });
  }

  private wake(): void {
    const w = this.waiter;
    if (w && this.input.length >= w.n) {
      this.waiter = undefined;
      w.resolve(Buffer.from(this.input.take(w.n)));
    }
  }

  /** Read the greeting and answer with client flags. */
  async start(clientFlags?: number): Promise<void> {
    const greeting = await this.read(18);
    if (greeting.readBigUInt64BE(0) !== P.NBDMAGIC || greeting.readBigUInt64BE(8) !== P.IHAVEOPT) {
      this.transport.destroy();
      throw new SpillwayError('E_NBD_HANDSHAKE', 'server greeting is not fixed newstyle NBD');
    }
    this.serverFlags = greeting.readUInt16BE(16);
    this.noZeroes = (this.serverFlags & P.FLAG_NO_ZEROES) !== 0;
    const flags = Buffer.allocUnsafe(4);
    flags.writeUInt32BE(clientFlags ?? (P.FLAG_C_FIXED_NEWSTYLE | (this.noZeroes ? P.FLAG_C_NO_ZEROES : 0)), 0);
    this.transport.write(flags);
  }

  sendOption(option: number, data: Uint8Array = Buffer.alloc(0)): void {
    const header = Buffer.allocUnsafe(P.OPTION_HEADER_BYTES);
    header.writeBigUInt64BE(P.IHAVEOPT, 0);
    header.writeUInt32BE(option, 8);
    header.writeUInt32BE(data.length, 12);
    this.transport.write(header);
    if (data.length) this.transport.write(data);
  }

  async readOptionReply(): Promise<OptionReply & { option: number }> {
    const h = await this.read(P.OPTION_REPLY_HEADER_BYTES);
    if (h.readBigUInt64BE(0) !== P.OPTION_REPLY_MAGIC) {
      this.transport.destroy();
      throw new SpillwayError('E_NBD_HANDSHAKE', 'option reply has a bad magic number');
    }
    const length = h.readUInt32BE(16);
    return { option: h.readUInt32BE(8), type: h.readUInt32BE(12), data: length ? await this.read(length) : Buffer.alloc(0) };
  }

  /** Send one option and collect replies up to the final ACK or error. */
  async option(option: number, data?: Uint8Array): Promise<OptionReply[]> {
    this.sendOption(option, data);
    const replies: OptionReply[] = [];
    for (;;) {
      const r = await this.readOptionReply();
      replies.push({ type: r.type, data: r.data });
      if (r.type === P.REP_ACK || P.isReplyError(r.type)) return replies;
    }
  }

  async negotiateStructured(): Promise<boolean> {
    const [r] = await this.option(P.OPT_STRUCTURED_REPLY);
    this.structured = r?.type === P.REP_ACK;
    return this.structured;
  }

  async listExports(): Promise<Array<{ name: string; description: string }>> {
    const replies = await this.option(P.OPT_LIST);
    throwIfError(P.OPT_LIST, replies);
    return replies.filter((r) => r.type === P.REP_SERVER).map((r) => {
      const n = r.data.readUInt32BE(0);
      return { name: r.data.toString('utf8', 4, 4 + n), description: r.data.toString('utf8', 4 + n) };
    });
  }

  async metaContext(option: typeof P.OPT_LIST_META_CONTEXT | typeof P.OPT_SET_META_CONTEXT, exportName: string, queries: string[]): Promise<Array<{ id: number; name: string }>> {
    const replies = await this.option(option, encodeMetaQuery(exportName, queries));
    throwIfError(option, replies);
    return replies.filter((r) => r.type === P.REP_META_CONTEXT).map((r) => ({ id: r.data.readUInt32BE(0), name: r.data.toString('utf8', 4) }));
  }

  /** NBD_OPT_INFO or NBD_OPT_GO; GO enters transmission on success. */
  async info(option: typeof P.OPT_INFO | typeof P.OPT_GO, exportName: string, requests: number[] = [P.INFO_NAME, P.INFO_DESCRIPTION, P.INFO_BLOCK_SIZE]): Promise<ExportInfo> {
    const name = Buffer.from(exportName, 'utf8');
    const data = Buffer.allocUnsafe(6 + name.length + 2 * requests.length);
    data.writeUInt32BE(name.length, 0);
    name.copy(data, 4);
    data.writeUInt16BE(requests.length, 4 + name.length);
    requests.forEach((r, i) => data.writeUInt16BE(r, 6 + name.length + 2 * i));
    const replies = await this.option(option, data);
    throwIfError(option, replies);
    const info: ExportInfo = { name: exportName, size: -1, flags: 0, structured: this.structured };
    for (const r of replies) {
      if (r.type !== P.REP_INFO || r.data.length < 2) continue;
      const kind = r.data.readUInt16BE(0);
      if (kind === P.INFO_EXPORT) {
        info.size = Number(r.data.readBigUInt64BE(2));
        info.flags = r.data.readUInt16BE(10);
      } else if (kind === P.INFO_NAME) info.name = r.data.toString('utf8', 2);
      else if (kind === P.INFO_DESCRIPTION) info.description = r.data.toString('utf8', 2);
      else if (kind === P.INFO_BLOCK_SIZE) {
        info.blockSize = { minimum: r.data.readUInt32BE(2), preferred: r.data.readUInt32BE(6), maximum: r.data.readUInt32BE(10) };
      }
    }
    if (info.size < 0) throw new SpillwayError('E_NBD_HANDSHAKE', `server sent no NBD_INFO_EXPORT for "${exportName}"`);
    return info;
  }

  /** The old way into transmission: no error reporting, the server drops the connection on a bad name. */
  async exportName(exportName: string): Promise<ExportInfo> {
    this.sendOption(P.OPT_EXPORT_NAME, Buffer.from(exportName, 'utf8'));
    const reply = await this.read(10 + (this.noZeroes ? 0 : 124));
    return { name: exportName, size: Number(reply.readBigUInt64BE(0)), flags: reply.readUInt16BE(8), structured: this.structured };
  }
}

function encodeMetaQuery(exportName: string, queries: string[]): Buffer {
  const name = Buffer.from(exportName, 'utf8');
  const qs = queries.map((q) => Buffer.from(q, 'utf8'));
  const out = Buffer.allocUnsafe(8 + name.length + qs.reduce((n, q) => n + 4 + q.length, 0));
  out.writeUInt32BE(name.length, 0);
  name.copy(out, 4);
  let at = 4 + name.length;
  out.writeUInt32BE(qs.length, at);
  at += 4;
  for (const q of qs) {
    out.writeUInt32BE(q.length, at);
    q.copy(out, at + 4);
    at += 4 + q.length;
  }
  return out;
}

function throwIfError(option: number, replies: OptionReply[]): void {
  const last = replies[replies.length - 1];
  if (last && P.isReplyError(last.type)) {
    throw new SpillwayError('E_NBD_OPTION', `NBD option ${option} refused (reply type 0x${last.type.toString(16)}): ${last.data.toString('utf8')}`, { details: { option, replyType: last.type } });
  }
}

interface Pending {
  type: number;
  offset: number;
  length: number;
  resolve: (r: RawReply) => void;
  reply: RawReply;
  buffer?: Buffer;
}

/**
 * An NBD client that is also a BlockDevice: pipelined requests (any number in
 * flight, replies matched by cookie in any order), structured replies, block
 * status, every command. Used by tests, the benchmark and tooling.
 */
export class NbdClient implements BlockDevice {
  readonly name: string;
  private readonly pending = new Map<bigint, Pending>();
  private nextCookie = 1n;
  private closedError: Error | undefined;
  private readonly input: ByteQueue;

  private constructor(private readonly negotiation: NbdNegotiation, readonly info: ExportInfo, name?: string) {
    this.name = name ?? `nbd:${info.name || 'default'}`;
    this.input = negotiation.input;
    negotiation.handOver((chunk) => {
      this.input.push(chunk);
      this.parse();
    }, (err) => this.failAll(err));
    this.parse();
  }

  static async connect(net: Net, address: string, options: NbdClientOptions = {}): Promise<NbdClient> {
    return NbdClient.open(await net.connect(address), options);
  }

  static async open(transport: Transport, options: NbdClientOptions = {}): Promise<NbdClient> {
    const n = new NbdNegotiation(transport);
    try {
      await n.start();
      const exportName = options.exportName ?? '';
      if (options.structured ?? true) await n.negotiateStructured();
      let baseAllocationId: number | undefined;
      if (n.structured && (options.blockStatus ?? true)) {
        const selected = await n.metaContext(P.OPT_SET_META_CONTEXT, exportName, [P.BASE_ALLOCATION]);
        baseAllocationId = selected.find((c) => c.name === P.BASE_ALLOCATION)?.id;
      }
      const info = await n.info(P.OPT_GO, exportName);
      if (baseAllocationId !== undefined) info.baseAllocationId = baseAllocationId;
      return new NbdClient(n, info, options.name);
    } catch (err) {
      transport.destroy();
      throw err;
    }
  }

  get flags(): number {
    return this.info.flags;
  }

  get maxPayloadBytes(): number {
    return this.info.blockSize?.maximum || 32 * 1024 * 1024;
  }

  get inFlight(): number {
    return this.pending.size;
  }

  size(): number {
    return this.info.size;
  }

  /** Send any request, even one the protocol forbids (tests use this), and wait for its reply. */
  request(type: number, flags: number, offset: number, length: number, payload?: Uint8Array): Promise<RawReply> {
    if (this.closedError) return Promise.reject(new BlockError(E_CLOSED, `${this.name}: connection is closed`, { cause: this.closedError }));
    const cookie = this.nextCookie++;
    const header = P.requestHeader(flags, type, cookie, offset, length);
    const t = this.negotiation.transport;
    if (type === P.CMD_DISC) {
      t.write(header);
      return Promise.resolve({ error: 0, chunks: 0, structured: this.info.structured });
    }
    return new Promise<RawReply>((resolve) => {
      this.pending.set(cookie, { type, offset, length, resolve, reply: { error: 0, chunks: 0, structured: false } });
      if (payload && payload.length) {
        if (t.writev) t.writev([header, payload]);
        else { t.write(header); t.write(payload); }
      } else t.write(header);
    });
  }

  async read(offset: number, length: number, options: { df?: boolean } = {}): Promise<Buffer> {
    checkRange(this, offset, length, 'read');
    if (length === 0) return Buffer.alloc(0);
    const max = this.maxPayloadBytes;
    if (length <= max) return this.data(await this.request(P.CMD_READ, options.df ? P.CMD_FLAG_DF : 0, offset, length), 'READ', offset, length);
    const parts: Array<Promise<Buffer>> = [];
    for (let at = 0; at < length; at += max) parts.push(this.read(offset + at, Math.min(max, length - at), options));
    return Buffer.concat(await Promise.all(parts));
  }

  async write(offset: number, data: Uint8Array, options: WriteOptions = {}): Promise<void> {
    checkRange(this, offset, data.length, 'write');
    const max = this.maxPayloadBytes;
    const flags = options.fua ? P.CMD_FLAG_FUA : 0;
    const parts: Array<Promise<void>> = [];
    for (let at = 0; at < data.length; at += max) {
      const piece = data.subarray(at, Math.min(data.length, at + max));
      parts.push(this.request(P.CMD_WRITE, flags, offset + at, piece.length, piece).then((r) => { this.ok(r, 'WRITE', offset + at, piece.length); }));
    }
    await Promise.all(parts);
  }

  async flush(): Promise<void> {
    this.ok(await this.request(P.CMD_FLUSH, 0, 0, 0), 'FLUSH', 0, 0);
  }

  async trim(offset: number, length: number, options: WriteOptions = {}): Promise<void> {
    this.ok(await this.request(P.CMD_TRIM, options.fua ? P.CMD_FLAG_FUA : 0, offset, length), 'TRIM', offset, length);
  }

  async writeZeroes(offset: number, length: number, options: ZeroOptions = {}): Promise<void> {
    const flags = (options.fua ? P.CMD_FLAG_FUA : 0) | (options.noHole ? P.CMD_FLAG_NO_HOLE : 0) | (options.fastZero ? P.CMD_FLAG_FAST_ZERO : 0);
    this.ok(await this.request(P.CMD_WRITE_ZEROES, flags, offset, length), 'WRITE_ZEROES', offset, length);
  }

  async prefetch(offset: number, length: number): Promise<void> {
    this.ok(await this.request(P.CMD_CACHE, 0, offset, length), 'CACHE', offset, length);
  }

  /** base:allocation map of the range; asks again for any tail the server left out. */
  async extents(offset: number, length: number, options: { reqOne?: boolean } = {}): Promise<Extent[]> {
    checkRange(this, offset, length, 'read');
    const out: Extent[] = [];
    let pos = offset;
    const end = offset + length;
    while (pos < end) {
      const n = Math.min(end - pos, 0xffffffff);
      const r = this.ok(await this.request(P.CMD_BLOCK_STATUS, options.reqOne ? P.CMD_FLAG_REQ_ONE : 0, pos, n), 'BLOCK_STATUS', pos, n);
      const descriptors = r.descriptors ?? [];
      if (descriptors.length === 0) throw new BlockError('E_IO', `${this.name}: BLOCK_STATUS reply had no descriptors`);
      for (const [len, status] of descriptors) {
        const take = Math.min(len, end - pos);
        if (take <= 0) break;
        const type = status & P.STATE_HOLE ? 'hole' : status & P.STATE_ZERO ? 'zero' : 'data';
        const last = out[out.length - 1];
        if (last && last.type === type) last.length += take;
        else out.push({ offset: pos, length: take, type });
        pos += take;
      }
      if (options.reqOne) break;
    }
    return out;
  }

  /** Soft disconnect: NBD_CMD_DISC after everything in flight is answered. */
  async close(): Promise<void> {
    if (this.closedError) return;
    await Promise.all([...this.pending.values()].map((p) => new Promise<void>((resolve) => {
      const orig = p.resolve;
      p.resolve = (r) => { orig(r); resolve(); };
    })));
    if (this.closedError) return;
    await this.request(P.CMD_DISC, 0, 0, 0);
    this.closedError = new BlockError(E_CLOSED, `${this.name}: closed`);
    this.negotiation.transport.end();
  }

  private ok(r: RawReply, op: string, offset: number, length: number): RawReply {
    if (r.error !== 0) {
      throw new BlockError(P.blockCodeFor(r.error), `${this.name}: ${op} of ${length} bytes at ${offset} failed: ${P.ERRNO_NAMES[r.error] ?? `errno ${r.error}`}${r.message ? `: ${r.message}` : ''}`,
        { details: { errno: r.error } });
    }
    return r;
  }

  private data(r: RawReply, op: string, offset: number, length: number): Buffer {
    this.ok(r, op, offset, length);
    return r.data ?? Buffer.alloc(length);
  }

  // ---- reply parsing ----

  private parse(): void {
    try {
      while (this.parseOne());
    } catch (err) {
      this.negotiation.transport.destroy();
      this.failAll(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private parseOne(): boolean {
    const q = this.input;
    if (q.length < 4) return false;
    const magic = q.peek(4).readUInt32BE(0);
    if (magic === P.SIMPLE_REPLY_MAGIC) {
      if (q.length < P.SIMPLE_REPLY_BYTES) return false;
      const h = q.peek(P.SIMPLE_REPLY_BYTES);
      const error = h.readUInt32BE(4);
      const cookie = h.readBigUInt64BE(8);
      const p = this.pending.get(cookie);
      if (!p) throw new SpillwayError('E_NBD_PROTOCOL', `reply for unknown cookie ${cookie}`);
      const dataBytes = p.type === P.CMD_READ && error === 0 ? p.length : 0;
      if (q.length < P.SIMPLE_REPLY_BYTES + dataBytes) return false;
      q.skip(P.SIMPLE_REPLY_BYTES);
      p.reply.error = error;
      p.reply.chunks = 1;
      if (dataBytes) p.reply.data = q.take(dataBytes);
      this.pending.delete(cookie);
      p.resolve(p.reply);
      return true;
    }
    if (magic !== P.STRUCTURED_REPLY_MAGIC) throw new SpillwayError('E_NBD_PROTOCOL', `reply magic 0x${magic.toString(16)} is not an NBD reply`);
    if (q.length < P.STRUCTURED_HEADER_BYTES) return false;
    const h = q.peek(P.STRUCTURED_HEADER_BYTES);
    const length = h.readUInt32BE(16);
    if (q.length < P.STRUCTURED_HEADER_BYTES + length) return false;
    const flags = h.readUInt16BE(4);
    const type = h.readUInt16BE(6);
    const cookie = h.readBigUInt64BE(8);
    const p = this.pending.get(cookie);
    if (!p) throw new SpillwayError('E_NBD_PROTOCOL', `structured reply for unknown cookie ${cookie}`);
    q.skip(P.STRUCTURED_HEADER_BYTES);
    const body = q.take(length);
    const reply = p.reply;
    reply.structured = true;
    reply.chunks++;
    switch (type) {
      case P.REPLY_TYPE_NONE: break;
      case P.REPLY_TYPE_OFFSET_DATA: {
        const at = Number(body.readBigUInt64BE(0)) - p.offset;
        const data = body.subarray(8);
        if (at < 0 || at + data.length > p.length) throw new SpillwayError('E_NBD_PROTOCOL', 'OFFSET_DATA chunk outside the request');
        // One chunk covering the whole request is the common case: keep it without copying.
        if (at === 0 && data.length === p.length && !p.buffer) reply.data = data;
        else {
          p.buffer ??= this.takeOver(reply, p.length);
          data.copy(p.buffer, at);
        }
        break;
      }
      case P.REPLY_TYPE_OFFSET_HOLE: {
        const at = Number(body.readBigUInt64BE(0)) - p.offset;
        const n = body.readUInt32BE(8);
        if (at < 0 || at + n > p.length) throw new SpillwayError('E_NBD_PROTOCOL', 'OFFSET_HOLE chunk outside the request');
        p.buffer ??= this.takeOver(reply, p.length);
        p.buffer.fill(0, at, at + n);
        break;
      }
      case P.REPLY_TYPE_BLOCK_STATUS: {
        const list: Array<[number, number]> = reply.descriptors ?? [];
        for (let at = 4; at + 8 <= body.length; at += 8) list.push([body.readUInt32BE(at), body.readUInt32BE(at + 4)]);
        reply.descriptors = list;
        break;
      }
      default:
        if (type & 0x8000) {
          reply.error = body.length >= 4 ? body.readUInt32BE(0) || P.EIO : P.EIO;
          const n = body.length >= 6 ? body.readUInt16BE(4) : 0;
          reply.message = body.toString('utf8', 6, 6 + n);
        } else throw new SpillwayError('E_NBD_PROTOCOL', `unknown structured reply type ${type}`);
    }
    if (flags & P.REPLY_FLAG_DONE) {
      if (p.buffer) reply.data = p.buffer;
      this.pending.delete(cookie);
      p.resolve(reply);
    }
    return true;
  }

  /** Switch a read to an assembled buffer, keeping any single chunk already received. */
  private takeOver(reply: RawReply, length: number): Buffer {
    const buf = Buffer.alloc(length);
    if (reply.data) {
      reply.data.copy(buf, 0);
      reply.data = undefined;
    }
    return buf;
  }

  private failAll(err: Error): void {
    this.closedError ??= err;
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) {
      p.reply.error = P.ESHUTDOWN;
      p.reply.message = `connection closed: ${err.message}`;
      p.resolve(p.reply);
    }
  }
}
