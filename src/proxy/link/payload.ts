import { createHash, hash } from 'node:crypto';
import { deflateRawSync, inflateRawSync, constants as zlibConstants } from 'node:zlib';
import type { ContentMemo } from '../content-memo.js';
import { LinkError, E_PROTOCOL } from './errors.js';
import { WireReader, WireWriter } from './wire.js';

/**
 * How block content travels on the link. A range is cut at block boundaries
 * and each block becomes one of:
 *  - ZERO: all-zero content, sent as a marker and never as data;
 *  - SIG: the content's signature, when the peer's cache may already hold it;
 *  - PUSHED: the block was pushed earlier on this connection and so has
 *    already arrived (the stream is ordered);
 *  - data, merged with its neighbours into runs that are deflated when that
 *    pays and sent RAW when it does not.
 */
export const enum Seg {
  ZERO = 0,
  RAW = 1,
  DEFLATE = 2,
  SIG = 3,
  PUSHED = 4,
}

export const SIGNATURE_BYTES = 32;
/** Deflated data must save at least 1/8 of its size to be worth the peer's inflate. */
const DEFLATE_MAX_RATIO = 0.875;
const MAX_RUN_BYTES = 1024 * 1024;

/** The content signature used for dedup on both sides: sha256 of the block's plaintext. */
export function contentSignature(block: Uint8Array): Buffer {
  // One-shot: building a Hash object per 4 KiB block costs about as much as hashing it.
  return hash('sha256', block, 'buffer');
}

export function isZero(buf: Uint8Array): boolean {
  // Compare 8 bytes at a time where alignment allows; boot disks are half zeros.
  const n = buf.length;
  let i = 0;
  if (buf.byteOffset % 8 === 0) {
    const words = new BigUint64Array(buf.buffer, buf.byteOffset, n >>> 3);
    for (let w = 0; w < words.length; w++) if (words[w] !== 0n) return false;
    i = words.length * 8;
  }
  for (; i < n; i++) if (buf[i] !== 0) return false;
  return true;
}

export interface CodecStats {
  /** Plaintext bytes described by segments. */
  plainBytes: number;
  zeroBytes: number;
  sigBytes: number;
  pushedBytes: number;
  rawBytes: number;
  deflateInBytes: number;
  deflateOutBytes: number;
  /** Data runs that were tried but sent raw because deflate did not pay. */
  deflateSkipped: number;
}

export const newCodecStats = (): CodecStats => ({
  plainBytes: 0, zeroBytes: 0, sigBytes: 0, pushedBytes: 0, rawBytes: 0, deflateInBytes: 0, deflateOutBytes: 0, deflateSkipped: 0,
});

export interface EncodeOptions {
  blockBytes: number;
  /** zlib level; 0 turns compression off. */
  level: number;
  /** Return true when the block at `blockIndex` may be sent as PUSHED. */
  pushed?: (blockIndex: number) => boolean;
  /** Return true when the peer may hold content with this signature. */
  peerHas?: (sig: Buffer) => boolean;
  /** Told of every data block actually sent, with its signature. */
  sentData?: (sig: Buffer, blockIndex: number) => void;
  stats?: CodecStats;
  /** Encoded data runs by content, shared across peers (see EncodedRunCache). */
  runCache?: EncodedRunCache;
  /** Signatures by content, shared across the run (see ContentMemo). */
  memo?: ContentMemo;
}

/**
 * Encoded data runs by content. Burst VMs booted from one image ask for the
 * same blocks; the on-prem side signs every block anyway, so a run whose
 * blocks are all signed is keyed by its signatures and deflated (or found
 * not to pay) once. Runs are cut at RUN_ALIGN_BYTES boundaries of the disk so
 * two peers asking for overlapping ranges cut the same runs. Bounded by the
 * bytes it holds; the oldest entry goes first.
 */
export class EncodedRunCache {
  private readonly entries = new Map<string, Buffer | null>();
  private heldBytes = 0;
  hits = 0;
  misses = 0;
  constructor(private readonly capacityBytes = 64 * 1024 * 1024) {}
  /** The deflated body, null for "sent raw", undefined when unknown. */
  get(key: string): Buffer | null | undefined {
    const v = this.entries.get(key);
    if (v === undefined) { this.misses++; return undefined; }
    this.hits++;
    return v;
  }
  set(key: string, packed: Buffer | null): void {
    if (this.entries.has(key)) return;
    // Keep our own copy: a deflate result may share a pool the caller reuses.
    const own = packed ? Buffer.from(packed) : null;
    this.entries.set(key, own);
    this.heldBytes += (own?.length ?? 0) + key.length;
    while (this.heldBytes > this.capacityBytes) {
      const [k, v] = this.entries.entries().next().value!;
      this.entries.delete(k);
      this.heldBytes -= (v?.length ?? 0) + k.length;
    }
  }
}

/** Data runs never cross a multiple of this disk offset, so cached runs line up across peers. */
export const RUN_ALIGN_BYTES = 64 * 1024;

const PROBE_BYTES = 4096;

const ENTROPY_SAMPLE_BYTES = 512;
/**
 * 512 uniformly random bytes hold ~221 distinct values (sd ~6); text, code
 * and tables far fewer. Above this the sample is taken for random (encrypted
 * or already compressed data) without paying a deflate to find out.
 */
const RANDOM_DISTINCT_BYTES = 205;
const seenByte = new Uint8Array(256);

/**
 * A cheap first look: does every 4 KiB piece of `raw` start with what looks
 * like random bytes (which deflate cannot shrink)? One compressible piece is
 * enough to try deflate.
 */
export function looksRandom(raw: Uint8Array): boolean {
  if (raw.length < ENTROPY_SAMPLE_BYTES) return false;
  for (let at = 0; at + ENTROPY_SAMPLE_BYTES <= raw.length; at += PROBE_BYTES) {
    seenByte.fill(0);
    let distinct = 0;
    for (let i = at; i < at + ENTROPY_SAMPLE_BYTES; i++) {
      const b = raw[i]!;
      if (seenByte[b] === 0) { seenByte[b] = 1; distinct++; }
    }
    if (distinct <= RANDOM_DISTINCT_BYTES) return false;
  }
  return true;
}

/**
 * Runs up to this long are deflated without a trial: random-looking data is
 * already caught by `looksRandom`, and what is left almost always
 * compresses, so a 4 KiB trial would only be paid twice (in the quarter-end
 * simulation the trial deflates were a quarter of all deflate time).
 */
const PROBE_FROM_BYTES = 64 * 1024;

/**
 * Deflating incompressible data costs CPU for nothing: a long run is first
 * sampled (its first 4 KiB) and sent raw when the sample does not shrink.
 */
function probePays(raw: Buffer, level: number): boolean {
  if (looksRandom(raw)) return false;
  if (raw.length <= PROBE_FROM_BYTES) return true;
  const sample = deflateRawSync(raw.subarray(0, PROBE_BYTES), { level });
  return sample.length <= PROBE_BYTES * DEFLATE_MAX_RATIO;
}

/** Encode `data`, the content at absolute `offset`, as a segment list. */
export function encodeSegments(w: WireWriter, offset: number, data: Buffer, options: EncodeOptions): void {
  const { blockBytes, stats } = options;
  const segs: Array<{ kind: Seg; length: number; body?: Buffer }> = [];
  let runStart = -1;
  let runEnd = -1;
  const cache = options.runCache && options.level > 0 ? options.runCache : undefined;
  // Signatures of the current run's blocks, while every block has one (the run's cache key).
  let runSigs: Buffer[] | null = cache ? [] : null;
  const deflateRun = (raw: Buffer): Buffer | null => {
    if (!(raw.length >= 256 && probePays(raw, options.level))) return null;
    const packed = deflateRawSync(raw, { level: options.level, strategy: zlibConstants.Z_DEFAULT_STRATEGY });
    return packed.length <= raw.length * DEFLATE_MAX_RATIO ? packed : null;
  };
  const flushRun = (): void => {
    if (runStart < 0) return;
    const raw = data.subarray(runStart, runEnd);
    runStart = -1;
    const sigs = runSigs;
    if (cache) runSigs = [];
    if (options.level > 0 && raw.length >= 256) {
      let packed: Buffer | null | undefined;
      if (cache && sigs && sigs.length) {
        const key = sigs.length === 1 ? sigs[0]!.toString('base64') : createHash('sha256').update(Buffer.concat(sigs)).digest('base64');
        packed = cache.get(key);
        if (packed === undefined) { packed = deflateRun(raw); cache.set(key, packed); }
      } else {
        packed = deflateRun(raw);
      }
      if (packed) {
        segs.push({ kind: Seg.DEFLATE, length: raw.length, body: packed });
        if (stats) { stats.deflateInBytes += raw.length; stats.deflateOutBytes += packed.length; }
        return;
      }
    }
    if (stats && options.level > 0 && raw.length >= 256) stats.deflateSkipped++;
    segs.push({ kind: Seg.RAW, length: raw.length, body: raw });
    if (stats) stats.rawBytes += raw.length;
  };
  const pushSimple = (kind: Seg, length: number, body?: Buffer): void => {
    flushRun();
    const last = segs[segs.length - 1];
    if (kind === Seg.ZERO || kind === Seg.PUSHED) {
      if (last && last.kind === kind) { last.length += length; return; }
    }
    segs.push(body ? { kind, length, body } : { kind, length });
  };

  let pos = 0;
  while (pos < data.length) {
    const abs = offset + pos;
    const blockIndex = Math.floor(abs / blockBytes);
    const end = Math.min(data.length, (blockIndex + 1) * blockBytes - offset);
    const block = data.subarray(pos, end);
    const whole = block.length === blockBytes;
    if (stats) stats.plainBytes += block.length;
    if (isZero(block)) {
      pushSimple(Seg.ZERO, block.length);
      if (stats) stats.zeroBytes += block.length;
    } else if (whole && options.pushed?.(blockIndex)) {
      pushSimple(Seg.PUSHED, block.length);
      if (stats) stats.pushedBytes += block.length;
    } else {
      const sig = whole && (options.peerHas || options.sentData) ? (options.memo ? options.memo.signature(block) : contentSignature(block)) : undefined;
      if (sig && options.peerHas?.(sig)) {
        pushSimple(Seg.SIG, block.length, sig);
        if (stats) stats.sigBytes += block.length;
      } else {
        if (sig) options.sentData?.(sig, blockIndex);
        if (runStart < 0) runStart = pos;
        runEnd = end;
        if (runSigs) { if (sig) runSigs.push(sig); else runSigs = null; }
        if (runEnd - runStart >= MAX_RUN_BYTES || (cache && (offset + runEnd) % RUN_ALIGN_BYTES === 0)) flushRun();
      }
    }
    pos = end;
  }
  flushRun();

  w.u32(segs.length);
  for (const s of segs) {
    w.u8(s.kind).u32(s.length);
    if (s.kind === Seg.RAW) w.bytes(s.body!);
    else if (s.kind === Seg.DEFLATE) w.u32(s.body!.length).bytes(s.body!);
    else if (s.kind === Seg.SIG) w.bytes(s.body!);
  }
}

/** A decoded segment list: data filled in, plus what the caller must resolve. */
export interface DecodedSegments {
  data: Buffer;
  /** SIG segments: position within `data` and the signature. */
  sigs: Array<{ at: number; length: number; sig: Buffer }>;
  /** PUSHED segments: position within `data`. */
  pushed: Array<{ at: number; length: number }>;
  /** Bytes these segments took on the wire. */
  wireBytes: number;
}

/**
 * Decode a segment list of `expectLength` bytes. With a `memo`, a range that
 * is one deflated run may come back as the memo's shared bytes: the caller
 * must then only read `data` (there is nothing to fill in such a range).
 */
export function decodeSegments(r: WireReader, expectLength: number, memo?: ContentMemo): DecodedSegments {
  const before = r.remaining;
  const n = r.u32();
  // One data segment covering the range (random content, a fresh read) needs no assembly buffer:
  // the frame's own bytes, or the inflated ones, are the data.
  if (n === 1 && r.remaining >= 5) {
    const kind = r.peekU8();
    if (kind === Seg.RAW || kind === Seg.DEFLATE) {
      r.u8();
      const length = r.u32();
      if (length !== expectLength) throw new LinkError(E_PROTOCOL, `segments cover ${length} bytes, expected ${expectLength}`);
      let data: Buffer;
      if (kind === Seg.RAW) data = r.bytes(length);
      else {
        const packed = r.bytes(r.u32());
        data = memo ? memo.inflate(packed) : inflateRawSync(packed);
        if (data.length !== length) throw new LinkError(E_PROTOCOL, `deflated segment inflates to ${data.length} bytes, header says ${length}`);
      }
      return { data, sigs: [], pushed: [], wireBytes: before - r.remaining };
    }
  }
  const data = Buffer.alloc(expectLength);
  const sigs: DecodedSegments['sigs'] = [];
  const pushed: DecodedSegments['pushed'] = [];
  let at = 0;
  for (let i = 0; i < n; i++) {
    const kind = r.u8();
    const length = r.u32();
    if (at + length > expectLength) throw new LinkError(E_PROTOCOL, `segments describe more than the ${expectLength} bytes asked for`);
    switch (kind) {
      case Seg.ZERO: break;
      case Seg.RAW: r.bytes(length).copy(data, at); break;
      case Seg.DEFLATE: {
        const packed = r.bytes(r.u32());
        const plain = memo ? memo.inflate(packed) : inflateRawSync(packed);
        if (plain.length !== length) throw new LinkError(E_PROTOCOL, `deflated segment inflates to ${plain.length} bytes, header says ${length}`);
        plain.copy(data, at);
        break;
      }
      case Seg.SIG: sigs.push({ at, length, sig: Buffer.from(r.bytes(SIGNATURE_BYTES)) }); break;
      case Seg.PUSHED: pushed.push({ at, length }); break;
      default: throw new LinkError(E_PROTOCOL, `unknown segment kind ${kind}`);
    }
    at += length;
  }
  if (at !== expectLength) throw new LinkError(E_PROTOCOL, `segments cover ${at} bytes, expected ${expectLength}`);
  return { data, sigs, pushed, wireBytes: before - r.remaining };
}
