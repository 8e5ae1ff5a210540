import { SpillwayError } from '../../errors.js';
import { range } from '../../util/runs.js';
import type { Timer, World } from '../../world/types.js';
import { checkRange, type BlockDevice, type Extent, type WriteOptions, type ZeroOptions } from '../block-device.js';
import { Layer } from '../layer.js';
import { PersistentBitmap } from '../stores/persistent-bitmap.js';

export interface MigrationOptions {
  world: World;
  /** The cloud storage being filled (FIG 18's 653): same size as the disk. */
  target: BlockDevice;
  /** Holds the persistent log (a bitmap of transferred chunks). */
  logStore: BlockDevice;
  /** Unit of transfer and of the log. Default 256 KiB. */
  chunkBytes?: number;
  /** Chunks the background sync moves per pass. Default 8. */
  batchChunks?: number;
  /** Pause between passes when nothing is transferred yet; it shrinks with the remainder. Default 2 s. */
  maxIntervalUs?: number;
  /** Pause between passes near the end. Default 1 ms. */
  minIntervalUs?: number;
  /** Persist the log (after flushing the target) every this many transferred chunks. Default 64. */
  persistEveryChunks?: number;
  /** Ask below for extents and write holes as zeros instead of fetching them. Default true. */
  skipHoles?: boolean;
  /**
   * Whether the source holds only zeros in a range, from an allocation map
   * the caller already has (the hypervisor's allocated areas plus what
   * write-behind holds): the background sync then skips holes without a
   * round trip per chunk. Default: ask below for extents.
   */
  isHole?: (offset: number, length: number) => boolean | Promise<boolean>;
}

export interface MigrationProgress {
  totalBytes: number;
  transferredBytes: number;
  remainingBytes: number;
  /** 0..1 */
  fraction: number;
  /** Bytes actually read from below (the source) — the number that must not grow on resume. */
  bytesFetched: number;
  copyOnReadBytes: number;
  backgroundBytes: number;
  /** Chunks that became transferred without a fetch: whole-chunk guest writes or holes. */
  chunksWithoutFetch: number;
  intervalUs: number;
  running: boolean;
  done: boolean;
  /** At the current background rate; null until one pass was timed. */
  etaUs: number | null;
}

/**
 * FIG 17 / 18: migration mode. Reads are served from the cloud storage when
 * their chunk is already there; otherwise the whole chunk is fetched from
 * below, written to the cloud storage, marked in the log, and the read is
 * served from it (copy-on-read). Writes terminate on the cloud storage only
 * (a partially written chunk is fetched first so the chunk is whole). A
 * background sync walks the chunks not yet transferred; the pause between
 * its passes is proportional to the fraction still remaining ("repeats at
 * successively shorter intervals until synced").
 *
 * The log is a PersistentBitmap persisted only after the target is flushed,
 * so a set bit always means the chunk is durable in the cloud. `stop()`
 * flushes and persists: a resumed migration (a new layer over the same target
 * and log) never fetches a chunk twice. After a crash without stop(), at most
 * the chunks transferred since the last persist are fetched again.
 */
export class MigrationLayer extends Layer {
  readonly name = 'migration';
  private readonly world: World;
  private readonly target: BlockDevice;
  private readonly chunk: number;
  private readonly chunks: number;
  private readonly opts: Required<Omit<MigrationOptions, 'world' | 'target' | 'logStore' | 'isHole'>>;
  private readonly isHole: MigrationOptions['isHole'];
  private readonly locks = new Map<number, Promise<void>>();
  private sinceFlush = 0;
  private running = false;
  private stopRequested = false;
  private dead = false;
  private loop: Promise<void> | undefined;
  private wakeTimer: Timer | undefined;
  private wake: (() => void) | undefined;
  private cursor = 0;
  private intervalUs: number;
  private bgRate: number | null = null;
  private completeWaiters: Array<() => void> = [];
  private readonly counters = { bytesFetched: 0, copyOnReadBytes: 0, backgroundBytes: 0, chunksWithoutFetch: 0 };

  private constructor(below: BlockDevice, options: MigrationOptions, private readonly log: PersistentBitmap) {
    super(below);
    this.world = options.world;
    this.target = options.target;
    this.isHole = options.isHole;
    this.opts = {
      chunkBytes: 256 * 1024, batchChunks: 8, maxIntervalUs: 2_000_000, minIntervalUs: 1_000, persistEveryChunks: 64, skipHoles: true,
      ...Object.fromEntries(Object.entries(options).filter(([k, v]) => v !== undefined && k !== 'isHole')),
    } as MigrationLayer['opts'];
    this.chunk = this.opts.chunkBytes;
    this.chunks = Math.ceil(below.size() / this.chunk);
    this.intervalUs = this.opts.maxIntervalUs;
  }

  static async open(below: BlockDevice, options: MigrationOptions): Promise<MigrationLayer> {
    const chunk = options.chunkBytes ?? 256 * 1024;
    if (!Number.isInteger(chunk) || chunk < 4096 || chunk % 4096 !== 0) {
      throw new SpillwayError('E_BAD_CONFIG', `migration: chunkBytes must be a multiple of 4096, got ${chunk}`);
    }
    if (options.target.size() !== below.size()) {
      throw new SpillwayError('E_BAD_CONFIG', `migration: target ${options.target.name} is ${options.target.size()} bytes, the disk is ${below.size()}; they must match`);
    }
    const log = await PersistentBitmap.open(options.logStore, Math.ceil(below.size() / chunk));
    return new MigrationLayer(below, options, log);
  }

  progress(): MigrationProgress {
    const transferredBytes = this.transferredBytes();
    const totalBytes = this.size();
    const remainingBytes = totalBytes - transferredBytes;
    return {
      totalBytes, transferredBytes, remainingBytes,
      fraction: totalBytes ? transferredBytes / totalBytes : 1,
      ...this.counters,
      intervalUs: this.intervalUs,
      running: this.running,
      done: remainingBytes === 0,
      etaUs: remainingBytes === 0 ? 0 : this.bgRate ? Math.round(remainingBytes / this.bgRate) : null,
    };
  }

  isTransferred(offset: number): boolean {
    return this.log.get(Math.floor(offset / this.chunk));
  }

  /** Start (or resume) the background sync. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.stopRequested = false;
    this.loop = this.syncLoop().finally(() => { this.running = false; });
  }

  /** Stop the background sync after the chunk in hand; the log is persisted when this resolves. */
  async stop(): Promise<void> {
    this.stopRequested = true;
    this.wakeTimer?.cancel();
    this.wake?.();
    await this.loop;
    await Promise.all([...this.locks.values()]);
    await this.persist();
  }

  /**
   * Simulate the process dying: the background sync stops where it is and
   * nothing more is persisted. Open a new layer over the same target and log
   * to recover; chunks transferred since the last persist are fetched again.
   */
  kill(): void {
    this.dead = true;
    this.stopRequested = true;
    this.wakeTimer?.cancel();
    this.wake?.();
  }

  /**
   * One step of a background sync driven from outside (CoreProxyControl's
   * rounds): move the chunk holding `offset` unless the log has it. Returns
   * the bytes fetched from below: 0 for a chunk already moved or a hole.
   */
  async syncChunk(offset: number): Promise<number> {
    checkRange(this, offset, 1, 'read');
    const c = Math.floor(offset / this.chunk);
    if (this.log.get(c)) return 0;
    const before = this.counters.bytesFetched;
    await this.withChunk(c, () => this.transfer(c, 'sync'));
    return this.counters.bytesFetched - before;
  }

  /** Resolve when every chunk is in the cloud storage. */
  whenComplete(): Promise<void> {
    if (this.log.count === this.chunks) return Promise.resolve();
    return new Promise((resolve) => this.completeWaiters.push(resolve));
  }

  override async read(offset: number, length: number): Promise<Buffer> {
    checkRange(this, offset, length, 'read');
    if (length === 0) return Buffer.alloc(0);
    const out = Buffer.alloc(length);
    const first = Math.floor(offset / this.chunk);
    const last = Math.floor((offset + length - 1) / this.chunk);
    await Promise.all(range(first, last + 1).map(async (c) => {
      const cStart = c * this.chunk;
      const from = Math.max(offset, cStart);
      const to = Math.min(offset + length, cStart + this.chunk);
      let fetched: Buffer | undefined;
      if (!this.log.get(c)) fetched = await this.withChunk(c, () => this.transfer(c, 'read'));
      const data = fetched ? fetched.subarray(from - cStart, to - cStart) : await this.target.read(from, to - from);
      data.copy(out, from - offset);
    }));
    return out;
  }

  override async write(offset: number, data: Uint8Array, options?: WriteOptions): Promise<void> {
    checkRange(this, offset, data.length, 'write');
    await this.terminate(offset, data.length, async (a, b) => { await this.target.write(a, data.subarray(a - offset, b - offset)); });
    if (options?.fua) await this.flush();
  }

  override async trim(offset: number, length: number, options?: WriteOptions): Promise<void> {
    checkRange(this, offset, length, 'write');
    await this.terminate(offset, length, (a, b) => this.target.writeZeroes(a, b - a));
    if (options?.fua) await this.flush();
  }

  override async writeZeroes(offset: number, length: number, options?: ZeroOptions): Promise<void> {
    checkRange(this, offset, length, 'write');
    await this.terminate(offset, length, (a, b) => this.target.writeZeroes(a, b - a, { noHole: options?.noHole ?? false }));
    if (options?.fua) await this.flush();
  }

  override async flush(): Promise<void> {
    await this.persist();
  }

  /** NBD CACHE during migration: transfer the chunks now (a preference for requested data). */
  override async prefetch(offset: number, length: number): Promise<void> {
    checkRange(this, offset, length, 'read');
    if (length === 0) return;
    const first = Math.floor(offset / this.chunk);
    const last = Math.floor((offset + length - 1) / this.chunk);
    await Promise.all(range(first, last + 1).filter((c) => !this.log.get(c)).map((c) => this.withChunk(c, () => this.transfer(c, 'read'))));
  }

  override async extents(offset: number, length: number): Promise<Extent[]> {
    checkRange(this, offset, length, 'read');
    const out: Extent[] = [];
    let pos = offset;
    const end = offset + length;
    while (pos < end) {
      const c = Math.floor(pos / this.chunk);
      const moved = this.log.get(c);
      let stop = Math.min(end, (c + 1) * this.chunk);
      while (stop < end && this.log.get(Math.floor(stop / this.chunk)) === moved) stop = Math.min(end, stop + this.chunk);
      for (const e of await (moved ? this.target : this.below).extents(pos, stop - pos)) {
        const prev = out[out.length - 1];
        if (prev && prev.type === e.type && prev.offset + prev.length === e.offset) prev.length += e.length;
        else out.push({ ...e });
      }
      pos = stop;
    }
    return out;
  }

  override async close(): Promise<void> {
    await this.stop();
    await this.below.close();
  }

  private transferredBytes(): number {
    const tail = this.size() - (this.chunks - 1) * this.chunk;
    if (this.chunks === 0) return 0;
    return (this.log.count - (this.log.get(this.chunks - 1) ? 1 : 0)) * this.chunk + (this.log.get(this.chunks - 1) ? tail : 0);
  }

  /** Apply a guest write/zero to the target, making each touched chunk whole first unless fully covered. */
  private async terminate(offset: number, length: number, apply: (a: number, b: number) => Promise<void>): Promise<void> {
    if (length === 0) return;
    const first = Math.floor(offset / this.chunk);
    const last = Math.floor((offset + length - 1) / this.chunk);
    await Promise.all(range(first, last + 1).map((c) => this.withChunk(c, async () => {
      const cStart = c * this.chunk;
      const cEnd = Math.min(this.size(), cStart + this.chunk);
      const a = Math.max(offset, cStart);
      const b = Math.min(offset + length, cEnd);
      if (!this.log.get(c)) {
        if (a === cStart && b === cEnd) {
          // The guest overwrites the whole chunk: nothing to fetch.
          await apply(a, b);
          this.counters.chunksWithoutFetch++;
          await this.mark(c);
          return;
        }
        await this.transfer(c, 'read');
      }
      await apply(a, b);
    })));
  }

  /** Fetch chunk c from below into the target and mark it. Caller holds the chunk lock. */
  private async transfer(c: number, why: 'read' | 'sync'): Promise<Buffer | undefined> {
    if (this.log.get(c)) return undefined;
    const start = c * this.chunk;
    const length = Math.min(this.chunk, this.size() - start);
    if (this.opts.skipHoles && why === 'sync') {
      const hole = this.isHole ? await this.isHole(start, length) : (await this.below.extents(start, length)).every((e) => e.type !== 'data');
      if (hole) {
        await this.target.writeZeroes(start, length);
        this.counters.chunksWithoutFetch++;
        await this.mark(c);
        // Only the background sync skips holes, and it does not use the bytes: no 256 KiB of zeros per hole.
        return undefined;
      }
    }
    const data = await this.below.read(start, length);
    this.counters.bytesFetched += length;
    if (why === 'read') this.counters.copyOnReadBytes += length;
    else this.counters.backgroundBytes += length;
    await this.target.write(start, data);
    await this.mark(c);
    return data;
  }

  private async mark(c: number): Promise<void> {
    if (this.dead) return;
    this.log.set(c);
    if (++this.sinceFlush >= this.opts.persistEveryChunks) await this.persist();
    if (this.log.count === this.chunks) {
      await this.persist();
      const waiters = this.completeWaiters;
      this.completeWaiters = [];
      waiters.forEach((w) => w());
    }
  }

  /** Target first, then the log: a persisted bit never points at data that is not durable. */
  private async persist(): Promise<void> {
    if (this.dead) return;
    this.sinceFlush = 0;
    await this.target.flush();
    await this.log.persist();
  }

  private withChunk<T>(c: number, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(c) ?? Promise.resolve();
    const run = prev.then(fn);
    const tail = run.then(() => undefined, () => undefined);
    this.locks.set(c, tail);
    void tail.then(() => { if (this.locks.get(c) === tail) this.locks.delete(c); });
    return run;
  }

  private async syncLoop(): Promise<void> {
    while (!this.stopRequested) {
      const startedUs = this.world.clock.nowUs();
      let moved = 0;
      for (let i = 0; i < this.opts.batchChunks && !this.stopRequested; i++) {
        let c = this.log.nextClear(this.cursor);
        if (c < 0) c = this.log.nextClear(0);
        if (c < 0) break;
        this.cursor = c + 1;
        const before = this.counters.backgroundBytes;
        await this.withChunk(c, () => this.transfer(c, 'sync'));
        moved += this.counters.backgroundBytes - before;
      }
      const tookUs = this.world.clock.nowUs() - startedUs;
      if (moved > 0 && tookUs > 0) {
        const rate = moved / tookUs;
        this.bgRate = this.bgRate === null ? rate : 0.7 * this.bgRate + 0.3 * rate;
      }
      if (this.log.count === this.chunks) break;
      const remaining = 1 - this.transferredBytes() / this.size();
      this.intervalUs = Math.max(this.opts.minIntervalUs, Math.round(this.opts.maxIntervalUs * remaining));
      if (this.stopRequested) break;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        this.wakeTimer = this.world.clock.schedule(this.intervalUs, resolve);
      });
      this.wake = undefined;
      this.wakeTimer = undefined;
    }
    await this.persist();
  }
}
