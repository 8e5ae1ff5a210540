import { hash } from 'node:crypto';
import { range } from '../../util/runs.js';
import { invariant } from '../../errors.js';
import { BlockError, E_INTEGRITY, E_NOSPC, type BlockDevice } from '../block-device.js';
import {
  BlockSealer, HEADER_BYTES, TAG_BYTES, adjacentSlotRuns, claimEpoch, sessionKeyFor, sigKey,
} from './secure-cache-seal.js';
import { CacheSlots } from './cache-slots.js';
import type { CacheIndex, IndexRecord } from './cache-index.js';
import type { CacheFill, CachePutOptions, FillTicket, SecureCacheOptions, SecureCacheStats } from './secure-cache-types.js';

export const CACHE_BLOCK_BYTES = 64 * 1024;
export { E_NONCE_REUSE } from './secure-cache-seal.js';
export const E_BAD_KEY = 'E_BAD_KEY';

export type { CacheFill, CachePutOptions, FillTicket, SecureCacheOptions, SecureCacheStats } from './secure-cache-types.js';

interface Staged {
  block: number;
  prefetched: boolean;
  slot: number;
  seq: number;
  counter: bigint;
  plain: Uint8Array;
}

/** Plaintext of this many recent dedup answers is kept in memory (see findBySignature). */
const DEDUP_MEMO_ENTRIES = 256;

interface Entry {
  block: number;
  slot: number;
  length: number;
  /** The key epoch the block was sealed under: the current one, or an earlier session's (a reopened index). */
  keyEpoch: number;
  counter: bigint;
  sig: string;
  priority: number;
  prefetched: boolean;
}

/**
 * A bounded block cache, encrypted at rest with AES-256-GCM (the seed's §2.5:
 * "encrypts all data at rest, with a key provided from on-premises").
 *
 * Nonces are never random (determinism) and never repeat for one key:
 * - the session key is HKDF(key, salt = keyEpoch), so two sessions with
 *   different epochs never share a GCM key even with the same on-prem key;
 * - each encryption's nonce is keyEpoch (4 bytes) || a 64-bit counter that
 *   only grows within the session (one per put and per relocation copy is not
 *   needed: relocation moves ciphertext verbatim);
 * - the store's header keeps an HMAC fingerprint of the key and the highest
 *   epoch opened with it, so reopening with an old epoch fails with
 *   E_NONCE_REUSE instead of silently repeating nonces.
 * The AAD binds each ciphertext to its block index and length, so a
 * ciphertext copied into another slot or block fails authentication too.
 *
 * The index (which block is in which slot, nonces, signatures) lives in
 * memory, and with a CacheIndex also at rest: a reopened cache serves the
 * blocks of earlier sessions under their own epoch's session key (derived
 * again from the key), and seals new ones under the new epoch with a counter
 * from 0, so (epoch, counter) never repeats. Eviction: lowest priority first,
 * least recently used within a priority.
 */
export class SecureCache {
  readonly name: string;
  readonly blockBytes: number;
  private readonly sealer: BlockSealer;
  private readonly keyEpoch: number;
  /** Sealers of earlier epochs, for blocks a reopened index still holds. */
  private readonly olderSealers = new Map<number, BlockSealer>();
  private readonly index_: CacheIndex | undefined;
  private readonly stride: number;
  private counter = 0n;
  private readonly slots: CacheSlots;
  private readonly index = new Map<number, Entry>();
  /** priority -> blocks in recency order (oldest first). */
  private readonly tiers = new Map<number, Map<number, Entry>>();
  private readonly bySig = new Map<string, Set<number>>();
  private readonly tickets = new Map<number, Set<FillTicket>>();
  /** Puts in flight per block: only the latest one started may install. */
  private readonly writing = new Map<number, { latest: number; count: number }>();
  private putSeq = 0;
  private usedBytes = 0;
  /**
   * Signature -> plaintext of recent dedup answers, for content the cache
   * still holds (dropped with its last holder). Content-addressed, so it can
   * never be stale; it saves a store read and a decrypt for content that
   * repeats (boot disks repeat the same blocks over and over). Memory only,
   * like the key: nothing here is at rest.
   */
  private readonly dedupMemo = new Map<string, Buffer>();
  private resizing: Promise<void> = Promise.resolve();
  private readonly counters = {
    hits: 0, misses: 0, puts: 0, putsDropped: 0, evictions: 0, invalidations: 0,
    integrityFailures: 0, prefetchHits: 0, dedupHits: 0, restored: 0,
  };

  /** `headerDamaged`: the store's header failed its crc at open, so nothing earlier sessions left was kept. */
  private constructor(private readonly store: BlockDevice, private readonly options: SecureCacheOptions, sessionKey: Buffer, readonly headerDamaged = false) {
    this.name = options.name ?? 'secure-cache';
    this.blockBytes = options.blockBytes ?? CACHE_BLOCK_BYTES;
    this.stride = SecureCache.slotBytes(this.blockBytes);
    this.keyEpoch = options.keyEpoch;
    this.sealer = new BlockSealer(sessionKey, options.keyEpoch);
    this.index_ = options.index;
    this.slots = new CacheSlots(Math.floor(options.capacityBytes / this.blockBytes));
  }

  /** Bytes one slot takes in the store: a block's ciphertext and its tag. */
  static slotBytes(blockBytes: number): number {
    return blockBytes + TAG_BYTES;
  }

  /** Bytes a backing store needs for a cache of `capacityBytes` (the header, every slot, one block of slack). */
  static storeBytes(capacityBytes: number, blockBytes: number): number {
    return HEADER_BYTES + Math.ceil(capacityBytes / blockBytes) * SecureCache.slotBytes(blockBytes) + blockBytes;
  }

  static async open(options: SecureCacheOptions): Promise<SecureCache> {
    const { key, keyEpoch, store, capacityBytes, blockBytes = CACHE_BLOCK_BYTES } = options;
    const name = options.name ?? 'secure-cache';
    if (!(key instanceof Uint8Array) || key.length !== 32) {
      throw new BlockError(E_BAD_KEY, `${name}: key must be 32 bytes (AES-256), got ${key instanceof Uint8Array ? key.length : typeof key}`);
    }
    if (!Number.isInteger(keyEpoch) || keyEpoch < 0 || keyEpoch > 0xffff_ffff) {
      throw new BlockError(E_BAD_KEY, `${name}: keyEpoch must be an integer in 0..4294967295, got ${keyEpoch}`);
    }
    if (!Number.isInteger(blockBytes) || blockBytes < 512 || blockBytes % 512 !== 0) {
      throw new BlockError('E_BAD_SIZE', `${name}: blockBytes must be a positive multiple of 512, got ${blockBytes}`);
    }
    if (!Number.isInteger(capacityBytes) || capacityBytes < 0) {
      throw new BlockError('E_BAD_SIZE', `${name}: capacityBytes must be a non-negative integer, got ${capacityBytes}`);
    }
    if (store.size() < HEADER_BYTES) {
      throw new BlockError(E_NOSPC, `${name}: backing store ${store.name} holds ${store.size()} bytes, needs at least ${HEADER_BYTES} for the header`);
    }
    const { lastEpoch, damaged } = await claimEpoch(store, key, keyEpoch, name);
    const cache = new SecureCache(store, { ...options, blockBytes }, sessionKeyFor(key, keyEpoch), damaged);
    cache.checkStoreFits(cache.slots.capacity);
    // Only blocks of epochs this store's header vouches for: a later one was never sealed here with this key.
    if (options.index) await cache.restore(options.index, lastEpoch);
    return cache;
  }

  /**
   * Install what the index at rest holds: records whose MAC holds, one per
   * block (the latest seal wins), and only if the slot's bytes authenticate
   * now. A record written before its data, a slot reused or torn since: all
   * fail here and are dropped, never served.
   */
  private async restore(index: CacheIndex, lastEpoch: number | undefined): Promise<void> {
    index.useKey(this.options.key);
    const latest = new Map<number, IndexRecord>();
    for (const r of await index.load(this.slots.capacity)) {
      if (lastEpoch === undefined || r.keyEpoch > lastEpoch || r.length < 1 || r.length > this.blockBytes) { index.clear(r.slot); continue; }
      const seen = latest.get(r.block);
      if (!seen || r.keyEpoch > seen.keyEpoch || (r.keyEpoch === seen.keyEpoch && r.counter > seen.counter)) {
        if (seen) index.clear(seen.slot);
        latest.set(r.block, r);
      } else index.clear(r.slot);
    }
    const records = [...latest.values()].sort((a, b) => a.keyEpoch - b.keyEpoch || (a.counter < b.counter ? -1 : a.counter > b.counter ? 1 : 0));
    const CHUNK = 256;
    for (let i = 0; i < records.length; i += CHUNK) {
      const entries: Entry[] = records.slice(i, i + CHUNK).map((r) => ({ ...r, prefetched: false }));
      const sealed = await this.readSealed(entries);
      entries.forEach((entry, k) => {
        // The MAC vouches for the signature, GCM for the plaintext it was computed from (decrypted and dropped here).
        try { this.sealerOf(entry.keyEpoch).open(entry.block, entry.counter, entry.length, sealed[k]!); } catch { index.clear(entry.slot); return; }
        this.slots.claim(entry.slot);
        this.install(entry, false);
      });
    }
    this.slots.settleClaims();
    this.counters.restored = this.index.size;
    await index.settle();
  }

  /** Make every index change so far durable (a no-op without an index at rest). */
  persistIndex(): Promise<void> {
    return this.index_ ? this.index_.settle() : Promise.resolve();
  }

  private sealerOf(keyEpoch: number): BlockSealer {
    if (keyEpoch === this.keyEpoch) return this.sealer;
    let s = this.olderSealers.get(keyEpoch);
    if (!s) this.olderSealers.set(keyEpoch, (s = new BlockSealer(sessionKeyFor(this.options.key, keyEpoch), keyEpoch)));
    return s;
  }

  has(block: number): boolean {
    return this.index.has(block);
  }

  /** Hex sha256 of the cached block's plaintext, if cached. */
  signature(block: number): string | undefined {
    return this.index.get(block)?.sig;
  }

  /** The current capacity in bytes. */
  get capacityBytes(): number {
    return this.slots.capacity * this.blockBytes;
  }

  /** The block's plaintext, or undefined on a miss. A tampered block throws E_INTEGRITY (and is dropped). */
  async get(block: number): Promise<Buffer | undefined> {
    return (await this.getMany([block]))[0];
  }

  /**
   * Plaintext of each block (undefined on a miss), as `get` for each, but
   * blocks in adjacent slots come from the store in one read: a cold cache
   * fills slots in arrival order, so a run of blocks mostly sits in a run of
   * slots, and one read of the run costs what one read of a block does.
   */
  async getMany(blocks: number[]): Promise<Array<Buffer | undefined>> {
    const out: Array<Buffer | undefined> = new Array(blocks.length);
    const found: Array<{ i: number; entry: Entry }> = [];
    for (let i = 0; i < blocks.length; i++) {
      const entry = this.index.get(blocks[i]!);
      if (entry) found.push({ i, entry });
      else this.counters.misses++;
    }
    if (found.length === 0) return out;
    const sealed = await this.readSealed(found.map((f) => f.entry));
    for (let k = 0; k < found.length; k++) {
      const { i, entry } = found[k]!;
      out[i] = this.open(entry, sealed[k]!);
      this.counters.hits++;
      if (entry.prefetched) {
        entry.prefetched = false;
        this.counters.prefetchHits++;
      }
      this.touch(entry);
    }
    return out;
  }

  /** Count misses a caller settled from `has` alone (it skipped `getMany` because no block was cached). */
  noteMisses(blocks: number): void {
    this.counters.misses += blocks;
  }

  /** Plaintext of any cached block whose content has this signature (FIG 5 step 519). Callers must not modify it. */
  async findBySignature(sig: Uint8Array | string): Promise<Buffer | undefined> {
    const key = sigKey(sig);
    const memo = this.dedupMemo.get(key);
    if (memo) {
      this.counters.dedupHits++;
      return memo;
    }
    const blocks = this.bySig.get(key);
    if (!blocks) return undefined;
    // Any holder will do: take the first current one (no copy of the set, which for a
    // block repeated all over the disk holds thousands of entries).
    let entry: Entry | undefined;
    for (const block of blocks) {
      const e = this.index.get(block);
      if (e && e.sig === key) { entry = e; break; }
    }
    if (!entry) return undefined;
    const plain = this.open(entry, (await this.readSealed([entry]))[0]!);
    this.counters.dedupHits++;
    this.touch(entry);
    this.dedupMemo.set(key, plain);
    if (this.dedupMemo.size > DEDUP_MEMO_ENTRIES) this.dedupMemo.delete(this.dedupMemo.keys().next().value!);
    return plain;
  }

  /** Call before fetching `block` from below; pass the ticket to `put`. */
  beginFill(block: number): FillTicket {
    const ticket: FillTicket = { block, stale: false };
    let set = this.tickets.get(block);
    if (!set) this.tickets.set(block, (set = new Set()));
    set.add(ticket);
    return ticket;
  }

  /** Give up a ticket whose fetch failed. */
  abandonFill(ticket: FillTicket): void {
    const set = this.tickets.get(ticket.block);
    set?.delete(ticket);
    if (set?.size === 0) this.tickets.delete(ticket.block);
  }

  /**
   * Store a block's plaintext. Returns whether it was installed: a fill whose
   * ticket went stale, a put overtaken by a later put of the same block, or a
   * cache with no room (capacity zero, every slot busy) does not install.
   */
  async put(block: number, plaintext: Uint8Array, priority = 0, options: CachePutOptions = {}): Promise<boolean> {
    const fill: CacheFill = options.ticket ? { block, data: plaintext, ticket: options.ticket } : { block, data: plaintext };
    return (await this.putMany([fill], priority, options.prefetched ? { prefetched: true } : {}))[0]!;
  }

  /**
   * `put` for several blocks at one priority, with one store write per run
   * of adjacent slots (a cold cache hands out adjacent slots, so a pushed or
   * fetched run of blocks is one write instead of one per block).
   */
  async putMany(fills: CacheFill[], priority = 0, options: { prefetched?: boolean } = {}): Promise<boolean[]> {
    for (const { block, data } of fills) {
      if (!Number.isInteger(block) || block < 0) throw new BlockError('E_RANGE', `${this.name}: block index must be a non-negative integer, got ${block}`);
      if (data.length === 0 || data.length > this.blockBytes) {
        throw new BlockError('E_RANGE', `${this.name}: a block holds 1..${this.blockBytes} bytes, got ${data.length}`);
      }
    }
    const prefetched = options.prefetched ?? false;
    const result: boolean[] = new Array(fills.length).fill(false);
    const staged: Array<{ i: number; s: Staged }> = [];
    const writing: number[] = [];
    try {
      for (let i = 0; i < fills.length; i++) {
        const { block, data, ticket, prefetched: own } = fills[i]!;
        if (ticket) this.abandonFill(ticket);
        if (ticket?.stale) { this.dropPut(); continue; }
        if (!ticket) this.staleTickets(block);
        const seq = ++this.putSeq;
        const w = this.writing.get(block) ?? { latest: 0, count: 0 };
        w.latest = seq;
        w.count++;
        this.writing.set(block, w);
        writing.push(block);
        // The old content is superseded now; a reader that already pinned its slot still reads it intact.
        this.remove(block);
        const slot = this.allocSlot();
        if (slot === undefined) { this.dropPut(); continue; }
        this.slots.pin(slot);
        staged.push({ i, s: { block, prefetched: own ?? prefetched, slot, seq, counter: this.counter++, plain: data } });
      }
      let written = false;
      try {
        await this.writeSealed(staged.map((x) => x.s));
        written = true;
      } finally {
        for (const { s } of staged) {
          this.slots.unpin(s.slot);
          if (!written) this.slots.release(s.slot);
        }
      }
      for (const { i, s } of staged) {
        const current = this.writing.get(s.block);
        if (current?.latest !== s.seq || s.slot >= this.slots.capacity) {
          this.slots.release(s.slot);
          this.dropPut();
          continue;
        }
        const entry: Entry = { block: s.block, slot: s.slot, length: s.plain.length, keyEpoch: this.keyEpoch, counter: s.counter, sig: this.signatureHex(s.plain), priority, prefetched: s.prefetched };
        this.remove(s.block); // only the latest put installs, so nothing should be here; never leak an entry if it is
        this.install(entry);
        this.counters.puts++;
        result[i] = true;
      }
      this.evictOverflow();
      return result;
    } finally {
      for (const block of writing) {
        const current = this.writing.get(block);
        if (current && --current.count === 0) this.writing.delete(block);
      }
    }
  }

  /** Drop every block overlapping the byte range; in-flight fills of them will not install. */
  invalidate(offset: number, length: number): void {
    if (length <= 0) return;
    const first = Math.floor(offset / this.blockBytes);
    const last = Math.floor((offset + length - 1) / this.blockBytes);
    const inRange = (b: number): boolean => b >= first && b <= last;
    const span = last - first + 1;
    const blocks = span <= this.index.size ? range(first, last + 1) : [...this.index.keys()].filter(inRange);
    for (const b of blocks) if (this.remove(b)) this.counters.invalidations++;
    for (const [b, set] of this.tickets) if (inRange(b)) for (const t of set) t.stale = true;
    for (const [b, w] of this.writing) if (inRange(b)) w.latest = ++this.putSeq;
  }

  /** Change capacity while running. Shrinking evicts (priority, then LRU) and compacts slots. */
  resize(capacityBytes: number): Promise<void> {
    if (!Number.isInteger(capacityBytes) || capacityBytes < 0) {
      return Promise.reject(new BlockError('E_BAD_SIZE', `${this.name}: capacityBytes must be a non-negative integer, got ${capacityBytes}`));
    }
    const run = this.resizing.then(() => this.doResize(capacityBytes));
    this.resizing = run.catch(() => undefined);
    return run;
  }

  stats(): SecureCacheStats {
    return {
      ...this.counters,
      blocks: this.index.size,
      usedBytes: this.usedBytes,
      capacityBytes: this.capacityBytes,
      blockBytes: this.blockBytes,
    };
  }

  /** Cached block indices (for tests, the prioritizer and reports). */
  blocks(): number[] {
    return [...this.index.keys()].sort((a, b) => a - b);
  }

  /** Victims in eviction order (lowest priority first, oldest first): what the next evictions take. */
  evictionOrder(): number[] {
    const out: number[] = [];
    for (const p of [...this.tiers.keys()].sort((a, b) => a - b)) for (const b of this.tiers.get(p)!.keys()) out.push(b);
    return out;
  }

  private async doResize(capacityBytes: number): Promise<void> {
    const slots = Math.floor(capacityBytes / this.blockBytes);
    this.checkStoreFits(slots);
    if (slots >= this.slots.capacity) {
      this.slots.capacity = slots;
      return;
    }
    this.slots.shrink(slots);
    this.evictOverflow();
    // Compact: move ciphertext out of slots past the new end. The AAD does not
    // name the slot, so the sealed bytes move verbatim (no re-encryption, no new nonce).
    for (const entry of [...this.index.values()]) {
      if (entry.slot < slots) continue;
      const target = this.slots.take();
      if (target === undefined) {
        this.remove(entry.block);
        this.counters.evictions++;
        continue;
      }
      const from = entry.slot;
      this.slots.pin(from);
      this.slots.pin(target);
      let moved = false;
      try {
        const sealed = await this.store.read(from * this.stride + HEADER_BYTES, entry.length + TAG_BYTES);
        await this.store.write(target * this.stride + HEADER_BYTES, sealed);
        if (this.index.get(entry.block) === entry && entry.slot === from && target < this.slots.capacity) {
          entry.slot = target;
          moved = true;
          // Both records stay valid for a moment (same seal, same block): a reopen keeps either.
          this.index_?.put(this.recordOf(entry));
          this.index_?.clear(from);
        }
      } finally {
        this.slots.unpin(from);
        this.slots.unpin(target);
      }
      if (moved) this.slots.release(from);
      else this.slots.release(target);
    }
    const tail = slots * this.stride + HEADER_BYTES;
    if (tail < this.store.size() && !this.slots.pinnedFrom(slots)) {
      // Give the space back (a sparse store or thin volume shrinks); the bytes there were ciphertext anyway.
      const end = Math.min(this.store.size(), this.slots.everUsed * this.stride + HEADER_BYTES);
      if (end > tail) await this.store.trim(tail, end - tail).catch(() => undefined);
      this.slots.everUsed = Math.min(this.slots.everUsed, slots);
    }
  }

  private checkStoreFits(slots: number): void {
    const need = HEADER_BYTES + slots * this.stride;
    if (need > this.store.size()) {
      throw new BlockError(E_NOSPC,
        `${this.name}: ${slots} blocks of ${this.blockBytes} bytes need ${need} bytes of backing store, ${this.store.name} holds ${this.store.size()}; grow the store first`,
        { details: { slots, need, storeBytes: this.store.size() } });
    }
  }

  /** Seal the staged blocks and write them, one store write per run of adjacent full slots. */
  private async writeSealed(staged: Staged[]): Promise<void> {
    const writes: Array<Promise<void>> = [];
    const order = [...staged].sort((a, b) => a.slot - b.slot);
    for (const run of adjacentSlotRuns(order, (s) => s.slot, (s) => s.plain.length === this.blockBytes)) {
      const last = run[run.length - 1]!;
      const buf = Buffer.allocUnsafe((run.length - 1) * this.stride + last.plain.length + TAG_BYTES);
      run.forEach((s, k) => this.sealer.sealInto(s.block, s.counter, s.plain, buf, k * this.stride));
      writes.push(this.store.write(run[0]!.slot * this.stride + HEADER_BYTES, buf));
    }
    await Promise.all(writes);
  }

  /** The sealed bytes of each entry, reading runs of adjacent full slots at once. */
  private async readSealed(entries: Entry[]): Promise<Buffer[]> {
    const out: Buffer[] = new Array(entries.length);
    const order = entries.map((entry, i) => ({ entry, i, slot: entry.slot })).sort((a, b) => a.slot - b.slot);
    for (const o of order) this.slots.pin(o.slot);
    try {
      const reads: Array<Promise<void>> = [];
      for (const run of adjacentSlotRuns(order, (o) => o.slot, (o) => o.entry.length === this.blockBytes)) {
        const last = run[run.length - 1]!;
        const bytes = (run.length - 1) * this.stride + last.entry.length + TAG_BYTES;
        reads.push(this.store.read(run[0]!.slot * this.stride + HEADER_BYTES, bytes).then((buf) => {
          run.forEach((r, k) => { out[r.i] = buf.subarray(k * this.stride, k * this.stride + r.entry.length + TAG_BYTES); });
        }));
      }
      await Promise.all(reads);
    } finally {
      for (const o of order) this.slots.unpin(o.slot);
    }
    return out;
  }

  /** Decrypt and authenticate one entry's sealed bytes; a failure drops the block and throws E_INTEGRITY. */
  private open(entry: Entry, sealed: Buffer): Buffer {
    try {
      return this.sealerOf(entry.keyEpoch).open(entry.block, entry.counter, entry.length, sealed);
    } catch (err) {
      this.counters.integrityFailures++;
      if (this.index.get(entry.block) === entry) this.remove(entry.block);
      throw new BlockError(E_INTEGRITY,
        `${this.name}: block ${entry.block} failed authentication in ${this.store.name} slot ${entry.slot}: the cache's backing store was tampered with or corrupted; the block was dropped`,
        { cause: err, details: { block: entry.block, slot: entry.slot } });
    }
  }

  /** Lower-case hex sha256 of a block's plaintext (the index's signature key). */
  private signatureHex(plain: Uint8Array): string {
    const memo = this.options.contentMemo;
    return memo ? memo.signatureHex(plain) : hash('sha256', plain, 'hex');
  }

  private dropPut(): false {
    this.counters.putsDropped++;
    return false;
  }

  private staleTickets(block: number): void {
    const set = this.tickets.get(block);
    if (set) for (const t of set) t.stale = true;
  }

  private install(entry: Entry, record = true): void {
    invariant(!this.index.has(entry.block), () => `${this.name}: block ${entry.block} installed twice`);
    if (record) this.index_?.put(this.recordOf(entry));
    this.index.set(entry.block, entry);
    let tier = this.tiers.get(entry.priority);
    if (!tier) this.tiers.set(entry.priority, (tier = new Map()));
    tier.set(entry.block, entry);
    let sigs = this.bySig.get(entry.sig);
    if (!sigs) this.bySig.set(entry.sig, (sigs = new Set()));
    sigs.add(entry.block);
    this.usedBytes += entry.length;
  }

  private touch(entry: Entry): void {
    if (this.index.get(entry.block) !== entry) return;
    const tier = this.tiers.get(entry.priority)!;
    tier.delete(entry.block);
    tier.set(entry.block, entry);
  }

  private remove(block: number): boolean {
    const entry = this.index.get(block);
    if (!entry) return false;
    this.index.delete(block);
    const tier = this.tiers.get(entry.priority);
    const sigs = this.bySig.get(entry.sig);
    // The index, the eviction tiers and the signature map list the same blocks.
    invariant(tier !== undefined && sigs !== undefined && tier.delete(block) && sigs.delete(block), () => `${this.name}: block ${block} is in the index but not in its tier or signature set`);
    if (tier.size === 0) this.tiers.delete(entry.priority);
    if (sigs.size === 0) {
      this.bySig.delete(entry.sig);
      this.dedupMemo.delete(entry.sig);
    }
    this.usedBytes -= entry.length;
    invariant(this.usedBytes >= 0, () => `${this.name}: used bytes went negative`);
    this.index_?.clear(entry.slot);
    this.slots.release(entry.slot);
    return true;
  }

  private recordOf({ prefetched: _, ...record }: Entry): IndexRecord {
    return record;
  }

  private evictOne(): boolean {
    let lowest: number | undefined;
    for (const p of this.tiers.keys()) if (lowest === undefined || p < lowest) lowest = p;
    if (lowest === undefined) return false;
    const victim = this.tiers.get(lowest)!.keys().next().value as number;
    this.remove(victim);
    this.counters.evictions++;
    return true;
  }

  private evictOverflow(): void {
    while (this.index.size > this.slots.capacity && this.evictOne()) { /* evict until it fits */ }
    invariant(this.index.size <= this.slots.capacity, () => `${this.name}: ${this.index.size} blocks indexed in ${this.slots.capacity} slots`);
  }

  private allocSlot(): number | undefined {
    for (;;) {
      const s = this.slots.take();
      if (s !== undefined) return s;
      // Evicting a slot someone is reading frees it only later; keep evicting until one is free now.
      if (!this.evictOne()) return undefined;
    }
  }
}
