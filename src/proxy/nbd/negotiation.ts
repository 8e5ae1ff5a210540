import type { ByteQueue } from './byte-queue.js';
import type { ConnectionHost, NbdExport } from './host.js';
import * as P from './protocol.js';
import { BASE_ALLOCATION_ID } from './replies.js';
import { ProtocolViolation, type Negotiated } from './request.js';

/** Largest option payload accepted; real options are a few hundred bytes (strings cap at 4096). */
const MAX_OPTION_BYTES = 64 * 1024;
const ZEROES_124 = Buffer.alloc(124);

/** What option haggling needs from its connection. */
export interface NegotiationIo {
  send(buffers: Buffer[]): void;
  /** Read and drop `bytes` of input (an over-size option's data), then call `then`. */
  discard(bytes: number, then: () => void): void;
  /** ABORT was acknowledged: send what is queued and end the connection. */
  abort(): void;
  /** GO or EXPORT_NAME chose an export: the transmission phase starts with the next byte. */
  enter(negotiated: Negotiated): void;
}

/**
 * The handshake after the greeting (fixed newstyle): the client's flags, then
 * options until GO or EXPORT_NAME picks an export. Malformed input throws
 * ProtocolViolation; a bad option gets an error reply and haggling goes on.
 */
export class Negotiation {
  private clientFlags: number | undefined;
  private structured = false;
  /** Export the meta contexts were selected for; contexts apply only to that export. */
  private metaExport: string | undefined;
  private baseAllocation = false;

  constructor(private readonly host: ConnectionHost, private readonly input: ByteQueue, private readonly io: NegotiationIo) {}

  /** Consume the next handshake item from the input; false when more input is needed. */
  step(): boolean {
    if (this.clientFlags === undefined) {
      if (this.input.length < 4) return false;
      const flags = this.input.take(4).readUInt32BE(0);
      if (flags & ~(P.FLAG_C_FIXED_NEWSTYLE | P.FLAG_C_NO_ZEROES)) {
        throw new ProtocolViolation(`client flags 0x${flags.toString(16)} include bits the server did not offer`);
      }
      this.clientFlags = flags;
      return true;
    }
    return this.parseOption();
  }

  private parseOption(): boolean {
    if (this.input.length < P.OPTION_HEADER_BYTES) return false;
    const header = this.input.peek(P.OPTION_HEADER_BYTES);
    if (header.readBigUInt64BE(0) !== P.IHAVEOPT) throw new ProtocolViolation('option without IHAVEOPT magic');
    const option = header.readUInt32BE(8);
    const length = header.readUInt32BE(12);
    if (length > MAX_OPTION_BYTES) {
      if (option === P.OPT_EXPORT_NAME) throw new ProtocolViolation(`export name of ${length} bytes`);
      this.input.skip(P.OPTION_HEADER_BYTES);
      this.io.discard(length, () => this.optionError(option, P.REP_ERR_TOO_BIG, `option data of ${length} bytes exceeds ${MAX_OPTION_BYTES}`));
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
        return this.io.abort();
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
    const exp = this.host.findExport(name);
    // EXPORT_NAME cannot report an error: the spec says to drop the connection.
    if (!exp || this.host.isShuttingDown) throw new ProtocolViolation(`EXPORT_NAME for unknown export "${name}"`);
    const n = this.enter(exp);
    const reply = Buffer.alloc(10);
    reply.writeBigUInt64BE(BigInt(exp.device.size()), 0);
    reply.writeUInt16BE(n.flags, 8);
    this.io.send(this.clientFlags! & P.FLAG_C_NO_ZEROES ? [reply] : [reply, ZEROES_124]);
  }

  private optList(option: number, data: Buffer): void {
    if (data.length !== 0) return this.optionError(option, P.REP_ERR_INVALID, 'LIST takes no data');
    for (const e of this.host.options.exports) {
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
    if (this.host.isShuttingDown) return this.optionError(option, P.REP_ERR_SHUTDOWN, 'server is shutting down');
    const exp = this.host.findExport(name);
    if (!exp) return this.optionError(option, P.REP_ERR_UNKNOWN, `no export named "${name}"`);
    const flags = this.flagsFor(exp);

    if (requests.has(P.INFO_NAME)) this.infoString(option, P.INFO_NAME, exp.name);
    if (requests.has(P.INFO_DESCRIPTION) && exp.description) this.infoString(option, P.INFO_DESCRIPTION, exp.description);
    if (requests.has(P.INFO_BLOCK_SIZE)) {
      const body = Buffer.allocUnsafe(14);
      body.writeUInt16BE(P.INFO_BLOCK_SIZE, 0);
      body.writeUInt32BE(1, 2);
      body.writeUInt32BE(4096, 6);
      body.writeUInt32BE(this.host.options.maxPayloadBytes, 10);
      this.optionReply(option, P.REP_INFO, body);
    }
    const info = Buffer.allocUnsafe(12);
    info.writeUInt16BE(P.INFO_EXPORT, 0);
    info.writeBigUInt64BE(BigInt(exp.device.size()), 2);
    info.writeUInt16BE(flags, 10);
    this.optionReply(option, P.REP_INFO, info);
    this.optionReply(option, P.REP_ACK);
    if (option === P.OPT_GO) this.enter(exp);
  }

  private infoString(option: number, type: number, text: string): void {
    const s = Buffer.from(text, 'utf8');
    const body = Buffer.allocUnsafe(2 + s.length);
    body.writeUInt16BE(type, 0);
    s.copy(body, 2);
    this.optionReply(option, P.REP_INFO, body);
  }

  private optMetaContext(option: number, data: Buffer): void {
    const set = option === P.OPT_SET_META_CONTEXT;
    if (!this.structured) return this.optionError(option, P.REP_ERR_INVALID, 'negotiate STRUCTURED_REPLY before meta contexts');
    const parsed = parseMetaContextData(data);
    if (typeof parsed === 'string') return this.optionError(option, P.REP_ERR_INVALID, parsed);
    const exp = this.host.findExport(parsed.exportName);
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

  private enter(exp: NbdExport): Negotiated {
    if (this.metaExport !== exp.name) this.baseAllocation = false;
    const n: Negotiated = { exp, flags: this.flagsFor(exp), structured: this.structured, baseAllocation: this.baseAllocation };
    this.io.enter(n);
    return n;
  }

  private optionReply(option: number, type: number, body?: Buffer): void {
    const header = P.optionReplyHeader(option, type, body?.length ?? 0);
    this.io.send(body ? [header, body] : [header]);
  }

  private optionError(option: number, type: number, message: string): void {
    this.optionReply(option, type, Buffer.from(message, 'utf8'));
  }
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
