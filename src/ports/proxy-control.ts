import type { BlockDevice } from '../proxy/block-device.js';
import type { CloudProxy } from '../proxy/cloud/index.js';
import type { MigrationProgress as DiskMigrationFigures } from '../proxy/layers/migration.js';

/**
 * The control port of the two edge proxies. The machines drive it; the
 * adapter over the proxy core (src/providers/proxy-control) and the test
 * doubles implement it. Every call is idempotent for the same arguments:
 * after a controller restart a step's actor runs again with the same input
 * (and the same token).
 */

/** Where a disk's writes persist while its VM runs remotely (FIG 4). */
export type PersistencePolicy = 'cloud-only' | 'on-prem';

export interface DiskExport {
  diskId: string;
  /** The on-prem proxy's export of this disk (what the cloud proxy fetches from). */
  exportName: string;
  policy: PersistencePolicy;
}

export interface MigrationProgress {
  /** Bytes already in cloud storage (by copy-on-read or background sync), from the proxy's persistent log. */
  syncedBytes: number;
  totalBytes: number;
  /** Bytes written on-prem since they were synced (only when writes also go on-prem). */
  dirtyBytes: number;
}

export interface MirrorRound {
  round: number;
  /** Bytes of run state sent this round. */
  sentBytes: number;
  durationUs: number;
  /** Run state dirtied while the round ran: what the next round (or the switch) must send. */
  dirtyBytes: number;
  /** Measured over the round. */
  dirtyRateBytesPerS: number;
  linkRateBytesPerS: number;
}

export interface CacheUsage {
  capacityBytes: number;
  usedBytes: number;
}

/**
 * The control port of the two edge proxies (src/proxy): the on-prem side's
 * disk manager and prioritizer, the cloud side's storage target, cache,
 * write-behind, migration and run-state mirroring.
 */
export interface ProxyControl {
  // --- on-prem edge proxy -------------------------------------------------
  /** Lock the disk for exclusive use (a lease owned by `owner`) and export it (FIG 7 step 707). */
  mountDisk(req: { vmId: string; diskId: string; owner: string }): Promise<{ exportName: string }>;
  /** Stop exporting the disk and release the lease. A disk not mounted is not an error. */
  unmountDisk(req: { vmId: string; diskId: string; owner: string }): Promise<void>;
  /**
   * Export a copy-on-write clone of a snapshotted disk for one clone (FIG 12
   * step 1207): reads come from the snapshot, writes land in the clone's own
   * storage (cloud-only: cloud side; on-prem: a new on-prem overlay). No
   * lease on the source disk is taken: the source keeps running.
   */
  cloneDisk(req: { snapshotId: string; diskId: string; cloneId: string; policy: PersistencePolicy }): Promise<{ exportName: string }>;
  /** Drop every disk cloned for `cloneId`. Unknown clones are not an error. */
  dropClone(req: { cloneId: string }): Promise<void>;
  /** Order the VM's blocks for prefetch (FIG 21 by file, FIG 22 by hotspot). */
  prioritize(req: { vmId: string; diskIds: string[] }): Promise<{ groups: number; bytes: number }>;

  // --- cloud edge proxy ---------------------------------------------------
  /**
   * Serve the VM's disks from the storage target. `siblingSources` names
   * other targets (clones of the same image) the read path may copy blocks
   * from before going to on-prem (FIG 14); empty turns sibling reads off.
   */
  openTarget(req: { vmId: string; instanceId: string; disks: DiskExport[]; siblingSources: string[] }): Promise<{ targetAddress: string }>;
  /** Stream the prioritized blocks into the secure cache in the background (FIG 7 step 731). */
  startPrefetch(req: { vmId: string }): Promise<{ queuedBytes: number }>;
  /** Resolves once the instance has booted that far through the target (FIG 9 staging, FIG 10/11 target). */
  awaitBoot(req: { vmId: string; instanceId: string; phase: 'staging' | 'target' }): Promise<{ bootReadBytes: number }>;
  /** Ship every acknowledged write still held by write-behind to on-prem (FIG 16 step 1609). */
  flushWriteBehind(req: { vmId: string }): Promise<{ flushedBytes: number; pendingBytes: number }>;
  /** Drop the cloud-only writes of a disk; its on-prem copy is what it was when the lease was taken. */
  discardCloudOnly(req: { vmId: string; diskId: string }): Promise<void>;
  closeTarget(req: { vmId: string }): Promise<void>;

  // --- migration (FIG 17/18) ------------------------------------------------
  /** Enter migration mode: copy-on-read into the volumes plus a resumable background sync. */
  startMigration(req: { vmId: string; volumes: Record<string, string> }): Promise<MigrationProgress>;
  /** Sync up to `maxBytes` more; picks up from the persistent log, so it resumes after any interruption. */
  syncRound(req: { vmId: string; maxBytes: number }): Promise<MigrationProgress>;
  /** Leave migration mode (the proxies leave the data path). */
  stopMigration(req: { vmId: string }): Promise<void>;

  // --- run-state mirroring (FIG 15) ----------------------------------------
  /** Copy the run state dirtied since the last round to the standby target. */
  mirrorRound(req: { sourceVmId: string; targetId: string; round: number }): Promise<MirrorRound>;

  // --- resizing (§4.4) ----------------------------------------------------
  cacheUsage(req: { proxyId: string }): Promise<CacheUsage>;
  /** Grow or shrink the secure cache online; shrinking evicts by priority then recency. */
  resizeCache(req: { proxyId: string; capacityBytes: number }): Promise<CacheUsage>;
  /** Stop taking new requests and finish the in-flight ones (before a scale-up restart). */
  drain(req: { proxyId: string }): Promise<void>;
  resume(req: { proxyId: string }): Promise<void>;
  /** Add parallel proxy instances behind the same target (scale-out) or remove them. */
  addPeers(req: { proxyId: string; instanceIds: string[] }): Promise<void>;
  removePeers(req: { proxyId: string; instanceIds: string[] }): Promise<void>;
}


/**
 * What a controller reads back from the proxies it drives: the cloud proxy
 * and storage target of each disk (ids "<vmId>/<diskId>"), for its figures
 * and the application I/O of a VM that runs remotely, and each disk's
 * migration layer. Reading never changes a run.
 */
export interface ProxyObservation {
  proxyIds(vmId: string): string[];
  cloudProxy(proxyId: string): CloudProxy;
  targetOf(proxyId: string): BlockDevice;
  targetDevice(vmId: string, diskId: string): BlockDevice;
  migrationProgressOf(vmId: string): Array<DiskMigrationFigures & { diskId: string }>;
}
