import * as P from './protocol.js';
import type { NbdExport } from './host.js';

/**
 * One request header, read without BigInts: the cookie is kept as two 32-bit halves (echoed back
 * as they came) and an offset past 2^53 - 1 reads as MAX_SAFE_INTEGER, which fails the range check.
 */
export class Request {
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

/** A malformed stream: the connection is dropped (never a crash, never an error reply). */
export class ProtocolViolation extends Error {}

/** What option haggling settled for the transmission phase. */
export interface Negotiated {
  readonly exp: NbdExport;
  /** Transmission flags advertised for the export. */
  readonly flags: number;
  readonly structured: boolean;
  /** base:allocation was selected for this export (BLOCK_STATUS allowed). */
  readonly baseAllocation: boolean;
}

/** The errno and message for a request that must not reach the device, or undefined. */
export function validateRequest(req: Request, n: Negotiated, maxPayloadBytes: number, shuttingDown: boolean): [number, string] | undefined {
  if (shuttingDown) return [P.ESHUTDOWN, 'server is shutting down'];
  const name = P.COMMAND_NAMES[req.type];
  if (name === undefined) return [P.EINVAL, `unknown command ${req.type}`];
  if (req.flags & ~allowedFlags(req.type, n.structured)) return [P.EINVAL, `${name}: flags 0x${req.flags.toString(16)} are not valid for this command`];
  const readOnly = n.exp.readOnly ?? false;
  const writes = req.type === P.CMD_WRITE || req.type === P.CMD_TRIM || req.type === P.CMD_WRITE_ZEROES;
  if (writes && readOnly) return [P.EPERM, `${name}: export "${n.exp.name}" is read-only`];
  if (req.type === P.CMD_FLUSH) {
    return req.offset !== 0 || req.length !== 0 ? [P.EINVAL, 'FLUSH: offset and length must be zero'] : undefined;
  }
  if (req.type === P.CMD_BLOCK_STATUS && !n.baseAllocation) return [P.EINVAL, 'BLOCK_STATUS: no metadata context was negotiated'];
  if (req.length === 0) return [P.EINVAL, `${name}: length must not be zero`];
  if (req.type === P.CMD_READ && req.length > maxPayloadBytes) {
    return [P.EINVAL, `READ of ${req.length} bytes exceeds the maximum payload of ${maxPayloadBytes} bytes`];
  }
  const size = n.exp.device.size();
  if (req.offset + req.length > size) {
    const errno = req.type === P.CMD_WRITE || req.type === P.CMD_WRITE_ZEROES ? P.ENOSPC : P.EINVAL;
    return [errno, `${name}: ${req.length} bytes at ${req.offset} run past the end of the export (${size} bytes)`];
  }
  return undefined;
}

function allowedFlags(type: number, structured: boolean): number {
  switch (type) {
    case P.CMD_READ: return P.CMD_FLAG_FUA | (structured ? P.CMD_FLAG_DF : 0);
    case P.CMD_WRITE_ZEROES: return P.CMD_FLAG_FUA | P.CMD_FLAG_NO_HOLE | P.CMD_FLAG_FAST_ZERO;
    case P.CMD_BLOCK_STATUS: return P.CMD_FLAG_FUA | P.CMD_FLAG_REQ_ONE;
    default: return P.CMD_FLAG_FUA;
  }
}
