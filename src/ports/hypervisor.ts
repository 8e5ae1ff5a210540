import type { BlockDevice } from '../proxy/block-device.js';

/**
 * The Hypervisor port: what the controller and the on-prem proxy need from an
 * on-prem virtualization platform. `emulated/hypervisor.ts` implements it on
 * the World; a real vSphere/libvirt adapter would implement the same.
 */

export type PowerState = 'running' | 'stopped' | 'suspended';

export type DeviceKind =
  | 'pvscsi' | 'lsilogic' | 'ide' | 'nvme' | 'virtio-blk' | 'virtio-scsi' | 'xen-blk'
  | 'vmxnet3' | 'e1000' | 'virtio-net' | 'ena'
  | 'guest-tools' | 'balloon' | 'serial' | 'cdrom' | 'usb' | 'floppy';

export interface GuestDevice {
  id: string;
  kind: DeviceKind;
  enabled: boolean;
}

export interface GuestMount {
  mountPoint: string;
  /** Device path as the guest sees it (/dev/sda1, C:, nbd0p1, …). */
  device: string;
  diskId: string;
  fsType: string;
  /** Regions declared non-persistent (swap, /tmp) may stay cloud-only. */
  persistence: 'persistent' | 'non-persistent';
}

export interface GuestNetwork {
  hostname: string;
  domain: string;
  ipAddress: string;
  gateway: string;
  dns: string[];
  dhcp: boolean;
}

export interface GuestIdentity {
  machineName: string;
  machineId: string;
  domainJoined: boolean;
}

/** The guest's configuration that the FIG 7 adaptations read and rewrite. */
export interface GuestConfig {
  os: { family: 'linux' | 'windows'; distro: string; version: string };
  bootDevice: string;
  devices: GuestDevice[];
  /** Installed driver modules, e.g. "pvscsi", "vmxnet3", "nvme", "ena", "nbd". */
  drivers: string[];
  mounts: GuestMount[];
  network: GuestNetwork;
  monitoringAgent: { installed: boolean; enabled: boolean; target: 'onprem' | 'cloud' };
  identity: GuestIdentity;
  licences: string[];
}

export interface DiskInfo {
  id: string;
  vmId: string;
  sizeBytes: number;
  tier: string;
  /** Disks cloned from the same image share this id (FIG 22 hotspots, FIG 14 siblings). */
  imageId: string;
}

export interface VmInfo {
  id: string;
  name: string;
  hostId: string | null;
  power: PowerState;
  vcpus: number;
  ramMiB: number;
  diskIds: string[];
  workload: string;
  /** CPU the workload wants right now, in vCPU-equivalents. */
  cpuDemand: number;
  guest: GuestConfig;
}

export interface HostInfo {
  id: string;
  cpuCores: number;
  ramMiB: number;
  /** Sum of the running VMs' CPU demand. */
  cpuDemand: number;
  ramAllocatedMiB: number;
  failed: boolean;
}

export interface SnapshotInfo {
  id: string;
  vmId: string;
  name: string;
  takenAtUs: number;
  /** The guest configuration at snapshot time, for rollback and reverse. */
  guest: GuestConfig;
  diskIds: string[];
  hasMemory: boolean;
}

/** An exclusive write lease on a disk; a second writer is refused (seed 001). */
export interface DiskLease {
  readonly diskId: string;
  readonly owner: string;
  release(): void;
}

export interface MemoryImage {
  vmId: string;
  bytes: number;
  /** Pages dirtied per second while running, for cut-over convergence. */
  dirtyRateBytesPerS: number;
}

export interface Hypervisor {
  hosts(): HostInfo[];
  vms(): VmInfo[];
  vm(vmId: string): VmInfo;
  disk(diskId: string): DiskInfo;

  powerOn(vmId: string, hostId?: string): Promise<void>;
  powerOff(vmId: string): Promise<void>;
  /** Detach the VM from its host (FIG 7 step 703): it keeps its config, runs nowhere. */
  deactivate(vmId: string): Promise<void>;
  reactivate(vmId: string, hostId: string): Promise<void>;

  snapshot(vmId: string, name: string, options?: { memory?: boolean }): Promise<SnapshotInfo>;
  revertToSnapshot(snapshotId: string): Promise<void>;
  deleteSnapshot(snapshotId: string): Promise<void>;

  /** Apply a change to the guest's configuration (offline adaptation). */
  updateGuest(vmId: string, change: (guest: GuestConfig) => void): Promise<GuestConfig>;

  captureMemory(vmId: string): Promise<MemoryImage>;
  restoreMemory(vmId: string, image: MemoryImage): Promise<void>;

  lockDisk(diskId: string, owner: string): DiskLease;
  /** Who holds the disk's write lease (null: nobody). */
  diskLeaseOwner(diskId: string): string | null;
  /** The disk's blocks. Writers must hold the lease. */
  openDisk(diskId: string): BlockDevice;
}
