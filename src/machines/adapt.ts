import { createHash } from 'node:crypto';
import { SpillwayError } from '../errors.js';
import type { InstanceTypeInfo } from '../ports/cloud.js';
import type { DeviceKind, GuestConfig, VmInfo } from '../ports/hypervisor.js';
import type { ContainerFramework } from '../ports/container-platform.js';
import type { DiskExport, PersistencePolicy } from '../ports/proxy-control.js';

/**
 * The FIG 7 adaptations (steps 709-721) as pure, idempotent edits of a
 * GuestConfig. The transfer applies them to the real guest through
 * `Hypervisor.updateGuest`; the clone applies them to its own copy. Applying
 * one twice gives the same config, so a step that is re-run after a restart
 * changes nothing more.
 */

export type PlatformName = 'ec2' | 'onprem';

export interface PlatformProfile {
  name: PlatformName;
  /** Device kinds the target's virtual hardware supports; the others are disabled (step 711). */
  compatible: readonly DeviceKind[];
  /** Drivers the guest needs there (step 712): storage, network, and the block initiator for the proxy. */
  drivers: readonly string[];
  /** Devices the target hardware presents, registered with their drivers. */
  devices: ReadonlyArray<{ id: string; kind: DeviceKind }>;
  dns: readonly string[];
}

export const PLATFORMS: Record<PlatformName, PlatformProfile> = {
  ec2: {
    name: 'ec2',
    compatible: ['nvme', 'ena'],
    drivers: ['nvme', 'ena', 'nbd'],
    devices: [{ id: 'ec2-nvme0', kind: 'nvme' }, { id: 'ec2-ena0', kind: 'ena' }],
    dns: ['169.254.169.253'],
  },
  onprem: {
    name: 'onprem',
    compatible: ['pvscsi', 'lsilogic', 'ide', 'vmxnet3', 'e1000', 'guest-tools', 'balloon', 'serial', 'cdrom', 'usb', 'floppy', 'nvme', 'virtio-blk', 'virtio-scsi', 'virtio-net'],
    drivers: ['nbd'],
    devices: [],
    dns: [],
  },
};

export interface GuestAnalysis {
  os: GuestConfig['os'];
  vcpus: number;
  ramMiB: number;
  bootDevice: string;
  mounts: number;
  incompatibleDevices: string[];
  missingDrivers: string[];
  licences: string[];
  /** Disks holding only non-persistent mounts (swap, /tmp): they may stay cloud-only. */
  nonPersistentDisks: string[];
}

export function analyseGuest(vm: VmInfo, target: PlatformProfile): GuestAnalysis {
  const g = vm.guest;
  const diskMounts = new Map<string, Array<'persistent' | 'non-persistent'>>();
  for (const m of g.mounts) diskMounts.set(m.diskId, [...(diskMounts.get(m.diskId) ?? []), m.persistence]);
  return {
    os: g.os,
    vcpus: vm.vcpus,
    ramMiB: vm.ramMiB,
    bootDevice: g.bootDevice,
    mounts: g.mounts.length,
    incompatibleDevices: g.devices.filter((d) => d.enabled && !target.compatible.includes(d.kind)).map((d) => d.id).sort(),
    missingDrivers: target.drivers.filter((d) => !g.drivers.includes(d)),
    licences: [...g.licences],
    nonPersistentDisks: [...diskMounts].filter(([, ps]) => ps.every((p) => p === 'non-persistent')).map(([id]) => id).sort(),
  };
}

/** Disks whose every mount is non-persistent stay cloud-only; the rest persist on-prem (FIG 4). */
export function classifyPersistence(vm: VmInfo, overrides: Record<string, PersistencePolicy> = {}): Record<string, PersistencePolicy> {
  const out: Record<string, PersistencePolicy> = {};
  for (const diskId of vm.diskIds) {
    const mounts = vm.guest.mounts.filter((m) => m.diskId === diskId);
    const nonPersistent = mounts.length > 0 && mounts.every((m) => m.persistence === 'non-persistent');
    out[diskId] = overrides[diskId] ?? (nonPersistent ? 'cloud-only' : 'on-prem');
  }
  return out;
}

export function disableDevices(g: GuestConfig, target: PlatformProfile): void {
  for (const d of g.devices) if (!target.compatible.includes(d.kind)) d.enabled = false;
}

export function installDrivers(g: GuestConfig, target: PlatformProfile): void {
  for (const drv of target.drivers) if (!g.drivers.includes(drv)) g.drivers.push(drv);
  for (const dev of target.devices) {
    const have = g.devices.find((d) => d.id === dev.id);
    if (have) have.enabled = true;
    else g.devices.push({ id: dev.id, kind: dev.kind, enabled: true });
  }
}

/** Proxied address of a disk as the guest sees it after remapping (step 713). */
export function proxiedDevice(exp: DiskExport, original: string): string {
  const n = /(\d+)$/.exec(original)?.[1];
  const partition = n === undefined ? '' : `p${n}`;
  return exp.policy === 'cloud-only' ? `local:${exp.exportName}${partition}` : `nbd:${exp.exportName}${partition}`;
}

export function remapMounts(g: GuestConfig, exports: readonly DiskExport[], bootDiskId: string | undefined): void {
  const byDisk = new Map(exports.map((e) => [e.diskId, e]));
  for (const m of g.mounts) {
    const exp = byDisk.get(m.diskId);
    if (exp && !m.device.startsWith('nbd:') && !m.device.startsWith('local:')) m.device = proxiedDevice(exp, m.device);
  }
  const boot = bootDiskId ? byDisk.get(bootDiskId) : undefined;
  if (boot && !g.bootDevice.startsWith('nbd:')) g.bootDevice = `nbd:${boot.exportName}`;
}

export function rewriteNetwork(g: GuestConfig, target: PlatformProfile): void {
  if (target.name === 'onprem') return;
  // The address, gateway and resolvers are the target network's; the first
  // boot stage configures them by DHCP (FIG 7 step 715).
  g.network.dhcp = true;
  g.network.ipAddress = '';
  g.network.gateway = '';
  g.network.dns = [...target.dns];
}

export function enableMonitoring(g: GuestConfig, target: PlatformProfile): void {
  g.monitoringAgent.installed = true;
  g.monitoringAgent.enabled = true;
  g.monitoringAgent.target = target.name === 'onprem' ? 'onprem' : 'cloud';
}

/** A clone's identity: unique name and machine id, derived from the source and the clone's index (FIG 12 step 1211). */
export function cloneIdentity(source: GuestConfig, cloneIndex: number, runId: string): { machineName: string; machineId: string } {
  const machineName = `${source.identity.machineName}-c${cloneIndex}`;
  const machineId = createHash('sha256').update(`${runId}\0${source.identity.machineId}\0${cloneIndex}`).digest('hex').slice(0, 32);
  return { machineName, machineId };
}

export function regenerateIdentity(g: GuestConfig, identity: { machineName: string; machineId: string }): void {
  g.identity = { machineName: identity.machineName, machineId: identity.machineId, domainJoined: false };
  g.network.hostname = identity.machineName;
}

/** The disk the guest boots from: the one whose mount is "/" or "C:", else the first. */
export function bootDiskOf(vm: VmInfo): string | undefined {
  const root = vm.guest.mounts.find((m) => m.mountPoint === '/' || m.mountPoint.toUpperCase() === 'C:');
  return root?.diskId ?? vm.diskIds[0];
}

export function cloneGuest(g: GuestConfig): GuestConfig {
  return structuredClone(g);
}

export interface ServerNeed {
  vcpus: number;
  ramMiB: number;
  iops: number;
  licences: readonly string[];
}

/**
 * Best-fit remote server (FIG 7 step 721): the cheapest type that covers CPU,
 * RAM and IOPS. A per-core licence ("per-core:…") makes fewer cores win over
 * a lower price, since the licence costs more than the instance.
 */
export function chooseInstanceType(types: readonly InstanceTypeInfo[], need: ServerNeed): InstanceTypeInfo {
  const fits = types.filter((t) => t.vcpus >= need.vcpus && t.memoryMiB >= need.ramMiB && t.ebsIops >= need.iops);
  if (fits.length === 0) {
    throw new SpillwayError('E_NO_FIT', `no instance type offers ${need.vcpus} vCPU, ${need.ramMiB} MiB and ${need.iops} IOPS`, { details: { need, offered: types.map((t) => t.name) } });
  }
  const perCore = need.licences.some((l) => l.startsWith('per-core:'));
  return [...fits].sort((a, b) =>
    (perCore ? a.vcpus - b.vcpus : 0) || a.pricePerHourUsd - b.pricePerHourUsd || a.vcpus - b.vcpus || a.name.localeCompare(b.name))[0]!;
}

/**
 * Placement on a container framework (§7.4): among those with room, the one
 * with the largest ratio of idle to busy containers; none with room means a
 * new framework must be provisioned (undefined).
 */
export function chooseFramework(frameworks: readonly ContainerFramework[], need: { vcpus: number; ramMiB: number }): ContainerFramework | undefined {
  const ratio = (f: ContainerFramework): number => (f.busyContainers === 0 ? Infinity : f.idleContainers / f.busyContainers);
  return [...frameworks]
    .filter((f) => f.freeVcpus >= need.vcpus && f.freeRamMiB >= need.ramMiB)
    .sort((a, b) => (ratio(b) - ratio(a)) || (b.idleContainers - a.idleContainers) || a.id.localeCompare(b.id))[0];
}
