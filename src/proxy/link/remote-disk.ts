import { FifoMap } from '../../util/fifo-map.js';
import type { ContentMemo } from '../content-memo.js';
import { BlockError, E_CLOSED, E_READONLY, checkRange, type BlockDevice, type Extent } from '../block-device.js';
import type { PushSource } from '../push-source.js';
import type { WriteGroup, WriteSink } from '../write-group.js';
import { LinkError, E_FRAME_TOO_LARGE, E_PROTOCOL } from './errors.js';
import type { AttachReply, AttachReq } from './messages.js';
import { PushKind, encodePushReq, encodeRangeReq } from './messages.js';
import { contentSignature, decodeSegments, encodeSegments, isZero, type DecodedSegments } from './payload.js';
import { DETACH_ENDED, F_NO_PUSHED, F_PROFILE, F_SIGS_OK, MAX_FRAME_BYTES, Op, WireReader, WireWriter, jsonPayload } from './wire.js';


export interface RemoteDiskStats {
  reads: number;
  readBytes: number;
  sigHits: number;
  sigMisses: number;
  pushedHits: number;
  pushedMisses: number;
  refetches: number;
  groupsShipped: number;
  groupsDuplicate: number;
}

const RECENT_PUSH_BYTES = 32 * 1024 * 1024;
const EXTENTS_SIGS_MAX_BYTES = 4 * 1024 * 1024;

/** What a RemoteDisk needs from the connection it was attached on (LinkClient implements it). */
export interface LinkRequester {
  readonly options: { readonly sigs?: unknown; readonly compressionLevel?: number; readonly contentMemo?: ContentMemo };
  request(op: number, flags: number, payload: Buffer): Promise<Buffer>;
  forget(handle: number): void;
}

/**
 * One on-prem disk seen through the link, as a read-only BlockDevice (the
 * remote end of FIG 5) plus a WriteSink for write-behind groups. A reply may
 * name a signature or say "already pushed": the first is resolved from the
 * cache, the second from recently pushed blocks, and what neither can supply
 * is asked for again as plain data.
 */
export class RemoteDisk implements BlockDevice, WriteSink, PushSource {
  readonly name: string;
  readonly diskId: string;
  readonly blockBytes: number;
  readonly stats: RemoteDiskStats = { reads: 0, readBytes: 0, sigHits: 0, sigMisses: 0, pushedHits: 0, pushedMisses: 0, refetches: 0, groupsShipped: 0, groupsDuplicate: 0 };
  /** Highest group seq the on-prem side reported applied, at attach time. */
  lastSeqAtAttach: number;
  readonly profileBlocks: number;
  /** The cache key and epoch on-prem handed out with this attach (never persisted here). */
  readonly cacheKey: Buffer;
  readonly keyEpoch: number;
  /** rw: the writer session on-prem admitted at attach (see AttachReply.writer). */
  readonly writer: { epoch: number; token: string; fresh: boolean } | undefined;
  private readonly sizeBytes: number;
  private readonly recent = new FifoMap<number, Buffer>();
  private recentBytes = 0;
  /**
   * Content received lately (pushes and replies), by signature: a SIG answer
   * is resolved from here when the cache no longer holds that content (a
   * small cache under a fast profile stream evicts pushed blocks first).
   */
  private readonly recentBySig = new FifoMap<string, Buffer>();
  private recentSigBytes = 0;
  /**
   * Received blocks not hashed yet, oldest first: most SIG answers are resolved
   * by the cache, so blocks are hashed only when a lookup misses there.
   */
  private unsigned: Buffer[] = [];
  /** unsigned[0 .. unsignedHead) were dropped already (compacted now and then, not per block). */
  private unsignedHead = 0;
  private readonly pushCbs = new Set<(offset: number, data: Buffer, profile: boolean) => void>();
  private profilePos = 0;
  /** Profile position after the last block of the stream (0 until streamProfile is answered). */
  private profileEnd = 0;
  /** Settles when every push received so far has been resolved and remembered. */
  private pushesSettled: Promise<void> = Promise.resolve();
  /** Block -> its position in the profile stream. */
  private readonly profileOrder = new Map<number, number>();
  private streaming = false;
  private failed: Error | null = null;
  private closed = false;

  constructor(
    private readonly client: LinkRequester,
    readonly handle: number,
    private req: AttachReq,
    reply: AttachReply,
    private sigResolver?: (sig: Buffer) => Promise<Buffer | undefined>,
  ) {
    this.diskId = req.disk;
    this.name = `remote:${req.disk}`;
    this.sizeBytes = reply.sizeBytes;
    this.blockBytes = reply.blockBytes;
    this.lastSeqAtAttach = reply.lastSeq;
    this.profileBlocks = reply.profileBlocks;
    this.cacheKey = Buffer.from(reply.cacheKey, 'hex');
    this.keyEpoch = reply.keyEpoch;
    this.writer = reply.writer;
    // A re-attach after a reconnect resumes this session; it must never ask for a new one.
    if (reply.writer) this.req = { ...req, writer: { resume: { epoch: reply.writer.epoch, token: reply.writer.token }, unshipped: true } };
  }

  size(): number {
    return this.sizeBytes;
  }

  /** This disk streams pushes (the read path's capability, see PushSource). */
  get pushes(): PushSource {
    return this;
  }

  /** The range from recently pushed blocks, if every block of it is there (no round trip). */
  peekPushed(offset: number, length: number): Buffer | undefined {
    const bb = this.blockBytes;
    if (offset % bb !== 0 || this.recent.size === 0) return undefined;
    // Most misses find nothing here: look before allocating.
    for (let at = 0; at < length; at += bb) if (!this.recent.has((offset + at) / bb)) return undefined;
    const out = Buffer.allocUnsafe(length);
    for (let at = 0; at < length; at += bb) this.recent.get((offset + at) / bb)!.copy(out, at, 0, Math.min(bb, length - at));
    return out;
  }

  /** The server answers by signature only when the client said it can resolve them. */
  private get sigsOffered(): boolean {
    return (this.client.options.sigs ?? null) !== null;
  }

  /** Where SIG answers are looked up (the cache's findBySignature), once the cache exists. */
  setSignatureResolver(resolver: (sig: Buffer) => Promise<Buffer | undefined>): void {
    this.sigResolver = resolver;
  }

  private check(): void {
    if (this.closed) throw new BlockError(E_CLOSED, `${this.name}: device is closed`);
    if (this.failed) throw this.failed;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    this.check();
    checkRange(this, offset, length);
    this.stats.reads++;
    this.stats.readBytes += length;
    if (length === 0) return Buffer.alloc(0);
    const flags = this.sigResolver ? F_SIGS_OK : 0;
    const reply = await this.client.request(Op.READ, flags, encodeRangeReq({ handle: this.handle, offset, length }));
    const dec = decodeSegments(new WireReader(reply), length, this.client.options.contentMemo);
    // Index this reply's own data first: a later block of it may be a SIG of an earlier one.
    // (SIG and PUSHED holes are still zeros here and are skipped.)
    if (this.sigsOffered) {
      const first = Math.ceil(offset / this.blockBytes) * this.blockBytes - offset;
      this.rememberContent(dec.data, first, length - first);
    }
    const missing = adjacentRuns(await this.resolve(offset, dec));
    // One request per run of adjacent blocks, all in flight at once: a cache that lost what on-prem
    // believed it held costs one round trip per reply, never one per block.
    await Promise.all(missing.map(async (m) => {
      this.stats.refetches++;
      const again = await this.client.request(Op.READ, F_NO_PUSHED, encodeRangeReq({ handle: this.handle, offset: offset + m.at, length: m.length }));
      decodeSegments(new WireReader(again), m.length, this.client.options.contentMemo).data.copy(dec.data, m.at);
    }));
    return dec.data;
  }

  private rememberContent(data: Buffer, at: number, n: number): void {
    const bb = this.blockBytes;
    const memo = this.client.options.contentMemo;
    for (let a = at; a + bb <= at + n; a += bb) {
      const block = data.subarray(a, a + bb);
      // With a memo, the window holds the copy every disk receiving this content shares.
      if (!isZero(block)) this.unsigned.push(memo ? memo.intern(block) : block);
    }
    // The window is RECENT_PUSH_BYTES of content, signed or not: drop the oldest signed, then the oldest unsigned.
    while (this.recentSigBytes > 0 && this.recentSigBytes + this.unsignedCount() * bb > RECENT_PUSH_BYTES) {
      this.recentBySig.shift();
      this.recentSigBytes -= bb;
    }
    const over = this.unsignedCount() - Math.floor(RECENT_PUSH_BYTES / bb);
    if (over > 0) this.unsignedHead += over;
    // Compact once the dropped prefix is as long as what is kept: amortized O(1) per block.
    if (this.unsignedHead > 1024 && this.unsignedHead * 2 > this.unsigned.length) {
      this.unsigned = this.unsigned.slice(this.unsignedHead);
      this.unsignedHead = 0;
    }
  }

  private unsignedCount(): number {
    return this.unsigned.length - this.unsignedHead;
  }

  /** Hash the received blocks not hashed yet into the by-signature memory. */
  private signPending(): void {
    const bb = this.blockBytes;
    for (let i = this.unsignedHead; i < this.unsigned.length; i++) {
      const block = this.unsigned[i]!;
      const memo = this.client.options.contentMemo;
      const key = (memo ? memo.signature(block) : contentSignature(block)).toString('base64');
      if (this.recentBySig.has(key)) continue;
      this.recentBySig.set(key, block);
      this.recentSigBytes += bb;
    }
    this.unsigned = [];
    this.unsignedHead = 0;
    while (this.recentSigBytes > RECENT_PUSH_BYTES) {
      this.recentBySig.shift();
      this.recentSigBytes -= bb;
    }
  }

  private async lookupSig(sig: Buffer): Promise<Buffer | undefined> {
    const cached = this.sigResolver ? await this.sigResolver(sig).catch(() => undefined) : undefined;
    if (cached) return cached;
    const key = sig.toString('base64');
    const known = this.recentBySig.get(key);
    if (known || this.unsignedCount() === 0) return known;
    this.signPending();
    return this.recentBySig.get(key);
  }

  /** Fill SIG and PUSHED segments locally; return what could not be filled. */
  private async resolve(offset: number, dec: DecodedSegments): Promise<Array<{ at: number; length: number }>> {
    const missing: Array<{ at: number; length: number }> = [];
    // Pushes that arrived before this reply may still be resolving their signatures.
    if (dec.pushed.length) await this.pushesSettled;
    for (const s of dec.sigs) {
      const found = await this.lookupSig(s.sig);
      if (found && found.length >= s.length) { found.copy(dec.data, s.at, 0, s.length); this.stats.sigHits++; }
      else { missing.push({ at: s.at, length: s.length }); this.stats.sigMisses++; }
    }
    const bb = this.blockBytes;
    for (const p of dec.pushed) {
      for (let at = p.at; at < p.at + p.length; at += bb) {
        const block = this.recent.get((offset + at) / bb);
        if (block) { block.copy(dec.data, at); this.stats.pushedHits++; }
        else { missing.push({ at, length: bb }); this.stats.pushedMisses++; }
      }
    }
    return missing;
  }

  /** Ship one write-behind group; resolves once it is applied (or known applied) on-prem. */
  async applyGroup(group: WriteGroup): Promise<void> {
    this.check();
    if (group.diskId !== this.diskId) {
      throw new LinkError(E_PROTOCOL, `${this.name}: got a write group for disk ${group.diskId}`);
    }
    const w = new WireWriter().u16(this.handle).u48(group.seq).u32(group.writes.length);
    for (const op of group.writes) {
      if (op.zero) {
        checkRange(this, op.offset, op.length, 'write');
        w.u8(1).u48(op.offset).u48(op.length);
        continue;
      }
      checkRange(this, op.offset, op.data.length, 'write');
      const data = Buffer.from(op.data.buffer, op.data.byteOffset, op.data.byteLength);
      w.u8(0).u48(op.offset).u32(data.length);
      encodeSegments(w, op.offset, data, { blockBytes: this.blockBytes, level: this.client.options.compressionLevel ?? 1 });
    }
    const payload = w.done();
    if (payload.length > MAX_FRAME_BYTES - 64) {
      throw new LinkError(E_FRAME_TOO_LARGE, `${this.name}: write group ${group.seq} encodes to ${payload.length} bytes; a frame holds at most ${MAX_FRAME_BYTES} (lower the write-behind ship threshold)`);
    }
    const reply = await this.client.request(Op.WRITE_BATCH, 0, payload);
    const r = JSON.parse(reply.toString('utf8')) as { duplicate: boolean };
    if (r.duplicate) this.stats.groupsDuplicate++;
    else this.stats.groupsShipped++;
  }

  async write(): Promise<void> {
    throw new BlockError(E_READONLY, `${this.name}: writes reach on-prem only as write-behind groups (applyGroup)`);
  }

  async trim(): Promise<void> {
    throw new BlockError(E_READONLY, `${this.name}: trims reach on-prem only as write-behind groups (applyGroup)`);
  }

  async writeZeroes(): Promise<void> {
    throw new BlockError(E_READONLY, `${this.name}: zeroing reaches on-prem only as write-behind groups (applyGroup)`);
  }

  /** On-prem makes everything applied so far durable. */
  async flush(): Promise<void> {
    this.check();
    await this.client.request(Op.FLUSH, 0, new WireWriter().u16(this.handle).done());
  }

  /** NBD CACHE on the remote: ask on-prem to push the range (PREFETCH_PUSH). */
  prefetch(offset: number, length: number): Promise<void> {
    return this.requestPush(offset, length);
  }

  /** Ask the on-prem side to push this range (PREFETCH_PUSH); resolves once it is queued there. */
  async requestPush(offset: number, length: number): Promise<void> {
    this.check();
    checkRange(this, offset, length);
    await this.client.request(Op.PROFILE, 0, encodePushReq({ handle: this.handle, kind: PushKind.RANGES, skip: 0, ranges: [{ offset, length }] }));
  }

  /** Ask the on-prem side to stream this disk's profile (FIG 21/22) at link speed. */
  async streamProfile(): Promise<void> {
    this.check();
    this.streaming = true;
    const reply = await this.client.request(Op.PROFILE, 0, encodePushReq({ handle: this.handle, kind: PushKind.PROFILE, skip: this.profilePos, ranges: [] }));
    const { base, runs } = JSON.parse(reply.toString('utf8')) as { base: number; runs: number[] };
    let pos = base;
    let end = base;
    for (let i = 0; i < runs.length; i += 2) {
      end += runs[i + 1]!;
      for (let b = runs[i]!; b < runs[i]! + runs[i + 1]!; b++) if (!this.profileOrder.has(b)) this.profileOrder.set(b, pos++);
    }
    this.profileEnd = end;
  }

  /**
   * True while the profile stream has blocks left to send. On-prem sends an
   * explicit push request (requestPush) only after the profile stream, so
   * until then waiting for one costs more than a READ.
   */
  profilePending(): boolean {
    return this.streaming && this.profilePos < this.profileEnd;
  }

  /** Whether the profile stream (FIG 22) carries this block (arrived or still to come). */
  inProfile(block: number): boolean {
    return this.profileOrder.has(block);
  }

  /**
   * True when every block of the range is in the profile stream and due
   * within `aheadBlocks` of what has arrived: waiting for the push is then
   * cheaper than a round trip.
   */
  pushDueSoon(offset: number, length: number, aheadBlocks: number): boolean {
    if (!this.streaming || this.profileOrder.size === 0) return false;
    const bb = this.blockBytes;
    for (let b = Math.floor(offset / bb); b * bb < offset + length; b++) {
      const at = this.profileOrder.get(b);
      if (at === undefined || at < this.profilePos || at >= this.profilePos + aheadBlocks) return false;
    }
    return true;
  }

  /** Tell on-prem what the guest read first, in order (FIG 22 dynamic analysis). */
  async reportAccess(ranges: Array<{ offset: number; length: number }>): Promise<void> {
    this.check();
    if (ranges.length === 0) return;
    const w = new WireWriter().u16(this.handle).u32(ranges.length);
    for (const r of ranges) w.u48(r.offset).u32(r.length);
    await this.client.request(Op.REPORT, 0, w.done());
  }

  /** Per block of the range: its sha256 signature, or null when it reads as zeros. */
  async signatures(offset: number, length: number): Promise<Array<Buffer | null>> {
    this.check();
    checkRange(this, offset, length);
    const reply = await this.client.request(Op.SIGS, 0, encodeRangeReq({ handle: this.handle, offset, length }));
    const r = new WireReader(reply);
    const n = r.u32();
    const out: Array<Buffer | null> = [];
    for (let i = 0; i < n; i++) out.push(r.u8() === 0 ? null : Buffer.from(r.bytes(32)));
    return out;
  }

  async extents(offset: number, length: number): Promise<Extent[]> {
    // Signatures need the on-prem side to read the range; beyond a few MiB report "data" (always correct).
    if (length > EXTENTS_SIGS_MAX_BYTES) {
      this.check();
      checkRange(this, offset, length);
      return length ? [{ offset, length, type: 'data' }] : [];
    }
    const sigs = await this.signatures(offset, length);
    const out: Extent[] = [];
    const bb = this.blockBytes;
    let pos = offset;
    for (const sig of sigs) {
      const end = Math.min(offset + length, (Math.floor(pos / bb) + 1) * bb);
      const type = sig ? 'data' : 'zero';
      const last = out[out.length - 1];
      if (last && last.type === type) last.length += end - pos;
      else out.push({ offset: pos, length: end - pos, type });
      pos = end;
    }
    return out;
  }

  /** Be given every pushed range as it arrives (the cloud proxy fills its cache). */
  onPush(cb: (offset: number, data: Buffer, profile: boolean) => void): () => void {
    this.pushCbs.add(cb);
    return () => this.pushCbs.delete(cb);
  }

  /** @internal a PUSH frame for this handle. */
  receivePush(r: WireReader, flags: number): void {
    const offset = r.u48();
    const length = r.u32();
    const profileEnd = r.u32();
    const profile = (flags & F_PROFILE) !== 0;
    if (profile) this.profilePos = Math.max(this.profilePos, profileEnd);
    const dec = decodeSegments(r, length, this.client.options.contentMemo);
    const bb = this.blockBytes;
    const memo = this.client.options.contentMemo;
    const remember = (at: number, n: number): void => {
      if (this.sigsOffered) this.rememberContent(dec.data, at, n);
      for (let a = at; a + bb <= at + n; a += bb) {
        const index = (offset + a) / bb;
        if (!Number.isInteger(index) || this.recent.has(index)) continue;
        const block = dec.data.subarray(a, a + bb);
        this.recent.set(index, memo ? memo.intern(block) : block);
        this.recentBytes += bb;
      }
      while (this.recentBytes > RECENT_PUSH_BYTES) {
        this.recent.shift();
        this.recentBytes -= bb;
      }
    };
    // Deliver contiguous pieces; blocks named by a signature we could not find are left out.
    const deliver = (lost: Array<{ at: number; length: number }>): void => {
      let at = 0;
      for (const h of [...lost, { at: length, length: 0 }]) {
        if (h.at > at) {
          remember(at, h.at - at);
          for (const cb of this.pushCbs) cb(offset + at, dec.data.subarray(at, h.at), profile);
        }
        at = h.at + h.length;
      }
    };
    if (dec.sigs.length === 0) {
      deliver(dec.sigs);
      return;
    }
    if (this.sigsOffered) this.rememberContent(dec.data, 0, length);
    const previous = this.pushesSettled;
    this.pushesSettled = (async () => {
      await previous;
      const lost: Array<{ at: number; length: number }> = [];
      for (const s of dec.sigs) {
        // A cache that fails to produce the block (evicted, integrity error) only loses the push.
        const found = await this.lookupSig(s.sig);
        if (found && found.length >= s.length) found.copy(dec.data, s.at, 0, s.length);
        else lost.push(s);
      }
      deliver(lost);
    })();
  }

  /** Drop the windows of received content: a closed disk resolves nothing more, and a closed session may be kept for its figures. */
  private forgetContent(): void {
    this.recent.clear();
    this.recentBytes = 0;
    this.recentBySig.clear();
    this.recentSigBytes = 0;
    this.unsigned = [];
    this.unsignedHead = 0;
    this.profileOrder.clear();
  }

  /** @internal re-attach on a fresh connection (same handle). */
  async reattach(): Promise<void> {
    try {
      await this.client.request(Op.ATTACH, 0, jsonPayload({ ...this.req }));
    } catch (err) {
      this.failed = err as Error;
    }
  }

  /** @internal resume the profile stream where it stopped. */
  resumePushes(): void {
    if (this.streaming && !this.failed) this.streamProfile().catch(() => {});
  }

  /**
   * Release the on-prem lease and stop using the handle. `ended`: this writer
   * shipped everything and its session ends (a new writer may follow).
   */
  async close(options: { ended?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.forgetContent();
    try {
      await this.client.request(Op.DETACH, 0, new WireWriter().u16(this.handle).u8(options.ended ? DETACH_ENDED : 0).done());
    } finally {
      this.client.forget(this.handle);
    }
  }
}

/** Holes sorted and merged where one ends at the next one's start. */
function adjacentRuns(holes: Array<{ at: number; length: number }>): Array<{ at: number; length: number }> {
  const out: Array<{ at: number; length: number }> = [];
  for (const h of [...holes].sort((a, b) => a.at - b.at)) {
    const last = out[out.length - 1];
    if (last && last.at + last.length === h.at) last.length += h.length;
    else out.push({ ...h });
  }
  return out;
}
