import { SpillwayError } from '../errors.js';
import { checkRange, type BlockDevice, type WriteOptions, type ZeroOptions } from './block-device.js';
import { Layer } from './layer.js';

export interface PrefetchOptions {
  /** Unit of queueing and of each background fetch. Default 64 KiB (the cache's block). */
  blockBytes?: number;
  /** Background fetches in flight at once. Default 2. */
  maxConcurrent?: number;
  /** While a foreground read is in flight, start no background fetch. Default true. */
  yieldToForeground?: boolean;
  /** Drop the lowest-priority entries beyond this many queued blocks. Default 1 Mi blocks. */
  maxQueuedBlocks?: number;
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
    if (!Number.isInteger(this.blockBytes) || this.blockBytes <= 0 || !Number.isInteger(this.maxConcurrent) || this.maxConcurrent < 1) {
      throw new SpillwayError('E_PREFETCH_CONFIG', `prefetch: blockBytes must be a positive integer and maxConcurrent >= 1; got ${this.blockBytes}, ${this.maxConcurrent}`);
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
    while (!this.closed && this.inflight < this.maxConcurrent && !(this.yieldToForeground && this.foreground > 0)) {
      const item = this.pop();
      if (!item) break;
      const start = item.block * this.blockBytes;
      const length = Math.min(this.blockBytes, this.size() - start);
      this.inflight++;
      this.below.prefetch(start, length, item.priority).then(
        () => { this.counters.completedBlocks++; this.fetched.add(item.block); },
        () => { this.counters.failedBlocks++; },
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

  /** The best live item (stale heap entries are skipped). */
  private pop(): Item | undefined {
    const h = this.heap;
    while (h.length) {
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
      if (this.queued.get(top.block) === top.priority) {
        this.queued.delete(top.block);
        return top;
      }
    }
    return undefined;
  }
}

/** Negative when a should go before b: higher priority first, then first queued. */
function better(a: Item, b: Item): number {
  return b.priority - a.priority || a.seq - b.seq;
}
