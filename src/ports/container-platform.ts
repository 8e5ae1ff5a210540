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

