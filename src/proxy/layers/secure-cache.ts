import { consecutiveRuns } from '../../util/runs.js';
import { createCipheriv, createDecipheriv, createHmac, hash, hkdfSync } from 'node:crypto';
import { BlockError, E_INTEGRITY, E_NOSPC, checkRange, type BlockDevice, type WriteOptions, type ZeroOptions } from '../block-device.js';
import { Layer } from '../layer.js';

export const CACHE_BLOCK_BYTES = 64 * 1024;
export const E_NONCE_REUSE = 'E_NONCE_REUSE';
export const E_BAD_KEY = 'E_BAD_KEY';

const TAG_BYTES = 16;
/** The store's first page holds a guard against reusing a key epoch (never the key). */
const HEADER_BYTES = 4096;
const HEADER_MAGIC = 'SPWCACHE';

/** sha256 of a block's plaintext: the content signature the link and read path use for dedup. */
export function signatureOf(data: Uint8Array): Buffer {
  // The one-shot hash skips building a Hash object: most of the cost of hashing one small block.
  return hash('sha256', data, 'buffer');
}

function sigKey(sig: Uint8Array | string): string {
  return typeof sig === 'string' ? sig.toLowerCase() : Buffer.from(sig).toString('hex');
}

export interface SecureCacheOptions {
  name?: string;
  /** 32-byte AES-256 key handed over by the on-prem proxy. Kept in memory only. */
  key: Uint8Array;
  /**
   * A number on-prem hands out with the key, different for every cache session
   * that uses this key (0 .. 2^32-1). It salts the session key and prefixes
   * every nonce; see the nonce note below.
   */
  keyEpoch: number;
  /** Where ciphertext lives: a SparseStore in simulation, a FileStore in a cache dir live. */
  store: BlockDevice;
  capacityBytes: number;
  blockBytes?: number;
}

export interface CachePutOptions {
  /** Install only if no write or invalidation touched the block since the ticket was taken. */
  ticket?: FillTicket;
  /** The block arrives ahead of demand (prefetch/read-ahead); a later hit counts as a prefetch hit. */
  prefetched?: boolean;
}

/** One block of a `putMany`. */
export interface CacheFill {
  block: number;
  data: Uint8Array;
  /** As CachePutOptions.ticket, for this block. */
  ticket?: FillTicket;
  /** As CachePutOptions.prefetched, for this block (default: the batch's). */
  prefetched?: boolean;
}

/** Taken before fetching a block from below, so a fill that raced a write never installs stale data. */
export interface FillTicket {
  readonly block: number;
  stale: boolean;
}

export interface SecureCacheStats {
  hits: number;
  misses: number;
  puts: number;
  /** Puts not installed: a write raced the fill, the cache has no room, or capacity is zero. */
  putsDropped: number;
  evictions: number;
  invalidations: number;
  integrityFailures: number;
  /** Hits on blocks that were put as prefetched and not yet read. */
  prefetchHits: number;
  /** findBySignature answered with data. */
  dedupHits: number;
  blocks: number;
  usedBytes: number;
  capacityBytes: number;
  blockBytes: number;
}

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
 * memory: after a restart the cache starts empty. Eviction: lowest priority
 * first, least recently used within a priority.
 */
export class SecureCache {
  readonly name: string;
  readonly blockBytes: number;
  private readonly sessionKey: Buffer;
  private readonly epochBytes: Buffer;
  private readonly stride: number;
  private counter = 0n;
  private capacitySlots: number;
  private highWater = 0;
  /** Slots below this may hold ciphertext in the store (what a shrink trims back). */
  private slotsEverUsed = 0;
  private freeSlots: number[] = [];
  private readonly index = new Map<number, Entry>();
  /** priority -> blocks in recency order (oldest first). */
  private readonly tiers = new Map<number, Map<number, Entry>>();
  private readonly bySig = new Map<string, Set<number>>();
  private readonly pins = new Map<number, number>();
  private readonly pendingFree = new Set<number>();
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
    integrityFailures: 0, prefetchHits: 0, dedupHits: 0,
  };

  private constructor(private readonly store: BlockDevice, options: SecureCacheOptions, sessionKey: Buffer) {
    this.name = options.name ?? 'secure-cache';
    this.blockBytes = options.blockBytes ?? CACHE_BLOCK_BYTES;
    this.stride = this.blockBytes + TAG_BYTES;
    this.sessionKey = sessionKey;
    this.epochBytes = Buffer.alloc(4);
    this.epochBytes.writeUInt32BE(options.keyEpoch);
    this.capacitySlots = Math.floor(options.capacityBytes / this.blockBytes);
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
    const fingerprint = createHmac('sha256', key).update('spillway secure-cache key fingerprint').digest().subarray(0, 16);
    const header = await store.read(0, 32);
    if (header.subarray(0, 8).toString('latin1') === HEADER_MAGIC && header.subarray(8, 24).equals(fingerprint)) {
      const lastEpoch = header.readUInt32BE(24);
      if (keyEpoch <= lastEpoch) {
        throw new BlockError(E_NONCE_REUSE,
          `${name}: key epoch ${keyEpoch} was already used with this key on ${store.name} (last ${lastEpoch}); on-prem must hand out a higher epoch or a new key`,
          { details: { keyEpoch, lastEpoch } });
      }
    }
    const fresh = Buffer.alloc(32);
    fresh.write(HEADER_MAGIC, 0, 'latin1');
    fingerprint.copy(fresh, 8);
    fresh.writeUInt32BE(keyEpoch, 24);
    await store.write(0, fresh);
    await store.flush();
    const salt = Buffer.alloc(4);
    salt.writeUInt32BE(keyEpoch);
    const sessionKey = Buffer.from(hkdfSync('sha256', key, salt, 'spillway secure-cache session', 32));
    const cache = new SecureCache(store, { ...options, blockBytes }, sessionKey);
    cache.checkStoreFits(cache.capacitySlots);
    return cache;
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
    return this.capacitySlots * this.blockBytes;
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
        this.pin(slot);
        staged.push({ i, s: { block, prefetched: own ?? prefetched, slot, seq, counter: this.counter++, plain: data } });
      }
      let written = false;
      try {
        await this.writeSealed(staged.map((x) => x.s));
        written = true;
      } finally {
        for (const { s } of staged) {
          this.unpin(s.slot);
          if (!written) this.release(s.slot);
        }
      }
      for (const { i, s } of staged) {
        const current = this.writing.get(s.block);
        if (current?.latest !== s.seq || s.slot >= this.capacitySlots) {
          this.release(s.slot);
          this.dropPut();
          continue;
        }
        const entry: Entry = { block: s.block, slot: s.slot, length: s.plain.length, counter: s.counter, sig: hash('sha256', s.plain, 'hex'), priority, prefetched: s.prefetched };
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
    const grew = slots >= this.capacitySlots;
    this.capacitySlots = slots;
    if (grew) return;
    this.freeSlots = this.freeSlots.filter((s) => s < slots);
    this.highWater = Math.min(this.highWater, slots);
    this.evictOverflow();
    // Compact: move ciphertext out of slots past the new end. The AAD does not
    // name the slot, so the sealed bytes move verbatim (no re-encryption, no new nonce).
    for (const entry of [...this.index.values()]) {
      if (entry.slot < slots) continue;
      const target = this.freeSlot();
      if (target === undefined) {
        this.remove(entry.block);
        this.counters.evictions++;
        continue;
      }
      const from = entry.slot;
      this.pin(from);
      this.pin(target);
      let moved = false;
      try {
        const sealed = await this.store.read(from * this.stride + HEADER_BYTES, entry.length + TAG_BYTES);
        await this.store.write(target * this.stride + HEADER_BYTES, sealed);
        if (this.index.get(entry.block) === entry && entry.slot === from && target < this.capacitySlots) {
          entry.slot = target;
          moved = true;
        }
      } finally {
        this.unpin(from);
        this.unpin(target);
      }
      if (moved) this.release(from);
      else this.release(target);
    }
    const tail = slots * this.stride + HEADER_BYTES;
    if (tail < this.store.size() && ![...this.pins.keys()].some((s) => s >= slots)) {
      // Give the space back (a sparse store or thin volume shrinks); the bytes there were ciphertext anyway.
      const end = Math.min(this.store.size(), this.slotsEverUsed * this.stride + HEADER_BYTES);
      if (end > tail) await this.store.trim(tail, end - tail).catch(() => undefined);
      this.slotsEverUsed = Math.min(this.slotsEverUsed, slots);
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
    for (let i = 0; i < order.length;) {
      let j = i + 1;
      while (j < order.length && order[j]!.slot === order[j - 1]!.slot + 1 && order[j - 1]!.plain.length === this.blockBytes) j++;
      const run = order.slice(i, j);
      const last = run[run.length - 1]!;
      const buf = Buffer.allocUnsafe((run.length - 1) * this.stride + last.plain.length + TAG_BYTES);
      run.forEach((s, k) => this.sealInto(s, buf, k * this.stride));
      writes.push(this.store.write(run[0]!.slot * this.stride + HEADER_BYTES, buf));
      i = j;
    }
    await Promise.all(writes);
  }

  private sealInto(s: Staged, out: Buffer, at: number): void {
    const cipher = createCipheriv('aes-256-gcm', this.sessionKey, this.nonce(s.counter));
    cipher.setAAD(aad(s.block, s.plain.length));
    const body = cipher.update(s.plain);
    body.copy(out, at);
    cipher.final();
    cipher.getAuthTag().copy(out, at + s.plain.length);
  }

  /** The sealed bytes of each entry, reading runs of adjacent full slots at once. */
  private async readSealed(entries: Entry[]): Promise<Buffer[]> {
    const out: Buffer[] = new Array(entries.length);
    const order = entries.map((entry, i) => ({ entry, i, slot: entry.slot })).sort((a, b) => a.slot - b.slot);
    for (const o of order) this.pin(o.slot);
    try {
      const reads: Array<Promise<void>> = [];
      for (let i = 0; i < order.length;) {
        let j = i + 1;
        while (j < order.length && order[j]!.slot === order[j - 1]!.slot + 1 && order[j - 1]!.entry.length === this.blockBytes) j++;
        const run = order.slice(i, j);
        const last = run[run.length - 1]!;
        const bytes = (run.length - 1) * this.stride + last.entry.length + TAG_BYTES;
        reads.push(this.store.read(run[0]!.slot * this.stride + HEADER_BYTES, bytes).then((buf) => {
          run.forEach((r, k) => { out[r.i] = buf.subarray(k * this.stride, k * this.stride + r.entry.length + TAG_BYTES); });
        }));
        i = j;
      }
      await Promise.all(reads);
    } finally {
      for (const o of order) this.unpin(o.slot);
    }
    return out;
  }

  /** Decrypt and authenticate one entry's sealed bytes; a failure drops the block and throws E_INTEGRITY. */
  private open(entry: Entry, sealed: Buffer): Buffer {
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.sessionKey, this.nonce(entry.counter));
      decipher.setAAD(aad(entry.block, entry.length));
      decipher.setAuthTag(sealed.subarray(entry.length));
      const plain = decipher.update(sealed.subarray(0, entry.length));
      decipher.final();
      return plain;
    } catch (err) {
      this.counters.integrityFailures++;
      if (this.index.get(entry.block) === entry) this.remove(entry.block);
      throw new BlockError(E_INTEGRITY,
        `${this.name}: block ${entry.block} failed authentication in ${this.store.name} slot ${entry.slot}: the cache's backing store was tampered with or corrupted; the block was dropped`,
        { cause: err, details: { block: entry.block, slot: entry.slot } });
    }
  }

  /** One scratch nonce: createCipheriv copies the IV, so it is free again as soon as the call returns. */
  private readonly nonceScratch = Buffer.alloc(12);

  private nonce(counter: bigint): Buffer {
    const n = this.nonceScratch;
    this.epochBytes.copy(n, 0);
    n.writeBigUInt64BE(counter, 4);
    return n;
  }

  private dropPut(): false {
    this.counters.putsDropped++;
    return false;
  }

  private staleTickets(block: number): void {
    const set = this.tickets.get(block);
    if (set) for (const t of set) t.stale = true;
  }

  private install(entry: Entry): void {
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
    const tier = this.tiers.get(entry.priority)!;
    tier.delete(block);
    if (tier.size === 0) this.tiers.delete(entry.priority);
    const sigs = this.bySig.get(entry.sig)!;
    sigs.delete(block);
    if (sigs.size === 0) {
      this.bySig.delete(entry.sig);
      this.dedupMemo.delete(entry.sig);
    }
    this.usedBytes -= entry.length;
    this.release(entry.slot);
    return true;
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
    while (this.index.size > this.capacitySlots && this.evictOne()) { /* evict until it fits */ }
  }

  private freeSlot(): number | undefined {
    const s = this.freeSlots.pop();
    if (s !== undefined) return s;
    if (this.highWater < this.capacitySlots) {
      this.slotsEverUsed = Math.max(this.slotsEverUsed, this.highWater + 1);
      return this.highWater++;
    }
    return undefined;
  }

  private allocSlot(): number | undefined {
    for (;;) {
      const s = this.freeSlot();
      if (s !== undefined) return s;
      // Evicting a slot someone is reading frees it only later; keep evicting until one is free now.
      if (!this.evictOne()) return undefined;
    }
  }

  private pin(slot: number): void {
    this.pins.set(slot, (this.pins.get(slot) ?? 0) + 1);
  }

  private unpin(slot: number): void {
    const n = (this.pins.get(slot) ?? 1) - 1;
    if (n > 0) {
      this.pins.set(slot, n);
      return;
    }
    this.pins.delete(slot);
    if (this.pendingFree.delete(slot)) this.makeFree(slot);
  }

  private release(slot: number): void {
    if (this.pins.has(slot)) this.pendingFree.add(slot);
    else this.makeFree(slot);
  }

  private makeFree(slot: number): void {
    if (slot < this.capacitySlots && slot < this.highWater) this.freeSlots.push(slot);
  }
}

/** One scratch AAD buffer: setAAD consumes it at once. */
const aadScratch = Buffer.alloc(12);

function aad(block: number, length: number): Buffer {
  const b = aadScratch;
  b.writeBigUInt64BE(BigInt(block), 0);
  b.writeUInt32BE(length, 8);
  return b;
}

function range(from: number, to: number): number[] {
  const out: number[] = [];
  for (let i = from; i < to; i++) out.push(i);
  return out;
}

export interface CacheLayerOptions {
  /** Priority of blocks a foreground read brings in. */
  readPriority?: number;
  /** Priority of blocks a guest write puts in (they are hot: just written). */
  writePriority?: number;
}

export interface CacheLayerStats {
  /** Foreground reads served entirely from the cache. */
  readHits: number;
  /** Foreground reads that had to go below for at least one block. */
  readMisses: number;
  bytesFromCache: number;
  bytesFromBelow: number;
  /** Blocks a read found already being fetched by someone else (prefetch, another read). */
  joinedFills: number;
}

/**
 * The cache as a layer: reads are served from the SecureCache when every
 * block is there, otherwise the missing blocks are fetched from below (one
 * read per contiguous run, block-aligned), put in the cache and stitched in.
 * Concurrent fills of one block are joined, so a read arriving while a
 * prefetch of its block is in flight waits for that fetch instead of issuing
 * a second one. Writes go through to below, then replace fully covered
 * blocks and drop partially covered ones. `prefetch` fills the cache.
 * An E_INTEGRITY from the cache fails the read (loud) and the bad block is
 * dropped, so a retry refetches it from below.
 */
export class CacheLayer extends Layer {
  readonly name: string;
  /** Fetches in flight per block; `foreground` once a read joined it (then it is no longer ahead of demand). */
  private readonly fills = new Map<number, { data: Promise<Buffer>; foreground: boolean }>();
  private readonly readPriority: number;
  private readonly writePriority: number;
  private readonly counters: CacheLayerStats = { readHits: 0, readMisses: 0, bytesFromCache: 0, bytesFromBelow: 0, joinedFills: 0 };

  constructor(below: BlockDevice, readonly cache: SecureCache, options: CacheLayerOptions = {}) {
    super(below);
    this.name = cache.name;
    this.readPriority = options.readPriority ?? 1;
    this.writePriority = options.writePriority ?? 1;
  }

  stats(): CacheLayerStats {
    return { ...this.counters };
  }

  override async read(offset: number, length: number): Promise<Buffer> {
    checkRange(this, offset, length, 'read');
    if (length === 0) return Buffer.alloc(0);
    const B = this.cache.blockBytes;
    const first = Math.floor(offset / B);
    const last = Math.floor((offset + length - 1) / B);
    const out = Buffer.alloc(length);
    let missed = false;
    const parts = await Promise.all(range(first, last + 1).map((b) => this.cache.get(b)));
    const missing: number[] = [];
    parts.forEach((p, i) => {
      if (!p) missing.push(first + i);
      else this.counters.bytesFromCache += p.length;
    });
    if (missing.length) {
      missed = true;
      const fetched = await this.fillBlocks(missing, this.readPriority, false);
      for (const [b, data] of fetched) parts[b - first] = data;
    }
    for (let b = first; b <= last; b++) {
      const data = parts[b - first]!;
      const blockStart = b * B;
      const from = Math.max(offset, blockStart);
      const to = Math.min(offset + length, blockStart + data.length);
      data.copy(out, from - offset, from - blockStart, to - blockStart);
    }
    if (missed) this.counters.readMisses++;
    else this.counters.readHits++;
    return out;
  }

  override async write(offset: number, data: Uint8Array, options?: WriteOptions): Promise<void> {
    checkRange(this, offset, data.length, 'write');
    this.cache.invalidate(offset, data.length);
    await this.below.write(offset, data, options);
    const B = this.cache.blockBytes;
    const size = this.size();
    const first = Math.ceil(offset / B);
    for (let b = first; b * B < offset + data.length; b++) {
      const blockLen = Math.min(B, size - b * B);
      if (b * B + blockLen > offset + data.length) break;
      await this.cache.put(b, data.subarray(b * B - offset, b * B - offset + blockLen), this.writePriority);
    }
  }

  override async trim(offset: number, length: number, options?: WriteOptions): Promise<void> {
    this.cache.invalidate(offset, length);
    await this.below.trim(offset, length, options);
  }

  override async writeZeroes(offset: number, length: number, options?: ZeroOptions): Promise<void> {
    this.cache.invalidate(offset, length);
    await this.below.writeZeroes(offset, length, options);
  }

  /** Bring the range into the cache at `priority`; the blocks count as prefetched until read. */
  override async prefetch(offset: number, length: number, priority = 0): Promise<void> {
    checkRange(this, offset, length, 'read');
    if (length === 0) return;
    const B = this.cache.blockBytes;
    const missing = range(Math.floor(offset / B), Math.floor((offset + length - 1) / B) + 1).filter((b) => !this.cache.has(b));
    if (missing.length) await this.fillBlocks(missing, priority, true);
  }

  /** Fetch blocks from below (joining fills in flight), put them in the cache, return their plaintext. */
  private async fillBlocks(blocks: number[], priority: number, prefetched: boolean): Promise<Map<number, Buffer>> {
    const result = new Map<number, Buffer>();
    const waits: Array<Promise<void>> = [];
    const toFetch: number[] = [];
    for (const b of blocks) {
      const pending = this.fills.get(b);
      if (pending) {
        if (!prefetched) {
          this.counters.joinedFills++;
          pending.foreground = true;
        }
        waits.push(pending.data.then((data) => { result.set(b, data); }));
      } else toFetch.push(b);
    }
    for (const run of consecutiveRuns(toFetch)) waits.push(this.fillRun(run[0]!, run[run.length - 1]!, priority, prefetched, result));
    await Promise.all(waits);
    return result;
  }

  private fillRun(first: number, last: number, priority: number, prefetched: boolean, result: Map<number, Buffer>): Promise<void> {
    const B = this.cache.blockBytes;
    const start = first * B;
    const end = Math.min(this.size(), (last + 1) * B);
    const tickets = range(first, last + 1).map((b) => this.cache.beginFill(b));
    const fetch = this.below.read(start, end - start);
    fetch.catch(() => tickets.forEach((t) => this.cache.abandonFill(t)));
    for (let b = first; b <= last; b++) {
      const from = b * B - start;
      const p = fetch.then((all) => all.subarray(from, Math.min(all.length, from + B)));
      p.catch(() => undefined);
      this.fills.set(b, { data: p, foreground: !prefetched });
    }
    return fetch.then(async (all) => {
      this.counters.bytesFromBelow += all.length;
      for (let b = first; b <= last; b++) {
        const data = all.subarray(b * B - start, Math.min(all.length, b * B - start + B));
        result.set(b, data);
        const ahead = prefetched && !this.fills.get(b)?.foreground;
        await this.cache.put(b, data, priority, { ticket: tickets[b - first]!, prefetched: ahead });
      }
    }).finally(() => {
      for (let b = first; b <= last; b++) this.fills.delete(b);
    });
  }
}

