import { invariant } from '../../errors.js';
import { FifoMap } from '../../util/fifo-map.js';
import type { Timer, World } from '../../world/types.js';
import type { SecureCache } from './secure-cache.js';

/** Pushed bytes sealed into the cache per tick (one putMany, mostly one store write): about a millisecond of CPU, so a guest read waits at most that long behind it. */
const DRAIN_BATCH_BYTES = 128 * 1024;
/** Pushed bytes allowed to wait for the cache before acceptPush seals them itself. */
const MAX_PENDING_PUSH_BYTES = 32 * 1024 * 1024;
/** Pushed blocks kept for reads that waited for them. */
const RECENT_PUSHED_BLOCKS = 4096;

export interface PushInboxStats {
  pushedBlocks: number;
  pushesIgnored: number;
  /** Pushed blocks the cache could not take (it was closing, or its store failed): a push is only a hint. */
  pushesDropped: number;
}

export interface PushInboxOptions {
  world: World;
  /** Where pushed blocks end up; without a cache every push is ignored. */
  cache: SecureCache | undefined;
  blockBytes: number;
  /** The disk's size in bytes. */
  size(): number;
  /** Cache priority of pushed blocks. */
  pushPriority: number;
  /** See ReadPathOptions.askedPushWaitUs. */
  askedPushWaitUs: number;
  /** A read or prefetch is fetching this block from below now: that copy wins over a push. */
  filling(block: number): boolean;
  /** Counted into (the read path's counters). */
  counters: PushInboxStats;
}

/**
 * Where blocks pushed by on-prem land on their way into the secure cache
 * (the profile stream of FIG 21/22, FIG 23 groups, prefetch pushes). A block
 * is handed straight to a read waiting for it, then queued and sealed into
 * the cache a batch per tick, behind the foreground: sealing and writing a
 * stream of pushes in one go would hold a guest read back for as long
 * (measured live: 100-230 ms stretches). Until the cache holds it, a pushed
 * block is served from here. The inbox also remembers which blocks were
 * asked for by push request and when, so a miss on one can wait for it
 * instead of paying a round trip.
 */
export class PushInbox {
  /** Reads waiting for a block the profile stream or a push request is about to deliver. */
  private readonly pushWaiters = new Map<number, Array<() => void>>();
  /** Pushed blocks handed to waiting reads (bounded). */
  private readonly pushedRecently = new FifoMap<number, Buffer>();
  /** Blocks on-prem was asked to push (not asked again). */
  private readonly pushAsked = new Set<number>();
  /** When each block was last asked for with a push request (µs), until it arrives. */
  private readonly askedAtUs = new Map<number, number>();
  /**
   * Pushed blocks accepted but not sealed into the cache yet, in arrival
   * order; `useHeld` marks the ones a read already used (they are no longer
   * ahead of demand).
   */
  private readonly pendingPush = new FifoMap<number, { data: Buffer; read: boolean }>();
  private pendingPushBytes = 0;
  /**
   * Pushed blocks of the batch being sealed: out of `pendingPush`, not in the
   * cache until the store write is done. Reads use them from here (before,
   * such a read went below and the block was sealed twice).
   */
  private readonly sealing = new Map<number, Buffer>();
  private drainTimer: Timer | null = null;
  private draining: Promise<void> | null = null;
  private closed = false;

  constructor(private readonly o: PushInboxOptions) {}

  /** A pushed block not in the cache yet, for a read (which makes it a demand block); undefined if none. */
  useHeld(block: number): Buffer | undefined {
    const pending = this.pendingPush.get(block);
    if (pending) {
      pending.read = true;
      return pending.data;
    }
    return this.sealing.get(block);
  }

  /** A pushed block not in the cache yet, without counting it as read. */
  held(block: number): Buffer | undefined {
    return this.pendingPush.get(block)?.data ?? this.sealing.get(block);
  }

  /** The block was pushed and is on its way into the cache. */
  holds(block: number): boolean {
    return this.pendingPush.has(block) || this.sealing.has(block);
  }

  /** On-prem was asked to push this block and has not been asked again since. */
  wasAsked(block: number): boolean {
    return this.pushAsked.has(block);
  }

  /** A push request for these blocks went out at `nowUs`. */
  noteAsked(blocks: number[], nowUs: number): void {
    for (const b of blocks) { this.pushAsked.add(b); this.askedAtUs.set(b, nowUs); }
  }

  /** The push request for these blocks failed: they may be asked for again, and nobody waits for them. */
  askFailed(blocks: number[]): void {
    for (const b of blocks) { this.pushAsked.delete(b); this.askedAtUs.delete(b); }
  }

  /** Resolve when every block of first..last not skipped has been pushed, or after `timeoutUs`. */
  waitForPush(first: number, last: number, timeoutUs: number, skip?: (block: number) => boolean): Promise<void> {
    return new Promise<void>((resolve) => {
      let left = 0;
      let done = false;
      const finish = (): void => { if (!done) { done = true; timer.cancel(); resolve(); } };
      const timer = this.o.world.clock.schedule(timeoutUs, finish);
      for (let b = first; b <= last; b++) {
        if (skip?.(b)) continue;
        left++;
        const list = this.pushWaiters.get(b) ?? [];
        list.push(() => { if (--left === 0) finish(); });
        this.pushWaiters.set(b, list);
      }
      if (left === 0) finish();
    });
  }

  /** The block has arrived by push (handed over, waiting, being sealed or in the cache). */
  arrived(block: number): boolean {
    return this.o.cache!.has(block) || this.pendingPush.has(block) || this.sealing.has(block) || this.pushedRecently.has(block);
  }

  /** The range from blocks handed to waiting reads, if all of them are there. */
  fromRecent(offset: number, length: number): Buffer | undefined {
    const B = this.o.blockBytes;
    const out = Buffer.alloc(length);
    for (let b = Math.floor(offset / B); b <= Math.floor((offset + length - 1) / B); b++) {
      const data = this.pushedRecently.get(b);
      if (!data) return undefined;
      const from = Math.max(offset, b * B);
      const to = Math.min(offset + length, b * B + data.length);
      data.copy(out, from - offset, from - b * B, to - b * B);
    }
    return out;
  }

  /**
   * When a miss on [offset, offset+length) should stop waiting for pushes
   * `prefetch` asked for: undefined when some block was not asked for
   * recently (a READ is then the faster way).
   */
  askedPushDeadline(offset: number, length: number): number | undefined {
    const waitUs = this.o.askedPushWaitUs;
    if (waitUs <= 0 || this.askedAtUs.size === 0) return undefined;
    const B = this.o.blockBytes;
    const now = this.o.world.clock.nowUs();
    let deadline = 0;
    for (let b = Math.floor(offset / B); b * B < offset + length; b++) {
      const at = this.askedAtUs.get(b);
      if (at === undefined || at + waitUs <= now) return undefined;
      deadline = Math.max(deadline, at + waitUs);
    }
    return deadline;
  }

  /** The range from blocks pushed to waiting reads or already in the cache; undefined if one is missing. */
  async collectPushed(offset: number, length: number): Promise<Buffer | undefined> {
    const B = this.o.blockBytes;
    const cache = this.o.cache;
    const out = Buffer.alloc(length);
    for (let b = Math.floor(offset / B); b * B < offset + length; b++) {
      const data = this.pushedRecently.get(b) ?? this.pendingPush.get(b)?.data ?? this.sealing.get(b) ?? (cache?.has(b) ? await cache.get(b) : undefined);
      if (!data) return undefined;
      const from = Math.max(offset, b * B);
      const to = Math.min(offset + length, b * B + data.length);
      data.copy(out, from - offset, from - b * B, to - b * B);
    }
    return out;
  }

  /**
   * A range pushed by on-prem. Whole cache blocks not cached and not being
   * fetched are queued for the cache; a read waiting for one gets it now.
   */
  async acceptPush(offset: number, data: Buffer): Promise<void> {
    const cache = this.o.cache;
    if (!cache || this.closed) return;
    const B = this.o.blockBytes;
    const size = this.o.size();
    for (let b = Math.ceil(offset / B); b * B < offset + data.length; b++) {
      const blockLen = Math.min(B, size - b * B);
      const at = b * B - offset;
      if (at + blockLen > data.length) break;
      this.askedAtUs.delete(b);
      const waiters = this.pushWaiters.get(b);
      if (waiters) {
        // A read is waiting for exactly this block: hand it over directly, it fills the cache itself.
        this.pushWaiters.delete(b);
        this.pushedRecently.set(b, data.subarray(at, at + blockLen));
        if (this.pushedRecently.size > RECENT_PUSHED_BLOCKS) this.pushedRecently.shift();
        for (const w of waiters) w();
      }
      if (cache.has(b) || this.o.filling(b) || this.pendingPush.has(b) || this.sealing.has(b)) { this.o.counters.pushesIgnored++; continue; }
      this.pendingPush.set(b, { data: data.subarray(at, at + blockLen), read: false });
      this.pendingPushBytes += blockLen;
      this.o.counters.pushedBlocks++;
    }
    // Far behind (the stream outruns the seal): catch up now rather than hold unbounded plaintext.
    if (this.pendingPushBytes > MAX_PENDING_PUSH_BYTES) await this.drainPushes(Infinity);
    else this.armDrain();
  }

  /** Wait until every accepted push is in the cache (or dropped). */
  async settlePushes(): Promise<void> {
    while (this.pendingPush.size || this.draining) {
      if (this.draining) await this.draining;
      else await this.drainPushes(Infinity);
    }
  }

  /** Drop what has not reached the cache; later pushes are ignored. */
  close(): void {
    this.closed = true;
    this.drainTimer?.cancel();
    this.drainTimer = null;
    this.o.counters.pushesDropped += this.pendingPush.size;
    this.pendingPush.clear();
    this.pendingPushBytes = 0;
    this.sealing.clear();
  }

  private armDrain(): void {
    if (this.drainTimer || this.pendingPush.size === 0 || this.closed) return;
    this.drainTimer = this.o.world.clock.schedule(0, () => {
      this.drainTimer = null;
      // Falling behind (ticks come late on a loaded machine), take bigger bites: an eighth of the backlog.
      void this.drainPushes(Math.max(DRAIN_BATCH_BYTES, this.pendingPushBytes / 8)).then(() => this.armDrain());
    });
  }

  /** Seal up to `maxBytes` of pending pushes into the cache, oldest first, as one putMany. */
  private drainPushes(maxBytes: number): Promise<void> {
    const run = (this.draining ?? Promise.resolve()).then(async () => {
      const cache = this.o.cache!;
      const batch: Array<{ block: number; data: Buffer; read: boolean }> = [];
      let bytes = 0;
      while (bytes < maxBytes) {
        const next = this.pendingPush.shift();
        if (!next) break;
        const [block, p] = next;
        this.pendingPushBytes -= p.data.length;
        bytes += p.data.length;
        // A read fetched it meanwhile (a fill in flight or done): that copy wins.
        if (cache.has(block) || this.o.filling(block)) continue;
        batch.push({ block, data: p.data, read: p.read });
      }
      if (batch.length === 0) return;
      if (this.closed) { this.o.counters.pushesDropped += batch.length; return; }
      for (const x of batch) {
        // Drains run one after another and each empties `sealing` of its batch before the next starts;
        // acceptPush never queues a block that is sealing: so a block is sealed by one drain at a time.
        invariant(!this.sealing.has(x.block), () => `push inbox: block ${x.block} sealed twice at once`);
        this.sealing.set(x.block, x.data);
      }
      try {
        // Blocks a read already used are cached as demand blocks, the rest as prefetched.
        await cache.putMany(batch.map((x) => ({ block: x.block, data: x.data, prefetched: !x.read })), this.o.pushPriority);
      } catch {
        // Nobody asked for a pushed block, so losing one costs a later fetch, never data:
        // a push racing shutdown (the cache store already closed) must not crash the proxy.
        this.o.counters.pushesDropped += batch.length;
      } finally {
        for (const x of batch) this.sealing.delete(x.block);
      }
    });
    const tracked = run.finally(() => { if (this.draining === tracked) this.draining = null; });
    this.draining = tracked;
    return tracked;
  }
}
