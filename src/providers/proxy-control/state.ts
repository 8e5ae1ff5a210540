import { InputError, SpillwayError } from '../../errors.js';
import type { DiskLease, Hypervisor } from '../../ports/hypervisor.js';
import type { PersistencePolicy } from '../../ports/proxy-control.js';
import type { World } from '../../world/types.js';
import type { BlockDevice } from '../../proxy/block-device.js';
import type { ContentMemo } from '../../proxy/content-memo.js';
import type { CloudProxy } from '../../proxy/cloud/cloud-proxy.js';
import type { LinkClient } from '../../proxy/link/client.js';
import type { RemoteDisk } from '../../proxy/link/remote-disk.js';
import type { MigrationLayer } from '../../proxy/layers/migration.js';
import type { NbdServer } from '../../proxy/nbd/server.js';
import type { OnpremProxy } from '../../proxy/onprem/onprem-proxy.js';
import type { ReadAheadOptions } from '../../proxy/layers/read-ahead.js';
import { SecureCache } from '../../proxy/layers/secure-cache.js';
import { SparseStore } from '../../proxy/stores/sparse-store.js';
import type { CowOverlay, TargetDevice, WriteTracker } from './devices.js';
import type { BootPhase, GuestBootModel } from './guest-boot.js';
import type { DirtyModel, RunStateReceiver, RunStateServer } from './run-state.js';

/**
 * What CoreProxyControl keeps: its options, the on-prem exports, the cloud
 * targets and their disk sessions, migration volumes and run-state mirrors.
 * The concerns (exports.ts, sessions.ts, siblings.ts, boot-replay.ts,
 * migration.ts, mirroring.ts, cache.ts) are functions of this state.
 */

export const MiB = 1024 * 1024;

export interface ProxyControlOptions {
  hypervisor: Hypervisor;
  /** 64 hex characters (or 32 bytes) shared by the on-prem and cloud proxies. */
  pairingKey: string | Buffer;
  /** Where the on-prem link server listens ("onprem:7000" simulated, "0.0.0.0:7000" live). */
  onpremAddress: string;
  /** Where the on-prem run-state server listens (FIG 15 mirroring). */
  runStateAddress: string;
  /** Where a VM's storage target (an NBD server) listens. Default: "target-<vmId>:10809" (a simulated name). */
  targetAddress?: (vmId: string) => string;
  /** The guests' boot files and boot reads (FIG 21, awaitBoot). Without one, boots read nothing and prioritize finds no files. */
  guest?: GuestBootModel;
  /**
   * Makes a store of `sizeBytes` for state that must outlive a proxy: cloud
   * write-behind stores, caches, migration volumes and logs, clone overlays.
   * Default: a SparseStore (simulation); live, FileStores in a state directory.
   */
  stores?: (name: string, sizeBytes: number) => BlockDevice;
  /** A disk as frozen by a hypervisor snapshot (clones, FIG 12). Default: the hypervisor's `openSnapshotDisk` when it has one. */
  snapshotDisk?: (snapshotId: string, diskId: string) => BlockDevice;
  /**
   * Secure cache per disk proxy; the store is sized for `maxCapacityBytes` so it can grow online.
   * `blockBytes` (default 4096, a power of two from 4096) is the cache block: larger blocks cost fewer
   * seals, hashes and index entries per guest byte for some read amplification.
   */
  cache?: { capacityBytes?: number; maxCapacityBytes?: number; blockBytes?: number };
  /**
   * What startPrefetch streams. true (default): the image's profile (FIG 22 recorded read order, then the
   * FIG 21 boot files). 'recorded': the profile only once an earlier session of the image recorded its
   * reads, so the first VM of an image boots on demand and later ones get what it read; sessions stop
   * reporting reads when their boot is done, so the recorded order is the boot's. false: nothing
   * (demand-only boot streaming); reads still fetch on demand.
   */
  prefetch?: boolean | 'recorded';
  journalBytes?: number;
  rpoUs?: number;
  readAhead?: ReadAheadOptions | false;
  /** How the instance reads during a boot: reads outstanding and CPU between reads. */
  boot?: { depth?: number; thinkUs?: number };
  /** Unit of migration transfer and of its persistent log (default 256 KiB). */
  migrationChunkBytes?: number;
  /**
   * Signatures and inflates by content, shared by the on-prem proxy and every
   * cloud proxy this adapter opens (a simulation's VMs read the same image
   * blocks; link and cache encryption stay per session). None live.
   */
  contentMemo?: ContentMemo;
}

export interface ExportRecord {
  exportName: string;
  /** The hypervisor disk it is (or is a clone of). */
  diskId: string;
  imageId: string;
  /** VM whose guest config says which disk boots. */
  vmId: string;
  /** Two exports with the same base hold the same clean content (FIG 14 siblings). */
  base: string;
  device: BlockDevice;
  overlay: CowOverlay | null;
}

export interface Peer {
  instanceId: string;
  link: LinkClient;
  remote: RemoteDisk;
  cache: SecureCache;
  /** The key epoch its cache was opened with (the disk's key is the primary's). */
  keyEpoch: number;
  view: BlockDevice;
}

export interface Migration {
  volumeId: string;
  layer: MigrationLayer;
  writes: WriteTracker;
  cursor: number;
}

export interface DiskSession {
  proxyId: string;
  vmId: string;
  diskId: string;
  exp: ExportRecord;
  policy: PersistencePolicy;
  proxy: CloudProxy;
  target: TargetDevice;
  /** The read path's sibling list (FIG 14): sibling clones and scale-out peers. */
  siblings: BlockDevice[];
  /** Targets of sibling clones this session may read from (openTarget's siblingSources). */
  siblingSources: string[];
  peers: Map<string, Peer>;
  prefetchStarted: boolean;
  migration: Migration | null;
  discarded: boolean;
  /** Write-behind's store: what it holds is part of the disk a migration must move. */
  writeStore: BlockDevice;
}

/** A boot phase's replay, kept with the target so a re-run (a restarted controller) joins or continues it. */
export interface BootProgress {
  next: number;
  bytes: number;
  done: boolean;
  /** Reads a failed attempt took but did not finish: the next attempt makes them first. */
  retry: number[];
  running: Promise<void> | null;
}

export const newBootProgress = (): BootProgress => ({ next: 0, bytes: 0, done: false, retry: [], running: null });

export interface VmTarget {
  vmId: string;
  instanceId: string;
  address: string;
  sessions: DiskSession[];
  nbd: NbdServer;
  closeNbd: () => Promise<void>;
  boot: Record<BootPhase, BootProgress>;
}


/** The adapter's state, shared by the functions of each concern. */
export interface ProxyControlState {
  readonly world: World;
  readonly options: ProxyControlOptions;
  readonly onprem: OnpremProxy;
  readonly runState: RunStateServer;
  readonly key: Buffer;
  readonly mounts: Map<string, { owner: string; lease: DiskLease; exportName: string }>;
  readonly exports: Map<string, ExportRecord>;
  readonly clones: Map<string, string[]>;
  readonly targets: Map<string, VmTarget>;
  readonly sessions: Map<string, DiskSession>;
  readonly volumes: Map<string, { store: BlockDevice; log: BlockDevice }>;
  readonly receivers: Map<string, RunStateReceiver>;
  readonly mirrors: Map<string, DirtyModel>;
  readonly makeStore: (name: string, sizeBytes: number) => BlockDevice;
  readonly cacheBytes: number;
  readonly maxCacheBytes: number;
  readonly migrationChunk: number;
  readonly cacheBlockBytes: number;
}

/** Checks the options' numbers and starts empty. */
export function createProxyControlState(world: World, options: ProxyControlOptions, onprem: OnpremProxy, runState: RunStateServer, key: Buffer): ProxyControlState {
  const cacheBytes = checkPositiveInt(options.cache?.capacityBytes, 'cache.capacityBytes', 256 * MiB);
  const maxCacheBytes = checkPositiveInt(options.cache?.maxCapacityBytes, 'cache.maxCapacityBytes', 4 * cacheBytes);
  if (maxCacheBytes < cacheBytes) throw new InputError('E_BAD_FIELD', `proxyControl.cache.maxCapacityBytes (${maxCacheBytes}) must be at least cache.capacityBytes (${cacheBytes})`);
  const cacheBlockBytes = checkPositiveInt(options.cache?.blockBytes, 'cache.blockBytes', 4096);
  if (cacheBlockBytes < 4096 || (cacheBlockBytes & (cacheBlockBytes - 1)) !== 0) throw new InputError('E_BAD_FIELD', `proxyControl.cache.blockBytes: expected a power of two of at least 4096, got ${cacheBlockBytes}`);
  const migrationChunk = checkPositiveInt(options.migrationChunkBytes, 'migrationChunkBytes', 256 * 1024);
  if (migrationChunk % 4096 !== 0) throw new InputError('E_BAD_FIELD', `proxyControl.migrationChunkBytes: expected a multiple of 4096, got ${migrationChunk}`);
  return {
    world, options, onprem, runState, key,
    mounts: new Map(), exports: new Map(), clones: new Map(), targets: new Map(), sessions: new Map(),
    volumes: new Map(), receivers: new Map(), mirrors: new Map(),
    makeStore: options.stores ?? ((name, size) => new SparseStore(name, size)),
    cacheBytes, maxCacheBytes, migrationChunk, cacheBlockBytes,
  };
}

export function requireSession(pc: ProxyControlState, proxyId: string): DiskSession {
  const s = pc.sessions.get(proxyId);
  if (!s) throw new SpillwayError('E_NO_PROXY', `no cloud proxy "${proxyId}" (ids are "<vmId>/<diskId>"); open: ${[...pc.sessions.keys()].join(', ') || '(none)'}`);
  return s;
}

export function requireTarget(pc: ProxyControlState, vmId: string): VmTarget {
  const t = pc.targets.get(vmId);
  if (!t) throw new SpillwayError('E_NO_TARGET', `no storage target is open for ${vmId}`);
  return t;
}

export function checkString(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length === 0) throw new InputError('E_BAD_FIELD', `proxyControl.${field}: expected a non-empty string, got ${JSON.stringify(value)}`);
  return value;
}

function checkPositiveInt(value: number | undefined, field: string, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v <= 0) throw new InputError('E_BAD_FIELD', `proxyControl.${field}: expected a positive integer, got ${JSON.stringify(value)}`);
  return v;
}

/** Bytes a secure cache store needs for `capacityBytes` (docs/proxy/secure-cache.md). */
export function cacheStoreBytes(capacityBytes: number, blockBytes: number): number {
  return SecureCache.storeBytes(capacityBytes, blockBytes);
}

/** The run's content memo as proxy options (nothing when there is none). */
export function memoOf(pc: ProxyControlState): { contentMemo?: ContentMemo } {
  return pc.options.contentMemo ? { contentMemo: pc.options.contentMemo } : {};
}

export const exportSafe = (s: string): string => s.replace(/[^A-Za-z0-9._:/-]/g, '_');
