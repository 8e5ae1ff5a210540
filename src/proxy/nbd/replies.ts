import type { Extent } from '../block-device.js';
import * as P from './protocol.js';
import type { Request } from './request.js';

/** The meta context id of base:allocation handed out by SET_META_CONTEXT. */
export const BASE_ALLOCATION_ID = 1;

/** Bytes before the data of a successful READ reply (structured OFFSET_DATA carries the offset too). */
export function readHeaderBytes(structured: boolean): number {
  return structured ? P.STRUCTURED_HEADER_BYTES + 8 : P.SIMPLE_REPLY_BYTES;
}

/** A successful READ reply's header (simple, or structured OFFSET_DATA with the offset) at the start of `b`. */
export function writeReadHeader(b: Buffer, req: Request, structured: boolean): void {
  if (structured) {
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

/** A simple reply with no error. */
export function okReply(req: Request): Buffer {
  const b = Buffer.allocUnsafe(P.SIMPLE_REPLY_BYTES);
  b.writeUInt32BE(P.SIMPLE_REPLY_MAGIC, 0);
  b.writeUInt32BE(0, 4);
  req.writeCookie(b);
  return b;
}

/** A READ reply carrying `data` (its header, then the data itself, not copied). */
export function readReply(req: Request, data: Buffer, structured: boolean): Buffer[] {
  if (!structured) return [P.simpleReply(req.cookie, 0), data];
  const header = P.structuredHeader(req.cookie, P.REPLY_FLAG_DONE, P.REPLY_TYPE_OFFSET_DATA, 8 + data.length, 8);
  header.writeBigUInt64BE(BigInt(req.offset), 20);
  return [header, data];
}

/** A BLOCK_STATUS reply for base:allocation: adjacent extents of one status merge; REQ_ONE keeps the first. */
export function blockStatusReply(req: Request, extents: Extent[]): Buffer {
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
  return b;
}

/** An error reply: structured (with the message) once negotiated, as a read must get; simple otherwise. */
export function errorReply(req: Request, errno: number, message: string, structured: boolean): Buffer {
  return structured ? P.structuredError(req.cookie, errno, message) : P.simpleReply(req.cookie, errno);
}
