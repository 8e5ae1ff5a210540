import { crc32 } from 'node:zlib';
import { BlockError, E_NOSPC, type BlockDevice } from './block-device.js';

export const E_JOURNAL_FULL = 'E_JOURNAL_FULL';
export const E_JOURNAL_CORRUPT = 'E_JOURNAL_CORRUPT';

export interface JournalRecord {
  /** Log sequence number: consecutive, starting at 1, never reused. */
  lsn: number;
  /** When it was appended (world clock, µs), kept across restarts for lag figures. */
  tUs: number;
  payload: Buffer;
}

/**
 * A durable append-only log. `append` resolves only when the record (and
 * every record before it) would survive a crash. `truncate` drops a prefix
 * once its effects are durable elsewhere and records caller-owned bytes
 * (`meta`, e.g. the last group sequence acknowledged and the writer's
 * identity) atomically with it.
 */
export interface Journal {
  readonly name: string;
  append(payload: Uint8Array, tUs: number): Promise<number>;
  /** The records that survived the last open (in order), for replay. */
  readonly recovered: readonly JournalRecord[];
  /** Drop records up to `upToLsn` (0: none) and make `meta` the durable meta, in one header write. */
  truncate(upToLsn: number, meta: Uint8Array): Promise<void>;
  /**
   * The caller's bytes from the last truncate (empty for a new journal). A
   * journal written by an earlier version kept one number here; it reads back
   * as the JSON text {"seq": n}.
   */
  readonly meta: Buffer;
  /** The LSN the next append gets. */
  readonly nextLsn: number;
  /** Bytes an append of `payloadBytes` needs. */
  recordBytes(payloadBytes: number): number;
  freeBytes(): number;
  readonly capacityBytes: number;
}

const HEADER_SLOT_BYTES = 4096;
const DATA_START = 2 * HEADER_SLOT_BYTES;
/** Earlier header: meta was one f64. Still read, never written. */
const LEGACY_HEADER_MAGIC = 0x53504a48; // "SPJH"
const HEADER_MAGIC = 0x53504a32; // "SPJ2"
/** magic u32, gen f64, headPos f64, headLsn f64, metaLength u16, meta, crc u32 */
const HEADER_FIXED_BYTES = 30;
export const JOURNAL_META_MAX_BYTES = 1024;
/** Earlier records: no batch field. Still read, never written. */
const LEGACY_RECORD_MAGIC = 0x53504a52; // "SPJR"
const LEGACY_RECORD_HEADER_BYTES = 28;
const RECORD_MAGIC = 0x53504a42; // "SPJB"
/** magic u32, length u32, lsn f64, tUs f64, batchStart f64, crc u32 */
const RECORD_HEADER_BYTES = 36;
/**
 * A seal, written where the next batch will start once a commit is
 * acknowledged and nothing else is queued: "every record before LSN n was
 * acknowledged". The next batch overwrites it. Same layout as a record
 * header with no payload.
 */
const SEAL_MAGIC = 0x53504a53; // "SPJS"
/** How far the corruption check reads at a time when it looks past a damaged record. */
const SCAN_CHUNK_BYTES = 1024 * 1024;

interface Placed {
  lsn: number;
  pos: number;
  bytes: number;
}

interface PendingAppend {
  payload: Uint8Array;
  tUs: number;
  resolve: (lsn: number) => void;
  reject: (err: unknown) => void;
}

/** What recovery found at one position of the ring. */
type Found =
  | { kind: 'record'; record: JournalRecord; bytes: number }
  /** Nothing written here in this lap: zeros, or an intact record of an earlier lap. */
  | { kind: 'end' }
  /** Bytes that are neither: a torn write, or damage. */
  | { kind: 'broken' };

/**
 * The Journal on any BlockDevice (a SparseStore in simulation, a FileStore
 * live): two alternating header slots (generation, head position, head LSN,
 * meta, crc) and a ring of records, each with its own crc, LSN and the LSN
 * its group commit began with.
 *
 * Appends are group-committed: whatever queued while one write+flush was in
 * flight goes out in the next write with one flush, and acknowledgements
 * follow LSN order, so an acknowledged record never sits behind a torn one.
 *
 * Recovery replays from the head while records are intact and their LSNs
 * consecutive. Where that stops it tells a torn tail from damage: a batch is
 * written only after the one before it was flushed, so an intact record of a
 * later batch beyond the stop proves the stopped-at record was acknowledged.
 * The last batch has no later one, so once it is acknowledged and the queue
 * is empty a seal goes where the next batch will start; an intact seal past
 * the stop proves the same. Either is damage to acknowledged records, and
 * open fails with E_JOURNAL_CORRUPT instead of quietly dropping them. (Records
 * of the same, unacknowledged batch may follow a torn one: that is still a
 * tail.) The seal is not flushed on its own, to keep a second flush off every
 * idle commit: it is durable once the kernel writes it back or the next
 * commit flushes. A machine crash in that window, with damage to that last
 * batch as well, reads as a torn tail. An open that recovered records seals
 * them and flushes, so the window does not outlive the crash that opened it.
 */
export class StoreJournal implements Journal {
  readonly name: string;
  readonly capacityBytes: number;
  recovered: JournalRecord[] = [];
  private headerGen = 0;
  private headPos = 0;
  private headLsn = 1;
  private tailPos = 0;
  private lsnNext = 1;
  private metaValue: Buffer = Buffer.alloc(0);
  private readonly placed: Placed[] = [];
  private queue: PendingAppend[] = [];
  private writing = false;
  private headerWrite: Promise<void> = Promise.resolve();

  private constructor(private readonly store: BlockDevice) {
    this.name = `journal:${store.name}`;
    this.capacityBytes = store.size() - DATA_START;
  }

  static async open(store: BlockDevice): Promise<StoreJournal> {
    if (store.size() < DATA_START + 4096) {
      throw new BlockError(E_NOSPC, `journal on ${store.name}: the store holds ${store.size()} bytes, needs at least ${DATA_START + 4096}`);
    }
    const j = new StoreJournal(store);
    await j.load();
    // What recovery found is now the acknowledged log, yet its seal may have been lost with the crash:
    // seal it durably before anything else, so damage to its last commit cannot pass for a torn tail.
    if (j.recovered.length) await j.seal().then(() => store.flush()).catch(() => undefined);
    return j;
  }

  get meta(): Buffer {
    return this.metaValue;
  }

  get nextLsn(): number {
    return this.lsnNext;
  }

  recordBytes(payloadBytes: number): number {
    return RECORD_HEADER_BYTES + payloadBytes;
  }

  freeBytes(): number {
    // The end marker after the last batch must never land on a live record.
    return this.capacityBytes - RECORD_HEADER_BYTES - (this.tailPos - this.headPos) - this.queue.reduce((n, p) => n + this.recordBytes(p.payload.length), 0);
  }

  append(payload: Uint8Array, tUs: number): Promise<number> {
    const need = this.recordBytes(payload.length);
    if (need > this.capacityBytes - RECORD_HEADER_BYTES) {
      return Promise.reject(new BlockError(E_NOSPC, `${this.name}: a record of ${payload.length} bytes can never fit a journal of ${this.capacityBytes} bytes`));
    }
    if (need > this.freeBytes()) {
      return Promise.reject(new BlockError(E_JOURNAL_FULL, `${this.name}: full (${this.freeBytes()} bytes free, ${need} needed); ship and truncate first`,
        { details: { free: this.freeBytes(), need } }));
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ payload, tUs, resolve, reject });
      if (!this.writing) void this.commit();
    });
  }

  async truncate(upToLsn: number, meta: Uint8Array): Promise<void> {
    if (meta.length > JOURNAL_META_MAX_BYTES) {
      throw new BlockError(E_NOSPC, `${this.name}: meta of ${meta.length} bytes; at most ${JOURNAL_META_MAX_BYTES}`);
    }
    let i = 0;
    while (i < this.placed.length && this.placed[i]!.lsn <= upToLsn) i++;
    // Queued appends are not placed yet: they land at tailPos with lsnNext onwards.
    const newHeadPos = i < this.placed.length ? this.placed[i]!.pos : this.tailPos;
    const newHeadLsn = i < this.placed.length ? this.placed[i]!.lsn : this.lsnNext;
    this.placed.splice(0, i);
    // Header writes are ordered among themselves; the newest generation wins on reload.
    const write = this.headerWrite.then(() => this.writeHeader(newHeadPos, newHeadLsn, meta));
    this.headerWrite = write.catch(() => undefined);
    await write;
  }

  private async commit(): Promise<void> {
    this.writing = true;
    try {
      while (this.queue.length) {
        const batch = this.queue;
        this.queue = [];
        const start = this.tailPos;
        const parts: Buffer[] = [];
        const lsns: number[] = [];
        let pos = start;
        const batchStart = this.lsnNext;
        for (const p of batch) {
          const lsn = this.lsnNext++;
          const rec = encodeRecord(lsn, p.tUs, batchStart, p.payload);
          parts.push(rec);
          lsns.push(lsn);
          this.placed.push({ lsn, pos, bytes: rec.length });
          pos += rec.length;
        }
        this.tailPos = pos;
        // Zeros after the batch, in the same write: a clean end of the log reads as zeros, so only a
        // torn write or damage makes recovery look further (see refuseIfLaterBatch).
        parts.push(Buffer.alloc(RECORD_HEADER_BYTES));
        try {
          await this.writeRing(start, Buffer.concat(parts));
          await this.store.flush();
        } catch (err) {
          // The batch never became durable: its LSNs and its ring space go to the next batch, so a
          // failed write leaves no hole that would end recovery before later acknowledged records.
          while (this.placed.length && this.placed[this.placed.length - 1]!.lsn >= batchStart) this.placed.pop();
          this.tailPos = start;
          this.lsnNext = batchStart;
          batch.forEach((p) => p.reject(err));
          continue;
        }
        batch.forEach((p, i) => p.resolve(lsns[i]!));
        if (this.queue.length === 0) await this.seal();
      }
    } finally {
      this.writing = false;
    }
  }

  /** Write the seal at the tail (see the class comment); the next batch's first record overwrites it. */
  private async seal(): Promise<void> {
    const seal = encodeRecord(this.lsnNext, 0, this.lsnNext, Buffer.alloc(0));
    seal.writeUInt32BE(SEAL_MAGIC, 0);
    // A seal that fails to land leaves the journal as it was without one: no error for anybody.
    await this.writeRing(this.tailPos, seal).catch(() => undefined);
  }

  private physical(pos: number): number {
    return DATA_START + (pos % this.capacityBytes);
  }

  private async writeRing(pos: number, data: Buffer): Promise<void> {
    const at = pos % this.capacityBytes;
    const first = Math.min(data.length, this.capacityBytes - at);
    await this.store.write(DATA_START + at, data.subarray(0, first));
    if (first < data.length) await this.store.write(DATA_START, data.subarray(first));
  }

  private async readRing(pos: number, length: number): Promise<Buffer> {
    const at = pos % this.capacityBytes;
    const first = Math.min(length, this.capacityBytes - at);
    const a = await this.store.read(this.physical(pos), first);
    if (first === length) return a;
    return Buffer.concat([a, await this.store.read(DATA_START, length - first)]);
  }

  private async writeHeader(headPos: number, headLsn: number, meta: Uint8Array): Promise<void> {
    const gen = this.headerGen + 1;
    const h = Buffer.alloc(HEADER_FIXED_BYTES + meta.length + 4);
    h.writeUInt32BE(HEADER_MAGIC, 0);
    h.writeDoubleBE(gen, 4);
    h.writeDoubleBE(headPos, 12);
    h.writeDoubleBE(headLsn, 20);
    h.writeUInt16BE(meta.length, 28);
    h.set(meta, HEADER_FIXED_BYTES);
    h.writeUInt32BE(crc32(h.subarray(0, h.length - 4)), h.length - 4);
    await this.store.write((gen % 2) * HEADER_SLOT_BYTES, h);
    await this.store.flush();
    this.headerGen = gen;
    this.headPos = headPos;
    this.headLsn = headLsn;
    this.metaValue = Buffer.from(meta);
  }

  private async load(): Promise<void> {
    let best: { gen: number; headPos: number; headLsn: number; meta: Buffer } | undefined;
    for (const slot of [0, 1]) {
      const h = await this.store.read(slot * HEADER_SLOT_BYTES, HEADER_FIXED_BYTES + JOURNAL_META_MAX_BYTES + 4);
      const found = parseHeader(h);
      if (found && (!best || found.gen > best.gen)) best = found;
    }
    if (!best && !(await this.headerSlotsBlank())) {
      throw new BlockError(E_JOURNAL_CORRUPT, `${this.name}: neither header slot is intact, yet they are not blank: the journal's head, `
        + 'its writer identity and its acknowledged mark are lost. Refusing to start as if it were new; keep the journal for inspection');
    }
    if (best) {
      this.headerGen = best.gen;
      this.headPos = best.headPos;
      this.headLsn = best.headLsn;
      this.metaValue = best.meta;
    }
    let pos = this.headPos;
    let lsn = this.headLsn;
    const records: JournalRecord[] = [];
    for (;;) {
      const found = await this.recordAt(pos, lsn);
      if (found.kind !== 'record') {
        if (found.kind === 'broken') await this.refuseIfLaterBatch(pos, lsn);
        break;
      }
      records.push(found.record);
      this.placed.push({ lsn, pos, bytes: found.bytes });
      pos += found.bytes;
      lsn++;
    }
    this.tailPos = pos;
    this.lsnNext = lsn;
    this.recovered = records;
  }

  /** True for a journal never written: both header slots all zeros. */
  private async headerSlotsBlank(): Promise<boolean> {
    const slots = await this.store.read(0, DATA_START);
    return slots.every((b) => b === 0);
  }

  /** The record with LSN `lsn` at ring position `pos`, if it is there intact. */
  private async recordAt(pos: number, lsn: number): Promise<Found> {
    const room = this.capacityBytes - (pos - this.headPos);
    if (room < LEGACY_RECORD_HEADER_BYTES) return { kind: 'end' };
    const head = await this.readRing(pos, Math.min(room, RECORD_HEADER_BYTES));
    const magic = head.readUInt32BE(0);
    if (magic === SEAL_MAGIC) {
      // The seal of this very LSN is the clean end; one of an earlier lap is stale bytes; a later one means records are missing.
      if (!sealIntact(head)) return { kind: 'broken' };
      const sealed = head.readDoubleBE(8);
      return sealed <= lsn ? { kind: 'end' } : { kind: 'broken' };
    }
    const legacy = magic === LEGACY_RECORD_MAGIC;
    if (!legacy && magic !== RECORD_MAGIC) return head.every((b) => b === 0) ? { kind: 'end' } : { kind: 'broken' };
    const headerBytes = legacy ? LEGACY_RECORD_HEADER_BYTES : RECORD_HEADER_BYTES;
    const length = head.readUInt32BE(4);
    if (head.length < headerBytes || headerBytes + length > room) return { kind: 'broken' };
    const recLsn = head.readDoubleBE(8);
    const tUs = head.readDoubleBE(16);
    const payload = await this.readRing(pos + headerBytes, length);
    const intact = legacy
      ? head.readUInt32BE(24) === legacyRecordCrc(recLsn, tUs, payload)
      : head.readUInt32BE(32) === recordCrc(recLsn, tUs, head.readDoubleBE(24), payload);
    if (!intact) return { kind: 'broken' };
    if (recLsn !== lsn) return recLsn < lsn ? { kind: 'end' } : { kind: 'broken' };
    return { kind: 'record', record: { lsn, tUs, payload }, bytes: headerBytes + length };
  }

  /**
   * Recovery stopped at `pos` (expecting `lsn`) on bytes that are not a clean
   * end. Look past it for an intact record of a later batch; finding one
   * means acknowledged records were damaged.
   */
  private async refuseIfLaterBatch(pos: number, lsn: number): Promise<void> {
    const end = this.headPos + this.capacityBytes;
    // From `pos` itself: a seal there with a later LSN is proof as good as one further on.
    for (let at = pos; at < end; at += SCAN_CHUNK_BYTES) {
      const chunk = await this.readRing(at, Math.min(SCAN_CHUNK_BYTES + RECORD_HEADER_BYTES, end - at));
      for (const i of markersIn(chunk)) {
        if (i + RECORD_HEADER_BYTES > chunk.length) continue;
        const sealed = chunk.readUInt32BE(i) === SEAL_MAGIC;
        const laterLsn = chunk.readDoubleBE(i + 8);
        const batchStart = chunk.readDoubleBE(i + 24);
        if (!(laterLsn > lsn && batchStart > lsn)) continue;
        const intact = sealed
          ? sealIntact(chunk.subarray(i, i + RECORD_HEADER_BYTES))
          : (await this.recordAt(at + i, laterLsn).catch(() => ({ kind: 'broken' }) as Found)).kind === 'record';
        if (!intact) continue;
        const proof = sealed ? `the seal of commits up to record ${laterLsn - 1}` : `record ${laterLsn} of a later commit`;
        throw new BlockError(E_JOURNAL_CORRUPT,
          `${this.name}: record ${lsn} (byte ${pos % this.capacityBytes} of the ring) is damaged, yet ${proof} is intact: `
          + `acknowledged records were corrupted, not torn by a crash. Refusing to start without them; keep the journal for inspection`,
          { details: { lsn, pos, laterLsn } });
      }
    }
  }
}

/** One header slot's content, or undefined when the slot holds no intact header. */
function parseHeader(h: Buffer): { gen: number; headPos: number; headLsn: number; meta: Buffer } | undefined {
  const magic = h.readUInt32BE(0);
  const fixed = { gen: h.readDoubleBE(4), headPos: h.readDoubleBE(12), headLsn: h.readDoubleBE(20) };
  if (magic === LEGACY_HEADER_MAGIC) {
    if (h.readUInt32BE(36) !== crc32(h.subarray(0, 36))) return undefined;
    return { ...fixed, meta: Buffer.from(JSON.stringify({ seq: h.readDoubleBE(28) })) };
  }
  if (magic !== HEADER_MAGIC) return undefined;
  const metaLength = h.readUInt16BE(28);
  if (metaLength > JOURNAL_META_MAX_BYTES) return undefined;
  const end = HEADER_FIXED_BYTES + metaLength;
  if (h.readUInt32BE(end) !== crc32(h.subarray(0, end))) return undefined;
  return { ...fixed, meta: Buffer.from(h.subarray(HEADER_FIXED_BYTES, end)) };
}

/** Offsets in `chunk` where a record or a seal may start, in order (magic bytes found; not yet checked). */
function markersIn(chunk: Buffer): number[] {
  const found: number[] = [];
  for (const value of [RECORD_MAGIC, SEAL_MAGIC]) {
    const magic = Buffer.alloc(4);
    magic.writeUInt32BE(value);
    for (let i = chunk.indexOf(magic); i >= 0 && i < SCAN_CHUNK_BYTES; i = chunk.indexOf(magic, i + 1)) found.push(i);
  }
  return found.sort((a, b) => a - b);
}

/** A seal (RECORD_HEADER_BYTES) whose fields match its crc. */
function sealIntact(head: Buffer): boolean {
  return head.length >= RECORD_HEADER_BYTES && head.readUInt32BE(4) === 0
    && head.readUInt32BE(32) === recordCrc(head.readDoubleBE(8), head.readDoubleBE(16), head.readDoubleBE(24), Buffer.alloc(0));
}

function legacyRecordCrc(lsn: number, tUs: number, payload: Uint8Array): number {
  const b = Buffer.alloc(16);
  b.writeDoubleBE(lsn, 0);
  b.writeDoubleBE(tUs, 8);
  return crc32(payload, crc32(b));
}

function recordCrc(lsn: number, tUs: number, batchStart: number, payload: Uint8Array): number {
  const b = Buffer.alloc(28);
  b.writeUInt32BE(payload.length, 0);
  b.writeDoubleBE(lsn, 4);
  b.writeDoubleBE(tUs, 12);
  b.writeDoubleBE(batchStart, 20);
  return crc32(payload, crc32(b));
}

function encodeRecord(lsn: number, tUs: number, batchStart: number, payload: Uint8Array): Buffer {
  const rec = Buffer.alloc(RECORD_HEADER_BYTES + payload.length);
  rec.writeUInt32BE(RECORD_MAGIC, 0);
  rec.writeUInt32BE(payload.length, 4);
  rec.writeDoubleBE(lsn, 8);
  rec.writeDoubleBE(tUs, 16);
  rec.writeDoubleBE(batchStart, 24);
  rec.writeUInt32BE(recordCrc(lsn, tUs, batchStart, payload), 32);
  rec.set(payload, RECORD_HEADER_BYTES);
  return rec;
}
