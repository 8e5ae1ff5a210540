/*
 * The secure cache's index at rest: which block each slot holds, under which
 * key epoch and nonce counter it was sealed, its signature and priority, so a
 * restarted cloud proxy over the same cache dir is warm.
 *
 * Crash safety rests on two facts rather than on write ordering:
 * - a record names the (key epoch, counter) its slot was sealed with, and
 *   AES-GCM authenticates the slot's bytes against exactly that nonce, block
 *   and length; a record written before its data, or whose slot was reused or
 *   torn since, fails authentication when the cache reopens and is dropped;
 * - content goes stale only when the disk is written. The cloud proxy's own
 *   writes are in its write-behind map until a new writer session begins, and
 *   `reconcile` drops (durably) every record they cover before that map is
 *   forgotten; a disk another writer touched since resets the whole index.
 * Records carry an HMAC under a key derived from the disk key and bound to
 * slot and generation, so a record is never trusted from another slot, an
 * earlier generation, or an attacker without the key.
 */
import { createHmac, hkdfSync } from 'node:crypto';
import { BlockError, E_NOSPC, type BlockDevice } from '../block-device.js';

export const INDEX_HEADER_BYTES = 4096;
export const INDEX_RECORD_BYTES = 96;
const MAGIC = 'SPWCIDX1';
const HEADER_USED = 48;
const MAC_AT = 72;
const MAC_BYTES = 16;

/** One slot's entry as it is kept at rest. */
export interface IndexRecord {
  slot: number;
  block: number;
  length: number;
  keyEpoch: number;
  counter: bigint;
  priority: number;
  /** sha256 of the plaintext, lower-case hex. */
  sig: string;
}

/** What the writer session at attach says about the disk since the index was last reconciled. */
export interface WriterAtAttach {
  epoch: number;
  fresh: boolean;
}

interface Header {
  blockBytes: number;
  /** The writer session the index was last reconciled under (0: none, the index holds nothing trusted). */
  writerEpoch: number;
  /** 16 bytes: names this cache's content to on-prem (the link handshake carries it). */
  generation: Buffer;
}

/** Bytes an index store needs for `slots` slots. */
export function indexStoreBytes(slots: number): number {
  return INDEX_HEADER_BYTES + slots * INDEX_RECORD_BYTES;
}

export class CacheIndex {
  private chain: Promise<void> = Promise.resolve();
  private failure: unknown = null;
  private macKey: Buffer | null = null;
  /** The generation began in this process: no record of it exists yet, so nothing needs untrusting. */
  private begunHere = false;

  private constructor(readonly store: BlockDevice, private header: Header, private readonly freshGeneration: () => Buffer) {}

  /**
   * Read the index header from `store`; an unreadable header or another block
   * size starts a new generation (every record is then untrusted).
   */
  static async open(store: BlockDevice, blockBytes: number, freshGeneration: () => Buffer): Promise<CacheIndex> {
    if (store.size() < INDEX_HEADER_BYTES) {
      throw new BlockError(E_NOSPC, `cache index: store ${store.name} holds ${store.size()} bytes, needs at least ${INDEX_HEADER_BYTES} for the header`);
    }
    const parsed = parseHeader(await store.read(0, HEADER_USED));
    const index = new CacheIndex(store, parsed ?? { blockBytes, writerEpoch: 0, generation: freshGeneration() }, freshGeneration);
    if (!parsed || parsed.blockBytes !== blockBytes) await index.reset(blockBytes, 0);
    return index;
  }

  /** This cache's generation (hex): changes whenever the index starts over. */
  get generation(): string {
    return this.header.generation.toString('hex');
  }

  /** Slots the store has records for. */
  get slots(): number {
    return Math.floor((this.store.size() - INDEX_HEADER_BYTES) / INDEX_RECORD_BYTES);
  }

  /**
   * Make the index true for the disk on-prem serves now, before the cloud
   * proxy forgets its written-granule map: trusted only when no other writer
   * session came between (the same session resumed, or ours ended and the
   * next one is ours), and then every record of a block this proxy wrote is
   * dropped. Returns whether the index was reset.
   */
  async reconcile(writer: WriterAtAttach | undefined, written: (block: number) => boolean): Promise<boolean> {
    const last = this.header.writerEpoch;
    const trusted = writer !== undefined && last > 0
      && (writer.fresh ? writer.epoch === last + 1 : writer.epoch === last);
    if (!trusted) {
      if (this.begunHere) {
        this.header.writerEpoch = writer?.epoch ?? 0;
        await this.writeHeader();
      } else await this.reset(this.header.blockBytes, writer?.epoch ?? 0);
      return true;
    }
    const all = await this.store.read(INDEX_HEADER_BYTES, this.slots * INDEX_RECORD_BYTES);
    const clears: Array<Promise<void>> = [];
    for (let slot = 0; slot < this.slots; slot++) {
      const r = all.subarray(slot * INDEX_RECORD_BYTES, (slot + 1) * INDEX_RECORD_BYTES);
      if (r[0] === 1 && written(Number(r.readBigUInt64BE(8)))) clears.push(this.store.write(recordAt(slot), Buffer.alloc(INDEX_RECORD_BYTES)));
    }
    await Promise.all(clears);
    await this.store.flush();
    this.header.writerEpoch = writer.epoch;
    await this.writeHeader();
    return false;
  }

  /** Records are signed and checked with a key derived from the disk key (kept in memory only). */
  useKey(key: Uint8Array): void {
    this.macKey = Buffer.from(hkdfSync('sha256', key, Buffer.from('index'), 'spillway secure-cache index', 32));
  }

  /** Every record whose MAC holds, for slots below `slots`. Their data is not checked here. */
  async load(slots: number): Promise<IndexRecord[]> {
    const n = Math.min(slots, this.slots);
    const all = await this.store.read(INDEX_HEADER_BYTES, n * INDEX_RECORD_BYTES);
    const out: IndexRecord[] = [];
    for (let slot = 0; slot < n; slot++) {
      const r = all.subarray(slot * INDEX_RECORD_BYTES, (slot + 1) * INDEX_RECORD_BYTES);
      if (r[0] !== 1 || !this.mac(r, slot).equals(r.subarray(MAC_AT, MAC_AT + MAC_BYTES))) continue;
      out.push({
        slot, length: r.readUInt32BE(4), block: Number(r.readBigUInt64BE(8)), keyEpoch: r.readUInt32BE(16),
        counter: r.readBigUInt64BE(24), priority: r.readDoubleBE(32), sig: r.subarray(40, 72).toString('hex'),
      });
    }
    return out;
  }

  /** Record what a slot holds now (queued; `settle` makes it durable). */
  put(rec: IndexRecord): void {
    const r = Buffer.alloc(INDEX_RECORD_BYTES);
    r[0] = 1;
    r.writeUInt32BE(rec.length, 4);
    r.writeBigUInt64BE(BigInt(rec.block), 8);
    r.writeUInt32BE(rec.keyEpoch, 16);
    r.writeBigUInt64BE(rec.counter, 24);
    r.writeDoubleBE(rec.priority, 32);
    Buffer.from(rec.sig, 'hex').copy(r, 40);
    this.mac(r, rec.slot).copy(r, MAC_AT);
    this.enqueue(() => this.store.write(recordAt(rec.slot), r));
  }

  /** The slot holds nothing any more (queued; `settle` makes it durable). */
  clear(slot: number): void {
    if (slot >= this.slots) return;
    this.enqueue(() => this.store.write(recordAt(slot), Buffer.alloc(INDEX_RECORD_BYTES)));
  }

  /** Every record change queued so far is durable; throws the first write that failed. */
  async settle(): Promise<void> {
    await this.chain;
    await this.store.flush();
    if (this.failure) {
      const err = this.failure;
      this.failure = null;
      throw err;
    }
  }

  private enqueue(op: () => Promise<void>): void {
    this.chain = this.chain.then(op).catch((err: unknown) => { this.failure ??= err; });
  }

  private mac(record: Buffer, slot: number): Buffer {
    if (!this.macKey) throw new BlockError('E_BAD_KEY', 'cache index: records are signed with the disk key; useKey() first');
    const where = Buffer.alloc(4);
    where.writeUInt32BE(slot);
    return createHmac('sha256', this.macKey).update(record.subarray(0, MAC_AT)).update(this.header.generation).update(where)
      .digest().subarray(0, MAC_BYTES);
  }

  /** A new generation: records of the old one no longer verify, so nothing needs erasing. */
  private async reset(blockBytes: number, writerEpoch: number): Promise<void> {
    this.header = { blockBytes, writerEpoch, generation: this.freshGeneration() };
    this.begunHere = true;
    await this.writeHeader();
  }

  private async writeHeader(): Promise<void> {
    const h = Buffer.alloc(HEADER_USED);
    h.write(MAGIC, 0, 'latin1');
    h.writeUInt32BE(this.header.blockBytes, 8);
    h.writeUInt32BE(this.header.writerEpoch, 12);
    this.header.generation.copy(h, 16);
    headerCheck(h).copy(h, 32);
    await this.store.write(0, h);
    await this.store.flush();
  }
}

function recordAt(slot: number): number {
  return INDEX_HEADER_BYTES + slot * INDEX_RECORD_BYTES;
}

function headerCheck(h: Buffer): Buffer {
  return createHmac('sha256', 'spillway cache index header').update(h.subarray(0, 32)).digest().subarray(0, 16);
}

function parseHeader(h: Buffer): Header | null {
  if (h.subarray(0, 8).toString('latin1') !== MAGIC || !headerCheck(h).equals(h.subarray(32, 48))) return null;
  return { blockBytes: h.readUInt32BE(8), writerEpoch: h.readUInt32BE(12), generation: Buffer.from(h.subarray(16, 32)) };
}
