/**
 * NBD wire constants (NetworkBlockDevice/nbd doc/proto.md, fixed newstyle,
 * structured replies, no extended headers) and the BlockError → errno map.
 */
import { errorCode } from '../../errors.js';
import { E_CLOSED, E_FAST_ZERO_UNSUPPORTED, E_INTEGRITY, E_IO, E_NOSPC, E_RANGE, E_READONLY } from '../block-device.js';

export const NBDMAGIC = 0x4e42444d41474943n;
export const IHAVEOPT = 0x49484156454f5054n;
export const OPTION_REPLY_MAGIC = 0x3e889045565a9n;
export const REQUEST_MAGIC = 0x25609513;
export const SIMPLE_REPLY_MAGIC = 0x67446698;
export const STRUCTURED_REPLY_MAGIC = 0x668e33ef;

// Handshake flags (server) and client flags.
export const FLAG_FIXED_NEWSTYLE = 1 << 0;
export const FLAG_NO_ZEROES = 1 << 1;
export const FLAG_C_FIXED_NEWSTYLE = 1 << 0;
export const FLAG_C_NO_ZEROES = 1 << 1;

// Transmission (export) flags.
export const TF_HAS_FLAGS = 1 << 0;
export const TF_READ_ONLY = 1 << 1;
export const TF_SEND_FLUSH = 1 << 2;
export const TF_SEND_FUA = 1 << 3;
export const TF_ROTATIONAL = 1 << 4;
export const TF_SEND_TRIM = 1 << 5;
export const TF_SEND_WRITE_ZEROES = 1 << 6;
export const TF_SEND_DF = 1 << 7;
export const TF_CAN_MULTI_CONN = 1 << 8;
export const TF_SEND_RESIZE = 1 << 9;
export const TF_SEND_CACHE = 1 << 10;
export const TF_SEND_FAST_ZERO = 1 << 11;

// Options.
export const OPT_EXPORT_NAME = 1;
export const OPT_ABORT = 2;
export const OPT_LIST = 3;
export const OPT_STARTTLS = 5;
export const OPT_INFO = 6;
export const OPT_GO = 7;
export const OPT_STRUCTURED_REPLY = 8;
export const OPT_LIST_META_CONTEXT = 9;
export const OPT_SET_META_CONTEXT = 10;
export const OPT_EXTENDED_HEADERS = 11;

// Option replies.
export const REP_ACK = 1;
export const REP_SERVER = 2;
export const REP_INFO = 3;
export const REP_META_CONTEXT = 4;
const REP_ERR = 2 ** 31;
export const REP_ERR_UNSUP = REP_ERR + 1;
export const REP_ERR_POLICY = REP_ERR + 2;
export const REP_ERR_INVALID = REP_ERR + 3;
export const REP_ERR_PLATFORM = REP_ERR + 4;
export const REP_ERR_TLS_REQD = REP_ERR + 5;
export const REP_ERR_UNKNOWN = REP_ERR + 6;
export const REP_ERR_SHUTDOWN = REP_ERR + 7;
export const REP_ERR_BLOCK_SIZE_REQD = REP_ERR + 8;
export const REP_ERR_TOO_BIG = REP_ERR + 9;
export const isReplyError = (type: number): boolean => type >= REP_ERR;

// NBD_OPT_INFO / NBD_OPT_GO information types.
export const INFO_EXPORT = 0;
export const INFO_NAME = 1;
export const INFO_DESCRIPTION = 2;
export const INFO_BLOCK_SIZE = 3;

// Commands.
export const CMD_READ = 0;
export const CMD_WRITE = 1;
export const CMD_DISC = 2;
export const CMD_FLUSH = 3;
export const CMD_TRIM = 4;
export const CMD_CACHE = 5;
export const CMD_WRITE_ZEROES = 6;
export const CMD_BLOCK_STATUS = 7;

export const COMMAND_NAMES: Record<number, string> = {
  [CMD_READ]: 'READ', [CMD_WRITE]: 'WRITE', [CMD_DISC]: 'DISC', [CMD_FLUSH]: 'FLUSH', [CMD_TRIM]: 'TRIM',
  [CMD_CACHE]: 'CACHE', [CMD_WRITE_ZEROES]: 'WRITE_ZEROES', [CMD_BLOCK_STATUS]: 'BLOCK_STATUS',
};

// Command flags.
export const CMD_FLAG_FUA = 1 << 0;
export const CMD_FLAG_NO_HOLE = 1 << 1;
export const CMD_FLAG_DF = 1 << 2;
export const CMD_FLAG_REQ_ONE = 1 << 3;
export const CMD_FLAG_FAST_ZERO = 1 << 4;

// Structured reply chunk types and flags.
export const REPLY_FLAG_DONE = 1 << 0;
export const REPLY_TYPE_NONE = 0;
export const REPLY_TYPE_OFFSET_DATA = 1;
export const REPLY_TYPE_OFFSET_HOLE = 2;
export const REPLY_TYPE_BLOCK_STATUS = 5;
export const REPLY_TYPE_ERROR = 2 ** 15 + 1;
export const REPLY_TYPE_ERROR_OFFSET = 2 ** 15 + 2;

// base:allocation status bits.
export const STATE_HOLE = 1 << 0;
export const STATE_ZERO = 1 << 1;
export const BASE_ALLOCATION = 'base:allocation';

// Errno values the protocol allows.
export const EPERM = 1;
export const EIO = 5;
export const ENOMEM = 12;
export const EINVAL = 22;
export const ENOSPC = 28;
export const EOVERFLOW = 75;
export const ENOTSUP = 95;
export const ESHUTDOWN = 108;

export const ERRNO_NAMES: Record<number, string> = {
  [EPERM]: 'EPERM', [EIO]: 'EIO', [ENOMEM]: 'ENOMEM', [EINVAL]: 'EINVAL', [ENOSPC]: 'ENOSPC',
  [EOVERFLOW]: 'EOVERFLOW', [ENOTSUP]: 'ENOTSUP', [ESHUTDOWN]: 'ESHUTDOWN',
};

/** Which errno a client sees for a BlockError code; anything unknown is EIO. */
export function errnoFor(err: unknown): number {
  switch (errorCode(err)) {
    case E_RANGE: return EINVAL;
    case E_NOSPC: return ENOSPC;
    case E_READONLY: return EPERM;
    case E_FAST_ZERO_UNSUPPORTED: return ENOTSUP;
    case E_CLOSED: return ESHUTDOWN;
    case E_IO:
    case E_INTEGRITY:
    default: return EIO;
  }
}

/** The BlockError code a client raises for an errno it received (the inverse of errnoFor). */
export function blockCodeFor(errno: number): string {
  switch (errno) {
    case EINVAL: return E_RANGE;
    case ENOSPC: return E_NOSPC;
    case EPERM: return E_READONLY;
    case ENOTSUP: return E_FAST_ZERO_UNSUPPORTED;
    case ESHUTDOWN: return E_CLOSED;
    default: return E_IO;
  }
}

export const REQUEST_HEADER_BYTES = 28;
export const SIMPLE_REPLY_BYTES = 16;
export const STRUCTURED_HEADER_BYTES = 20;
export const OPTION_HEADER_BYTES = 16;
export const OPTION_REPLY_HEADER_BYTES = 20;

export function optionReplyHeader(option: number, type: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(OPTION_REPLY_HEADER_BYTES);
  b.writeBigUInt64BE(OPTION_REPLY_MAGIC, 0);
  b.writeUInt32BE(option, 8);
  b.writeUInt32BE(type, 12);
  b.writeUInt32BE(length, 16);
  return b;
}

export function simpleReply(cookie: bigint, error: number): Buffer {
  const b = Buffer.allocUnsafe(SIMPLE_REPLY_BYTES);
  writeSimpleReply(b, cookie, error);
  return b;
}

/** A simple reply header at the start of `b` (which may go on to carry the payload). */
export function writeSimpleReply(b: Buffer, cookie: bigint, error: number): void {
  b.writeUInt32BE(SIMPLE_REPLY_MAGIC, 0);
  b.writeUInt32BE(error, 4);
  b.writeBigUInt64BE(cookie, 8);
}

/** A structured chunk header; `extra` reserves room after it for small fixed fields (offset etc.). */
export function structuredHeader(cookie: bigint, flags: number, type: number, length: number, extra = 0): Buffer {
  const b = Buffer.allocUnsafe(STRUCTURED_HEADER_BYTES + extra);
  writeStructuredHeader(b, cookie, flags, type, length);
  return b;
}

export function writeStructuredHeader(b: Buffer, cookie: bigint, flags: number, type: number, length: number): void {
  b.writeUInt32BE(STRUCTURED_REPLY_MAGIC, 0);
  b.writeUInt16BE(flags, 4);
  b.writeUInt16BE(type, 6);
  b.writeBigUInt64BE(cookie, 8);
  b.writeUInt32BE(length, 16);
}

export function structuredError(cookie: bigint, errno: number, message: string): Buffer {
  const text = Buffer.from(message.slice(0, 4096), 'utf8').subarray(0, 4096);
  const b = structuredHeader(cookie, REPLY_FLAG_DONE, REPLY_TYPE_ERROR, 6 + text.length, 6 + text.length);
  b.writeUInt32BE(errno, 20);
  b.writeUInt16BE(text.length, 24);
  text.copy(b, 26);
  return b;
}

export function requestHeader(flags: number, type: number, cookie: bigint, offset: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(REQUEST_HEADER_BYTES);
  b.writeUInt32BE(REQUEST_MAGIC, 0);
  b.writeUInt16BE(flags, 4);
  b.writeUInt16BE(type, 6);
  b.writeBigUInt64BE(cookie, 8);
  b.writeBigUInt64BE(BigInt(offset), 16);
  b.writeUInt32BE(length, 24);
  return b;
}
