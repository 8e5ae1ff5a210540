/* The secure cache's options, fill tickets and stats (the class is in secure-cache.ts). */
import type { BlockDevice } from '../block-device.js';
import type { ContentMemo } from '../content-memo.js';
import type { CacheIndex } from './cache-index.js';

export interface SecureCacheOptions {
  name?: string;
  /** 32-byte AES-256 key handed over by the on-prem proxy. Kept in memory only. */
  key: Uint8Array;
  /**
   * A number on-prem hands out with the key, different for every cache session
   * that uses this key (0 .. 2^32-1). It salts the session key and prefixes
   * every nonce; see SecureCache on nonces.
   */
  keyEpoch: number;
  /** Where ciphertext lives: a SparseStore in simulation, a FileStore in a cache dir live. */
  store: BlockDevice;
  capacityBytes: number;
  blockBytes?: number;
  /**
   * Where the index is kept at rest (reconciled with the disk first, see
   * CacheIndex): entries it holds whose sealed bytes still authenticate are
   * served again. Without one the cache starts empty on every open.
   */
  index?: CacheIndex;
  /** Signatures by content across the run (a simulation shares one among all its proxies). */
  contentMemo?: ContentMemo;
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
  /** Blocks a reopened index brought back (their seal verified) when the cache opened. */
  restored: number;
  blocks: number;
  usedBytes: number;
  capacityBytes: number;
  blockBytes: number;
}
