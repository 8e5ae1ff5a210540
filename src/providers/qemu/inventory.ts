import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { InputError } from '../../errors.js';
import type { GuestConfig } from '../../ports/hypervisor.js';
import { fail, join, known, num, obj, str, type Raw } from '../../util/check.js';

/**
 * The qemu hypervisor's inventory: a YAML file naming this machine (the one
 * host), where QMP sockets and serial logs go, and each VM with its disk
 * images. Paths are relative to the file.
 *
 *   host: { id: lab-1, cpuCores: 2, ramMiB: 4096 }
 *   runDir: run            # QMP sockets and serial logs
 *   accel: tcg             # or kvm
 *   vms:
 *     - id: web-1
 *       vcpus: 1
 *       ramMiB: 256
 *       disks: [{ id: web-1-root, path: web-1.qcow2 }]
 *       args: [-kernel, vmlinuz, -append, "console=ttyS0"]   # more qemu arguments
 *       guest: { distro: debian, version: "12" }
 */

export interface QemuDiskSpec {
  id: string;
  path: string;
}

export interface QemuVmSpec {
  id: string;
  name: string;
  vcpus: number;
  ramMiB: number;
  disks: QemuDiskSpec[];
  args: string[];
  guest: GuestConfig;
}

export interface QemuInventory {
  host: { id: string; cpuCores: number; ramMiB: number };
  runDir: string;
  accel: 'tcg' | 'kvm';
  vms: QemuVmSpec[];
}

const ID = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export function loadInventory(file: string): QemuInventory {
  let raw: unknown;
  try {
    raw = parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new InputError('E_BAD_INVENTORY', `${file}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  const base = file.slice(0, file.lastIndexOf('/') + 1) || './';
  return parseInventory(raw, (p) => (p.startsWith('/') ? p : base + p));
}

export function parseInventory(raw: unknown, resolvePath: (p: string) => string = (p) => p): QemuInventory {
  const o = obj(raw, '');
  known(o, '', ['host', 'runDir', 'accel', 'vms']);
  const h = obj(o.host, 'host');
  known(h, 'host', ['id', 'cpuCores', 'ramMiB']);
  const host = { id: str(h, 'id', 'host', { pattern: ID }), cpuCores: num(h, 'cpuCores', 'host', { integer: true, min: 1 }), ramMiB: num(h, 'ramMiB', 'host', { integer: true, min: 64 }) };
  if (!Array.isArray(o.vms) || o.vms.length === 0) fail('vms', 'a list of at least one VM', o.vms);
  const vms = (o.vms as unknown[]).map((v, i) => parseVm(v, join('vms', i), resolvePath));
  const seen = new Set<string>();
  for (const id of vms.flatMap((v) => [v.id, ...v.disks.map((d) => d.id)])) {
    if (seen.has(id)) throw new InputError('E_BAD_INVENTORY', `vms: the id ${id} is used twice; VM and disk ids must be unique`);
    seen.add(id);
  }
  return { host, runDir: resolvePath(str(o, 'runDir', '', { default: 'run' })), accel: str(o, 'accel', '', { default: 'tcg', allowed: ['tcg', 'kvm'] }) as 'tcg' | 'kvm', vms };
}

function parseVm(value: unknown, path: string, resolvePath: (p: string) => string): QemuVmSpec {
  const v = obj(value, path);
  known(v, path, ['id', 'name', 'vcpus', 'ramMiB', 'disks', 'args', 'guest']);
  const id = str(v, 'id', path, { pattern: ID });
  const name = str(v, 'name', path, { default: id });
  if (!Array.isArray(v.disks)) fail(join(path, 'disks'), 'a list of disks ({ id, path })', v.disks);
  const disks = (v.disks as unknown[]).map((d, i) => {
    const dp = join(join(path, 'disks'), i);
    const disk = obj(d, dp);
    known(disk, dp, ['id', 'path']);
    return { id: str(disk, 'id', dp, { pattern: ID }), path: resolvePath(str(disk, 'path', dp)) };
  });
  const args = v.args === undefined ? [] : v.args;
  if (!Array.isArray(args) || args.some((a) => typeof a !== 'string')) fail(join(path, 'args'), 'a list of qemu arguments (strings)', v.args);
  const g = v.guest === undefined ? {} : obj(v.guest, join(path, 'guest'));
  known(g, join(path, 'guest'), ['distro', 'version']);
  return {
    id, name, vcpus: num(v, 'vcpus', path, { integer: true, min: 1, default: 1 }), ramMiB: num(v, 'ramMiB', path, { integer: true, min: 16, default: 256 }),
    disks, args: (args as string[]).map((a) => a), guest: linuxGuest(name, disks[0]?.id, g),
  };
}

/** What the adapter knows of a Linux guest on virtio: the inventory's distro and version, the rest from how qemu runs it. */
function linuxGuest(name: string, rootDiskId: string | undefined, g: Raw): GuestConfig {
  return {
    os: { family: 'linux', distro: typeof g.distro === 'string' ? g.distro : 'linux', version: typeof g.version === 'string' ? g.version : '' },
    bootDevice: '/dev/vda',
    devices: [{ id: 'disk0', kind: 'virtio-blk', enabled: true }, { id: 'serial0', kind: 'serial', enabled: true }],
    drivers: ['virtio_blk'],
    mounts: rootDiskId ? [{ mountPoint: '/', device: '/dev/vda', diskId: rootDiskId, fsType: 'ext4', persistence: 'persistent' }] : [],
    network: { hostname: name, domain: '', ipAddress: '', gateway: '', dns: [], dhcp: true },
    monitoringAgent: { installed: false, enabled: false, target: 'onprem' },
    identity: { machineName: name, machineId: '', domainJoined: false },
    licences: [],
  };
}
