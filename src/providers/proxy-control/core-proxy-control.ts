import { InputError, SpillwayError, errorCode } from '../../errors.js';
import type { CacheUsage, DiskExport, MigrationProgress, MirrorRound, PersistencePolicy, ProxyControl } from '../../ports/proxy-control.js';
import type { DiskLease, Hypervisor } from '../../ports/hypervisor.js';
import type { World } from '../../world/types.js';
import { BlockError, E_READONLY, checkRange, type BlockDevice, type Extent } from '../../proxy/block-device.js';
import { createCloudProxy, type CloudProxy, type CloudStores } from '../../proxy/cloud/cloud-proxy.js';
import { LinkClient } from '../../proxy/link/client.js';
import { parsePairingKey } from '../../proxy/link/pairing-key.js';
import type { RemoteDisk } from '../../proxy/link/remote-disk.js';
import { MigrationLayer } from '../../proxy/layers/migration.js';
import { NbdServer } from '../../proxy/nbd/server.js';
import { createOnpremProxy, type OnpremProxy } from '../../proxy/onprem/onprem-proxy.js';
import type { ReadAheadOptions } from '../../proxy/layers/read-ahead.js';
import { E_NOT_HELD, ReadPath } from '../../proxy/layers/read-path.js';
import { SecureCache } from '../../proxy/layers/secure-cache.js';
import { SparseStore } from '../../proxy/stores/sparse-store.js';
import { CowOverlay, ReadOnlyView, TargetDevice, WriteTracker } from './devices.js';
import { MigrationSource } from './migration-source.js';
import type { BootPhase, GuestBootModel, PhasedRead } from './guest-boot.js';
import { DirtyModel, RunStateReceiver, RunStateServer } from './run-state.js';

const MiB = 1024 * 1024;

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
}

interface ExportRecord {
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

interface Peer {
  instanceId: string;
  link: LinkClient;
  remote: RemoteDisk;
  cache: SecureCache;
  view: BlockDevice;
}

interface Migration {
  volumeId: string;
  layer: MigrationLayer;
  writes: WriteTracker;
  cursor: number;
}

interface DiskSession {
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
interface BootProgress {
  next: number;
  bytes: number;
  done: boolean;
  /** Reads a failed attempt took but did not finish: the next attempt makes them first. */
  retry: number[];
  running: Promise<void> | null;
}

const newBootProgress = (): BootProgress => ({ next: 0, bytes: 0, done: false, retry: [], running: null });

interface VmTarget {
  vmId: string;
  instanceId: string;
  address: string;
  sessions: DiskSession[];
  nbd: NbdServer;
  closeNbd: () => Promise<void>;
  boot: Record<BootPhase, BootProgress>;
}

function checkString(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length === 0) throw new InputError('E_BAD_FIELD', `proxyControl.${field}: expected a non-empty string, got ${JSON.stringify(value)}`);
  return value;
}

function checkPositiveInt(value: number | undefined, field: string, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v <= 0) throw new InputError('E_BAD_FIELD', `proxyControl.${field}: expected a positive integer, got ${JSON.stringify(value)}`);
  return v;
}

/** Whether a store holds any data in the range (synchronously for the in-memory sparse store). */
function holdsData(store: BlockDevice, offset: number, length: number): boolean | Promise<boolean> {
  const any = (ex: Extent[]): boolean => ex.some((e) => e.type === 'data');
  return store instanceof SparseStore ? any(store.extentsSync(offset, length)) : store.extents(offset, length).then(any);
}

/** Bytes a secure cache store needs for `capacityBytes` (docs/proxy/secure-cache.md). */
function cacheStoreBytes(capacityBytes: number, blockBytes: number): number {
  return 4096 + Math.ceil(capacityBytes / blockBytes) * (blockBytes + 16) + blockBytes;
}

const exportSafe = (s: string): string => s.replace(/[^A-Za-z0-9._:/-]/g, '_');

/**
 * The lifecycle machines' ProxyControl port over the proxy core: one on-prem
 * proxy (disk manager leases, prioritizer, write-group appliers) whose exports
 * are added and removed as disks are mounted and cloned, a run-state server
 * next to it, and per VM disk a cloud proxy (storage target, secure cache,
 * write-behind, prefetch, read path) plus, on demand, a migration layer and
 * read-only scale-out peers. Everything talks over `world.net`: the emulated
 * WAN in a SimWorld, TCP in a LiveWorld. See docs/proxy/control.md.
 */
export class CoreProxyControl implements ProxyControl {
  readonly onprem: OnpremProxy;
  readonly runState: RunStateServer;
  private readonly key: Buffer;
  private readonly mounts = new Map<string, { owner: string; lease: DiskLease; exportName: string }>();
  private readonly exports = new Map<string, ExportRecord>();
  private readonly clones = new Map<string, string[]>();
  private readonly targets = new Map<string, VmTarget>();
  private readonly sessions = new Map<string, DiskSession>();
  private readonly volumes = new Map<string, { store: BlockDevice; log: BlockDevice }>();
  private readonly receivers = new Map<string, RunStateReceiver>();
  private readonly mirrors = new Map<string, DirtyModel>();
  private readonly makeStore: (name: string, sizeBytes: number) => BlockDevice;
  private readonly cacheBytes: number;
  private readonly maxCacheBytes: number;
  private readonly migrationChunk: number;
  private readonly cacheBlockBytes: number;

  private constructor(private readonly world: World, private readonly options: ProxyControlOptions, onprem: OnpremProxy, runState: RunStateServer, key: Buffer) {
    this.onprem = onprem;
    this.runState = runState;
    this.key = key;
    this.makeStore = options.stores ?? ((name, size) => new SparseStore(name, size));
    this.cacheBytes = checkPositiveInt(options.cache?.capacityBytes, 'cache.capacityBytes', 256 * MiB);
    this.maxCacheBytes = checkPositiveInt(options.cache?.maxCapacityBytes, 'cache.maxCapacityBytes', 4 * this.cacheBytes);
    if (this.maxCacheBytes < this.cacheBytes) throw new InputError('E_BAD_FIELD', `proxyControl.cache.maxCapacityBytes (${this.maxCacheBytes}) must be at least cache.capacityBytes (${this.cacheBytes})`);
    this.cacheBlockBytes = checkPositiveInt(options.cache?.blockBytes, 'cache.blockBytes', 4096);
    if (this.cacheBlockBytes < 4096 || (this.cacheBlockBytes & (this.cacheBlockBytes - 1)) !== 0) throw new InputError('E_BAD_FIELD', `proxyControl.cache.blockBytes: expected a power of two of at least 4096, got ${this.cacheBlockBytes}`);
    this.migrationChunk = checkPositiveInt(options.migrationChunkBytes, 'migrationChunkBytes', 256 * 1024);
    if (this.migrationChunk % 4096 !== 0) throw new InputError('E_BAD_FIELD', `proxyControl.migrationChunkBytes: expected a multiple of 4096, got ${this.migrationChunk}`);
  }

  /** Start the on-prem proxy (no exports yet) and the run-state server. */
  static async create(world: World, options: ProxyControlOptions): Promise<CoreProxyControl> {
    checkString(options.onpremAddress, 'onpremAddress');
    checkString(options.runStateAddress, 'runStateAddress');
    const key = parsePairingKey(options.pairingKey, 'proxyControl.pairingKey');
    const onprem = await createOnpremProxy(world, { address: options.onpremAddress, pairingKey: key, disks: [], name: 'onprem' });
    const runState = new RunStateServer(world, key, options.runStateAddress);
    try {
      await runState.start();
    } catch (err) {
      await onprem.close();
      throw err;
    }
    return new CoreProxyControl(world, options, onprem, runState, key);
  }

  // --- inspection (tests, reports) -------------------------------------------------

  /** The storage target's device of one disk: what the instance reads and writes. */
  targetDevice(vmId: string, diskId: string): BlockDevice {
    return this.targetOf(`${vmId}/${diskId}`);
  }

  /** The storage target's device of one disk, by proxy id "<vmId>/<diskId>" (as proxyIds lists them). */
  targetOf(proxyId: string): BlockDevice {
    return this.session(proxyId).target;
  }

  /** The cloud proxy of one disk, by proxy id "<vmId>/<diskId>". */
  cloudProxy(proxyId: string): CloudProxy {
    return this.session(proxyId).proxy;
  }

  proxyIds(vmId: string): string[] {
    return this.targets.get(vmId)?.sessions.map((s) => s.proxyId) ?? [];
  }

  /** A migration volume's bytes (what the cloud volume holds). */
  volume(volumeId: string): BlockDevice {
    const v = this.volumes.get(volumeId);
    if (!v) throw new SpillwayError('E_NO_VOLUME', `no migration volume ${volumeId}; known: ${[...this.volumes.keys()].join(', ') || '(none)'}`);
    return v.store;
  }

  migrationProgressOf(vmId: string): Array<ReturnType<MigrationLayer['progress']> & { diskId: string }> {
    return (this.targets.get(vmId)?.sessions ?? []).filter((s) => s.migration).map((s) => ({ diskId: s.diskId, ...s.migration!.layer.progress() }));
  }

  receiver(targetId: string): RunStateReceiver | undefined {
    return this.receivers.get(targetId);
  }

  private session(proxyId: string): DiskSession {
    const s = this.sessions.get(proxyId);
    if (!s) throw new SpillwayError('E_NO_PROXY', `no cloud proxy "${proxyId}" (ids are "<vmId>/<diskId>"); open: ${[...this.sessions.keys()].join(', ') || '(none)'}`);
    return s;
  }

  private target(vmId: string): VmTarget {
    const t = this.targets.get(vmId);
    if (!t) throw new SpillwayError('E_NO_TARGET', `no storage target is open for ${vmId}`);
    return t;
  }

  // --- on-prem edge proxy -------------------------------------------------------------

  async mountDisk(req: { vmId: string; diskId: string; owner: string }): Promise<{ exportName: string }> {
    const hv = this.options.hypervisor;
    const held = this.mounts.get(req.diskId);
    if (held) {
      if (held.owner !== req.owner) throw new SpillwayError('E_LEASE_HELD', `disk ${req.diskId} is mounted for ${held.owner}; ${req.owner} is refused (one writer per disk)`, { details: { diskId: req.diskId, holder: held.owner } });
      return { exportName: held.exportName };
    }
    const info = hv.disk(req.diskId);
    const lease = hv.lockDisk(req.diskId, req.owner);
    const exportName = exportSafe(req.diskId);
    try {
      const device = hv.openDisk(req.diskId);
      await this.onprem.addDisk({ id: exportName, device, image: info.imageId, ...this.bootFilesOf(info.imageId) });
      this.exports.set(exportName, { exportName, diskId: req.diskId, imageId: info.imageId, vmId: info.vmId, base: `disk:${req.diskId}`, device, overlay: null });
    } catch (err) {
      lease.release();
      throw err;
    }
    this.mounts.set(req.diskId, { owner: req.owner, lease, exportName });
    return { exportName };
  }

  async unmountDisk(req: { vmId: string; diskId: string; owner: string }): Promise<void> {
    const held = this.mounts.get(req.diskId);
    if (!held) return;
    if (held.owner !== req.owner) throw new SpillwayError('E_LEASE_HELD', `disk ${req.diskId} is mounted for ${held.owner}, not ${req.owner}`);
    // Refused (E_LEASE_HELD) while a cloud proxy still has the export attached for writing.
    if (this.exports.has(held.exportName)) this.onprem.removeDisk(held.exportName);
    this.exports.delete(held.exportName);
    held.lease.release();
    this.mounts.delete(req.diskId);
  }

  async cloneDisk(req: { snapshotId: string; diskId: string; cloneId: string; policy: PersistencePolicy }): Promise<{ exportName: string }> {
    const exportName = exportSafe(`clone/${req.cloneId}/${req.diskId}`);
    if (this.exports.has(exportName)) return { exportName };
    const hv = this.options.hypervisor;
    const info = hv.disk(req.diskId);
    const base = this.snapshotDisk(req.snapshotId, req.diskId);
    const overlay = req.policy === 'on-prem' ? new CowOverlay(base, this.makeStore(`clone-overlay:${exportName}`, base.size()), exportName) : null;
    // A cloud-only clone's writes never come on-prem, so its export refuses them.
    const device = overlay ?? new ReadOnlyView(base, exportName);
    await this.onprem.addDisk({ id: exportName, device, image: info.imageId, ...this.bootFilesOf(info.imageId) });
    this.exports.set(exportName, { exportName, diskId: req.diskId, imageId: info.imageId, vmId: info.vmId, base: `snapshot:${req.snapshotId}/${req.diskId}`, device, overlay });
    const list = this.clones.get(req.cloneId) ?? [];
    list.push(exportName);
    this.clones.set(req.cloneId, list);
    return { exportName };
  }

  async dropClone(req: { cloneId: string }): Promise<void> {
    for (const name of this.clones.get(req.cloneId) ?? []) {
      if (!this.exports.has(name)) continue;
      this.onprem.removeDisk(name);
      this.exports.delete(name);
    }
    this.clones.delete(req.cloneId);
  }

  async prioritize(req: { vmId: string; diskIds: string[] }): Promise<{ groups: number; bytes: number }> {
    const p = this.onprem.prioritizer;
    let groups = 0;
    let bytes = 0;
    const seen = new Set<string>();
    for (const diskId of req.diskIds) {
      const imageId = this.options.hypervisor.disk(diskId).imageId;
      if (seen.has(imageId)) continue;
      seen.add(imageId);
      const files = this.options.guest?.bootFiles(imageId) ?? [];
      if (files.length > 0) {
        // 'recorded' streams only what earlier sessions read (FIG 22), not the whole boot files (FIG 21).
        if (this.options.prefetch !== 'recorded') p.setBootFiles(imageId, files);
        p.setGroups(imageId, files.map((f) => f.ranges));
      }
      groups += files.length;
      // FIG 21 boot files plus FIG 22 hotspots of earlier sessions: what a new session is streamed first.
      for (const r of p.profile(imageId)) bytes += r.length;
      this.world.log('info', 'proxy/control', `prioritized ${imageId} for ${req.vmId}: ${files.length} boot files, ${p.hotspotCount(imageId)} hotspot blocks from ${p.sessions(imageId)} sessions`);
    }
    return { groups, bytes };
  }

  private bootFilesOf(imageId: string): { bootFiles?: ReturnType<GuestBootModel['bootFiles']>; groups?: Array<Array<{ offset: number; length: number }>> } {
    const files = this.options.guest?.bootFiles(imageId) ?? [];
    if (files.length === 0) return {};
    // Groups (FIG 23 pushes on a demand read) either way; boot files in the streamed profile unless 'recorded'.
    return this.options.prefetch === 'recorded' ? { groups: files.map((f) => f.ranges) } : { bootFiles: files };
  }

  private snapshotDisk(snapshotId: string, diskId: string): BlockDevice {
    if (this.options.snapshotDisk) return this.options.snapshotDisk(snapshotId, diskId);
    const hv = this.options.hypervisor as Hypervisor & { openSnapshotDisk?: (snapshotId: string, diskId: string) => BlockDevice };
    if (typeof hv.openSnapshotDisk !== 'function') {
      throw new SpillwayError('E_UNSUPPORTED', 'clones need the snapshot\'s frozen disk: give proxyControl.snapshotDisk or a hypervisor with openSnapshotDisk');
    }
    return hv.openSnapshotDisk(snapshotId, diskId);
  }

  // --- cloud edge proxy ---------------------------------------------------------------

  async openTarget(req: { vmId: string; instanceId: string; disks: DiskExport[]; siblingSources: string[] }): Promise<{ targetAddress: string }> {
    const existing = this.targets.get(req.vmId);
    if (existing) {
      if (existing.instanceId !== req.instanceId) throw new SpillwayError('E_TARGET_BUSY', `the target of ${req.vmId} is open for instance ${existing.instanceId}, not ${req.instanceId}`);
      return { targetAddress: existing.address };
    }
    const sessions: DiskSession[] = [];
    try {
      for (const d of req.disks) sessions.push(await this.openSession(req.vmId, d, req.siblingSources));
      const address = this.options.targetAddress?.(req.vmId) ?? `target-${exportSafe(req.vmId)}:10809`;
      // The instance boots from this NBD server (the staging image's initrd connects to it).
      const nbd = new NbdServer(this.world, { exports: sessions.map((s) => ({ name: s.diskId, device: s.target })), src: `proxy/target/${req.vmId}` });
      const listener = await nbd.listen(address);
      this.targets.set(req.vmId, {
        vmId: req.vmId, instanceId: req.instanceId, address: listener.address, sessions, nbd,
        closeNbd: async () => { await nbd.close(); },
        boot: { staging: newBootProgress(), target: newBootProgress() },
      });
      for (const s of sessions) this.sessions.set(s.proxyId, s);
      return { targetAddress: listener.address };
    } catch (err) {
      for (const s of sessions) await s.proxy.close().catch(() => undefined);
      throw err;
    }
  }

  private async openSession(vmId: string, d: DiskExport, siblingSources: string[]): Promise<DiskSession> {
    const exp = this.exports.get(d.exportName);
    if (!exp) throw new SpillwayError('E_NO_EXPORT', `no on-prem export "${d.exportName}" (mount or clone the disk first); exported: ${[...this.exports.keys()].join(', ') || '(none)'}`);
    const proxyId = `${vmId}/${d.diskId}`;
    const size = exp.device.size();
    const blockBytes = this.cacheBlockBytes;
    const stores: CloudStores = {
      writeStore: this.makeStore(`wb-store:${proxyId}`, size),
      writeMap: this.makeStore(`wb-map:${proxyId}`, Math.max(4096, Math.ceil(size / 4096 / 8))),
      journal: this.makeStore(`wb-journal:${proxyId}`, this.options.journalBytes ?? 64 * MiB),
      cache: this.makeStore(`cache-store:${proxyId}`, cacheStoreBytes(this.maxCacheBytes, blockBytes)),
    };
    const sources = siblingSources.filter((src) => src !== vmId);
    const siblings = sources.map((src) => this.siblingRef(src, d.diskId, exp.base, size));
    const proxy = await createCloudProxy(this.world, {
      name: proxyId, onprem: this.options.onpremAddress, pairingKey: this.key,
      disk: { id: d.exportName, image: exp.imageId, persistence: d.policy },
      stores, cacheCapacityBytes: this.cacheBytes, blockBytes, siblings,
      // The profile streams when the machine asks for prefetch (startPrefetch), not at attach.
      streamProfile: false,
      ...(this.options.readAhead !== undefined ? { readAhead: this.options.readAhead } : {}),
      ...(this.options.rpoUs ? { rpoUs: this.options.rpoUs } : {}),
    });
    return {
      proxyId, vmId, diskId: d.diskId, exp, policy: d.policy, proxy, target: new TargetDevice(proxy.device, proxyId),
      siblings, siblingSources: sources, peers: new Map(), prefetchStarted: false, migration: null, discarded: false,
      writeStore: stores.writeStore,
    };
  }

  /** An open sibling session of the same base whose cache already holds blocks. */
  private warmSibling(s: DiskSession): DiskSession | undefined {
    for (const source of s.siblingSources) {
      const t = this.targets.get(source) ?? [...this.targets.values()].find((x) => x.address === source);
      const sib = t?.sessions.find((x) => x !== s && x.diskId === s.diskId && !x.discarded && x.exp.base === s.exp.base);
      if (sib && sib.proxy.cache.stats().usedBytes > 0) return sib;
    }
    return undefined;
  }

  /**
   * FIG 14 prefetch: with a warm sibling, the profile is pulled through this
   * proxy's read path (cache, then siblings, then on-prem for what no sibling
   * holds) instead of being pushed whole from on-prem over the WAN.
   */
  private async prefetchViaSiblings(s: DiskSession): Promise<void> {
    const ranges = this.onprem.prioritizer.profile(s.exp.imageId);
    const depth = Math.max(1, this.options.boot?.depth ?? 1);
    const maxRead = 256 * 1024;
    const reads: Array<{ offset: number; length: number }> = [];
    for (const r of ranges) for (let o = r.offset; o < r.offset + r.length; o += maxRead) reads.push({ offset: o, length: Math.min(maxRead, r.offset + r.length - o) });
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < reads.length && !s.discarded && this.sessions.get(s.proxyId) === s) {
        const r = reads[next++]!;
        await s.proxy.readPath.read(r.offset, r.length);
      }
    };
    await Promise.all(Array.from({ length: depth }, worker));
  }

  /**
   * A sibling clone's cache as a FIG 14 source, resolved at read time (the
   * sibling may open after this target). It serves a range only when the
   * sibling holds the same clean content: same base (snapshot and disk), and
   * no block of the range written by that clone on-prem (an on-prem clone's
   * pushes could carry its own writes into its cache).
   */
  private siblingRef(source: string, diskId: string, base: string, size: number): BlockDevice {
    const resolve = (): DiskSession | undefined => {
      const t = this.targets.get(source) ?? [...this.targets.values()].find((x) => x.address === source);
      return t?.sessions.find((s) => s.diskId === diskId && !s.discarded && s.exp.base === base);
    };
    return this.guardedView(`sibling:${source}/${diskId}`, size, async (offset, length) => {
      const s = resolve();
      if (!s) throw new BlockError(E_NOT_HELD, `sibling ${source} has no open target of the same base for ${diskId}`);
      if (s.exp.overlay?.touches(offset, length)) throw new BlockError(E_NOT_HELD, `sibling ${source} wrote part of this range`);
      return s.proxy.readPath.cleanView().read(offset, length);
    });
  }

  private guardedView(name: string, size: number, read: (offset: number, length: number) => Promise<Buffer>): BlockDevice {
    const refuse = async (): Promise<never> => { throw new BlockError(E_READONLY, `${name}: a sibling source is read-only`); };
    const dev: BlockDevice = {
      name,
      size: () => size,
      read: (offset, length) => { checkRange(dev, offset, length); return read(offset, length); },
      write: refuse, trim: refuse, writeZeroes: refuse,
      flush: async () => undefined,
      prefetch: async () => undefined,
      extents: async (offset, length) => [{ offset, length, type: 'data' as const }],
      close: async () => undefined,
    };
    return dev;
  }

  async startPrefetch(req: { vmId: string }): Promise<{ queuedBytes: number }> {
    let queuedBytes = 0;
    for (const s of this.target(req.vmId).sessions) {
      const mode = this.options.prefetch ?? true;
      if (s.discarded || mode === false) continue;
      if (mode === 'recorded' && this.onprem.prioritizer.sessions(s.exp.imageId) === 0) continue;
      const remote = s.proxy.remote;
      queuedBytes += remote.profileBlocks * remote.blockBytes;
      if (s.prefetchStarted) continue;
      s.prefetchStarted = true;
      if (remote.profileBlocks > 0 && s.proxy.cache.stats().usedBytes === 0 && this.warmSibling(s)) {
        this.prefetchViaSiblings(s).catch((err: Error) => this.world.log('warn', `proxy/cloud/${s.proxyId}`, `sibling prefetch stopped: ${err.message}`));
      } else if (remote.profileBlocks > 0 && s.proxy.cache.stats().usedBytes === 0) {
        remote.streamProfile().catch((err: Error) => this.world.log('warn', `proxy/cloud/${s.proxyId}`, `profile stream not started: ${err.message}`));
      }
    }
    return { queuedBytes };
  }

  async awaitBoot(req: { vmId: string; instanceId: string; phase: 'staging' | 'target' }): Promise<{ bootReadBytes: number }> {
    const t = this.target(req.vmId);
    if (t.instanceId !== req.instanceId) throw new SpillwayError('E_TARGET_BUSY', `the target of ${req.vmId} serves instance ${t.instanceId}, not ${req.instanceId}`);
    const progress = t.boot[req.phase];
    if (progress.done) return { bootReadBytes: progress.bytes };
    // The step that was in flight when the controller restarted may still be replaying: join it rather than race it.
    if (!progress.running) {
      const run = this.bootPhase(t, req.vmId, req.phase, progress);
      progress.running = run;
      run.then(() => { progress.done = true; }, () => undefined).finally(() => { progress.running = null; });
    }
    await progress.running;
    return { bootReadBytes: progress.bytes };
  }

  private async bootPhase(t: VmTarget, vmId: string, phase: BootPhase, progress: BootProgress): Promise<void> {
    const boot = this.bootSession(t);
    if (!boot) return;
    const reads = this.options.guest!.bootReads(vmId, boot.exp.imageId).filter((r) => r.phase === phase);
    await this.replay(boot.target, reads, progress);
    // 'recorded' streams later sessions what earlier ones read: the boot, not the application's reads after it.
    if (phase === 'target' && this.options.prefetch === 'recorded') for (const s of t.sessions) s.proxy.stopRecordingReads();
  }

  /** The disk the guest boots from: the root mount of the VM the export belongs to. */
  private bootSession(t: VmTarget): DiskSession | undefined {
    if (!this.options.guest) return undefined;
    for (const s of t.sessions) {
      const vm = this.options.hypervisor.vm(s.exp.vmId);
      const root = vm.guest.mounts.find((m) => m.mountPoint === '/' || m.mountPoint.toUpperCase() === 'C:')?.diskId ?? vm.diskIds[0];
      if (s.exp.diskId === root) return s;
    }
    return undefined;
  }

  /** Replay reads with `depth` outstanding; progress survives a failed attempt (the next one continues). */
  private async replay(device: BlockDevice, reads: PhasedRead[], progress: BootProgress): Promise<void> {
    const depth = Math.max(1, this.options.boot?.depth ?? 1);
    const thinkUs = this.options.boot?.thinkUs ?? 0;
    const worker = async (): Promise<void> => {
      for (;;) {
        const i = progress.retry.length > 0 ? progress.retry.shift()! : progress.next < reads.length ? progress.next++ : -1;
        if (i < 0) return;
        const r = reads[i]!;
        try {
          const data = await device.read(r.offset, r.length);
          progress.bytes += data.length;
        } catch (err) {
          progress.retry.push(i);
          throw err;
        }
        if (thinkUs > 0) await this.world.clock.sleepUs(thinkUs);
      }
    };
    await Promise.all(Array.from({ length: depth }, worker));
  }

  async flushWriteBehind(req: { vmId: string }): Promise<{ flushedBytes: number; pendingBytes: number }> {
    let flushedBytes = 0;
    let pendingBytes = 0;
    for (const s of this.target(req.vmId).sessions) {
      if (s.discarded || s.policy !== 'on-prem') continue;
      const wb = s.proxy.writeBehind;
      const before = wb.stats().bytesShipped;
      await s.proxy.drain();
      const after = wb.stats();
      flushedBytes += after.bytesShipped - before;
      pendingBytes += after.backlogBytes;
    }
    return { flushedBytes, pendingBytes };
  }

  async discardCloudOnly(req: { vmId: string; diskId: string }): Promise<void> {
    const t = this.targets.get(req.vmId);
    const s = t?.sessions.find((x) => x.diskId === req.diskId);
    if (!s || s.discarded) return;
    if (s.policy !== 'cloud-only') throw new SpillwayError('E_NOT_CLOUD_ONLY', `disk ${req.diskId} of ${req.vmId} persists on-prem; only cloud-only writes may be discarded`);
    // Closing ships nothing (cloud-only) and releases the on-prem lease; the stores holding the writes are dropped with the session.
    s.discarded = true;
    s.target.retire('its cloud-only writes were discarded');
    await this.closePeers(s);
    await s.proxy.close();
    this.sessions.delete(s.proxyId);
  }

  async closeTarget(req: { vmId: string }): Promise<void> {
    const t = this.targets.get(req.vmId);
    if (!t) return;
    for (const s of t.sessions) {
      if (s.discarded) continue;
      if (s.migration) await this.leaveMigration(s);
      s.target.retire('the target is closed');
      await this.closePeers(s);
      // Acknowledged writes are never dropped: on-prem ones ship before the lease goes.
      if (s.policy === 'on-prem') await s.proxy.drain();
      await s.proxy.close();
      this.sessions.delete(s.proxyId);
    }
    await t.closeNbd();
    this.targets.delete(req.vmId);
  }

  // --- migration (FIG 17/18) ----------------------------------------------------------

  async startMigration(req: { vmId: string; volumes: Record<string, string> }): Promise<MigrationProgress> {
    const t = this.target(req.vmId);
    for (const s of t.sessions) {
      const volumeId = req.volumes[s.diskId];
      if (!volumeId || s.migration || s.discarded) continue;
      const size = s.target.size();
      let vol = this.volumes.get(volumeId);
      if (!vol) {
        const chunks = Math.ceil(size / this.migrationChunk);
        vol = { store: this.makeStore(`volume:${volumeId}`, size), log: this.makeStore(`migration-log:${volumeId}`, 4096 * (2 + Math.ceil(chunks / 8 / 4096))) };
        this.volumes.set(volumeId, vol);
      }
      // Below the migration layer is write-behind: reads see every write acknowledged before migration mode.
      // The chunks are read past the secure cache: they go to the volume, and the VM reads them from there.
      const source = new MigrationSource(s.proxy.writeBehind, s.proxy.remote, s.proxy.cache, (offset, length) => holdsData(s.writeStore, offset, length));
      const layer = await MigrationLayer.open(source, {
        world: this.world, target: vol.store, logStore: vol.log, chunkBytes: this.migrationChunk, isHole: await this.holeMap(s),
      });
      const writes = new WriteTracker(layer, this.migrationChunk);
      s.migration = { volumeId, layer, writes, cursor: 0 };
      s.target.switchTo(writes);
    }
    return this.migrationProgress(t);
  }

  async syncRound(req: { vmId: string; maxBytes: number }): Promise<MigrationProgress> {
    if (!Number.isInteger(req.maxBytes) || req.maxBytes <= 0) throw new InputError('E_BAD_FIELD', `syncRound.maxBytes: expected a positive integer, got ${JSON.stringify(req.maxBytes)}`);
    const t = this.target(req.vmId);
    const migrating = t.sessions.filter((s) => s.migration);
    if (migrating.length === 0) throw new SpillwayError('E_NOT_MIGRATING', `${req.vmId} is not in migration mode`);
    let budget = req.maxBytes;
    for (const s of migrating) {
      const m = s.migration!;
      const size = s.target.size();
      const chunks = Math.ceil(size / this.migrationChunk);
      // The persistent log says what is already in the volume: a re-run or a resumed migration fetches nothing twice.
      // Rounds running side by side (a restarted controller's next to the one still in flight) claim chunks from
      // one cursor before awaiting, and the cursor wraps: a chunk one round passed while another held it is found
      // on a later pass instead of never.
      for (let seen = 0; budget > 0 && seen < chunks; seen++) {
        const c = m.cursor;
        m.cursor = (c + 1) % chunks;
        const offset = c * this.migrationChunk;
        // Holes cost no budget: they are written as zeros without a fetch.
        if (!m.layer.isTransferred(offset)) budget -= await m.layer.syncChunk(offset);
      }
      await m.layer.flush();
      if (budget <= 0) break;
    }
    return this.migrationProgress(t);
  }

  /**
   * Where the disk holds only zeros: neither the on-prem export's allocation
   * map (the hypervisor's allocated areas, taken once: nothing else writes
   * the leased disk) nor write-behind's store has data there. The sync skips
   * such chunks without fetching them, so a sparse disk moves its data only.
   */
  private async holeMap(s: DiskSession): Promise<(offset: number, length: number) => boolean | Promise<boolean>> {
    const size = s.target.size();
    const data = (await s.exp.device.extents(0, size)).filter((e) => e.type === 'data');
    const store = s.writeStore;
    return (offset, length) => {
      const end = offset + length;
      let lo = 0;
      let hi = data.length;
      // First data extent ending after `offset`.
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (data[mid]!.offset + data[mid]!.length <= offset) lo = mid + 1;
        else hi = mid;
      }
      if (lo < data.length && data[lo]!.offset < end) return false;
      const held = holdsData(store, offset, length);
      return typeof held === 'boolean' ? !held : held.then((h) => !h);
    };
  }

  async stopMigration(req: { vmId: string }): Promise<void> {
    const t = this.targets.get(req.vmId);
    if (!t) return;
    for (const s of t.sessions) if (s.migration) await this.leaveMigration(s);
  }

  /**
   * Leave migration mode. Complete: the volume is the disk now and the target
   * serves it directly (the proxies leave the data path). Incomplete (a
   * rollback): the writes that terminated on the volume are carried into
   * write-behind, and the target serves through the proxy again.
   */
  private async leaveMigration(s: DiskSession): Promise<void> {
    const m = s.migration!;
    const vol = this.volumes.get(m.volumeId)!;
    await s.target.drain();
    try {
      await m.layer.flush();
      if (m.layer.progress().done) {
        s.target.switchTo(vol.store);
      } else {
        for (const c of [...m.writes.chunks].sort((a, b) => a - b)) {
          const offset = c * this.migrationChunk;
          const length = Math.min(this.migrationChunk, s.target.size() - offset);
          await s.proxy.writeBehind.write(offset, await vol.store.read(offset, length));
        }
        s.target.switchTo(s.proxy.device);
      }
      s.migration = null;
    } finally {
      s.target.resume();
    }
  }

  private migrationProgress(t: VmTarget): MigrationProgress {
    let syncedBytes = 0;
    let totalBytes = 0;
    for (const s of t.sessions) {
      if (!s.migration) continue;
      const p = s.migration.layer.progress();
      syncedBytes += p.transferredBytes;
      totalBytes += p.totalBytes;
    }
    // Writes in migration mode terminate on the volume only, so nothing on-prem goes dirty behind the sync.
    return { syncedBytes, totalBytes, dirtyBytes: 0 };
  }

  // --- run-state mirroring (FIG 15) ---------------------------------------------------

  async mirrorRound(req: { sourceVmId: string; targetId: string; round: number }): Promise<MirrorRound> {
    if (!Number.isInteger(req.round) || req.round < 0) throw new InputError('E_BAD_FIELD', `mirrorRound.round: expected a non-negative integer, got ${JSON.stringify(req.round)}`);
    const hv = this.options.hypervisor;
    const key = `${req.sourceVmId}>${req.targetId}`;
    const clock = this.world.clock;
    const running = (): boolean => hv.vm(req.sourceVmId).power === 'running';
    let model = this.mirrors.get(key);
    let toSend: number;
    if (!model || req.round === 0) {
      // The first round sends the whole run state; the dirty rate comes from the hypervisor's memory image.
      const image = running() ? await hv.captureMemory(req.sourceVmId) : null;
      const bytes = image?.bytes ?? hv.vm(req.sourceVmId).ramMiB * MiB;
      model = new DirtyModel(bytes, image?.dirtyRateBytesPerS ?? 0, clock.nowUs(), running());
      this.mirrors.set(key, model);
      toSend = bytes;
    } else {
      toSend = model.take(clock.nowUs(), running());
    }
    await this.receiverFor(req.targetId);
    const startUs = clock.nowUs();
    await this.runState.ship(req.targetId, req.round, toSend);
    const durationUs = Math.max(1, clock.nowUs() - startUs);
    const dirtyBytes = model.accrue(clock.nowUs(), running());
    if (toSend > 0) model.lastLinkRateBytesPerS = (toSend / durationUs) * 1e6;
    return {
      round: req.round, sentBytes: toSend, durationUs, dirtyBytes,
      dirtyRateBytesPerS: (dirtyBytes / durationUs) * 1e6,
      linkRateBytesPerS: model.lastLinkRateBytesPerS,
    };
  }

  /** The standby target's receiver dials on-prem once and stays connected. */
  private async receiverFor(targetId: string): Promise<RunStateReceiver> {
    let r = this.receivers.get(targetId);
    if (r?.connected) return r;
    r = new RunStateReceiver(this.world, this.key, targetId);
    await r.connect(this.options.runStateAddress);
    this.receivers.set(targetId, r);
    return r;
  }

  // --- resizing and scale-out (§4.4) --------------------------------------------------

  async cacheUsage(req: { proxyId: string }): Promise<CacheUsage> {
    const st = this.session(req.proxyId).proxy.cache.stats();
    return { capacityBytes: st.capacityBytes, usedBytes: st.usedBytes };
  }

  async resizeCache(req: { proxyId: string; capacityBytes: number }): Promise<CacheUsage> {
    const s = this.session(req.proxyId);
    if (!Number.isInteger(req.capacityBytes) || req.capacityBytes < 0 || req.capacityBytes > this.maxCacheBytes) {
      throw new InputError('E_BAD_FIELD', `resizeCache.capacityBytes: expected an integer from 0 to ${this.maxCacheBytes} (the store is sized for proxyControl.cache.maxCapacityBytes), got ${JSON.stringify(req.capacityBytes)}`);
    }
    await s.proxy.cache.resize(req.capacityBytes);
    return this.cacheUsage(req);
  }

  async drain(req: { proxyId: string }): Promise<void> {
    const s = this.session(req.proxyId);
    await s.target.drain();
    if (s.policy === 'on-prem') await s.proxy.drain();
    await s.proxy.writeBehind.flush();
  }

  async resume(req: { proxyId: string }): Promise<void> {
    this.session(req.proxyId).target.resume();
  }

  /**
   * Scale-out: each instance id becomes a read-only peer proxy of this disk —
   * its own link connection (a lease-free `ro` attach), its own secure cache,
   * streaming the disk's profile — and the primary's read path consults it
   * as a FIG 14 sibling before going on-prem. Peers add cache capacity and
   * link connections; writes stay with the primary (one writer per disk).
   */
  async addPeers(req: { proxyId: string; instanceIds: string[] }): Promise<void> {
    const s = this.session(req.proxyId);
    for (const instanceId of req.instanceIds) {
      if (s.peers.has(instanceId)) continue;
      const link = new LinkClient(this.world, { address: this.options.onpremAddress, pairingKey: this.key, peer: `peer/${instanceId}/${s.exp.exportName}`, sigs: 'sha256', reportsAccess: false });
      await link.connect();
      try {
        const remote = await link.attach(s.exp.exportName, { mode: 'ro', blockBytes: s.proxy.cache.blockBytes, image: s.exp.imageId });
        const capacity = s.proxy.cache.capacityBytes;
        const cache = await SecureCache.open({
          name: `secure-cache:peer/${instanceId}/${s.proxyId}`, key: remote.cacheKey, keyEpoch: remote.keyEpoch,
          store: this.makeStore(`cache-store:peer/${instanceId}/${s.proxyId}`, cacheStoreBytes(capacity, remote.blockBytes)), capacityBytes: capacity, blockBytes: remote.blockBytes,
        });
        remote.setSignatureResolver((sig) => cache.findBySignature(sig));
        const readPath = new ReadPath({ world: this.world, name: `read-path:peer/${instanceId}/${s.proxyId}`, cache, remote });
        remote.onPush((offset, data) => { void readPath.acceptPush(offset, data); });
        if (remote.profileBlocks > 0) remote.streamProfile().catch((err: Error) => this.world.log('warn', `proxy/peer/${instanceId}`, `profile stream not started: ${err.message}`));
        const clean = readPath.cleanView();
        const view = this.guardedView(`peer:${instanceId}/${s.proxyId}`, s.target.size(), async (offset, length) => {
          if (s.exp.overlay?.touches(offset, length)) throw new BlockError(E_NOT_HELD, `peer ${instanceId}: the disk was written on-prem in this range`);
          return clean.read(offset, length);
        });
        s.peers.set(instanceId, { instanceId, link, remote, cache, view });
        s.siblings.push(view);
      } catch (err) {
        await link.close().catch(() => undefined);
        throw err;
      }
    }
  }

  async removePeers(req: { proxyId: string; instanceIds: string[] }): Promise<void> {
    const s = this.sessions.get(req.proxyId);
    if (!s) return;
    for (const id of req.instanceIds) await this.closePeer(s, id);
  }

  /** Peers of a proxy (for reports and tests). */
  peersOf(proxyId: string): Array<{ instanceId: string; cachedBytes: number }> {
    return [...this.session(proxyId).peers.values()].map((p) => ({ instanceId: p.instanceId, cachedBytes: p.cache.stats().usedBytes }));
  }

  private async closePeer(s: DiskSession, instanceId: string): Promise<void> {
    const p = s.peers.get(instanceId);
    if (!p) return;
    s.peers.delete(instanceId);
    const i = s.siblings.indexOf(p.view);
    if (i >= 0) s.siblings.splice(i, 1);
    await p.remote.close().catch((err: unknown) => this.world.log('warn', `proxy/peer/${instanceId}`, `detach failed (${errorCode(err)})`));
    await p.link.close();
  }

  private async closePeers(s: DiskSession): Promise<void> {
    for (const id of [...s.peers.keys()]) await this.closePeer(s, id);
  }

  /** Close every target, the run-state server and the on-prem proxy. */
  async close(): Promise<void> {
    for (const vmId of [...this.targets.keys()]) await this.closeTarget({ vmId });
    for (const r of this.receivers.values()) r.close();
    await this.runState.close();
    await this.onprem.close();
  }
}

export function createProxyControl(world: World, options: ProxyControlOptions): Promise<CoreProxyControl> {
  return CoreProxyControl.create(world, options);
}
