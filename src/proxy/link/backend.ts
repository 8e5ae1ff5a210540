/*
 * What the link server needs from the on-prem side (the disk manager and
 * prioritizer behind it): open a disk for a peer, then read, note accesses,
 * apply write groups and hand the lease back.
 */
import type { GroupOp } from '../write-group.js';
import type { AttachMode, WriterClaim } from './messages.js';

export interface ByteRange {
  offset: number;
  length: number;
}

/** One op of a write-behind group as it crosses the link: bytes, or a range to zero. */
export type GroupWrite = GroupOp;

/** A disk the backend has opened (and leased) for one peer. */
export interface AttachedDisk {
  readonly diskId: string;
  readonly sizeBytes: number;
  lastSeq(): number;
  read(offset: number, length: number): Promise<Buffer>;
  /**
   * Told of every demand read (for profiles and hotspots); returns ranges to
   * push after the reply, e.g. the rest of the file the read fell in (FIG 23).
   */
  noteRead(offset: number, length: number, record: boolean): ByteRange[];
  /**
   * The peer's own record of what its guest read first, in order (reads its
   * cache served never reach us); the input of FIG 22's dynamic analysis.
   */
  noteAccess(ranges: ByteRange[]): void;
  /** The part of a peer's prefetch push request worth pushing (e.g. cut at a file's end); all of it when absent. */
  pushable?(ranges: ByteRange[]): ByteRange[];
  /** Apply a group atomically; a seq at or below lastSeq() is a duplicate and changes nothing. */
  applyGroup(seq: number, writes: GroupWrite[]): Promise<{ duplicate: boolean }>;
  flush(): Promise<void>;
  /** Byte ranges to stream to a cold cache, most urgent first (FIG 21/22). */
  profile(): ByteRange[];
  /**
   * Give the lease back. `ended`: the writer shipped everything and ends its
   * session, so a new writer may follow it.
   */
  detach(ended: boolean): Promise<void>;
  /** The connection carrying this handle went away without a DETACH (the peer may come back). */
  disconnected(): void;
  /** For a rw attach: the writer session on-prem admitted (see AttachReply.writer). */
  readonly writer?: { epoch: number; token: string; fresh: boolean };
  /** Key for the peer's cache of this disk, and a fresh epoch for it (see AttachReply). */
  readonly cacheKey: Buffer;
  readonly keyEpoch: number;
}

export interface LinkBackend {
  /**
   * Open `disk` for `peer`; refuse with E_UNKNOWN_DISK, E_LEASE_HELD, or (rw)
   * E_WRITER_UNFINISHED / E_WRITER_SUPERSEDED.
   */
  attach(req: {
    peer: string; disk: string; mode: AttachMode; image: string | undefined; writer: WriterClaim | undefined;
    /** The peer's cache is the one on-prem saw last (false: a new or emptied cache, which gets its own profile too). */
    knownCache: boolean;
  }): Promise<AttachedDisk>;
}
