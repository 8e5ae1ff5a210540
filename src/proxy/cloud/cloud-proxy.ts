import type { ContentMemo } from '../content-memo.js';
import type { Timer, World } from '../../world/types.js';
import type { BlockDevice } from '../block-device.js';
import { invariant } from '../../errors.js';
import { StoreJournal } from '../journal.js';
import { Layer } from '../layer.js';
import { LinkClient } from '../link/client.js';
import { LinkError, E_ONPREM_BEHIND } from '../link/errors.js';
import type { WriterClaim } from '../link/messages.js';
import type { WriteGroup, WriteSink } from '../write-group.js';
import { parsePairingKey } from '../link/pairing-key.js';
import type { RemoteDisk } from '../link/remote-disk.js';
import { PrefetchLayer, type PrefetchOptions } from '../layers/prefetch.js';
import { ReadAheadLayer, type ReadAheadOptions } from '../layers/read-ahead.js';
import { ReadPath, type LocalSource } from '../layers/read-path.js';
import { SecureCache } from '../layers/secure-cache.js';
import { CacheIndex, indexStoreBytes } from '../layers/cache-index.js';
import { PersistentBitmap } from '../stores/persistent-bitmap.js';
import { SparseStore } from '../stores/sparse-store.js';
import { StatsLayer, StatsRegistry, emitProxyStats } from '../layers/stats.js';
import { DEFAULT_GRANULE_BYTES, WriteBehind, type ByteRange, type Persistence, type WriteBehindStats } from '../layers/write-behind.js';
import { adoptWriterGrant, readWriterMeta, type WriterJournalMeta } from '../layers/write-behind-journal.js';
import { formatBytes, formatDurationUs } from '../../util/units.js';

/**
 * Where the cloud proxy keeps what must survive it: the write-behind store,
 * its written-granule map and its journal, the cache's sealed blocks and its
 * index. In a simulation the caller keeps these objects across a
 * crash/restart (as a disk would); live they are FileStores in a state
 * directory. Without a cacheIndex store (or a cache store) the cache starts
 * empty on every start.
 */
export interface CloudStores {
  writeStore: BlockDevice;
  writeMap: BlockDevice;
  journal: BlockDevice;
  cache?: BlockDevice;
  /** The cache index at rest (indexStoreBytes(slots) bytes): with `cache`, a restart is warm. */
  cacheIndex?: BlockDevice;
}

export interface CloudProxyOptions {
  /** The VM (or disk session) this proxy serves; names the trace source proxy/cloud/<name>. */
  name: string;
  /** Where the on-prem link server listens. */
  onprem: string;
  pairingKey: string | Buffer;
  /** This proxy's stable identity on the link (leases, dedup memory). Default: name. */
  peer?: string;
  disk: {
    id: string;
    image?: string;
    persistence?: Persistence;
    /** Regions that never go back on-prem (swap, /tmp). */
    nonPersistent?: ByteRange[];
  };
  stores: CloudStores;
  cacheCapacityBytes?: number;
  /** Cache block: also the unit of signatures and pushes on the link. Default 4 KiB. */
  blockBytes?: number;
  /** Local drives and sibling clones tried before on-prem (FIG 5, FIG 14). */
  locals?: LocalSource[];
  siblings?: BlockDevice[];
  /** Stream the disk's profile (FIG 21/22) when the cache is cold: default true. */
  streamProfile?: boolean;
  rateBytesPerS?: number;
  compressionLevel?: number;
  pushWindowBytes?: number;
  /**
   * Read-ahead windows (default: up to 128 KiB; on a WAN bandwidth is the
   * scarce thing) or false for none: when on-prem knows the file layout its
   * FIG 23 group pushes already read ahead, and the WAN bench is faster and
   * leaner without this layer.
   */
  readAhead?: ReadAheadOptions | false;
  prefetch?: PrefetchOptions;
  rpoUs?: number;
  shipThresholdBytes?: number;
  /**
   * Become the disk's writer although the last writer session did not end
   * cleanly (its unshipped writes, wherever they are, are given up).
   */
  takeOver?: boolean;
  /** Emit proxy.stats every this many µs (keeps a simulation from going idle; off by default). */
  statsEveryUs?: number;
  reconnectMinUs?: number;
  reconnectMaxUs?: number;
  /**
   * A guest read that needs on-prem fails (EIO over NBD) after this long
   * without an answer, e.g. while the link is down; none by default (it waits
   * for the link). `serve cloud` sets 30 s (--read-timeout).
   */
  readTimeoutUs?: number;
  /**
   * Signatures and inflates by content across the run (see ContentMemo): a
   * simulation shares one among all its proxies. Link and cache encryption
   * stay per session.
   */
  contentMemo?: ContentMemo;
}

export interface CloudProxy {
  /** What the storage target (NBD / the simulated guest) reads and writes. */
  readonly device: BlockDevice;
  readonly link: LinkClient;
  readonly remote: RemoteDisk;
  readonly cache: SecureCache;
  readonly readPath: ReadPath;
  readonly writeBehind: WriteBehind;
  readonly prefetch: PrefetchLayer;
  readonly readAhead: ReadAheadLayer | null;
  readonly registry: StatsRegistry;
  /** Bytes the guest read through the target. */
  guestBytes(): number;
  /** Link bytes both ways. */
  wireBytes(): number;
  /** Emit one proxy.stats trace event now. */
  emitStats(): void;
  /** Stop reporting guest reads to on-prem (FIG 22 input); what was reported stays recorded. */
  stopRecordingReads(): void;
  /** Wait until every acknowledged write is applied on-prem. */
  drain(): Promise<void>;
  /** Die without a goodbye (no flush, no detach): what a killed process leaves behind. */
  crash(): void;
  /** Flush, ship nothing more, release the on-prem lease, disconnect. */
  close(): Promise<void>;
}

/**
 * The top of the stack: counts guest read bytes and records which blocks the
 * guest reads first, in order, and reports them to on-prem in batches (the
 * cache serves most reads, so on-prem could not see this itself; FIG 22).
 */
class GuestRecorder extends Layer {
  readonly name = 'target';
  bytes = 0;
  private readonly seen = new Set<number>();
  private batch: Array<{ offset: number; length: number }> = [];
  private timer: Timer | null = null;

  constructor(below: BlockDevice, private readonly world: World, private readonly remote: RemoteDisk, private readonly blockBytes: number) {
    super(below);
  }

  /** Whether guest reads are reported to on-prem (FIG 22); counting goes on either way. */
  recording = true;

  override read(offset: number, length: number): Promise<Buffer> {
    this.bytes += length;
    if (!this.recording) return this.below.read(offset, length);
    const B = this.blockBytes;
    for (let b = Math.floor(offset / B); b * B < offset + length; b++) {
      if (this.seen.has(b)) continue;
      this.seen.add(b);
      const last = this.batch[this.batch.length - 1];
      if (last && last.offset + last.length === b * B) last.length += B;
      else this.batch.push({ offset: b * B, length: B });
    }
    if (this.batch.length >= 256) this.report();
    else if (this.batch.length && !this.timer) this.timer = this.world.clock.schedule(200_000, () => { this.timer = null; this.report(); });
    return this.below.read(offset, length);
  }

  report(): void {
    const batch = this.batch;
    this.batch = [];
    this.timer?.cancel();
    this.timer = null;
    if (batch.length) this.remote.reportAccess(batch).catch(() => undefined);
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = null;
  }
}

/**
 * The cloud edge proxy (§2.5). The storage target's device is the stack
 *   stats → write-behind (FIG 4) → read-ahead → prefetch → read-path (FIG 5:
 *   secure cache → local drives → sibling clones → on-prem through the link)
 * The cache key comes from on-prem with the attach, over the encrypted link.
 * Writes are journaled before they are acknowledged and ship as groups; a
 * restart over the same stores replays the journal and ships what is left.
 */
export async function createCloudProxy(world: World, options: CloudProxyOptions): Promise<CloudProxy> {
  const key = parsePairingKey(options.pairingKey, 'cloud.pairingKey');
  const src = `proxy/cloud/${options.name}`;
  const blockBytes = options.blockBytes ?? 4096;
  const { cache: cacheStore, cacheIndex: indexStore } = options.stores;
  const index = cacheStore && indexStore
    ? await CacheIndex.open(indexStore, blockBytes, () => world.unpredictable(`${src}/cache-generation`, 16))
    : undefined;
  // A cache with no index at rest is new on every start: so is its generation.
  const memoryGeneration = index ? '' : world.unpredictable(`${src}/cache-generation`, 16).toString('hex');
  const link = new LinkClient(world, {
    address: options.onprem,
    pairingKey: key,
    peer: options.peer ?? options.name,
    sigs: 'sha256',
    reportsAccess: true,
    cacheGeneration: () => index?.generation ?? memoryGeneration,
    ...(options.rateBytesPerS ? { rateBytesPerS: options.rateBytesPerS } : {}),
    ...(options.compressionLevel !== undefined ? { compressionLevel: options.compressionLevel } : {}),
    ...(options.pushWindowBytes ? { pushWindowBytes: options.pushWindowBytes } : {}),
    ...(options.reconnectMinUs ? { reconnectMinUs: options.reconnectMinUs } : {}),
    ...(options.reconnectMaxUs ? { reconnectMaxUs: options.reconnectMaxUs } : {}),
    ...(options.readTimeoutUs ? { readTimeoutUs: options.readTimeoutUs } : {}),
    ...(options.contentMemo ? { contentMemo: options.contentMemo } : {}),
  });
  // The journal first: what it holds is this writer's claim to its session on-prem.
  const journal = await StoreJournal.open(options.stores.journal);
  const held = readWriterMeta(journal);
  const persistence = options.disk.persistence ?? 'on-prem';
  const written = await WriteBehind.writtenGranules(options.stores.writeMap, options.stores.writeStore.size()) > 0;
  const claim: WriterClaim = {
    resume: held ? (held.writer ?? { epoch: 0, token: '' }) : null,
    // cloud-only writes never ship: they are the disk's only copy, valid over the on-prem state they were made on.
    unshipped: persistence === 'on-prem' ? journal.recovered.length > 0 : written,
    ...(options.takeOver ? { takeOver: true } : {}),
  };
  await link.connect();
  let remote: RemoteDisk | undefined;
  try {
    remote = await link.attach(options.disk.id, { mode: 'rw', blockBytes, writer: claim, ...(options.disk.image ? { image: options.disk.image } : {}) });
    // Before the written-granule map may be forgotten: the cache drops what this proxy wrote over.
    if (index) await index.reconcile(remote.writer, await writtenBlocks(options.stores.writeMap, remote.size(), blockBytes));
    await adoptWriterSession(journal, held, remote, options.stores.writeMap);
    return await assemble(world, options, { src, blockBytes, link, remote, journal, persistence, index });
  } catch (err) {
    await remote?.close().catch(() => undefined);
    await link.close();
    throw err;
  }
}

/**
 * Reconcile the journal with the session on-prem admitted. A new session
 * (on-prem grants one only when nothing is left to ship) starts its seqs at 1
 * and forgets the written-granule map: those writes are on-prem now, and a
 * later writer may have changed them there. A resumed session must not know
 * of groups on-prem never applied.
 */
async function adoptWriterSession(journal: StoreJournal, held: WriterJournalMeta | null, remote: RemoteDisk, writeMap: BlockDevice): Promise<void> {
  const writer = remote.writer;
  invariant(writer, 'a rw attach is answered with a writer session');
  if (writer.fresh) {
    await adoptWriterGrant(journal, { epoch: writer.epoch, token: writer.token });
    await writeMap.writeZeroes(0, writeMap.size());
    await writeMap.flush();
    return;
  }
  if (held && remote.lastSeqAtAttach < held.seq) {
    throw new LinkError(E_ONPREM_BEHIND,
      `disk ${remote.diskId}: on-prem says group ${remote.lastSeqAtAttach} of writer session ${writer.epoch} is its last, but it acknowledged `
      + `group ${held.seq} before; its apply journal (IMAGE.spillway-journal) was lost or rolled back. Writes after group `
      + `${remote.lastSeqAtAttach} are in this cache dir's write store only`,
      { details: { epoch: writer.epoch, onprem: remote.lastSeqAtAttach, acknowledged: held.seq } });
  }
}

/** Whether this proxy wrote over a cache block (its written-granule map, as it stands before a new session forgets it). */
async function writtenBlocks(writeMap: BlockDevice, diskBytes: number, blockBytes: number): Promise<(block: number) => boolean> {
  const G = DEFAULT_GRANULE_BYTES;
  const map = await PersistentBitmap.open(writeMap, Math.ceil(diskBytes / G));
  return (block) => {
    for (let g = Math.floor((block * blockBytes) / G); g * G < (block + 1) * blockBytes; g++) if (map.get(g)) return true;
    return false;
  };
}

async function assemble(
  world: World, options: CloudProxyOptions,
  parts: { src: string; blockBytes: number; link: LinkClient; remote: RemoteDisk; journal: StoreJournal; persistence: Persistence; index: CacheIndex | undefined },
): Promise<CloudProxy> {
  const { src, blockBytes, link, remote, journal, persistence, index } = parts;
  const capacity = options.cacheCapacityBytes ?? 256 * 1024 * 1024;
  const cacheStore = options.stores.cache ?? new SparseStore(`cache-store:${options.name}`, SecureCache.storeBytes(capacity, blockBytes));
  const cache = await SecureCache.open({
    name: `secure-cache:${options.name}`, key: remote.cacheKey, keyEpoch: remote.keyEpoch, store: cacheStore, capacityBytes: capacity, blockBytes,
    ...(index ? { index } : {}),
    ...(options.contentMemo ? { contentMemo: options.contentMemo } : {}),
  });
  if (cache.headerDamaged) world.log('warn', src, `cache store ${cacheStore.name}: its header is damaged (crc); nothing earlier sessions cached is kept, the cache starts empty`);
  if (index) world.log('info', src, `cache reopened: ${cache.stats().restored} block(s) kept from earlier sessions (generation ${index.generation})`);
  remote.setSignatureResolver((sig) => cache.findBySignature(sig));
  const readPath = new ReadPath({
    world, name: `read-path:${options.name}`, cache, remote,
    ...(options.locals ? { locals: options.locals } : {}),
    ...(options.siblings ? { siblings: options.siblings } : {}),
  });
  remote.onPush((offset, data) => { void readPath.acceptPush(offset, data); });

  const registry = new StatsRegistry();
  const prefetch = new PrefetchLayer(readPath, { blockBytes, ...options.prefetch });
  const readAhead = options.readAhead === false ? null : new ReadAheadLayer(prefetch, options.readAhead ?? { maxWindowBytes: 128 * 1024 });
  const writeBehind = await WriteBehind.open(readAhead ?? prefetch, {
    world,
    diskId: options.disk.id,
    persistence,
    ...(options.disk.nonPersistent ? { nonPersistent: options.disk.nonPersistent } : {}),
    store: options.stores.writeStore,
    mapStore: options.stores.writeMap,
    journal,
    // With a cache at rest, on-prem's copy of a block changes only once the cache dropped it durably.
    sink: index ? dropBeforeShipping(cache, remote) : remote,
    ...(options.rpoUs ? { rpoUs: options.rpoUs } : {}),
    ...(options.shipThresholdBytes ? { shipThresholdBytes: options.shipThresholdBytes } : {}),
  });
  if (persistence === 'on-prem') link.describeBacklog(() => describeBacklog(writeBehind.stats(), journal.capacityBytes));
  const counter = new GuestRecorder(writeBehind, world, remote, blockBytes);
  const device = new StatsLayer(counter, { clock: world.clock, registry, name: `target:${options.name}` });

  if ((options.streamProfile ?? true) && remote.profileBlocks > 0 && cache.stats().usedBytes === 0) {
    remote.streamProfile().catch((err: Error) => world.log('warn', src, `profile stream not started: ${err.message}`));
  }

  const wireBytes = (): number => { const w = link.wireBytes(); return w.in + w.out; };
  const emitStats = (): void => emitProxyStats(world, src, {
    cache: { stats: () => cache.stats() },
    prefetch: { stats: () => prefetch.stats() },
    writeBehind: { stats: () => writeBehind.stats() },
    wireBytes,
    guestBytes: () => counter.bytes,
  });
  let statsTimer: Timer | null = null;
  const arm = (): void => {
    if (!options.statsEveryUs) return;
    statsTimer = world.clock.schedule(options.statsEveryUs, () => { emitStats(); arm(); });
  };
  arm();

  return {
    device, link, remote, cache, readPath, writeBehind, prefetch, readAhead, registry,
    guestBytes: () => counter.bytes,
    wireBytes,
    emitStats,
    stopRecordingReads() {
      counter.report();
      counter.recording = false;
    },
    drain: () => writeBehind.drain(),
    crash() {
      statsTimer?.cancel();
      counter.stop();
      writeBehind.kill();
      link.crash();
    },
    async close() {
      statsTimer?.cancel();
      counter.report();
      await writeBehind.flush();
      // The session ends only when nothing acknowledged is left to ship; otherwise it stays on-prem's
      // current writer, and a new writer is refused until this journal ships (or --take-over).
      const ended = persistence === 'cloud-only' || writeBehind.stats().backlogBytes + writeBehind.stats().backlogOps === 0;
      writeBehind.kill();
      await cache.persistIndex().catch((err: Error) => world.log('warn', src, `cache index not saved: ${err.message}; the next start drops what it cannot verify`));
      await remote.close({ ended }).catch(() => undefined);
      await link.close();
    },
  };
}

/**
 * Ship through `remote`, dropping the group's blocks from the cache first
 * (durably: a restart must not bring back what on-prem no longer holds, even
 * for a write whose landing in the write store failed) and again after (a
 * fill may have raced the apply).
 */
function dropBeforeShipping(cache: SecureCache, remote: WriteSink): WriteSink {
  const drop = (g: WriteGroup): void => {
    for (const w of g.writes) cache.invalidate(w.offset, w.zero ? w.length : w.data.length);
  };
  return {
    async applyGroup(g) {
      drop(g);
      await cache.persistIndex();
      await remote.applyGroup(g);
      drop(g);
    },
  };
}

/** The write-behind backlog in words, for the link's outage log lines. */
function describeBacklog(wb: WriteBehindStats, journalBytes: number): string {
  if (wb.backlogOps === 0) return 'no acknowledged write waits to ship';
  const full = Math.round((1 - wb.journalFreeBytes / journalBytes) * 1000) / 10;
  return `shipping stalled: ${formatBytes(wb.backlogBytes)} of acknowledged writes (${wb.groupsPending} group${wb.groupsPending === 1 ? '' : 's'}, oldest ${formatDurationUs(wb.lagUs)}) `
    + `wait in the journal, ${full}% full (guest writes wait once it is full)`;
}

/** Stores for a simulated cloud proxy: sparse, so a large disk costs only what is written. */
export function memoryCloudStores(
  name: string, diskSizeBytes: number, options: { journalBytes?: number; granuleBytes?: number; cache?: { capacityBytes: number; blockBytes: number } } = {},
): CloudStores {
  const granule = options.granuleBytes ?? 4096;
  const c = options.cache;
  return {
    writeStore: new SparseStore(`wb-store:${name}`, diskSizeBytes),
    writeMap: new SparseStore(`wb-map:${name}`, Math.max(4096, Math.ceil(diskSizeBytes / granule / 8))),
    journal: new SparseStore(`wb-journal:${name}`, options.journalBytes ?? 256 * 1024 * 1024),
    // With a cache store and its index kept across restarts, a restart is warm.
    ...(c ? {
      cache: new SparseStore(`cache-store:${name}`, SecureCache.storeBytes(c.capacityBytes, c.blockBytes)),
      cacheIndex: new SparseStore(`cache-index:${name}`, indexStoreBytes(Math.ceil(c.capacityBytes / c.blockBytes))),
    } : {}),
  };
}
