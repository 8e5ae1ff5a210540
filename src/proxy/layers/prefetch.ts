import { SpillwayError } from '../../errors.js';
import { checkRange, type BlockDevice, type WriteOptions, type ZeroOptions } from '../block-device.js';
import { Layer } from '../layer.js';

export interface PrefetchOptions {
  /** Unit of queueing and of each background fetch. Default 64 KiB (the cache's block). */
  blockBytes?: number;
  /** Background fetches in flight at once. Default 2. */
  maxConcurrent?: number;
  /** While a foreground read is in flight, start no background fetch. Default true. */
  yieldToForeground?: boolean;
  /** Drop the lowest-priority entries beyond this many queued blocks. Default 1 Mi blocks. */
  maxQueuedBlocks?: number;
  /**
   * Entries queued at this priority or above are what a reader is about to
   * read (read-ahead's windows, priority 2 by default): they start even while
   * foreground reads are in flight, or a reader with one read outstanding
   * would ask for its next window a round trip late, every time. Default 2.
   */
  readerPriority?: number;
}

export interface PrefetchStats {
  queuedBlocks: number;
  inflight: number;
  completedBlocks: number;
  /** Foreground reads of a block this layer had already brought in (counted once per block). */
  prefetchHits: number;
  /** Queued blocks the foreground asked for first (the read fetched them itself). */
  overtakenBlocks: number;
  droppedBlocks: number;
  failedBlocks: number;
  foregroundInflight: number;
}

interface Item {
  block: number;
  priority: number;
  seq: number;
}

/**
 * Background streaming of prioritized blocks (FIG 7 step 731): the on-prem
 * prioritizer's boot order, hotspots and pushed groups, and NBD CACHE hints,
 * are queued here and fetched from below one block at a time, highest
 * priority first (FIFO within a priority), into whatever caches below (the
 * CacheLayer's prefetch).
 *
 * Foreground first: while any foreground read is in flight no background
 * fetch starts, at most `maxConcurrent` are ever in flight, and a foreground
 * read of a queued block takes it out of the queue. So a foreground read
 * waits for at most the background fetches already in flight when it
 * arrived (never for the queue), and only shares the link with them.
 */
export class PrefetchLayer extends Layer {
  readonly name = 'prefetch';
  readonly blockBytes: number;
  private readonly maxConcurrent: number;
  private readonly yieldToForeground: boolean;
  private readonly maxQueued: number;
  private readonly readerPriority: number;
  /** Largest run of a reader's window sent below as one prefetch (1 MiB of blocks). */
  private readonly maxRunBlocks: number;
  private heap: Item[] = [];
  /** block -> the priority it is queued at (heap entries with another priority are stale). */
  private readonly queued = new Map<number, number>();
  private readonly fetched = new Set<number>();
  private seq = 0;
  private inflight = 0;
  private foreground = 0;
  private idleWaiters: Array<() => void> = [];
  private closed = false;
  private readonly counters = { completedBlocks: 0, prefetchHits: 0, overtakenBlocks: 0, droppedBlocks: 0, failedBlocks: 0 };

  constructor(below: BlockDevice, options: PrefetchOptions = {}) {
    super(below);
    this.blockBytes = options.blockBytes ?? 64 * 1024;
    this.maxConcurrent = options.maxConcurrent ?? 2;
    this.yieldToForeground = options.yieldToForeground ?? true;
    this.maxQueued = options.maxQueuedBlocks ?? 1 << 20;
    this.readerPriority = options.readerPriority ?? 2;
    this.maxRunBlocks = Math.max(1, Math.floor((1 << 20) / this.blockBytes));
    if (!Number.isInteger(this.blockBytes) || this.blockBytes <= 0 || !Number.isInteger(this.maxConcurrent) || this.maxConcurrent < 1) {
      throw new SpillwayError('E_BAD_CONFIG', `prefetch: blockBytes must be a positive integer and maxConcurrent >= 1; got ${this.blockBytes}, ${this.maxConcurrent}`);
    }
  }

  stats(): PrefetchStats {
    return { ...this.counters, queuedBlocks: this.queued.size, inflight: this.inflight, foregroundInflight: this.foreground };
  }

  /** Queue the blocks of a byte range at `priority` (higher first). Returns how many were newly queued or raised. */
  enqueue(offset: number, length: number, priority = 0): number {
    checkRange(this, offset, length, 'read');
    if (length === 0) return 0;
    let n = 0;
    const first = Math.floor(offset / this.blockBytes);
    const last = Math.floor((offset + length - 1) / this.blockBytes);
    for (let b = first; b <= last; b++) {
      if (this.fetched.has(b)) continue;
      const at = this.queued.get(b);
      if (at !== undefined && at >= priority) continue;
      this.queued.set(b, priority);
      this.push({ block: b, priority, seq: this.seq++ });
      n++;
    }
    this.trimQueue();
    this.pump();
    return n;
  }

  /** Resolve when nothing is queued or in flight. */
  idle(): Promise<void> {
    if (this.queued.size === 0 && this.inflight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** NBD CACHE / read-ahead hint: queue it and return at once. */
  override async prefetch(offset: number, length: number, priority = 0): Promise<void> {
    this.enqueue(offset, length, priority);
  }

  override async read(offset: number, length: number): Promise<Buffer> {
    checkRange(this, offset, length, 'read');
    if (length > 0) {
      const first = Math.floor(offset / this.blockBytes);
      const last = Math.floor((offset + length - 1) / this.blockBytes);
      for (let b = first; b <= last; b++) {
        if (this.fetched.delete(b)) this.counters.prefetchHits++;
        if (this.queued.delete(b)) this.counters.overtakenBlocks++;
      }
    }
    this.foreground++;
    try {
      return await this.below.read(offset, length);
    } finally {
      this.foreground--;
      if (this.foreground === 0) this.pump();
    }
  }

  override async write(offset: number, data: Uint8Array, options?: WriteOptions): Promise<void> {
    this.forget(offset, data.length);
    await this.below.write(offset, data, options);
  }

  override async trim(offset: number, length: number, options?: WriteOptions): Promise<void> {
    this.forget(offset, length);
    await this.below.trim(offset, length, options);
  }

  override async writeZeroes(offset: number, length: number, options?: ZeroOptions): Promise<void> {
    this.forget(offset, length);
    await this.below.writeZeroes(offset, length, options);
  }

  override async close(): Promise<void> {
    this.closed = true;
    this.heap = [];
    this.queued.clear();
    await this.below.close();
  }

  /** Written blocks are no longer "brought in by prefetch": a later read of them is not a prefetch hit. */
  private forget(offset: number, length: number): void {
    if (length <= 0) return;
    const first = Math.floor(offset / this.blockBytes);
    const last = Math.floor((offset + length - 1) / this.blockBytes);
    if (last - first < this.fetched.size) for (let b = first; b <= last; b++) this.fetched.delete(b);
    else for (const b of [...this.fetched]) if (b >= first && b <= last) this.fetched.delete(b);
  }

  private pump(): void {
    while (!this.closed && this.inflight < this.maxConcurrent) {
      const holdBack = this.yieldToForeground && this.foreground > 0;
      if (holdBack && !(this.peekPriority() >= this.readerPriority)) break;
      const item = this.pop();
      if (!item) break;
      const blocks = this.runFrom(item);
      const start = item.block * this.blockBytes;
      const length = Math.min(blocks * this.blockBytes, this.size() - start);
      this.inflight++;
      this.below.prefetch(start, length, item.priority).then(
        () => {
          this.counters.completedBlocks += blocks;
          for (let b = item.block; b < item.block + blocks; b++) this.fetched.add(b);
        },
        () => { this.counters.failedBlocks += blocks; },
      ).finally(() => {
        this.inflight--;
        this.pump();
        if (this.queued.size === 0 && this.inflight === 0) {
          const waiters = this.idleWaiters;
          this.idleWaiters = [];
          waiters.forEach((w) => w());
        }
      });
    }
  }

  /**
   * How many blocks go down with `item`: a reader's window (readerPriority
   * and up) leaves as one run of the consecutive blocks queued after it, so
   * a window costs one request below instead of one per block; background
   * entries go one block at a time, so a foreground read never waits behind
   * more than one block of them.
   */
  private runFrom(item: Item): number {
    if (item.priority < this.readerPriority) return 1;
    let n = 1;
    while (n < this.maxRunBlocks && this.peekPriority() === item.priority && this.heap[0]!.block === item.block + n) {
      this.pop();
      n++;
    }
    return n;
  }

  private trimQueue(): void {
    if (this.queued.size <= this.maxQueued) return;
    // Rare: rebuild the heap keeping the best entries.
    const live = this.heap.filter((i) => this.queued.get(i.block) === i.priority).sort(better);
    const keep = live.slice(0, this.maxQueued);
    for (const i of live.slice(this.maxQueued)) { this.queued.delete(i.block); this.counters.droppedBlocks++; }
    this.heap = [];
    for (const i of keep) this.push(i);
  }

  private push(item: Item): void {
    const h = this.heap;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (better(h[p]!, h[i]!) <= 0) break;
      [h[p], h[i]] = [h[i]!, h[p]!];
      i = p;
    }
  }

  /** Priority of the best live item, -Infinity when none is queued. */
  private peekPriority(): number {
    const h = this.heap;
    // Stale entries at the top are dropped here so the answer is the live best.
    while (h.length && this.queued.get(h[0]!.block) !== h[0]!.priority) this.pop0();
    return h.length ? h[0]!.priority : -Infinity;
  }

  /** The best live item (stale heap entries are skipped). */
  private pop(): Item | undefined {
    while (this.heap.length) {
      const top = this.pop0();
      if (this.queued.get(top.block) === top.priority) {
        this.queued.delete(top.block);
        return top;
      }
    }
    return undefined;
  }

  /** Remove and return the heap's top entry, live or stale (the heap is not empty). */
  private pop0(): Item {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && better(h[l]!, h[m]!) < 0) m = l;
        if (r < h.length && better(h[r]!, h[m]!) < 0) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i]!, h[m]!];
        i = m;
      }
    }
    return top;
  }
}

/** Negative when a should go before b: higher priority first, then first queued. */
function better(a: Item, b: Item): number {
  return b.priority - a.priority || a.seq - b.seq;
}
