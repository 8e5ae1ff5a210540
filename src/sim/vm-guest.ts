import type { GuestConfig, GuestDevice, GuestMount } from '../ports/hypervisor.js';
import type { ImageSpec, VmSpec } from '../scenario/schema.js';
import type { Rng } from '../world/types.js';

/**
 * The guest configuration an on-prem VM starts with: VMware-style devices and
 * drivers (pvscsi, vmxnet3, tools), its disks mounted, a static address and a
 * machine identity. The FIG 7 adaptations read and rewrite exactly this.
 */
export function buildGuestConfig(vm: VmSpec, image: ImageSpec, index: number, rng: Rng): GuestConfig {
  const linux = image.os.family === 'linux';
  const devices: GuestDevice[] = [
    { id: 'scsi0', kind: 'pvscsi', enabled: true },
    { id: 'eth0', kind: 'vmxnet3', enabled: true },
    { id: 'tools', kind: 'guest-tools', enabled: true },
    { id: 'balloon0', kind: 'balloon', enabled: true },
    { id: 'cdrom0', kind: 'cdrom', enabled: false },
  ];
  const mounts: GuestMount[] = vm.disks.map((d, k) => ({
    mountPoint: linux ? (k === 0 ? '/' : `/data${k}`) : `${String.fromCharCode(67 + k)}:`,
    device: linux ? `/dev/sd${String.fromCharCode(97 + k)}1` : `disk${k}`,
    diskId: d.id,
    fsType: linux ? 'xfs' : 'ntfs',
    persistence: 'persistent',
  }));
  vm.mounts.forEach((m, k) => {
    mounts.push({
      mountPoint: m.path,
      device: linux ? `/dev/sda${k + 2}` : `disk0p${k + 2}`,
      diskId: vm.disks[0]!.id,
      fsType: linux ? (m.path === 'swap' ? 'swap' : 'xfs') : 'ntfs',
      persistence: m.persistence,
    });
  });
  const n = index + 10;
  const hex = (): string => rng.u32().toString(16).padStart(8, '0');
  return {
    os: { ...image.os },
    bootDevice: linux ? '/dev/sda' : 'disk0',
    devices,
    drivers: linux ? ['vmw_pvscsi', 'vmxnet3', 'vmw_balloon', 'xfs'] : ['pvscsi', 'vmxnet3', 'vmmemctl'],
    mounts,
    network: {
      hostname: vm.name,
      domain: 'corp.example',
      ipAddress: `10.${16 + ((n >> 16) & 15)}.${(n >> 8) & 255}.${n & 255}`,
      gateway: `10.${16 + ((n >> 16) & 15)}.${(n >> 8) & 255}.1`,
      dns: ['10.0.0.53', '10.0.1.53'],
      dhcp: false,
    },
    monitoringAgent: { installed: true, enabled: true, target: 'onprem' },
    identity: { machineName: vm.name.toUpperCase(), machineId: hex() + hex() + hex() + hex(), domainJoined: !linux },
    licences: linux ? (image.os.distro === 'rhel' ? ['rhel-subscription'] : []) : ['windows-server-datacenter'],
  };
}
