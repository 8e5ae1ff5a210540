import { SpillwayError } from '../errors.js';
import { checkRange, type BlockDevice } from './block-device.js';
import { Layer } from './layer.js';

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
}

export interface ReadAheadStats {
  sequentialReads: number;
  randomReads: number;
  prefetchCalls: number;
  prefetchBytes: number;
  prefetchErrors: number;
  /** The largest window any stream reached. */
  maxWindowReached: number;
}

interface Stream {
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
  private tick = 0;
  private readonly counters: ReadAheadStats = { sequentialReads: 0, randomReads: 0, prefetchCalls: 0, prefetchBytes: 0, prefetchErrors: 0, maxWindowReached: 0 };

  constructor(below: BlockDevice, options: ReadAheadOptions = {}) {
    super(below);
    this.min = options.minWindowBytes ?? 64 * 1024;
    this.max = options.maxWindowBytes ?? 4 * 1024 * 1024;
    this.maxStreams = options.streams ?? 8;
    this.gap = options.gapBytes ?? 0;
    this.priority = options.priority ?? 2;
    this.first = options.firstWindowBytes ?? 0;
    if (!(this.first >= 0 && this.min > 0 && this.max >= this.min && Number.isInteger(this.maxStreams) && this.maxStreams > 0 && this.gap >= 0)) {
      throw new SpillwayError('E_READ_AHEAD_CONFIG',
        `read-ahead: need 0 < minWindowBytes <= maxWindowBytes, streams >= 1, gapBytes >= 0 and firstWindowBytes >= 0; got ${this.min}, ${this.max}, ${this.maxStreams}, ${this.gap}, ${this.first}`);
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
        this.streams.splice(lru, 1);
      }
      s = { next: end, windowBytes: this.first, aheadTo: end, run: 1, lastUse: 0 };
      this.streams.push(s);
    }
    s.next = end;
    s.aheadTo = Math.max(s.aheadTo, end);
    s.lastUse = ++this.tick;
    const foreground = this.below.read(offset, length);
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
    return foreground;
  }
}
