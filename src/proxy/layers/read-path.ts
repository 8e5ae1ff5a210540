import { consecutiveRuns, range } from '../../util/runs.js';
import { errorCode, invariant } from '../../errors.js';
import type { World } from '../../world/types.js';
import { BlockError, E_READONLY, checkRange, type BlockDevice, type Extent } from '../block-device.js';
import type { MayPush, PushSource } from '../push-source.js';
import { PushInbox, type PushInboxStats } from './push-inbox.js';
import type { SecureCache } from './secure-cache.js';

export const E_NOT_HELD = 'E_NOT_HELD';

/** A cloud-side disk that may hold some of the blocks (FIG 5 step 511: local drives, e.g. a migration copy). */
export interface LocalSource {
  device: BlockDevice;
  /** True when the whole range is there and current. */
  holds(offset: number, length: number): boolean | Promise<boolean>;
}

export interface ReadPathOptions {
  world: World;
  name?: string;
  /** The secure cache; without one every miss goes down the path. */
  cache?: SecureCache;
  /** Local drives, tried after the cache (FIG 5 step 511). */
  locals?: LocalSource[];
  /**
   * Sibling clones of the same image in this cloud (FIG 14 step 1417). A
   * sibling that does not hold a range fails with E_NOT_HELD (see `cleanView`).
   */
  siblings?: BlockDevice[];
  /** The on-prem disk through the link (FIG 5 step 517); pushes come from it when it offers them. */
  remote: BlockDevice & MayPush;
  /** Cache priority of blocks a demand read brings in. */
  readPriority?: number;
  /** Cache priority of pushed / prefetched blocks (evicted before demand blocks). */
  pushPriority?: number;
  /**
   * How `prefetch` brings blocks in: `push` asks on-prem to stream them (one
   * request, data at link speed, returns at once); `fetch` reads them through
   * (one round trip per call, returns when cached). `push` needs a remote
   * that offers pushes (the link's RemoteDisk).
   */
  prefetchVia?: 'push' | 'fetch';
  /**
   * A miss whose blocks the profile stream will deliver within this many
   * blocks waits for them (up to `pushWaitUs`) instead of paying a round trip.
   */
  pushWaitBlocks?: number;
  pushWaitUs?: number;
  /**
   * A miss on blocks that `prefetch` asked on-prem to push less than this
   * long ago waits for the push until then instead of sending a READ of its
   * own (which would cost a round trip and be answered PUSHED anyway).
   * Default 200 ms (a WAN round trip plus a push window of queueing); 0 off.
   */
  askedPushWaitUs?: number;
}

export interface ReadPathStats extends PushInboxStats {
  reads: number;
  guestBytes: number;
  /** Blocks served per source. */
  cacheBlocks: number;
  localBlocks: number;
  siblingBlocks: number;
  remoteBlocks: number;
  /** Blocks a read found already being fetched (by another read, a prefetch or a push). */
  joinedBlocks: number;
  /** Remote fetches (each one round trip). */
  remoteFetches: number;
  /** Requests asking on-prem to push ranges. */
  pushRequests: number;
  /** Misses served by waiting for the profile stream instead of a round trip. */
  pushWaits: number;
  /** Misses served by waiting for a push `prefetch` had asked for (no READ sent). */
  askedPushWaits: number;
  /** Misses served from pushes the link still remembers (evicted from the cache already). */
  pushedReuse: number;
  /** Fetched runs the cache could not store (its store failed); the reads themselves were served. */
  cacheWriteFailures: number;
}

/**
 * FIG 5: a read is served from the secure cache, else from a local drive,
 * else from a sibling clone (FIG 14), else from on-prem through the link —
 * which may answer with a content signature that the cache resolves
 * (the remote device is built with the cache's findBySignature). What comes
 * from below the cache is put in it. Concurrent fetches of a block are joined.
 *
 * The read path sees only clean on-prem content: writes are owned by the
 * write-behind layer above it (FIG 4), which keeps written blocks in its own
 * cloud-side store and ships them. So writes here are refused.
 */
export class ReadPath implements BlockDevice {
  readonly name: string;
  readonly blockBytes: number;
  readonly counters: ReadPathStats = {
    reads: 0, guestBytes: 0, cacheBlocks: 0, localBlocks: 0, siblingBlocks: 0, remoteBlocks: 0, joinedBlocks: 0, pushedBlocks: 0, pushesIgnored: 0, pushesDropped: 0, remoteFetches: 0, pushRequests: 0, pushWaits: 0, askedPushWaits: 0, pushedReuse: 0, cacheWriteFailures: 0,
  };
  private readonly fills = new Map<number, Promise<Buffer>>();
  /**
   * Blocks foreground reads are reading now (count per block), known from the
   * read's first turn: a read-ahead window issued beside the read must not ask
   * for them. On-prem drops a push chunk whose blocks a READ reply sent while
   * the chunk was being read from disk, so an overlap of even one block lost
   * the whole chunk and the reads after it waited out askedPushWaitUs (live:
   * ~35 extra round trips and 200 ms waits per 2,000 reads).
   */
  private readonly reading = new Map<number, number>();
  /** The latest foreground read lay wholly in the profile stream (FIG 22); see `prefetch`. */
  private lastReadOnProfile = false;
  private readonly readPriority: number;
  private readonly pushPriority: number;
  /** What the remote offers beyond reads (the link's RemoteDisk offers pushes). */
  private readonly pushes: PushSource | undefined;
  /** Pushed blocks on their way into the cache. */
  private readonly inbox: PushInbox;

  constructor(private readonly options: ReadPathOptions) {
    this.name = options.name ?? 'read-path';
    this.blockBytes = options.cache?.blockBytes ?? 4096;
    this.readPriority = options.readPriority ?? 2;
    this.pushPriority = options.pushPriority ?? 1;
    this.pushes = options.remote.pushes;
    this.inbox = new PushInbox({
      world: options.world,
      cache: options.cache,
      blockBytes: this.blockBytes,
      size: () => this.size(),
      pushPriority: this.pushPriority,
      askedPushWaitUs: options.askedPushWaitUs ?? 200_000,
      filling: (b) => this.fills.has(b),
      counters: this.counters,
    });
  }

  size(): number {
    return this.options.remote.size();
  }

  get cache(): SecureCache | undefined {
    return this.options.cache;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    checkRange(this, offset, length);
    this.counters.reads++;
    this.counters.guestBytes += length;
    if (length === 0) return Buffer.alloc(0);
    return this.readBlocks(offset, length, this.readPriority, false);
  }

  private async readBlocks(offset: number, length: number, priority: number, prefetched: boolean): Promise<Buffer> {
    const B = this.blockBytes;
    const first = Math.floor(offset / B);
    const last = Math.floor((offset + length - 1) / B);
    for (let b = first; b <= last; b++) this.reading.set(b, (this.reading.get(b) ?? 0) + 1);
    const pushes = this.pushes;
    if (pushes) {
      let on = true;
      for (let b = first; b <= last && on; b++) on = pushes.inProfile(b);
      this.lastReadOnProfile = on;
    }
    try {
      return await this.readBlocksOf(offset, length, first, last, priority, prefetched);
    } finally {
      for (let b = first; b <= last; b++) {
        const count = this.reading.get(b);
        // Set for every block of this read before its first await, so it is still there.
        invariant(count !== undefined && count > 0, () => `${this.name}: block ${b} left the reading set before its read ended`);
        const n = count - 1;
        if (n > 0) this.reading.set(b, n);
        else this.reading.delete(b);
      }
    }
  }

  private async readBlocksOf(offset: number, length: number, first: number, last: number, priority: number, prefetched: boolean): Promise<Buffer> {
    const B = this.blockBytes;
    const parts = new Map<number, Buffer>();
    const waits: Array<Promise<unknown>> = [];
    const join = (b: number, fill: Promise<Buffer>): void => {
      this.counters.joinedBlocks++;
      waits.push(fill.then((data) => { parts.set(b, data); }));
    };
    const lookup: number[] = [];
    for (let b = first; b <= last; b++) {
      const held = this.inbox.useHeld(b);
      if (held) { parts.set(b, held); this.counters.cacheBlocks++; continue; }
      const joined = this.fills.get(b);
      if (joined) join(b, joined);
      else lookup.push(b);
    }
    const cache = this.options.cache;
    // One lookup for the whole range: blocks in adjacent cache slots come from the store in one read.
    // Skip the cache's await when it holds none of them: a miss then sends its READ in this turn,
    // ahead of the read-ahead window the layer above asks for right after it.
    let hits: Array<Buffer | undefined> = [];
    if (cache && lookup.length) {
      if (lookup.some((b) => cache.has(b))) hits = await cache.getMany(lookup);
      else cache.noteMisses(lookup.length);
    }
    const toFetch: number[] = [];
    lookup.forEach((b, i) => {
      const hit = hits[i];
      if (hit) { parts.set(b, hit); this.counters.cacheBlocks++; return; }
      // A push may have landed, or a fill started, while we looked at the cache: use it rather than fetch twice.
      const held = this.inbox.useHeld(b);
      if (held) { parts.set(b, held); this.counters.cacheBlocks++; return; }
      const joined = this.fills.get(b);
      if (joined) join(b, joined);
      else toFetch.push(b);
    });
    for (const run of consecutiveRuns(toFetch)) {
      waits.push(this.fillRun(run[0]!, run[run.length - 1]!, priority, prefetched).fetched.then((fetched) => {
        for (const [b, data] of fetched) parts.set(b, data);
      }));
    }
    await Promise.all(waits);
    const out = Buffer.allocUnsafe(length);
    for (let b = first; b <= last; b++) {
      const data = parts.get(b);
      // Each block came from exactly one of: the inbox, a joined fill, a cache hit, a fill of its own.
      invariant(data !== undefined, () => `${this.name}: block ${b} of a read was served by no source`);
      const blockStart = b * B;
      const from = Math.max(offset, blockStart);
      const to = Math.min(offset + length, blockStart + data.length);
      data.copy(out, from - offset, from - blockStart, to - blockStart);
    }
    return out;
  }

  /**
   * Fetch blocks first..last from the first source below the cache that has
   * them, then cache them. `fetched` settles with the data, `cached` once it
   * is in the cache too: a read returns on the first (the guest does not wait
   * for the cache's seal and store write), a prefetch on the second. Until
   * then the blocks count as being filled, so a read of them joins the fill.
   */
  private fillRun(first: number, last: number, priority: number, prefetched: boolean): { fetched: Promise<Map<number, Buffer>>; cached: Promise<void> } {
    const B = this.blockBytes;
    const start = first * B;
    const end = Math.min(this.size(), (last + 1) * B);
    const cache = this.options.cache;
    const tickets = cache ? range(first, last + 1).map((b) => cache.beginFill(b)) : [];
    const fetch = this.fetchBelow(start, end - start);
    for (let b = first; b <= last; b++) {
      // One fill per block: reads and prefetch start a fill only for blocks no fill has, checked in this
      // same turn, and a fill leaves `fills` only when it ends. Two fills would race their cache puts.
      invariant(!this.fills.has(b), () => `${this.name}: block ${b} filled while a fill of it is in flight`);
      const from = b * B - start;
      const p = fetch.then((all) => all.subarray(from, Math.min(all.length, from + B)));
      p.catch(() => undefined);
      this.fills.set(b, p);
    }
    const forget = (): void => { for (let b = first; b <= last; b++) this.fills.delete(b); };
    const fetched = fetch.then((all) => {
      const result = new Map<number, Buffer>();
      for (let b = first; b <= last; b++) result.set(b, all.subarray(b * B - start, Math.min(all.length, b * B - start + B)));
      return result;
    }, (err) => {
      for (const t of tickets) cache!.abandonFill(t);
      forget();
      throw err;
    });
    const cached = fetched.then(async (result) => {
      try {
        if (cache) await cache.putMany([...result].map(([b, data]) => ({ block: b, data, ticket: tickets[b - first]! })), priority, { prefetched });
      } catch (err) {
        // The data reached whoever asked; only the cache copy is lost, and the next read fetches it again.
        this.counters.cacheWriteFailures++;
        this.options.world.log('warn', this.name, `could not cache blocks ${first}..${last}: ${(err as Error).message}`);
      } finally {
        forget();
      }
    }, () => undefined);
    return { fetched, cached };
  }

  private async fetchBelow(offset: number, length: number): Promise<Buffer> {
    const B = this.blockBytes;
    const pushes = this.pushes;
    const cache = this.options.cache;
    const aheadBlocks = this.options.pushWaitBlocks ?? 256;
    // Pushed but already evicted from a small cache: the link still holds recent pushes.
    const pushed = pushes ? pushes.peekPushed(offset, length) : undefined;
    if (pushed) { this.counters.pushedReuse++; return pushed; }
    if (cache && aheadBlocks > 0 && pushes && pushes.pushDueSoon(offset, length, aheadBlocks)) {
      const first = Math.floor(offset / B);
      const last = Math.floor((offset + length - 1) / B);
      await this.inbox.waitForPush(first, last, this.options.pushWaitUs ?? 100_000);
      const out = this.inbox.fromRecent(offset, length);
      if (out) { this.counters.pushWaits++; return out; }
    }
    // A push `prefetch` asked for is queued on-prem behind the rest of the profile stream: READ instead.
    const behindProfile = pushes !== undefined && pushes.profilePending();
    const asked = cache && !behindProfile ? this.inbox.askedPushDeadline(offset, length) : undefined;
    if (asked !== undefined) {
      const first = Math.floor(offset / B);
      const last = Math.floor((offset + length - 1) / B);
      // Blocks that landed in the cache since the miss was seen need no wait.
      await this.inbox.waitForPush(first, last, asked - this.options.world.clock.nowUs(), (b) => this.inbox.arrived(b));
      const out = await this.inbox.collectPushed(offset, length);
      if (out) { this.counters.askedPushWaits++; return out; }
    }
    const nBlocks = Math.ceil(length / this.blockBytes);
    for (const local of this.options.locals ?? []) {
      if (await local.holds(offset, length)) {
        this.counters.localBlocks += nBlocks;
        return local.device.read(offset, length);
      }
    }
    for (const sibling of this.options.siblings ?? []) {
      try {
        const data = await sibling.read(offset, length);
        this.counters.siblingBlocks += nBlocks;
        return data;
      } catch (err) {
        if (errorCode(err) !== E_NOT_HELD) {
          this.options.world.log('warn', this.name, `sibling ${sibling.name} failed a read, going on-prem: ${(err as Error).message}`);
        }
      }
    }
    this.counters.remoteFetches++;
    this.counters.remoteBlocks += nBlocks;
    return this.options.remote.read(offset, length);
  }

  /**
   * A range pushed by on-prem (profile stream, FIG 23 group, prefetch). Whole
   * cache blocks not cached and not being fetched are put in the cache.
   */
  acceptPush(offset: number, data: Buffer): Promise<void> {
    return this.inbox.acceptPush(offset, data);
  }

  /** Wait until every accepted push is in the cache (or dropped). */
  settlePushes(): Promise<void> {
    return this.inbox.settlePushes();
  }

  /** Bring the range into the cache (priority-ordered by the prefetch layer above). */
  async prefetch(offset: number, length: number, priority?: number): Promise<void> {
    checkRange(this, offset, length);
    if (length === 0) return;
    const cache = this.options.cache;
    if (!cache) return;
    const B = this.blockBytes;
    const first = Math.floor(offset / B);
    const last = Math.floor((offset + length - 1) / B);
    const pushes = this.pushes;
    // With a profile streamed (FIG 22), read-ahead behind a read the profile covers is the profile's
    // job: what a window adds past the profile is where an earlier boot of this image stopped reading,
    // so asking for it only puts bytes nobody reads on the link, during the stream or after it (live,
    // 768 KiB windows: 90 MB on the wire for a 68 MB profile). A guest that leaves the profile gets
    // read-ahead again, for the blocks the profile does not bring.
    if (this.lastReadOnProfile) return;
    const missing = range(first, last + 1).filter((b) => !cache.has(b) && !this.inbox.holds(b) && !this.fills.has(b) && !this.inbox.wasAsked(b) && !this.reading.has(b) && !pushes?.inProfile(b));
    if (missing.length === 0) return;
    if ((this.options.prefetchVia ?? 'push') === 'push' && pushes) {
      for (const run of consecutiveRuns(missing)) {
        this.inbox.noteAsked(run, this.options.world.clock.nowUs());
        const start = run[0]! * B;
        const end = Math.min(this.size(), (run[run.length - 1]! + 1) * B);
        this.counters.pushRequests++;
        pushes.requestPush(start, end - start).catch((err: Error) => {
          this.inbox.askFailed(run);
          this.options.world.log('warn', this.name, `push request failed: ${err.message}`);
        });
      }
      return;
    }
    await Promise.all(consecutiveRuns(missing).map(async (run) => {
      const fill = this.fillRun(run[0]!, run[run.length - 1]!, priority ?? this.pushPriority, true);
      await fill.fetched;
      await fill.cached;
    }));
  }

  /**
   * This read path as a sibling for another clone of the same image (FIG 14):
   * it serves only what its cache already holds and never goes further.
   */
  cleanView(): BlockDevice {
    const self = this;
    const refuse = async (): Promise<never> => {
      throw new BlockError(E_READONLY, `${self.name}: a sibling view is read-only`);
    };
    return {
      name: `${this.name}:sibling`,
      size: () => self.size(),
      async read(offset: number, length: number): Promise<Buffer> {
        checkRange(this, offset, length);
        const cache = self.options.cache;
        const B = self.blockBytes;
        const out = Buffer.alloc(length);
        if (length === 0) return out;
        for (let b = Math.floor(offset / B); b * B < offset + length; b++) {
          const data = self.inbox.held(b) ?? (cache?.has(b) ? await cache.get(b) : undefined);
          if (!data) throw new BlockError(E_NOT_HELD, `${self.name}: block ${b} is not cached here`);
          const from = Math.max(offset, b * B);
          const to = Math.min(offset + length, b * B + data.length);
          data.copy(out, from - offset, from - b * B, to - b * B);
        }
        return out;
      },
      write: refuse, trim: refuse, writeZeroes: refuse,
      flush: async () => undefined,
      prefetch: async () => undefined,
      extents: async (offset: number, length: number) => [{ offset, length, type: 'data' as const }],
      close: async () => undefined,
    };
  }

  async write(): Promise<void> {
    throw new BlockError(E_READONLY, `${this.name}: the read path serves clean on-prem content; writes belong to the write-behind layer above it`);
  }
  async trim(): Promise<void> {
    return this.write();
  }
  async writeZeroes(): Promise<void> {
    return this.write();
  }

  /** On-prem durability is the write-behind layer's business; nothing is dirty here. */
  async flush(): Promise<void> {}

  async extents(offset: number, length: number): Promise<Extent[]> {
    checkRange(this, offset, length);
    if (length === 0) return [];
    return this.options.remote.extents(offset, length);
  }

  async close(): Promise<void> {
    this.inbox.close();
    await this.options.remote.close();
  }
}
