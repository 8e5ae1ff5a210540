import { LinkError, E_FRAME_TOO_LARGE, E_PROTOCOL } from './errors.js';

/**
 * Framing of the proxy link. Every frame is `[u32 length][body]`; once the
 * handshake is done the body is AES-256-GCM ciphertext followed by its 16-byte
 * tag. A plaintext body is `[u8 type][u8 flags][u32 id][payload]`.
 * Integers are big-endian; offsets are 48-bit (256 TiB).
 */
/** 2: rw attaches carry a writer claim and get a writer session; DETACH carries flags. */
export const PROTOCOL_VERSION = 3;
export const HEADER_BYTES = 6;
export const MAX_FRAME_BYTES = 128 * 1024 * 1024;
/**
 * Largest frame before the peer has proved the pairing key. HELLO, CHALLENGE,
 * AUTH, AUTH_OK and a refusal are a few hundred bytes of JSON; without this an
 * unauthenticated peer could make the other end buffer MAX_FRAME_BYTES each.
 */
export const MAX_FRAME_BYTES_BEFORE_AUTH = 16 * 1024;

export const enum Op {
  HELLO = 0x01,
  CHALLENGE = 0x02,
  AUTH = 0x03,
  AUTH_OK = 0x04,
  ATTACH = 0x10,
  READ = 0x11,
  WRITE_BATCH = 0x12,
  FLUSH = 0x13,
  SIGS = 0x14,
  DETACH = 0x15,
  PROFILE = 0x16,
  REPORT = 0x17,
  PUSH = 0x20,
  CREDIT = 0x21,
  REPLY = 0x80,
}

export const OP_NAMES: Record<number, string> = {
  0x01: 'HELLO', 0x02: 'CHALLENGE', 0x03: 'AUTH', 0x04: 'AUTH_OK', 0x10: 'ATTACH', 0x11: 'READ',
  0x12: 'WRITE_BATCH', 0x13: 'FLUSH', 0x14: 'SIGS', 0x15: 'DETACH', 0x16: 'PROFILE', 0x17: 'REPORT', 0x20: 'PUSH',
  0x21: 'CREDIT', 0x80: 'REPLY',
};

/** DETACH flags (one byte after the handle). */
export const DETACH_ENDED = 0x01;

/** Frame flags. */
export const F_ERROR = 0x01;
/** READ: the client's cache may answer by signature. */
export const F_SIGS_OK = 0x02;
/** READ: the client lost a pushed block; send data, never a PUSHED marker. */
export const F_NO_PUSHED = 0x04;
/** PUSH: part of the profile stream (counted for resume after reconnect). */
export const F_PROFILE = 0x08;

export interface Frame {
  op: number;
  flags: number;
  id: number;
  payload: Buffer;
}

/** The plaintext header of a frame body alone (the payload follows it). */
export function encodeHeader(frame: Frame): Buffer {
  const head = Buffer.allocUnsafe(HEADER_BYTES);
  head.writeUInt8(frame.op, 0);
  head.writeUInt8(frame.flags, 1);
  head.writeUInt32BE(frame.id >>> 0, 2);
  return head;
}

export function encodeBody(frame: Frame): Buffer {
  const body = Buffer.allocUnsafe(HEADER_BYTES + frame.payload.length);
  body.writeUInt8(frame.op, 0);
  body.writeUInt8(frame.flags, 1);
  body.writeUInt32BE(frame.id >>> 0, 2);
  frame.payload.copy(body, HEADER_BYTES);
  return body;
}

export function decodeBody(body: Buffer): Frame {
  if (body.length < HEADER_BYTES) throw new LinkError(E_PROTOCOL, `frame body of ${body.length} bytes is shorter than its ${HEADER_BYTES}-byte header`);
  return { op: body.readUInt8(0), flags: body.readUInt8(1), id: body.readUInt32BE(2), payload: body.subarray(HEADER_BYTES) };
}

export function lengthPrefix(body: Buffer): Buffer {
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(body.length, 0);
  return Buffer.concat([head, body]);
}

/** Reassembles length-prefixed frames from arbitrary chunks of a byte stream. */
export class FrameSplitter {
  private chunks: Buffer[] = [];
  private buffered = 0;

  /** Frames announced longer than this are refused before their bytes are buffered. */
  constructor(public maxFrameBytes = MAX_FRAME_BYTES) {}

  push(chunk: Buffer, onBody: (body: Buffer) => void): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    for (;;) {
      if (this.buffered < 4) return;
      const head = this.peek(4);
      const length = head.readUInt32BE(0);
      if (length > this.maxFrameBytes) {
        const when = this.maxFrameBytes < MAX_FRAME_BYTES ? ' before authenticating' : '';
        throw new LinkError(E_FRAME_TOO_LARGE, `peer announced a frame of ${length} bytes${when}; the limit is ${this.maxFrameBytes}`);
      }
      if (this.buffered < 4 + length) return;
      const all = this.take(4 + length);
      onBody(all.subarray(4));
    }
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length >= n) return this.chunks[0]!;
    return Buffer.concat(this.chunks).subarray(0, n);
  }

  private take(n: number): Buffer {
    const joined = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const out = joined.subarray(0, n);
    const rest = joined.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.buffered = rest.length;
    return out;
  }
}

/** Appends big-endian fields to a growing buffer. */
export class WireWriter {
  private parts: Buffer[] = [];
  private scratch = Buffer.allocUnsafe(8);

  u8(v: number): this { this.parts.push(Buffer.from([v & 0xff])); return this; }
  u16(v: number): this { const b = Buffer.allocUnsafe(2); b.writeUInt16BE(v, 0); this.parts.push(b); return this; }
  u32(v: number): this { const b = Buffer.allocUnsafe(4); b.writeUInt32BE(v >>> 0, 0); this.parts.push(b); return this; }
  u48(v: number): this { const b = Buffer.allocUnsafe(6); b.writeUIntBE(v, 0, 6); this.parts.push(b); return this; }
  bytes(b: Uint8Array): this { this.parts.push(Buffer.from(b.buffer, b.byteOffset, b.byteLength)); return this; }
  done(): Buffer { void this.scratch; return Buffer.concat(this.parts); }
}

/** Reads big-endian fields; running past the end is a protocol error, never garbage. */
export class WireReader {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}

  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw new LinkError(E_PROTOCOL, `truncated payload: need ${n} bytes at ${this.pos} of ${this.buf.length}`);
  }
  u8(): number { this.need(1); return this.buf.readUInt8(this.pos++); }
  /** The next byte, without consuming it. */
  peekU8(): number { this.need(1); return this.buf.readUInt8(this.pos); }
  u16(): number { this.need(2); const v = this.buf.readUInt16BE(this.pos); this.pos += 2; return v; }
  u32(): number { this.need(4); const v = this.buf.readUInt32BE(this.pos); this.pos += 4; return v; }
  u48(): number { this.need(6); const v = this.buf.readUIntBE(this.pos, 6); this.pos += 6; return v; }
  bytes(n: number): Buffer { this.need(n); const v = this.buf.subarray(this.pos, this.pos + n); this.pos += n; return v; }
  get remaining(): number { return this.buf.length - this.pos; }
}

export function jsonPayload(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8');
}

export function parseJson<T>(payload: Buffer, what: string): T {
  try {
    return JSON.parse(payload.toString('utf8')) as T;
  } catch (err) {
    throw new LinkError(E_PROTOCOL, `${what}: payload is not JSON`, { cause: err });
  }
}
