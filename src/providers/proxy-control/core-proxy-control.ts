import { SpillwayError } from '../../errors.js';
import type { CacheUsage, DiskExport, MigrationProgress, MirrorRound, PersistencePolicy, ProxyControl } from '../../ports/proxy-control.js';
import type { World } from '../../world/types.js';
import type { BlockDevice } from '../../proxy/block-device.js';
import type { CloudProxy } from '../../proxy/cloud/cloud-proxy.js';
import { parsePairingKey } from '../../proxy/link/pairing-key.js';
import type { MigrationLayer } from '../../proxy/layers/migration.js';
import { createOnpremProxy, type OnpremProxy } from '../../proxy/onprem/onprem-proxy.js';
import * as bootReplay from './boot-replay.js';
import * as cache from './cache.js';
import * as onpremExports from './exports.js';
import * as migration from './migration.js';
import * as mirroring from './mirroring.js';
import { RunStateServer, type RunStateReceiver } from './run-state.js';
import * as cloudSessions from './sessions.js';
import * as siblings from './siblings.js';
import { checkString, createProxyControlState, requireSession, type ProxyControlOptions, type ProxyControlState } from './state.js';

export type { ProxyControlOptions } from './state.js';

/**
 * The lifecycle machines' ProxyControl port over the proxy core: one on-prem
 * proxy (disk manager leases, prioritizer, write-group appliers) whose exports
 * are added and removed as disks are mounted and cloned, a run-state server
 * next to it, and per VM disk a cloud proxy (storage target, secure cache,
 * write-behind, prefetch, read path) plus, on demand, a migration layer and
 * read-only scale-out peers. Everything talks over `world.net`: the emulated
 * WAN in a SimWorld, TCP in a LiveWorld. See docs/proxy/control.md.
 *
 * This class is the port's facade: its state is ProxyControlState (state.ts)
 * and each concern is a module of functions over it; the methods delegate
 * without an async wrapper of their own, so no microtask is added.
 */
export class CoreProxyControl implements ProxyControl {
  readonly onprem: OnpremProxy;
  readonly runState: RunStateServer;
  private readonly pc: ProxyControlState;

  private constructor(world: World, options: ProxyControlOptions, onprem: OnpremProxy, runState: RunStateServer, key: Buffer) {
    this.onprem = onprem;
    this.runState = runState;
    this.pc = createProxyControlState(world, options, onprem, runState, key);
  }

  /** Start the on-prem proxy (no exports yet) and the run-state server. */
  static async create(world: World, options: ProxyControlOptions): Promise<CoreProxyControl> {
    checkString(options.onpremAddress, 'onpremAddress');
    checkString(options.runStateAddress, 'runStateAddress');
    const key = parsePairingKey(options.pairingKey, 'proxyControl.pairingKey');
    const onprem = await createOnpremProxy(world, {
      address: options.onpremAddress, pairingKey: key, disks: [], name: 'onprem',
      ...(options.contentMemo ? { contentMemo: options.contentMemo } : {}),
    });
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
    return requireSession(this.pc, proxyId).target;
  }

  /** The cloud proxy of one disk, by proxy id "<vmId>/<diskId>". */
  cloudProxy(proxyId: string): CloudProxy {
    return requireSession(this.pc, proxyId).proxy;
  }

  proxyIds(vmId: string): string[] {
    return this.pc.targets.get(vmId)?.sessions.map((s) => s.proxyId) ?? [];
  }

  /** A migration volume's bytes (what the cloud volume holds). */
  volume(volumeId: string): BlockDevice {
    const v = this.pc.volumes.get(volumeId);
    if (!v) throw new SpillwayError('E_NO_VOLUME', `no migration volume ${volumeId}; known: ${[...this.pc.volumes.keys()].join(', ') || '(none)'}`);
    return v.store;
  }

  migrationProgressOf(vmId: string): Array<ReturnType<MigrationLayer['progress']> & { diskId: string }> {
    return (this.pc.targets.get(vmId)?.sessions ?? []).filter((s) => s.migration).map((s) => ({ diskId: s.diskId, ...s.migration!.layer.progress() }));
  }

  receiver(targetId: string): RunStateReceiver | undefined {
    return this.pc.receivers.get(targetId);
  }

  // --- on-prem edge proxy (exports.ts) --------------------------------------------

  mountDisk(req: { vmId: string; diskId: string; owner: string }): Promise<{ exportName: string }> {
    return onpremExports.mountDisk(this.pc, req);
  }

  unmountDisk(req: { vmId: string; diskId: string; owner: string }): Promise<void> {
    return onpremExports.unmountDisk(this.pc, req);
  }

  cloneDisk(req: { snapshotId: string; diskId: string; cloneId: string; policy: PersistencePolicy }): Promise<{ exportName: string }> {
    return onpremExports.cloneDisk(this.pc, req);
  }

  dropClone(req: { cloneId: string }): Promise<void> {
    return onpremExports.dropClone(this.pc, req);
  }

  prioritize(req: { vmId: string; diskIds: string[] }): Promise<{ groups: number; bytes: number }> {
    return onpremExports.prioritize(this.pc, req);
  }

  // --- cloud edge proxy (sessions.ts, boot-replay.ts) -----------------------------

  openTarget(req: { vmId: string; instanceId: string; disks: DiskExport[]; siblingSources: string[] }): Promise<{ targetAddress: string }> {
    return cloudSessions.openTarget(this.pc, req);
  }

  startPrefetch(req: { vmId: string }): Promise<{ queuedBytes: number }> {
    return cloudSessions.startPrefetch(this.pc, req);
  }

  flushWriteBehind(req: { vmId: string }): Promise<{ flushedBytes: number; pendingBytes: number }> {
    return cloudSessions.flushWriteBehind(this.pc, req);
  }

  discardCloudOnly(req: { vmId: string; diskId: string }): Promise<void> {
    return cloudSessions.discardCloudOnly(this.pc, req);
  }

  closeTarget(req: { vmId: string }): Promise<void> {
    return cloudSessions.closeTarget(this.pc, req);
  }

  awaitBoot(req: { vmId: string; instanceId: string; phase: 'staging' | 'target' }): Promise<{ bootReadBytes: number }> {
    return bootReplay.awaitBoot(this.pc, req);
  }

  // --- migration, FIG 17/18 (migration.ts) ----------------------------------------

  startMigration(req: { vmId: string; volumes: Record<string, string> }): Promise<MigrationProgress> {
    return migration.startMigration(this.pc, req);
  }

  syncRound(req: { vmId: string; maxBytes: number }): Promise<MigrationProgress> {
    return migration.syncRound(this.pc, req);
  }

  stopMigration(req: { vmId: string }): Promise<void> {
    return migration.stopMigration(this.pc, req);
  }

  // --- run-state mirroring, FIG 15 (mirroring.ts) ---------------------------------

  mirrorRound(req: { sourceVmId: string; targetId: string; round: number }): Promise<MirrorRound> {
    return mirroring.mirrorRound(this.pc, req);
  }

  // --- resizing and scale-out, §4.4 (cache.ts, siblings.ts) -----------------------

  cacheUsage(req: { proxyId: string }): Promise<CacheUsage> {
    return cache.cacheUsage(this.pc, req);
  }

  resizeCache(req: { proxyId: string; capacityBytes: number }): Promise<CacheUsage> {
    return cache.resizeCache(this.pc, req);
  }

  drain(req: { proxyId: string }): Promise<void> {
    return cache.drain(this.pc, req);
  }

  resume(req: { proxyId: string }): Promise<void> {
    return cache.resume(this.pc, req);
  }

  /**
   * Scale-out: each instance id becomes a read-only peer proxy of this disk —
   * its own link connection (a lease-free `ro` attach), its own secure cache,
   * streaming the disk's profile — and the primary's read path consults it
   * as a FIG 14 sibling before going on-prem. Peers add cache capacity and
   * link connections; writes stay with the primary (one writer per disk).
   */
  addPeers(req: { proxyId: string; instanceIds: string[] }): Promise<void> {
    return siblings.addPeers(this.pc, req);
  }

  removePeers(req: { proxyId: string; instanceIds: string[] }): Promise<void> {
    return siblings.removePeers(this.pc, req);
  }

  /** Peers of a proxy (for reports and tests), with the key epoch each peer's cache seals under. */
  peersOf(proxyId: string): Array<{ instanceId: string; cachedBytes: number; keyEpoch: number }> {
    return siblings.peersOf(this.pc, proxyId);
  }

  /** Close every target, the run-state server and the on-prem proxy. */
  async close(): Promise<void> {
    for (const vmId of [...this.pc.targets.keys()]) await cloudSessions.closeTarget(this.pc, { vmId });
    for (const r of this.pc.receivers.values()) r.close();
    await this.runState.close();
    await this.onprem.close();
  }
}

export function createProxyControl(world: World, options: ProxyControlOptions): Promise<CoreProxyControl> {
  return CoreProxyControl.create(world, options);
}
