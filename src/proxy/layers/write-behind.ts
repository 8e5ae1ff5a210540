import { SpillwayError, invariant } from '../../errors.js';
import type { Timer, World } from '../../world/types.js';
import { BlockError, E_CLOSED, checkRange, type BlockDevice, type Extent, type WriteOptions, type ZeroOptions } from '../block-device.js';
import { E_JOURNAL_FULL, type Journal } from '../journal.js';
import { Layer } from '../layer.js';
import { PersistentBitmap } from '../stores/persistent-bitmap.js';
import { decodeOp, encodeOp, opLength, type GroupOp, type WriterGrant, type WriteSink } from '../write-group.js';
import { CUT_PAYLOAD_BYTES, cutSeq, encodeCut, makeGroup, readWriterMeta, writerMetaBytes, type Entry, type Group } from './write-behind-journal.js';

/** FIG 4's two write-persistence policies, per disk. */
export type Persistence = 'cloud-only' | 'on-prem';

export interface ByteRange {
  offset: number;
  length: number;
}

export const DEFAULT_GRANULE_BYTES = 4096;

export interface WriteBehindOptions {
  world: World;
  diskId: string;
  persistence: Persistence;
  /** Regions that never go back on-prem even for an `on-prem` disk (swap, /tmp). Granule-aligned. */
  nonPersistent?: ByteRange[];
  /** Cloud-side storage of the disk (FIG 3's virtual disk 308): same size as the disk. */
  store: BlockDevice;
  /** Persistent bitmap of which granules of `store` hold guest writes. */
  mapStore: BlockDevice;
  /** Required for `on-prem`: the durable cloud-side journal. */
  journal?: Journal;
  /** Required for `on-prem`: where groups ship. */
  sink?: WriteSink;
  /** Ship at most this long after a write is acknowledged (RPO). Default 30 s. */
  rpoUs?: number;
  /** Ship as soon as this many bytes are waiting. Default 8 MiB. */
  shipThresholdBytes?: number;
  /** Tracking granularity of the cloud-side store. Default 4 KiB. */
  granuleBytes?: number;
  /** First retry delay after a failed ship; doubles up to maxRetryUs. */
  retryUs?: number;
  maxRetryUs?: number;
  /** Make flush() also wait until everything is applied on-prem (default: durable in the cloud journal). */
  flushWaitsForOnPrem?: boolean;
}

export interface WriteBehindStats {
  persistence: Persistence;
  /** Data bytes acknowledged but not yet applied on-prem. */
  backlogBytes: number;
  backlogOps: number;
  /** Age of the oldest acknowledged write not yet applied on-prem (0 when none). */
  lagUs: number;
  /** backlogBytes at the recently observed shipping rate; null until a ship was timed. */
  etaUs: number | null;
  groupsShipped: number;
  groupsPending: number;
  lastAckedSeq: number;
  shipFailures: number;
  bytesShipped: number;
  /** Bytes written to non-persistent regions (kept in the cloud, never shipped). */
  cloudOnlyBytes: number;
  journalFreeBytes: number;
}

/**
 * FIG 4: per-disk write persistence.
 *
 * `cloud-only`: writes land in the cloud-side store and stay there. Durable
 * means: after `flush()` (or a FUA write) they survive a cloud proxy crash.
 *
 * `on-prem` (deferred): a write is appended to the cloud-side journal and the
 * journal is flushed BEFORE the write is acknowledged; then it lands in the
 * cloud-side store so reads see it. Acknowledged writes are cut into groups
 * when the RPO timer fires or `shipThresholdBytes` wait; a group's writes are
 * coalesced (later bytes win), sorted by address and merged, and the cut is
 * journaled so a restart rebuilds exactly the same groups. Groups ship one at
 * a time, in order, and the journal is truncated only after the sink says the
 * group is applied on-prem. A failed ship is retried with backoff, same seq.
 *
 * Durability of `flush()` in `on-prem` mode: every acknowledged write is
 * already durable in the cloud journal (it survives a cloud proxy crash and
 * will reach on-prem), so flush() only flushes the cloud-side store for the
 * non-persistent regions. That is NBD FLUSH's contract. `drain()` waits until
 * everything acknowledged is applied on-prem; `flushWaitsForOnPrem` makes
 * flush() do that too (at WAN speed).
 *
 * Reads see the latest acknowledged write: written granules are read from the
 * cloud-side store, everything else from below.
 */
export class WriteBehind extends Layer {
  readonly name: string;
  private readonly world: World;
  private readonly options: Required<Pick<WriteBehindOptions, 'rpoUs' | 'shipThresholdBytes' | 'granuleBytes' | 'retryUs' | 'maxRetryUs' | 'flushWaitsForOnPrem'>> & WriteBehindOptions;
  private readonly G: number;
  private pending: Entry[] = [];
  private pendingBytes = 0;
  private readonly groups: Group[] = [];
  private nextSeq: number;
  private lastAckedSeq: number;
  /** The writer session the journal's seqs belong to (null: the in-process writer, epoch 0). */
  private readonly writer: WriterGrant | null;
  private serial: Promise<unknown> = Promise.resolve();
  private rpoTimer: Timer | undefined;
  private retryTimer: Timer | undefined;
  private retryDelayUs: number;
  private shipping = false;
  private dead = false;
  private waiters: Array<{ check: () => boolean; resolve: () => void }> = [];
  private readonly counters = { groupsShipped: 0, shipFailures: 0, bytesShipped: 0, cloudOnlyBytes: 0 };
  /** Bytes per µs, smoothed over recent ships. */
  private shipRate: number | null = null;

  private constructor(below: BlockDevice, options: WriteBehindOptions, private readonly map: PersistentBitmap) {
    super(below);
    this.world = options.world;
    this.options = {
      rpoUs: 30_000_000, shipThresholdBytes: 8 * 1024 * 1024, granuleBytes: DEFAULT_GRANULE_BYTES, retryUs: 100_000,
      maxRetryUs: 30_000_000, flushWaitsForOnPrem: false, ...options,
    };
    this.G = this.options.granuleBytes;
    this.name = `write-behind:${options.diskId}`;
    const meta = options.journal ? readWriterMeta(options.journal) : null;
    this.writer = meta?.writer ?? null;
    this.nextSeq = (meta?.seq ?? 0) + 1;
    this.lastAckedSeq = meta?.seq ?? 0;
    this.retryDelayUs = this.options.retryUs;
  }

  /** How many granules a written-granule map store marks as written (what a closed layer left). */
  static async writtenGranules(mapStore: BlockDevice, diskBytes: number, granuleBytes = DEFAULT_GRANULE_BYTES): Promise<number> {
    return (await PersistentBitmap.open(mapStore, Math.ceil(diskBytes / granuleBytes))).count;
  }

  /** Open the layer over `below`, loading the written-granule map and replaying the journal. */
  static async open(below: BlockDevice, options: WriteBehindOptions): Promise<WriteBehind> {
    const G = options.granuleBytes ?? DEFAULT_GRANULE_BYTES;
    const where = `write-behind:${options.diskId}`;
    if (options.persistence !== 'cloud-only' && options.persistence !== 'on-prem') {
      throw new SpillwayError('E_BAD_CONFIG', `${where}: persistence must be "cloud-only" or "on-prem", got ${JSON.stringify(options.persistence)}`);
    }
    if (options.persistence === 'on-prem' && (!options.journal || !options.sink)) {
      throw new SpillwayError('E_BAD_CONFIG', `${where}: persistence "on-prem" needs a journal and a sink`);
    }
    if (!Number.isInteger(G) || G < 512 || (G & (G - 1)) !== 0) {
      throw new SpillwayError('E_BAD_CONFIG', `${where}: granuleBytes must be a power of two >= 512, got ${G}`);
    }
    if (options.store.size() !== below.size()) {
      throw new SpillwayError('E_BAD_CONFIG', `${where}: store is ${options.store.size()} bytes, the disk is ${below.size()}; they must match`);
    }
    (options.nonPersistent ?? []).forEach((r, i) => {
      if (!Number.isInteger(r.offset) || !Number.isInteger(r.length) || r.offset < 0 || r.length <= 0 || r.offset % G || r.length % G || r.offset + r.length > below.size()) {
        throw new SpillwayError('E_BAD_CONFIG', `${where}: nonPersistent[${i}] must be a non-empty range aligned to ${G} bytes inside the disk, got offset ${r.offset} length ${r.length}`);
      }
    });
    for (const [field, v] of [['rpoUs', options.rpoUs], ['shipThresholdBytes', options.shipThresholdBytes]] as const) {
      if (v !== undefined && (!Number.isFinite(v) || v <= 0)) throw new SpillwayError('E_BAD_CONFIG', `${where}: ${field} must be a positive number, got ${v}`);
    }
    const map = await PersistentBitmap.open(options.mapStore, Math.ceil(below.size() / G));
    const wb = new WriteBehind(below, options, map);
    await wb.recover();
    return wb;
  }

  stats(): WriteBehindStats {
    const backlogBytes = this.pendingBytes + this.groups.reduce((n, g) => n + g.bytes, 0);
    const oldest = this.groups[0]?.oldestUs ?? this.pending[0]?.tUs;
    return {
      persistence: this.options.persistence,
      backlogBytes,
      backlogOps: this.pending.length + this.groups.reduce((n, g) => n + g.opCount, 0),
      lagUs: oldest === undefined ? 0 : this.world.clock.nowUs() - oldest,
      etaUs: backlogBytes === 0 ? 0 : this.shipRate ? Math.round(backlogBytes / this.shipRate) : null,
      groupsShipped: this.counters.groupsShipped,
      groupsPending: this.groups.length + (this.pending.length ? 1 : 0),
      lastAckedSeq: this.lastAckedSeq,
      shipFailures: this.counters.shipFailures,
      bytesShipped: this.counters.bytesShipped,
      cloudOnlyBytes: this.counters.cloudOnlyBytes,
      journalFreeBytes: this.options.journal?.freeBytes() ?? 0,
    };
  }

  override async read(offset: number, length: number): Promise<Buffer> {
    this.checkAlive();
    checkRange(this, offset, length, 'read');
    if (length === 0) return Buffer.alloc(0);
    const end = offset + length;
    const runs: Array<{ at: number; stop: number; written: boolean }> = [];
    for (let pos = offset; pos < end;) {
      const written = this.map.get(Math.floor(pos / this.G));
      let stop = (Math.floor(pos / this.G) + 1) * this.G;
      while (stop < end && this.map.get(stop / this.G) === written) stop += this.G;
      stop = Math.min(stop, end);
      runs.push({ at: pos, stop, written });
      pos = stop;
    }
    // A read wholly written here or wholly below (the usual case) is that source's own buffer.
    if (runs.length === 1) return (runs[0]!.written ? this.options.store : this.below).read(offset, length);
    // The runs tile the range, so every byte of `out` is written below.
    const out = Buffer.allocUnsafe(length);
    await Promise.all(runs.map(({ at, stop, written }) =>
      (written ? this.options.store : this.below).read(at, stop - at).then((buf) => { buf.copy(out, at - offset); })));
    return out;
  }

  /** Written granules report what the cloud-side store holds, the rest what below reports. */
  override async extents(offset: number, length: number): Promise<Extent[]> {
    this.checkAlive();
    checkRange(this, offset, length, 'read');
    const out: Extent[] = [];
    const end = offset + length;
    let pos = offset;
    while (pos < end) {
      const written = this.map.get(Math.floor(pos / this.G));
      let stop = (Math.floor(pos / this.G) + 1) * this.G;
      while (stop < end && this.map.get(stop / this.G) === written) stop += this.G;
      stop = Math.min(stop, end);
      for (const e of await (written ? this.options.store : this.below).extents(pos, stop - pos)) {
        const prev = out[out.length - 1];
        if (prev && prev.type === e.type && prev.offset + prev.length === e.offset) prev.length += e.length;
        else out.push({ ...e });
      }
      pos = stop;
    }
    return out;
  }

  override write(offset: number, data: Uint8Array, options: WriteOptions = {}): Promise<void> {
    this.checkAlive();
    checkRange(this, offset, data.length, 'write');
    return this.serialize(async () => {
      const copy = Buffer.from(data);
      await this.apply({ offset, data: copy }, options.fua ?? false);
    });
  }

  override trim(offset: number, length: number, options: WriteOptions = {}): Promise<void> {
    return this.zero(offset, length, options.fua ?? false);
  }

  override writeZeroes(offset: number, length: number, options: ZeroOptions = {}): Promise<void> {
    return this.zero(offset, length, options.fua ?? false);
  }

  override async flush(): Promise<void> {
    this.checkAlive();
    // Everything acknowledged before this call has passed the serial queue.
    await this.serialize(async () => undefined);
    await this.options.store.flush();
    await this.map.persist();
    if (this.options.persistence === 'on-prem' && this.options.flushWaitsForOnPrem) await this.drain();
  }

  /** Resolve once every write acknowledged before the call is applied on-prem (cloud-only: at once). */
  async drain(): Promise<void> {
    this.checkAlive();
    if (this.options.persistence !== 'on-prem') return;
    await this.serialize(() => this.cutLocked());
    const target = this.nextSeq - 1;
    if (this.lastAckedSeq >= target) return;
    void this.pump();
    await new Promise<void>((resolve) => this.waiters.push({ check: () => this.lastAckedSeq >= target, resolve }));
  }

  /**
   * Simulate the process dying: timers stop, nothing more is written or
   * shipped. Build a new WriteBehind over the same stores to recover.
   */
  kill(): void {
    this.dead = true;
    this.rpoTimer?.cancel();
    this.retryTimer?.cancel();
  }

  override async close(): Promise<void> {
    if (this.dead) return;
    await this.flush();
    this.kill();
    await this.below.close();
  }

  private zero(offset: number, length: number, fua: boolean): Promise<void> {
    this.checkAlive();
    checkRange(this, offset, length, 'write');
    return this.serialize(() => this.apply({ offset, length, zero: true }, fua));
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.serial.then(() => { this.checkAlive(); return fn(); });
    this.serial = run.catch(() => undefined);
    return run;
  }

  /** Journal (if persistent), then land in the cloud store; split around non-persistent regions. */
  private async apply(op: GroupOp, fua: boolean): Promise<void> {
    const length = op.zero ? op.length : op.data.length;
    if (length === 0) return;
    let cloudOnlyTouched = false;
    for (const [start, end, persistent] of this.segments(op.offset, op.offset + length)) {
      const piece: GroupOp = op.zero
        ? { offset: start, length: end - start, zero: true }
        : { offset: start, data: op.data.subarray(start - op.offset, end - op.offset) };
      // Fetch what an unaligned edge needs first: if below fails, nothing was journaled.
      const bases = await this.baseGranules(piece);
      if (persistent && this.options.persistence === 'on-prem') {
        await this.journalOp(piece);
      } else {
        cloudOnlyTouched = true;
        if (!piece.zero) this.counters.cloudOnlyBytes += piece.data.length;
      }
      await this.land(piece, bases);
    }
    if (fua && cloudOnlyTouched) {
      await this.options.store.flush();
      await this.map.persist();
    }
    this.afterAck();
  }

  /** [start, end, persistent] pieces of a range, split at non-persistent region edges. */
  private segments(start: number, end: number): Array<[number, number, boolean]> {
    const cuts = new Set<number>([start, end]);
    const np = this.options.nonPersistent ?? [];
    for (const r of np) for (const e of [r.offset, r.offset + r.length]) if (e > start && e < end) cuts.add(e);
    const points = [...cuts].sort((a, b) => a - b);
    const out: Array<[number, number, boolean]> = [];
    for (let i = 0; i + 1 < points.length; i++) {
      const a = points[i]!;
      out.push([a, points[i + 1]!, this.options.persistence === 'on-prem' && !np.some((r) => a >= r.offset && a < r.offset + r.length)]);
    }
    return out;
  }

  private async journalOp(op: GroupOp): Promise<void> {
    const journal = this.options.journal!;
    const payload = encodeOp(op);
    // Room for the op and for the cut that will close its group: without the cut's room a full journal
    // could never cut, so it could never ship, so it could never free space.
    const need = journal.recordBytes(payload.length) + journal.recordBytes(CUT_PAYLOAD_BYTES);
    if (need > journal.capacityBytes - journal.recordBytes(0)) {
      throw new BlockError('E_NOSPC', `${this.name}: a write of ${opLength(op)} bytes needs ${need} bytes of journal; ${journal.name} holds ${journal.capacityBytes}`);
    }
    while (need > journal.freeBytes()) {
      // Full: cut what is waiting and ship it; the space comes back on truncation.
      await this.cutLocked();
      void this.pump();
      await new Promise<void>((resolve) => this.waiters.push({ check: () => need <= journal.freeBytes() || this.dead, resolve }));
      this.checkAlive();
    }
    const tUs = this.world.clock.nowUs();
    let lsn: number;
    try {
      lsn = await journal.append(payload, tUs);
    } catch (err) {
      if ((err as { code?: string }).code === E_JOURNAL_FULL) throw new BlockError('E_NOSPC', `${this.name}: journal full`, { cause: err });
      throw err;
    }
    this.pending.push({ lsn, tUs, op });
    this.pendingBytes += op.zero ? 0 : op.data.length;
  }

  /** The partly covered granules of an op that are not in the store yet, read from below. */
  private async baseGranules(op: GroupOp): Promise<Map<number, Buffer>> {
    const bases = new Map<number, Buffer>();
    const [, edges] = this.split(op);
    for (const [a] of edges) {
      const g = Math.floor(a / this.G);
      if (this.map.get(g) || bases.has(g)) continue;
      const gStart = g * this.G;
      bases.set(g, await this.below.read(gStart, Math.min(this.size(), gStart + this.G) - gStart));
    }
    return bases;
  }

  /** [first and last full-granule boundaries, partly covered edge ranges] of an op. */
  private split(op: GroupOp): [[number, number], Array<[number, number]>] {
    const G = this.G;
    const start = op.offset;
    const end = op.offset + (op.zero ? op.length : op.data.length);
    const firstFull = Math.ceil(start / G) * G;
    const lastFull = Math.floor(end / G) * G;
    const edges: Array<[number, number]> = [];
    if (firstFull > lastFull) edges.push([start, end]); // inside one granule
    else {
      if (start < firstFull) edges.push([start, firstFull]);
      if (lastFull < end) edges.push([lastFull, end]);
    }
    return [[firstFull, lastFull], edges];
  }

  /**
   * Put an op into the cloud-side store and mark its granules written. A
   * partly covered granule not written before is completed from `bases`
   * (fetched before the op was journaled, so a failing fetch fails the write
   * cleanly) or, during recovery, from below.
   */
  private async land(op: GroupOp, bases?: Map<number, Buffer>): Promise<void> {
    const G = this.G;
    const start = op.offset;
    const store = this.options.store;
    const [[firstFull, lastFull], edges] = this.split(op);
    const fetched = bases ?? await this.baseGranules(op);
    for (const [a, b] of edges) {
      const g = Math.floor(a / G);
      const gStart = g * G;
      const base = this.map.get(g) ? undefined : fetched.get(g);
      if (base) {
        if (op.zero) base.fill(0, a - gStart, b - gStart);
        else base.set(op.data.subarray(a - start, b - start), a - gStart);
        await store.write(gStart, base);
        this.map.set(g);
      } else if (op.zero) await store.writeZeroes(a, b - a);
      else await store.write(a, op.data.subarray(a - start, b - start));
    }
    if (firstFull < lastFull) {
      if (op.zero) await store.writeZeroes(firstFull, lastFull - firstFull);
      else await store.write(firstFull, op.data.subarray(firstFull - start, lastFull - start));
      this.map.setRange(firstFull / G, lastFull / G);
    }
  }

  private afterAck(): void {
    if (this.options.persistence !== 'on-prem' || this.pending.length === 0) return;
    if (this.pendingBytes >= this.options.shipThresholdBytes) {
      void this.serialize(() => this.cutLocked()).then(() => this.pump(), () => undefined);
      return;
    }
    if (!this.rpoTimer) {
      const dueUs = this.pending[0]!.tUs + this.options.rpoUs - this.world.clock.nowUs();
      this.rpoTimer = this.world.clock.schedule(Math.max(0, dueUs), () => {
        this.rpoTimer = undefined;
        if (this.dead) return;
        void this.serialize(() => this.cutLocked()).then(() => this.pump(), () => undefined);
      });
    }
  }

  /** Turn the pending entries into a group and journal the cut. Runs inside the serial queue. */
  private async cutLocked(): Promise<void> {
    if (this.pending.length === 0) return;
    const entries = this.pending;
    const seq = this.nextSeq;
    // Seqs only grow within a writer session: on-prem applies groups in seq order and takes a gap for loss.
    invariant(seq > this.lastAckedSeq && seq > (this.groups[this.groups.length - 1]?.seq ?? 0), () => `${this.name}: group seq ${seq} does not follow the last one`);
    const cutLsn = await this.options.journal!.append(encodeCut(seq), this.world.clock.nowUs());
    this.nextSeq++;
    this.pending = [];
    this.pendingBytes = 0;
    this.rpoTimer?.cancel();
    this.rpoTimer = undefined;
    this.groups.push(makeGroup(seq, cutLsn, entries));
  }

  /**
   * Ship cut groups in order, one at a time; retry with backoff on failure.
   * Never rejects: a failure anywhere in shipping a group (the link, or the
   * local flush, map persist or truncate that follow it) retries that group,
   * which on-prem then acknowledges as a duplicate if it got it the first time.
   */
  private async pump(): Promise<void> {
    if (this.shipping || this.dead || this.options.persistence !== 'on-prem') return;
    this.shipping = true;
    try {
      while (this.groups.length && !this.dead) {
        const g = this.groups[0]!;
        try {
          if (!await this.shipOne(g)) return;
        } catch (err) {
          if (this.dead) return;
          this.counters.shipFailures++;
          this.world.log('warn', this.name, `shipping group ${g.seq} failed; retrying in ${this.retryDelayUs} µs`, { seq: g.seq, error: (err as Error).message });
          this.retryTimer = this.world.clock.schedule(this.retryDelayUs, () => { this.retryTimer = undefined; void this.pump(); });
          this.retryDelayUs = Math.min(this.options.maxRetryUs, this.retryDelayUs * 2);
          return;
        }
      }
    } finally {
      this.shipping = false;
    }
  }

  /** Ship the oldest group and forget it locally; false when the layer died on the way. */
  private async shipOne(g: Group): Promise<boolean> {
    const startedUs = this.world.clock.nowUs();
    await this.options.sink!.applyGroup({ diskId: this.options.diskId, epoch: this.writer?.epoch ?? 0, seq: g.seq, writes: g.ops });
    if (this.dead) return false;
    this.retryDelayUs = this.options.retryUs;
    const tookUs = this.world.clock.nowUs() - startedUs;
    if (tookUs > 0 && g.bytes > 0) {
      const rate = g.bytes / tookUs;
      this.shipRate = this.shipRate === null ? rate : 0.7 * this.shipRate + 0.3 * rate;
    }
    // The group's bytes are in the cloud store too: make that (and its map) durable before the journal forgets them.
    await this.options.store.flush();
    await this.map.persist();
    if (this.dead) return false;
    await this.options.journal!.truncate(g.cutLsn, writerMetaBytes({ seq: g.seq, writer: this.writer }));
    if (this.dead) return false;
    this.groups.shift();
    invariant(g.seq > this.lastAckedSeq, () => `${this.name}: group ${g.seq} acknowledged after group ${this.lastAckedSeq}`);
    this.lastAckedSeq = g.seq;
    this.counters.groupsShipped++;
    this.counters.bytesShipped += g.bytes;
    this.wake();
    return true;
  }

  private wake(): void {
    const still: typeof this.waiters = [];
    for (const w of this.waiters) (w.check() ? w.resolve() : still.push(w));
    this.waiters = still;
  }

  /** Rebuild groups and pending entries from the journal and re-land them in the cloud store. */
  private async recover(): Promise<void> {
    const journal = this.options.journal;
    if (!journal) return;
    let entries: Entry[] = [];
    for (const rec of journal.recovered) {
      const seq = cutSeq(rec.payload);
      if (seq !== undefined) {
        this.groups.push(makeGroup(seq, rec.lsn, entries));
        this.nextSeq = Math.max(this.nextSeq, seq + 1);
        entries = [];
      } else {
        const op = decodeOp(rec.payload);
        entries.push({ lsn: rec.lsn, tUs: rec.tUs, op });
        // Replaying in LSN order leaves the store holding the latest acknowledged bytes.
        await this.land(op);
      }
    }
    this.pending = entries;
    this.pendingBytes = entries.reduce((n, e) => n + (e.op.zero ? 0 : e.op.data.length), 0);
    await this.options.store.flush();
    await this.map.persist();
    if (this.groups.length) void this.pump();
    this.afterAck();
  }

  private checkAlive(): void {
    if (this.dead) throw new BlockError(E_CLOSED, `${this.name}: closed (or killed)`);
  }
}
