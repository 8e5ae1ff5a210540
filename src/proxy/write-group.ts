import { SpillwayError } from '../errors.js';

/** One operation of a shipped group: bytes to write, or a range to zero. */
export type GroupOp =
  | { offset: number; data: Uint8Array; zero?: undefined }
  | { offset: number; length: number; zero: true };

/**
 * A crash-consistent group: the coalesced effect of every write acknowledged
 * between two cuts. Applying group n on top of groups 1..n-1 yields a state
 * the guest's disk really was in. Sequence numbers count from 1 within one
 * writer session: a group is named by (writer epoch, seq), and the writer
 * epoch is the one on-prem granted the session that cut it.
 */
export interface WriteGroup {
  diskId: string;
  seq: number;
  /** The writer session (on-prem's grant). Absent: 0, the in-process writer that needs no grant. */
  epoch?: number;
  writes: GroupOp[];
}

/** A writer session on-prem granted: the only identity under which its groups are applied. */
export interface WriterGrant {
  epoch: number;
  /** Random, so a cache dir from another on-prem life (or a wiped journal) never matches by accident. */
  token: string;
}

/** Where groups go: the link client over the wire, or a GroupApplier in process. */
export interface WriteSink {
  /** Resolves once the group is applied and durable on-prem. Must be idempotent per (diskId, epoch, seq). */
  applyGroup(group: WriteGroup): Promise<void>;
}

export const REC_WRITE = 1;
export const REC_ZERO = 2;
/** Write-behind's cut record: the writes journaled before it form group `seq` (layers/write-behind-journal.ts). */
export const REC_CUT = 3;

export function opLength(op: GroupOp): number {
  return op.zero ? op.length : op.data.length;
}

export function encodeOp(op: GroupOp): Buffer {
  if (op.zero) {
    const b = Buffer.alloc(17);
    b[0] = REC_ZERO;
    b.writeDoubleBE(op.offset, 1);
    b.writeDoubleBE(op.length, 9);
    return b;
  }
  const b = Buffer.alloc(9 + op.data.length);
  b[0] = REC_WRITE;
  b.writeDoubleBE(op.offset, 1);
  b.set(op.data, 9);
  return b;
}

export function decodeOp(p: Buffer): GroupOp {
  if (p[0] === REC_ZERO) return { offset: p.readDoubleBE(1), length: p.readDoubleBE(9), zero: true };
  if (p[0] === REC_WRITE) return { offset: p.readDoubleBE(1), data: Buffer.from(p.subarray(9)) };
  throw new SpillwayError('E_JOURNAL_CORRUPT', `write group: unknown record kind ${p[0]}`);
}

interface Seg {
  start: number;
  end: number;
  /** undefined: zeros */
  data: Uint8Array | undefined;
}

/**
 * Later ops win where they overlap; the result is sorted by address with
 * adjacent pieces of the same kind merged, so a group carries each byte once.
 */
export function coalesce(ops: readonly GroupOp[]): GroupOp[] {
  let segs: Seg[] = [];
  for (const op of ops) {
    const start = op.offset;
    const end = start + (op.zero ? op.length : op.data.length);
    if (end === start) continue;
    const next: Seg[] = [];
    for (const s of segs) {
      if (s.end <= start || s.start >= end) { next.push(s); continue; }
      if (s.start < start) next.push({ start: s.start, end: start, data: s.data?.subarray(0, start - s.start) });
      if (s.end > end) next.push({ start: end, end: s.end, data: s.data?.subarray(end - s.start) });
    }
    next.push({ start, end, data: op.zero ? undefined : op.data });
    segs = next;
  }
  segs.sort((a, b) => a.start - b.start);
  const out: GroupOp[] = [];
  let i = 0;
  while (i < segs.length) {
    const run = [segs[i]!];
    while (i + run.length < segs.length) {
      const n = segs[i + run.length]!;
      const prev = run[run.length - 1]!;
      if (n.start !== prev.end || (n.data === undefined) !== (prev.data === undefined)) break;
      run.push(n);
    }
    const first = run[0]!;
    const last = run[run.length - 1]!;
    if (first.data === undefined) out.push({ offset: first.start, length: last.end - first.start, zero: true });
    else out.push({ offset: first.start, data: run.length === 1 ? first.data : Buffer.concat(run.map((s) => s.data!)) });
    i += run.length;
  }
  return out;
}

