import { SpillwayError } from '../../errors.js';
import { checkRange, type BlockDevice } from '../block-device.js';
import { Layer } from '../layer.js';

export interface ReadAheadOptions {
  /** Window after the second sequential read. Default 64 KiB. */
  minWindowBytes?: number;
  /** The window doubles per sequential read up to this. Default 4 MiB. */
  maxWindowBytes?: number;
  /** Sequential streams tracked at once (interleaved readers). Default 8. */
  streams?: number;
  /** A read may start up to this far past where the stream ended and still count as sequential. Default 0. */
  gapBytes?: number;
  /** Priority of the prefetches issued below. Default 2. */
  priority?: number;
  /**
   * Read ahead this much after the first read of a new stream, before it has
   * shown itself sequential (Linux's initial readahead of a file). Costs
   * bytes when the stream stops at one read; saves the round trip of its
   * second read otherwise. Default 0 (wait for the second sequential read).
   */
  firstWindowBytes?: number;
  /**
   * Confidence-gated windows: once `historyStreams` streams have ended, a
   * stream that has read L bytes is read ahead only as far as this fraction
   * of the ended streams that reached L went on to read (capped at
   * maxWindowBytes). So pushes go where the reader's own history says they
   * are likely read, and a reader whose streams stop early stops paying for
   * windows it never reads. Off (undefined) by default: the window then only
   * grows (first, min, doubling to max).
   */
  confidence?: number;
  /** Ended streams needed before `confidence` applies, and how many are remembered. Default 16, 256. */
  historyStreams?: number;
  historyMax?: number;
}

/**
 * Read-ahead for streaming a boot over a WAN (what bench/proxy-wan.bench.ts
 * measures): a new stream reads 128 KiB ahead at once (a boot's files are
 * mostly read whole, and a second round trip per file costs more than the
 * bytes), and once 16 streams have ended, windows reach only as far as half
 * of the ended streams that got this long went on (at most 1 MiB).
 */
export const BOOT_READ_AHEAD: Readonly<ReadAheadOptions> = {
  firstWindowBytes: 128 * 1024,
  minWindowBytes: 128 * 1024,
  maxWindowBytes: 1024 * 1024,
  confidence: 0.5,
};

export interface ReadAheadStats {
  sequentialReads: number;
  randomReads: number;
  prefetchCalls: number;
  prefetchBytes: number;
  prefetchErrors: number;
  /** The largest window any stream reached. */
  maxWindowReached: number;
  /** Windows sized from ended streams' lengths (confidence mode). */
  confidentWindows: number;
  /** Streams ended (forgotten) so far; their lengths feed confidence mode. */
  endedStreams: number;
}

interface Stream {
  /** Where the stream's first read started. */
  start: number;
  /** Where the next sequential read starts. */
  next: number;
  windowBytes: number;
  /** Everything below this has been asked for (foreground or prefetch). */
  aheadTo: number;
  run: number;
  lastUse: number;
}

/**
 * Read-ahead (seed §2.6): on sequential access the fetch window grows, so a
 * reader that walks a file pays one WAN round trip per window instead of
 * one per read. Streams are told apart by address: a read that starts where
 * a tracked stream ended (within `gapBytes`) continues it and doubles its
 * window; any other read starts a new stream with the window reset (the
 * least recently used stream is forgotten). The window is requested from
 * below with `prefetch` (fire and forget) while the foreground read goes
 * down unchanged; a prefetch is issued once less than half a window is left
 * ahead of the reader, so a steady reader costs one prefetch per half window.
 * In confidence mode the window is instead sized from how long this reader's
 * ended streams were (see `confidence`): growth is then earned by streams
 * that actually went on, not by the current stream's second read.
 */
export class ReadAheadLayer extends Layer {
  readonly name = 'read-ahead';
  private readonly streams: Stream[] = [];
  private readonly min: number;
  private readonly max: number;
  private readonly maxStreams: number;
  private readonly gap: number;
  private readonly priority: number;
  private readonly first: number;
  private readonly confidence: number | undefined;
  private readonly historyNeeded: number;
  private readonly historyMax: number;
  /** Lengths of ended streams, oldest first, and the same sorted. */
  private readonly ended: number[] = [];
  private readonly endedSorted: number[] = [];
  private tick = 0;
  private readonly counters: ReadAheadStats = {
    sequentialReads: 0, randomReads: 0, prefetchCalls: 0, prefetchBytes: 0, prefetchErrors: 0, maxWindowReached: 0, confidentWindows: 0, endedStreams: 0,
  };

  constructor(below: BlockDevice, options: ReadAheadOptions = {}) {
    super(below);
    this.min = options.minWindowBytes ?? 64 * 1024;
    this.max = options.maxWindowBytes ?? 4 * 1024 * 1024;
    this.maxStreams = options.streams ?? 8;
    this.gap = options.gapBytes ?? 0;
    this.priority = options.priority ?? 2;
    this.first = options.firstWindowBytes ?? 0;
    this.confidence = options.confidence;
    this.historyNeeded = options.historyStreams ?? 16;
    this.historyMax = options.historyMax ?? 256;
    if (!(this.first >= 0 && this.min > 0 && this.max >= this.min && Number.isInteger(this.maxStreams) && this.maxStreams > 0 && this.gap >= 0)) {
      throw new SpillwayError('E_BAD_CONFIG',
        `read-ahead: need 0 < minWindowBytes <= maxWindowBytes, streams >= 1, gapBytes >= 0 and firstWindowBytes >= 0; got ${this.min}, ${this.max}, ${this.maxStreams}, ${this.gap}, ${this.first}`);
    }
    if (this.confidence !== undefined && !(this.confidence > 0 && this.confidence <= 1)) {
      throw new SpillwayError('E_BAD_CONFIG', `read-ahead: confidence must be in (0, 1]; got ${this.confidence}`);
    }
    if (!(Number.isInteger(this.historyNeeded) && this.historyNeeded >= 1 && Number.isInteger(this.historyMax) && this.historyMax >= this.historyNeeded)) {
      throw new SpillwayError('E_BAD_CONFIG', `read-ahead: need 1 <= historyStreams <= historyMax (integers); got ${this.historyNeeded}, ${this.historyMax}`);
    }
  }

  stats(): ReadAheadStats {
    return { ...this.counters };
  }

  /** Current windows of tracked streams, most recent first (for tests and the TUI). */
  windows(): number[] {
    return [...this.streams].sort((a, b) => b.lastUse - a.lastUse).map((s) => s.windowBytes);
  }

  override read(offset: number, length: number): Promise<Buffer> {
    checkRange(this, offset, length, 'read');
    const end = offset + length;
    const stream = this.streams.find((x) => offset >= x.next && offset <= x.next + this.gap);
    let s: Stream;
    if (stream) {
      s = stream;
      s.run++;
      s.windowBytes = s.run === 2 ? Math.max(this.min, this.first) : Math.min(this.max, s.windowBytes * 2);
      this.counters.sequentialReads++;
    } else {
      this.counters.randomReads++;
      if (this.streams.length >= this.maxStreams) {
        let lru = 0;
        this.streams.forEach((x, i) => { if (x.lastUse < this.streams[lru]!.lastUse) lru = i; });
        this.remember(this.streams.splice(lru, 1)[0]!);
      }
      s = { start: offset, next: end, windowBytes: this.first, aheadTo: end, run: 1, lastUse: 0 };
      this.streams.push(s);
    }
    s.next = end;
    s.aheadTo = Math.max(s.aheadTo, end);
    s.lastUse = ++this.tick;
    const confident = this.confidentWindow(s);
    if (confident !== undefined) { s.windowBytes = confident; this.counters.confidentWindows++; }
    // The foreground read goes down first, in the same turn as the prefetch (both leave together):
    // below, the window then leaves out the blocks the read itself fetches.
    const read = this.below.read(offset, length);
    if (s.windowBytes > 0 && s.aheadTo - end < s.windowBytes / 2) {
      const from = s.aheadTo;
      const to = Math.min(this.size(), end + s.windowBytes);
      if (to > from) {
        s.aheadTo = to;
        this.counters.prefetchCalls++;
        this.counters.prefetchBytes += to - from;
        this.counters.maxWindowReached = Math.max(this.counters.maxWindowReached, s.windowBytes);
        this.below.prefetch(from, to - from, this.priority).catch(() => { this.counters.prefetchErrors++; });
      }
    }
    return read;
  }

  /**
   * Confidence mode: how far past its end `s` is worth reading ahead — up to
   * where `confidence` of the ended streams at least as long as `s` got to.
   * Undefined while too few streams have ended (the growing window applies).
   */
  private confidentWindow(s: Stream): number | undefined {
    if (this.confidence === undefined || this.ended.length < this.historyNeeded) return undefined;
    const done = s.next - s.start;
    const sorted = this.endedSorted;
    const from = lowerBound(sorted, done);
    const reached = sorted.length - from;
    if (reached === 0) return 0;
    const at = Math.min(sorted.length - 1, from + Math.floor((1 - this.confidence) * reached));
    return Math.min(this.max, Math.max(0, sorted[at]! - done));
  }

  /** A stream is forgotten: its length joins the history confidence mode sizes windows from. */
  private remember(s: Stream): void {
    this.counters.endedStreams++;
    if (this.confidence === undefined) return;
    const len = s.next - s.start;
    this.ended.push(len);
    this.endedSorted.splice(lowerBound(this.endedSorted, len), 0, len);
    if (this.ended.length > this.historyMax) {
      const old = this.ended.shift()!;
      this.endedSorted.splice(lowerBound(this.endedSorted, old), 1);
    }
  }
}

/** First index of `sorted` whose value is >= x. */
function lowerBound(sorted: number[], x: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
