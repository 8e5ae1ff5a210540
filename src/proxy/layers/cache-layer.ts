import { consecutiveRuns, range } from '../../util/runs.js';
import { checkRange, type BlockDevice, type WriteOptions, type ZeroOptions } from '../block-device.js';
import { Layer } from '../layer.js';
import type { SecureCache } from './secure-cache.js';

export interface CacheLayerOptions {
  /** Priority of blocks a foreground read brings in. */
  readPriority?: number;
  /** Priority of blocks a guest write puts in (they are hot: just written). */
  writePriority?: number;
}

export interface CacheLayerStats {
  /** Foreground reads served entirely from the cache. */
  readHits: number;
  /** Foreground reads that had to go below for at least one block. */
  readMisses: number;
  bytesFromCache: number;
  bytesFromBelow: number;
  /** Blocks a read found already being fetched by someone else (prefetch, another read). */
  joinedFills: number;
}

/**
 * The cache as a layer: reads are served from the SecureCache when every
 * block is there, otherwise the missing blocks are fetched from below (one
 * read per contiguous run, block-aligned), put in the cache and stitched in.
 * Concurrent fills of one block are joined, so a read arriving while a
 * prefetch of its block is in flight waits for that fetch instead of issuing
 * a second one. Writes go through to below, then replace fully covered
 * blocks and drop partially covered ones. `prefetch` fills the cache.
 * An E_INTEGRITY from the cache fails the read (loud) and the bad block is
 * dropped, so a retry refetches it from below.
 */
export class CacheLayer extends Layer {
  readonly name: string;
  /** Fetches in flight per block; `foreground` once a read joined it (then it is no longer ahead of demand). */
  private readonly fills = new Map<number, { data: Promise<Buffer>; foreground: boolean }>();
  private readonly readPriority: number;
  private readonly writePriority: number;
  private readonly counters: CacheLayerStats = { readHits: 0, readMisses: 0, bytesFromCache: 0, bytesFromBelow: 0, joinedFills: 0 };

  constructor(below: BlockDevice, readonly cache: SecureCache, options: CacheLayerOptions = {}) {
    super(below);
    this.name = cache.name;
    this.readPriority = options.readPriority ?? 1;
    this.writePriority = options.writePriority ?? 1;
  }

  stats(): CacheLayerStats {
    return { ...this.counters };
  }

  override async read(offset: number, length: number): Promise<Buffer> {
    checkRange(this, offset, length, 'read');
    if (length === 0) return Buffer.alloc(0);
    const B = this.cache.blockBytes;
    const first = Math.floor(offset / B);
    const last = Math.floor((offset + length - 1) / B);
    const out = Buffer.alloc(length);
    let missed = false;
    const parts = await Promise.all(range(first, last + 1).map((b) => this.cache.get(b)));
    const missing: number[] = [];
    parts.forEach((p, i) => {
      if (!p) missing.push(first + i);
      else this.counters.bytesFromCache += p.length;
    });
    if (missing.length) {
      missed = true;
      const fetched = await this.fillBlocks(missing, this.readPriority, false);
      for (const [b, data] of fetched) parts[b - first] = data;
    }
    for (let b = first; b <= last; b++) {
      const data = parts[b - first]!;
      const blockStart = b * B;
      const from = Math.max(offset, blockStart);
      const to = Math.min(offset + length, blockStart + data.length);
      data.copy(out, from - offset, from - blockStart, to - blockStart);
    }
    if (missed) this.counters.readMisses++;
    else this.counters.readHits++;
    return out;
  }

  override async write(offset: number, data: Uint8Array, options?: WriteOptions): Promise<void> {
    checkRange(this, offset, data.length, 'write');
    this.cache.invalidate(offset, data.length);
    await this.below.write(offset, data, options);
    const B = this.cache.blockBytes;
    const size = this.size();
    const first = Math.ceil(offset / B);
    for (let b = first; b * B < offset + data.length; b++) {
      const blockLen = Math.min(B, size - b * B);
      if (b * B + blockLen > offset + data.length) break;
      await this.cache.put(b, data.subarray(b * B - offset, b * B - offset + blockLen), this.writePriority);
    }
  }

  override async trim(offset: number, length: number, options?: WriteOptions): Promise<void> {
    this.cache.invalidate(offset, length);
    await this.below.trim(offset, length, options);
  }

  override async writeZeroes(offset: number, length: number, options?: ZeroOptions): Promise<void> {
    this.cache.invalidate(offset, length);
    await this.below.writeZeroes(offset, length, options);
  }

  /** Bring the range into the cache at `priority`; the blocks count as prefetched until read. */
  override async prefetch(offset: number, length: number, priority = 0): Promise<void> {
    checkRange(this, offset, length, 'read');
    if (length === 0) return;
    const B = this.cache.blockBytes;
    const missing = range(Math.floor(offset / B), Math.floor((offset + length - 1) / B) + 1).filter((b) => !this.cache.has(b));
    if (missing.length) await this.fillBlocks(missing, priority, true);
  }

  /** Fetch blocks from below (joining fills in flight), put them in the cache, return their plaintext. */
  private async fillBlocks(blocks: number[], priority: number, prefetched: boolean): Promise<Map<number, Buffer>> {
    const result = new Map<number, Buffer>();
    const waits: Array<Promise<void>> = [];
    const toFetch: number[] = [];
    for (const b of blocks) {
      const pending = this.fills.get(b);
      if (pending) {
        if (!prefetched) {
          this.counters.joinedFills++;
          pending.foreground = true;
        }
        waits.push(pending.data.then((data) => { result.set(b, data); }));
      } else toFetch.push(b);
    }
    for (const run of consecutiveRuns(toFetch)) waits.push(this.fillRun(run[0]!, run[run.length - 1]!, priority, prefetched, result));
    await Promise.all(waits);
    return result;
  }

  private fillRun(first: number, last: number, priority: number, prefetched: boolean, result: Map<number, Buffer>): Promise<void> {
    const B = this.cache.blockBytes;
    const start = first * B;
    const end = Math.min(this.size(), (last + 1) * B);
    const tickets = range(first, last + 1).map((b) => this.cache.beginFill(b));
    const fetch = this.below.read(start, end - start);
    fetch.catch(() => tickets.forEach((t) => this.cache.abandonFill(t)));
    for (let b = first; b <= last; b++) {
      const from = b * B - start;
      const p = fetch.then((all) => all.subarray(from, Math.min(all.length, from + B)));
      p.catch(() => undefined);
      this.fills.set(b, { data: p, foreground: !prefetched });
    }
    return fetch.then(async (all) => {
      this.counters.bytesFromBelow += all.length;
      for (let b = first; b <= last; b++) {
        const data = all.subarray(b * B - start, Math.min(all.length, b * B - start + B));
        result.set(b, data);
        const ahead = prefetched && !this.fills.get(b)?.foreground;
        await this.cache.put(b, data, priority, { ticket: tickets[b - first]!, prefetched: ahead });
      }
    }).finally(() => {
      for (let b = first; b <= last; b++) this.fills.delete(b);
    });
  }
}

