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
 * once its effects are durable elsewhere and records one caller-owned number
 * (`meta`, e.g. the last group sequence acknowledged) atomically with it.
 */
export interface Journal {
  readonly name: string;
  append(payload: Uint8Array, tUs: number): Promise<number>;
  /** The records that survived the last open (in order), for replay. */
  readonly recovered: readonly JournalRecord[];
  truncate(upToLsn: number, meta: number): Promise<void>;
  readonly meta: number;
  /** The LSN the next append gets. */
  readonly nextLsn: number;
  /** Bytes an append of `payloadBytes` needs. */
  recordBytes(payloadBytes: number): number;
  freeBytes(): number;
  readonly capacityBytes: number;
}

const HEADER_SLOT_BYTES = 4096;
const DATA_START = 2 * HEADER_SLOT_BYTES;
const HEADER_MAGIC = 0x53504a48; // "SPJH"
const RECORD_MAGIC = 0x53504a52; // "SPJR"
/** magic u32, length u32, lsn f64, tUs f64, crc u32 */
const RECORD_HEADER_BYTES = 28;

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

/**
 * The Journal on any BlockDevice (a SparseStore in simulation, a FileStore
 * live): two alternating header slots (generation, head position, head LSN,
 * meta, crc) and a ring of records, each with its own crc and LSN. Recovery
 * scans from the head while records are intact and their LSNs consecutive, so
 * a torn tail or a stale record from an earlier lap ends the scan.
 *
 * Appends are group-committed: whatever queued while one write+flush was in
 * flight goes out in the next write with one flush, and acknowledgements
 * follow LSN order, so an acknowledged record never sits behind a torn one.
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
  private metaValue = 0;
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
    return j;
  }

  get meta(): number {
    return this.metaValue;
  }

  get nextLsn(): number {
    return this.lsnNext;
  }

  recordBytes(payloadBytes: number): number {
    return RECORD_HEADER_BYTES + payloadBytes;
  }

  freeBytes(): number {
    return this.capacityBytes - (this.tailPos - this.headPos) - this.queue.reduce((n, p) => n + this.recordBytes(p.payload.length), 0);
  }

  append(payload: Uint8Array, tUs: number): Promise<number> {
    const need = this.recordBytes(payload.length);
    if (need > this.capacityBytes) {
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

  async truncate(upToLsn: number, meta: number): Promise<void> {
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
        for (const p of batch) {
          const lsn = this.lsnNext++;
          const rec = encodeRecord(lsn, p.tUs, p.payload);
          parts.push(rec);
          lsns.push(lsn);
          this.placed.push({ lsn, pos, bytes: rec.length });
          pos += rec.length;
        }
        this.tailPos = pos;
        try {
          await this.writeRing(start, Buffer.concat(parts));
          await this.store.flush();
        } catch (err) {
          batch.forEach((p) => p.reject(err));
          continue;
        }
        batch.forEach((p, i) => p.resolve(lsns[i]!));
      }
    } finally {
      this.writing = false;
    }
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

  private async writeHeader(headPos: number, headLsn: number, meta: number): Promise<void> {
    const gen = this.headerGen + 1;
    const h = Buffer.alloc(40);
    h.writeUInt32BE(HEADER_MAGIC, 0);
    h.writeDoubleBE(gen, 4);
    h.writeDoubleBE(headPos, 12);
    h.writeDoubleBE(headLsn, 20);
    h.writeDoubleBE(meta, 28);
    h.writeUInt32BE(crc32(h.subarray(0, 36)), 36);
    await this.store.write((gen % 2) * HEADER_SLOT_BYTES, h);
    await this.store.flush();
    this.headerGen = gen;
    this.headPos = headPos;
    this.headLsn = headLsn;
    this.metaValue = meta;
  }

  private async load(): Promise<void> {
    let best: { gen: number; headPos: number; headLsn: number; meta: number } | undefined;
    for (const slot of [0, 1]) {
      const h = await this.store.read(slot * HEADER_SLOT_BYTES, 40);
      if (h.readUInt32BE(0) !== HEADER_MAGIC || h.readUInt32BE(36) !== crc32(h.subarray(0, 36))) continue;
      const gen = h.readDoubleBE(4);
      if (!best || gen > best.gen) best = { gen, headPos: h.readDoubleBE(12), headLsn: h.readDoubleBE(20), meta: h.readDoubleBE(28) };
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
    while (pos - this.headPos + RECORD_HEADER_BYTES <= this.capacityBytes) {
      const head = await this.readRing(pos, RECORD_HEADER_BYTES);
      if (head.readUInt32BE(0) !== RECORD_MAGIC) break;
      const length = head.readUInt32BE(4);
      const recLsn = head.readDoubleBE(8);
      if (recLsn !== lsn || pos - this.headPos + RECORD_HEADER_BYTES + length > this.capacityBytes) break;
      const payload = await this.readRing(pos + RECORD_HEADER_BYTES, length);
      const tUs = head.readDoubleBE(16);
      if (head.readUInt32BE(24) !== recordCrc(recLsn, tUs, payload)) break;
      records.push({ lsn, tUs, payload });
      this.placed.push({ lsn, pos, bytes: RECORD_HEADER_BYTES + length });
      pos += RECORD_HEADER_BYTES + length;
      lsn++;
    }
    this.tailPos = pos;
    this.lsnNext = lsn;
    this.recovered = records;
  }
}

function recordCrc(lsn: number, tUs: number, payload: Uint8Array): number {
  const b = Buffer.alloc(16);
  b.writeDoubleBE(lsn, 0);
  b.writeDoubleBE(tUs, 8);
  return crc32(payload, crc32(b));
}

function encodeRecord(lsn: number, tUs: number, payload: Uint8Array): Buffer {
  const rec = Buffer.alloc(RECORD_HEADER_BYTES + payload.length);
  rec.writeUInt32BE(RECORD_MAGIC, 0);
  rec.writeUInt32BE(payload.length, 4);
  rec.writeDoubleBE(lsn, 8);
  rec.writeDoubleBE(tUs, 16);
  rec.writeUInt32BE(recordCrc(lsn, tUs, payload), 24);
  rec.set(payload, RECORD_HEADER_BYTES);
  return rec;
}
