import type { Clock, TraceData, World } from '../../world/types.js';
import { errorCode } from '../../errors.js';
import type { BlockDevice, Extent, WriteOptions, ZeroOptions } from '../block-device.js';
import { Layer } from '../layer.js';

const BUCKETS = 48;

/**
 * Latency on a log2 scale: bucket 0 holds 0 µs, bucket i holds [2^(i-1), 2^i) µs.
 * Percentiles are reported as the upper edge of their bucket, so they are
 * exact to within a factor of two and never optimistic.
 */
export class LatencyHistogram {
  readonly buckets = new Array<number>(BUCKETS).fill(0);
  count = 0;
  sumUs = 0;
  maxUs = 0;

  record(us: number): void {
    const v = Math.max(0, Math.round(us));
    const i = v === 0 ? 0 : Math.min(BUCKETS - 1, Math.floor(Math.log2(v)) + 1);
    this.buckets[i]!++;
    this.count++;
    this.sumUs += v;
    if (v > this.maxUs) this.maxUs = v;
  }

  /** Upper edge (µs) of the bucket holding quantile q in [0, 1]. */
  percentileUs(q: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.buckets[i]!;
      if (seen >= rank) return Math.min(this.maxUs, i === 0 ? 0 : 2 ** i - 1);
    }
    return this.maxUs;
  }

  snapshot(): HistogramSnapshot {
    let last = 0;
    this.buckets.forEach((n, i) => { if (n) last = i; });
    return {
      count: this.count,
      meanUs: this.count ? Math.round(this.sumUs / this.count) : 0,
      p50Us: this.percentileUs(0.5),
      p99Us: this.percentileUs(0.99),
      maxUs: this.maxUs,
      buckets: this.buckets.slice(0, last + 1),
    };
  }
}

export interface HistogramSnapshot {
  count: number;
  meanUs: number;
  p50Us: number;
  p99Us: number;
  maxUs: number;
  /** Counts per log2 bucket, trailing empty buckets cut. */
  buckets: number[];
}

export interface LayerStatsSnapshot {
  counters: Record<string, number>;
  latency: Record<string, HistogramSnapshot>;
}

/** Counters and per-op latency histograms of one layer. */
export class LayerStats {
  readonly counters = new Map<string, number>();
  readonly latency = new Map<string, LatencyHistogram>();

  constructor(readonly name: string) {}

  add(counter: string, n = 1): void {
    this.counters.set(counter, (this.counters.get(counter) ?? 0) + n);
  }

  get(counter: string): number {
    return this.counters.get(counter) ?? 0;
  }

  histogram(op: string): LatencyHistogram {
    let h = this.latency.get(op);
    if (!h) this.latency.set(op, (h = new LatencyHistogram()));
    return h;
  }

  snapshot(): LayerStatsSnapshot {
    const sortedEntries = <T, U>(m: Map<string, T>, f: (v: T) => U): Record<string, U> =>
      Object.fromEntries([...m.keys()].sort().map((k) => [k, f(m.get(k)!)]));
    return { counters: sortedEntries(this.counters, (v) => v), latency: sortedEntries(this.latency, (h) => h.snapshot()) };
  }
}

/**
 * Every layer's stats in one place. Layers that know more than a StatsLayer
 * can see (a cache's hits, write-behind's backlog) register a source whose
 * numbers are merged into that layer's counters at snapshot time.
 */
export class StatsRegistry {
  private readonly layers = new Map<string, LayerStats>();
  private readonly sources = new Map<string, () => Record<string, number | null | string>>();

  layer(name: string): LayerStats {
    let s = this.layers.get(name);
    if (!s) this.layers.set(name, (s = new LayerStats(name)));
    return s;
  }

  /** Numbers from a component's own stats(); non-numbers are dropped. */
  source(name: string, read: () => object): void {
    this.sources.set(name, read as () => Record<string, number | null | string>);
    this.layer(name);
  }

  snapshot(): Record<string, LayerStatsSnapshot> {
    const out: Record<string, LayerStatsSnapshot> = {};
    for (const name of [...this.layers.keys()].sort()) {
      const snap = this.layers.get(name)!.snapshot();
      const extra = this.sources.get(name)?.();
      if (extra) {
        for (const k of Object.keys(extra).sort()) {
          const v = extra[k];
          if (typeof v === 'number') snap.counters[k] = v;
        }
      }
      out[name] = snap;
    }
    return out;
  }
}

export interface StatsLayerOptions {
  clock: Clock;
  registry: StatsRegistry;
  /** The name stats are kept under (the layer below's name by default). */
  name?: string;
}

/**
 * A pass-through layer that counts ops, bytes and errors (by code) and keeps a
 * latency histogram per op on the world clock (virtual µs in a simulation).
 * Put one above any layer to measure it.
 */
export class StatsLayer extends Layer {
  readonly name: string;
  readonly stats: LayerStats;
  private readonly clock: Clock;

  constructor(below: BlockDevice, options: StatsLayerOptions) {
    super(below);
    this.name = `stats:${options.name ?? below.name}`;
    this.stats = options.registry.layer(options.name ?? below.name);
    this.clock = options.clock;
  }

  override read(offset: number, length: number): Promise<Buffer> {
    return this.time('read', length, () => this.below.read(offset, length));
  }
  override write(offset: number, data: Uint8Array, options?: WriteOptions): Promise<void> {
    return this.time('write', data.length, () => this.below.write(offset, data, options));
  }
  override flush(): Promise<void> {
    return this.time('flush', 0, () => this.below.flush());
  }
  override trim(offset: number, length: number, options?: WriteOptions): Promise<void> {
    return this.time('trim', length, () => this.below.trim(offset, length, options));
  }
  override writeZeroes(offset: number, length: number, options?: ZeroOptions): Promise<void> {
    return this.time('writeZeroes', length, () => this.below.writeZeroes(offset, length, options));
  }
  override prefetch(offset: number, length: number, priority?: number): Promise<void> {
    return this.time('prefetch', length, () => this.below.prefetch(offset, length, priority));
  }
  override extents(offset: number, length: number): Promise<Extent[]> {
    return this.time('extents', 0, () => this.below.extents(offset, length));
  }

  private async time<T>(op: string, bytes: number, fn: () => Promise<T>): Promise<T> {
    const started = this.clock.nowUs();
    this.stats.add(`${op}Ops`);
    try {
      const result = await fn();
      if (bytes) this.stats.add(`${op}Bytes`, bytes);
      return result;
    } catch (err) {
      this.stats.add(`errors.${errorCode(err) ?? 'unknown'}`);
      throw err;
    } finally {
      this.stats.histogram(op).record(this.clock.nowUs() - started);
    }
  }
}

/** What a cloud proxy can report; every part is optional (a proxy without write-behind has none). */
export interface ProxyStatsSources {
  cache?: { stats(): { hits: number; misses: number; usedBytes: number; capacityBytes: number } };
  prefetch?: { stats(): { queuedBlocks: number; prefetchHits: number } };
  writeBehind?: { stats(): { backlogBytes: number; lagUs: number } };
  /** Bytes carried by the link (both ways) and bytes the guest read. */
  wireBytes?: () => number;
  guestBytes?: () => number;
}

/** The `proxy.stats` trace event's data (docs/trace.md), from whatever sources exist. */
export function proxyStatsData(sources: ProxyStatsSources): TraceData {
  const c = sources.cache?.stats();
  const p = sources.prefetch?.stats();
  const w = sources.writeBehind?.stats();
  return {
    cacheHits: c?.hits ?? 0,
    cacheMisses: c?.misses ?? 0,
    cacheBytes: c?.usedBytes ?? 0,
    cacheCapacity: c?.capacityBytes ?? 0,
    prefetchQueued: p?.queuedBlocks ?? 0,
    prefetchHits: p?.prefetchHits ?? 0,
    wbBacklogBytes: w?.backlogBytes ?? 0,
    wbLagUs: w?.lagUs ?? 0,
    wireBytes: sources.wireBytes?.() ?? 0,
    guestBytes: sources.guestBytes?.() ?? 0,
  };
}

/** Emit one `proxy.stats` event for `src` (e.g. "proxy/cloud/web-03"). */
export function emitProxyStats(world: World, src: string, sources: ProxyStatsSources): void {
  world.trace.emit(src, 'proxy.stats', proxyStatsData(sources));
}
