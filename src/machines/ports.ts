import type { Cloud } from '../providers/cloud.js';
import type { Hypervisor } from '../providers/hypervisor.js';
import type { World } from '../world/types.js';

/**
 * What the lifecycle machines need from the world outside them, besides the
 * Hypervisor and Cloud ports (src/providers). `wiring.ts` turns a MachineEnv
 * into the named actors every machine invokes; the emulated adapters, the
 * proxy core and the test doubles all plug in here.
 *
 * Every call is idempotent for the same arguments: after a controller restart
 * a step's actor runs again with the same input (and the same token).
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

/** A directory service: cloned machines get a unique identity and re-join the domain (FIG 12 step 1211). */
export interface Directory {
  join(req: { machineName: string; machineId: string; domain: string }): Promise<void>;
  leave(req: { machineName: string; domain: string }): Promise<void>;
}

export interface RunStats {
  vcpus: number;
  cpuUsed: number;
  ramMiB: number;
  ramUsedMiB: number;
  iops: number;
}

export interface ContainerFramework {
  id: string;
  /** Where it runs: a cloud instance id or an on-prem host id. */
  hostId: string;
  kind: 'system' | 'application';
  idleContainers: number;
  busyContainers: number;
  freeVcpus: number;
  freeRamMiB: number;
}

export interface ContainerManifest {
  template: string;
  vcpus: number;
  ramMiB: number;
  network: { hostname: string; ipAddress: string; dns: string[] };
  mounts: Array<{ mountPoint: string; source: string; persistence: 'persistent' | 'non-persistent' }>;
  /** The run state to resume from (FIG 25: kept in the image metadata). */
  runStateBytes: number;
}

/** Container frameworks on both sides (§7, FIG 24-27). */
export interface ContainerPlatform {
  /** Run-time statistics of a VM over the recent past (FIG 25 step 2503). */
  collectStats(req: { vmId: string }): Promise<RunStats>;
  /** The system-container template matching an OS (FIG 25 step 2509). */
  templateFor(req: { family: string; distro: string; version: string }): Promise<{ template: string }>;
  /** Build (idempotently, by `token`) a container image from a template and manifest. */
  buildImage(req: { token: string; sourceId: string; manifest: ContainerManifest }): Promise<{ imageId: string }>;
  deleteImage(req: { imageId: string }): Promise<void>;
  /** Stop a container and persist its run state as an image (FIG 27 steps 2702-2703). */
  checkpoint(req: { containerId: string }): Promise<{ imageId: string; manifest: ContainerManifest }>;
  /** Start a checkpointed container again where it was (rollback of FIG 27). */
  restart(req: { containerId: string }): Promise<void>;
  frameworks(req: { site: 'local' | 'remote' }): Promise<ContainerFramework[]>;
  provisionFramework(req: { token: string; site: 'local' | 'remote'; vcpus: number; ramMiB: number }): Promise<ContainerFramework>;
  /** Load an image (from the remote proxy's cache, streaming misses from on-prem) and start it. */
  run(req: { token: string; frameworkId: string; imageId: string; storageAddress: string }): Promise<{ containerId: string }>;
  stop(req: { containerId: string }): Promise<void>;
}

/** Everything the machines' actors are built from (see wiring.ts). */
export interface MachineEnv {
  world: World;
  hypervisor: Hypervisor;
  cloud: Cloud;
  proxy: ProxyControl;
  directory: Directory;
  containers: ContainerPlatform;
  /** How often to poll the cloud while waiting for a state, microseconds of World time. */
  pollEveryUs?: number;
}
