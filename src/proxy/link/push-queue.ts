import { invariant } from '../../errors.js';
import type { AttachedDisk, ByteRange } from './backend.js';
import type { LinkConnection } from './connection.js';
import { encodeSegments, type EncodeOptions } from './payload.js';
import { F_PROFILE, Op, WireWriter } from './wire.js';

/** Half of what the client keeps of recent pushes (RemoteDisk), so a PUSHED answer always resolves. */
export const PUSHED_HORIZON_BYTES = 16 * 1024 * 1024;

/** Push classes, most urgent first. */
export const enum PushClass {
  /** FIG 23: the rest of a group one block of which was read. */
  GROUP = 0,
  /** FIG 21/22: the disk's profile, streamed in order. */
  PROFILE = 1,
  /** Ranges the peer asked for (prefetch). */
  EXPLICIT = 2,
}

/**
 * One attached disk on one connection, as the push stream sees it: what was
 * sent (so nothing goes twice), what was pushed (so a READ may answer PUSHED),
 * and the three push queues with their cursors.
 */
export class HandleState {
  /**
   * Blocks pushed on this connection and not written since, with the push
   * byte count at the time: a READ may answer PUSHED only for a block pushed
   * within the last PUSHED_HORIZON_BYTES, which the client still remembers.
   */
  readonly pushed = new Map<number, number>();
  pushedBytes = 0;
  /** Blocks sent on this connection (pushed or replied) and not written since: the pump skips them. */
  readonly sent = new Set<number>();
  /** Blocks written (on any connection) while the pump reads a push chunk from disk; null when it is not reading. */
  writtenDuringRead: Set<number> | null = null;
  /** Indexed by PushClass. */
  readonly queues: [number[], number[], number[]] = [[], [], []];
  readonly cursors: [number, number, number] = [0, 0, 0];
  /** Profile position of queues[PROFILE][0] (after a resume skip). */
  profileBase = 0;

  /** `bb`: the client's block size, the unit of signatures, pushes and PUSHED markers. */
  constructor(readonly handle: number, readonly disk: AttachedDisk, readonly bb: number) {}

  /** The block was pushed recently enough that the client still holds it. */
  pushedRecently(block: number): boolean {
    const at = this.pushed.get(block);
    return at !== undefined && this.pushedBytes - at < PUSHED_HORIZON_BYTES;
  }

  /** Whole blocks of the range reached the client (pushed, or in a READ reply). */
  markSent(offset: number, length: number, pushed: boolean): void {
    const bb = this.bb;
    const first = Math.ceil(offset / bb);
    const end = Math.floor((offset + length) / bb);
    for (let b = first; b < end; b++) {
      this.sent.add(b);
      if (pushed) this.pushed.set(b, this.pushedBytes);
    }
  }

  /** Queue the blocks of `ranges` not sent yet (cut at the disk's end) in class `cls`. */
  queueRanges(cls: PushClass.GROUP | PushClass.EXPLICIT, ranges: ByteRange[]): void {
    const bb = this.bb;
    const q = this.queues[cls];
    for (const g of ranges) {
      const end = Math.min(this.disk.sizeBytes, g.offset + g.length);
      for (let b = Math.floor(g.offset / bb); b * bb < end; b++) if (!this.sent.has(b)) q.push(b);
    }
  }

  /** Blocks queued in class `cls` and not taken yet. */
  queued(cls: PushClass): number {
    return this.queues[cls].length - this.cursors[cls];
  }

  /**
   * Stream `profile` (block indices in order) from position `skip` (a resume
   * after reconnect); returns the order as runs [start, count, ...] so the
   * client can wait for a block that is about to arrive.
   */
  setProfile(profile: number[], skip: number): number[] {
    const q = profile.slice(skip);
    this.queues[PushClass.PROFILE] = q;
    this.cursors[PushClass.PROFILE] = 0;
    this.profileBase = Math.min(skip, profile.length);
    const runs: number[] = [];
    for (const b of q) {
      const n = runs.length;
      if (n && runs[n - 2]! + runs[n - 1]! === b) runs[n - 1]!++;
      else runs.push(b, 1);
    }
    return runs;
  }

  /** The bytes [offset, end) were written: pushes of them are stale, on this connection too. */
  forgetWritten(offset: number, end: number): void {
    const bb = this.bb;
    for (let b = Math.floor(offset / bb); b * bb < end; b++) {
      this.pushed.delete(b);
      this.sent.delete(b);
      this.writtenDuringRead?.add(b);
    }
  }

  /** The next run of adjacent blocks to push (at most `maxBlocks`), most urgent class first. */
  nextPush(maxBlocks: number): { blocks: number[]; cls: PushClass; profileEnd: number } | null {
    for (let cls = 0; cls < 3; cls++) {
      const q = this.queues[cls]!;
      let i = this.cursors[cls]!;
      while (i < q.length && this.sent.has(q[i]!)) i++;
      if (i >= q.length) { this.cursors[cls] = i; continue; }
      const blocks = [q[i]!];
      i++;
      while (i < q.length && blocks.length < maxBlocks && q[i] === blocks[blocks.length - 1]! + 1 && !this.sent.has(q[i]!)) blocks.push(q[i++]!);
      this.cursors[cls] = i;
      return { blocks, cls, profileEnd: cls === PushClass.PROFILE ? this.profileBase + i : 0 };
    }
    return null;
  }
}

export interface PushQueueOptions {
  /** Largest push frame, bytes of plaintext. */
  pushChunkBytes: number;
  /** How a pushed run is encoded for this handle (never as PUSHED markers). */
  encodeOptions(h: HandleState): EncodeOptions;
  /** Told of each PUSH frame sent. */
  pushed(): void;
  log(message: string): void;
}

/**
 * The push stream of one connection: takes the next run from the live
 * handles (in attach order, most urgent class first), reads it from disk and
 * sends it while the client's credit lasts. Credit is the client's window:
 * a push starts only while some is left, so the window is overdrawn by at
 * most one push frame (the client returns credit for what it received).
 */
export class PushQueue {
  private credit = 0;
  private pumping = false;

  constructor(private readonly conn: LinkConnection, private readonly live: ReadonlySet<HandleState>, private readonly options: PushQueueOptions) {}

  /** The link opened with the client's window. */
  open(windowBytes: number): void {
    this.credit = Math.max(0, windowBytes | 0);
  }

  /** The client returned credit for pushes it received. */
  grant(bytes: number): void {
    this.credit += bytes;
    void this.pump();
  }

  async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    const conn = this.conn;
    try {
      while (!conn.closed && this.credit > 0) {
        let picked: { h: HandleState; item: NonNullable<ReturnType<HandleState['nextPush']>> } | null = null;
        for (const h of this.live) {
          const item = h.nextPush(Math.max(1, Math.floor(this.options.pushChunkBytes / h.bb)));
          if (item) { picked = { h, item }; break; }
        }
        if (!picked) break;
        const { h, item } = picked;
        const bb = h.bb;
        const offset = item.blocks[0]! * bb;
        const length = Math.min(item.blocks.length * bb, h.disk.sizeBytes - offset);
        if (length <= 0) continue;
        const written = new Set<number>();
        h.writtenDuringRead = written;
        let data: Buffer;
        try {
          data = await h.disk.read(offset, length);
        } finally {
          h.writtenDuringRead = null;
        }
        if (conn.closed) break;
        this.sendRuns(h, item, offset, length, data, written);
      }
    } catch (err) {
      this.options.log(`push stream stopped: ${(err as Error).message}`);
    } finally {
      this.pumping = false;
    }
  }

  /**
   * While the chunk was read, a READ reply may have sent some of its blocks
   * (the client has them) and a write may have changed some (our bytes are
   * stale): push the rest, in runs of what is left.
   */
  private sendRuns(h: HandleState, item: { blocks: number[]; cls: PushClass; profileEnd: number }, offset: number, length: number, data: Buffer, written: Set<number>): void {
    const bb = h.bb;
    const first = item.blocks[0]!;
    const total = Math.ceil(length / bb);
    const creditBefore = this.credit;
    for (let i = 0; i < total;) {
      while (i < total && (h.sent.has(first + i) || written.has(first + i))) i++;
      let j = i;
      while (j < total && !h.sent.has(first + j) && !written.has(first + j)) j++;
      if (j === i) break;
      const runOffset = offset + i * bb;
      const runLength = Math.min(j * bb, length) - i * bb;
      const w = new WireWriter().u16(h.handle).u48(runOffset).u32(runLength).u32(item.profileEnd);
      encodeSegments(w, runOffset, data.subarray(i * bb, i * bb + runLength), this.options.encodeOptions(h));
      const payload = w.done();
      h.markSent(runOffset, runLength, true);
      h.pushedBytes += runLength;
      this.options.pushed();
      this.conn.send({ op: Op.PUSH, flags: item.cls === PushClass.PROFILE ? F_PROFILE : 0, id: 0, payload });
      this.credit -= payload.length;
      i = j;
    }
    invariant(creditBefore > 0 && creditBefore - this.credit <= pushWireBound(length, bb),
      () => `push credit overdrawn past one chunk: ${creditBefore} -> ${this.credit} for a chunk of ${length} bytes`);
  }
}

/**
 * Most wire bytes the PUSH payloads of one chunk of `length` bytes can take:
 * the data itself (deflate is used only when it saves an eighth, a signature
 * is smaller than a block, zero and PUSHED segments carry no body), plus per
 * run its 16-byte header and 4-byte segment count, and per segment 9 bytes of
 * header; every run and every segment starts at a block, so there is at most
 * one of each per block.
 */
function pushWireBound(length: number, bb: number): number {
  return length + Math.ceil(length / bb) * (20 + 9);
}
