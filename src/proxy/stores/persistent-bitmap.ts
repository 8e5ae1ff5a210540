import { BlockError, E_NOSPC, type BlockDevice } from '../block-device.js';

const PAGE_BYTES = 4096;

/**
 * A bitmap kept in memory and persisted to a store page by page. Used by the
 * migration layer (what has been transferred) and by write-behind (which
 * granules of the cloud-side disk hold guest writes).
 *
 * `set`/`clear` change memory only and mark the page dirty; `persist()` writes
 * the dirty pages and flushes the store. After a crash the bitmap is what the
 * last `persist()` wrote: bits set since then are lost (callers order their
 * data writes so that a lost bit only means redoing work, never losing data).
 */
export class PersistentBitmap {
  /**
   * The bits, one page of PAGE_BYTES at a time: a page with no bit ever set
   * is absent, so the map of a 500 GiB disk with a few writes costs a few
   * pages, not 16 MiB (opening it reads only what the store holds).
   */
  private readonly pages = new Map<number, Uint8Array>();
  private readonly dirtyPages = new Set<number>();
  private setCount = 0;
  private readonly bytes: number;

  private constructor(private readonly store: BlockDevice, readonly length: number) {
    this.bytes = PersistentBitmap.bytesFor(length);
  }

  static bytesFor(length: number): number {
    return Math.ceil(length / 8);
  }

  /** Load the bitmap of `length` bits from `store` (a fresh store reads as all clear). */
  static async open(store: BlockDevice, length: number): Promise<PersistentBitmap> {
    const bytes = PersistentBitmap.bytesFor(length);
    if (store.size() < bytes) {
      throw new BlockError(E_NOSPC, `${store.name}: a bitmap of ${length} bits needs ${bytes} bytes, the store holds ${store.size()}`);
    }
    const map = new PersistentBitmap(store, length);
    if (bytes === 0) return map;
    // Only what the store holds data for: holes and zero extents are pages with no bit set.
    const extents = (await store.extents(0, bytes)).filter((e) => e.type === 'data');
    const reads = await Promise.all(extents.map((e) => {
      const first = Math.floor(e.offset / PAGE_BYTES) * PAGE_BYTES;
      const end = Math.min(bytes, Math.ceil((e.offset + e.length) / PAGE_BYTES) * PAGE_BYTES);
      return store.read(first, end - first).then((data) => ({ first, data }));
    }));
    for (const { first, data } of reads) {
      for (let at = 0; at < data.length; at += PAGE_BYTES) map.adopt((first + at) / PAGE_BYTES, data.subarray(at, Math.min(data.length, at + PAGE_BYTES)));
    }
    return map;
  }

  /** A page as read from the store (kept only if some bit in it is set). */
  private adopt(page: number, data: Uint8Array): void {
    if (this.pages.has(page)) return;
    const own = new Uint8Array(PAGE_BYTES);
    own.set(data);
    // Bits past `length` in the last byte are never meaningful.
    const lastByte = this.bytes - 1 - page * PAGE_BYTES;
    if (this.length % 8 && lastByte < PAGE_BYTES) own[lastByte]! &= (1 << (this.length % 8)) - 1;
    const n = countSet(own);
    if (n === 0) return;
    this.pages.set(page, own);
    this.setCount += n;
  }

  get(i: number): boolean {
    const byte = i >> 3;
    const page = this.pages.get(Math.floor(byte / PAGE_BYTES));
    return page !== undefined && ((page[byte % PAGE_BYTES]! >> (i & 7)) & 1) === 1;
  }

  /** Number of set bits. */
  get count(): number {
    return this.setCount;
  }

  set(i: number): void {
    this.assign(i, true);
  }

  clear(i: number): void {
    this.assign(i, false);
  }

  setRange(first: number, lastExclusive: number): void {
    for (let i = first; i < lastExclusive; i++) this.assign(i, true);
  }

  allSet(first: number, lastExclusive: number): boolean {
    for (let i = first; i < lastExclusive; i++) if (!this.get(i)) return false;
    return true;
  }

  /** The first clear bit at or after `from` (wrapping is the caller's business), or -1. */
  nextClear(from: number): number {
    const pageBits = PAGE_BYTES * 8;
    for (let i = Math.max(0, from); i < this.length; i++) {
      const page = this.pages.get(Math.floor(i / pageBits));
      // A page with no bit set: its first bit from here is clear.
      if (!page) return i;
      const byte = page[(i >> 3) % PAGE_BYTES]!;
      if (byte === 0xff && (i & 7) === 0) { i += 7; continue; }
      if (!((byte >> (i & 7)) & 1)) return i;
    }
    return -1;
  }

  get dirty(): boolean {
    return this.dirtyPages.size > 0;
  }

  /** Write dirty pages and flush the store. */
  async persist(): Promise<void> {
    if (this.dirtyPages.size === 0) return;
    const pages = [...this.dirtyPages].sort((a, b) => a - b);
    // Cleared before the writes, so a bit set while they are in flight marks its page again.
    this.dirtyPages.clear();
    try {
      for (const p of pages) {
        const start = p * PAGE_BYTES;
        const end = Math.min(this.bytes, start + PAGE_BYTES);
        // Copy: the in-memory page may change while the write is in flight.
        await this.store.write(start, Buffer.from(this.pages.get(p)!.subarray(0, end - start)));
      }
      await this.store.flush();
    } catch (err) {
      // Nothing of this round is known durable: its pages stay dirty, or the next persist would
      // write nothing and report the bits as safe (a clean stop would then lose cloud-only writes).
      for (const p of pages) this.dirtyPages.add(p);
      throw err;
    }
  }

  private assign(i: number, on: boolean): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.length) {
      throw new BlockError('E_RANGE', `${this.store.name}: bit ${i} outside bitmap of ${this.length} bits`);
    }
    const byte = i >> 3;
    const p = Math.floor(byte / PAGE_BYTES);
    let page = this.pages.get(p);
    if (!page) {
      if (!on) return;
      this.pages.set(p, (page = new Uint8Array(PAGE_BYTES)));
    }
    const at = byte % PAGE_BYTES;
    const mask = 1 << (i & 7);
    const was = (page[at]! & mask) !== 0;
    if (was === on) return;
    page[at] = on ? page[at]! | mask : page[at]! & ~mask;
    this.setCount += on ? 1 : -1;
    this.dirtyPages.add(p);
  }
}

/** Set bits in `bytes`, a word at a time: a fresh bitmap of a large disk is megabytes of zeros. */
function countSet(bytes: Uint8Array): number {
  let n = 0;
  let i = 0;
  if (bytes.byteOffset % 4 === 0) {
    const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length >>> 2);
    for (const w of words) if (w !== 0) n += popcount(w);
    i = words.length * 4;
  }
  for (; i < bytes.length; i++) n += popcount(bytes[i]!);
  return n;
}

function popcount(b: number): number {
  let n = 0;
  for (let x = b; x; x &= x - 1) n++;
  return n;
}
