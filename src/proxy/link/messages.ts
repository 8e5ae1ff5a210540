import { WireReader, WireWriter } from './wire.js';

/** JSON bodies of the handshake and control frames (small, sent once). */
export interface HelloMsg {
  v: number;
  /** The client's nonce, hex. */
  nonce: string;
  /** The cloud proxy's stable identity; leases and dedup memory are keyed by it. */
  peer: string;
  /** Bytes of pushes the client accepts before it returns credit. */
  pushWindowBytes: number;
  /** The signature scheme the client's cache indexes by, or null: then never answer by signature. */
  sigs: 'sha256' | null;
  /** The client sends REPORTs of its guest's first reads; then demand reads are not recorded as accesses. */
  reportsAccess?: boolean;
  /**
   * The generation of the client's cache (hex), or null for none. A peer that
   * comes back with another generation holds none of what on-prem sent it
   * before: on-prem forgets that, and streams it its own boot profile too.
   */
  cache: string | null;
}

export interface ChallengeMsg {
  v: number;
  nonce: string;
  proof: string;
  server: string;
}

export interface AuthMsg {
  proof: string;
}

export interface ErrorMsg {
  code: string;
  message: string;
}

export type AttachMode = 'rw' | 'ro';

export interface AttachReq {
  handle: number;
  disk: string;
  mode: AttachMode;
  /** The image the disk was cloned from, for profiles shared across VMs (FIG 22). */
  image?: string;
  /** The client's cache block: the unit of signatures, pushes and PUSHED markers. */
  blockBytes?: number;
  /** rw only: who the writer is, as far as its own journal knows (absent: a new writer). */
  writer?: WriterClaim;
}

/**
 * A would-be writer's claim. Identity is what on-prem granted earlier (an
 * epoch and a random token, kept in the writer's journal), never the peer
 * name, which any process may declare.
 */
export interface WriterClaim {
  /** The grant the writer's journal holds; null for a journal that never had one. */
  resume: { epoch: number; token: string } | null;
  /** The writer holds acknowledged writes on-prem has not applied. */
  unshipped: boolean;
  /** Accept a new writer session although the last one did not end cleanly. */
  takeOver?: boolean;
}

export interface AttachReply {
  sizeBytes: number;
  blockBytes: number;
  /** Highest write group seq applied on-prem for this disk. */
  lastSeq: number;
  /** Blocks in the disk's boot/access profile (what a PROFILE request would stream). */
  profileBlocks: number;
  /**
   * The key (hex, 32 bytes) that encrypts this disk's cloud cache at rest, and
   * an epoch never handed out before with it. It travels only inside the
   * encrypted link and is never written down on the cloud side.
   */
  cacheKey: string;
  keyEpoch: number;
  /**
   * rw only: the writer session on-prem admitted. `fresh`: a new session
   * (seqs start at 1; forget any local copy of on-prem state), else the
   * claimed one resumed at `lastSeq`.
   */
  writer?: { epoch: number; token: string; fresh: boolean };
}

export interface RangeReq {
  handle: number;
  offset: number;
  length: number;
}

export function encodeRangeReq(m: RangeReq): Buffer {
  return new WireWriter().u16(m.handle).u48(m.offset).u32(m.length).done();
}

export function decodeRangeReq(r: WireReader): RangeReq {
  return { handle: r.u16(), offset: r.u48(), length: r.u32() };
}

export const enum PushKind {
  PROFILE = 0,
  RANGES = 1,
}

export interface PushReq {
  handle: number;
  kind: PushKind;
  /** PROFILE: profile blocks the client already received (resume after reconnect). */
  skip: number;
  ranges: Array<{ offset: number; length: number }>;
}

export function encodePushReq(m: PushReq): Buffer {
  const w = new WireWriter().u16(m.handle).u8(m.kind).u32(m.skip).u32(m.ranges.length);
  for (const r of m.ranges) w.u48(r.offset).u32(r.length);
  return w.done();
}

export function decodePushReq(r: WireReader): PushReq {
  const handle = r.u16();
  const kind = r.u8() as PushKind;
  const skip = r.u32();
  const n = r.u32();
  const ranges: PushReq['ranges'] = [];
  for (let i = 0; i < n; i++) ranges.push({ offset: r.u48(), length: r.u32() });
  return { handle, kind, skip, ranges };
}

export interface WriteBatchReply {
  lastSeq: number;
  /** True when the group had been applied before (a retry); nothing was written again. */
  duplicate: boolean;
}
