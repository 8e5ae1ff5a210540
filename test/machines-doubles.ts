/**
 * In-memory test doubles for the ports the machines use: a Hypervisor, a
 * Cloud shaped after EC2, the proxy control port, a directory and a container
 * platform. They keep real state (guest configs, leases, disk bytes, instance
 * states that change on the World clock, client tokens) so the machines are
 * tested against behaviour, not canned answers. Faults are injected per
 * operation with `faults.inject(op, code, { times, retryable })`.
 */
import { SpillwayError } from '../src/errors.js';
import { CloudError, type Cloud, type CloudInstance, type CloudSnapshot, type CloudVolume, type ImageInfo, type InstanceFilter, type InstanceTypeInfo, type RunInstancesRequest, type Tags, type VolumeFilter } from '../src/ports/cloud.js';
import type { DiskInfo, DiskLease, GuestConfig, HostInfo, Hypervisor, MemoryImage, SnapshotInfo, VmInfo } from '../src/ports/hypervisor.js';
import type { BlockDevice, Extent } from '../src/proxy/block-device.js';
import { checkRange } from '../src/proxy/block-device.js';
import type { CacheUsage, DiskExport, MigrationProgress, MirrorRound, ProxyControl } from '../src/ports/proxy-control.js';
import type { ContainerFramework, ContainerManifest, ContainerPlatform, RunStats } from '../src/ports/container-platform.js';
import type { Directory } from '../src/ports/directory.js';
import type { MachineEnv } from '../src/machines/env.js';
import type { SimWorld } from '../src/world/sim-world.js';

const OP_LATENCY_US = 50_000;

export class Faults {
  private readonly pending = new Map<string, Array<{ code: string; retryable: boolean }>>();
  readonly hits: string[] = [];

  inject(op: string, code: string, options: { times?: number; retryable?: boolean } = {}): void {
    const list = this.pending.get(op) ?? [];
    for (let i = 0; i < (options.times ?? 1); i++) list.push({ code, retryable: options.retryable ?? false });
    this.pending.set(op, list);
  }

  check(op: string): void {
    const f = this.pending.get(op)?.shift();
    if (!f) return;
    this.hits.push(`${op}:${f.code}`);
    throw new CloudError(f.code, `injected fault on ${op}`, f.retryable);
  }

  clear(): void {
    this.pending.clear();
  }
}

/** A sparse disk of 4 KiB blocks. */
export class MemDisk implements BlockDevice {
  readonly blocks = new Map<number, Buffer>();
  constructor(readonly name: string, private readonly sizeBytes: number) {}
  size(): number { return this.sizeBytes; }
  async read(offset: number, length: number): Promise<Buffer> {
    checkRange(this, offset, length);
    const out = Buffer.alloc(length);
    for (let pos = offset; pos < offset + length;) {
      const b = Math.floor(pos / 4096);
      const within = pos - b * 4096;
      const n = Math.min(4096 - within, offset + length - pos);
      this.blocks.get(b)?.copy(out, pos - offset, within, within + n);
      pos += n;
    }
    return out;
  }
  async write(offset: number, data: Uint8Array): Promise<void> {
    checkRange(this, offset, data.length, 'write');
    for (let pos = offset; pos < offset + data.length;) {
      const b = Math.floor(pos / 4096);
      const within = pos - b * 4096;
      const n = Math.min(4096 - within, offset + data.length - pos);
      const block = this.blocks.get(b) ?? Buffer.alloc(4096);
      Buffer.from(data.buffer, data.byteOffset + (pos - offset), n).copy(block, within);
      this.blocks.set(b, block);
      pos += n;
    }
  }
  async flush(): Promise<void> {}
  async trim(offset: number, length: number): Promise<void> { await this.write(offset, Buffer.alloc(length)); }
  async writeZeroes(offset: number, length: number): Promise<void> { await this.write(offset, Buffer.alloc(length)); }
  async prefetch(): Promise<void> {}
  async extents(offset: number, length: number): Promise<Extent[]> { return [{ offset, length, type: 'data' }]; }
  async close(): Promise<void> {}
  copyFrom(other: MemDisk): void {
    this.blocks.clear();
    for (const [k, v] of other.blocks) this.blocks.set(k, Buffer.from(v));
  }
}

export function sampleGuest(name: string): GuestConfig {
  return {
    os: { family: 'linux', distro: 'ubuntu', version: '22.04' },
    bootDevice: '/dev/sda',
    devices: [
      { id: 'scsi0', kind: 'pvscsi', enabled: true },
      { id: 'net0', kind: 'vmxnet3', enabled: true },
      { id: 'tools', kind: 'guest-tools', enabled: true },
      { id: 'cd0', kind: 'cdrom', enabled: true },
    ],
    drivers: ['pvscsi', 'vmxnet3'],
    mounts: [
      { mountPoint: '/', device: '/dev/sda1', diskId: `${name}-d0`, fsType: 'ext4', persistence: 'persistent' },
      { mountPoint: '/data', device: '/dev/sdb1', diskId: `${name}-d1`, fsType: 'xfs', persistence: 'persistent' },
      { mountPoint: 'swap', device: '/dev/sdc1', diskId: `${name}-d2`, fsType: 'swap', persistence: 'non-persistent' },
    ],
    network: { hostname: name, domain: 'corp.example', ipAddress: '10.0.0.7', gateway: '10.0.0.1', dns: ['10.0.0.2'], dhcp: false },
    monitoringAgent: { installed: true, enabled: true, target: 'onprem' },
    identity: { machineName: name, machineId: `id-${name}`, domainJoined: true },
    licences: [],
  };
}

interface FakeVm extends VmInfo { memoryBytes: number; dirtyRateBytesPerS: number }

export class FakeHypervisor implements Hypervisor {
  readonly hostList: HostInfo[] = [];
  readonly vmMap = new Map<string, FakeVm>();
  readonly diskMap = new Map<string, DiskInfo & { dev: MemDisk }>();
  readonly snapshots = new Map<string, SnapshotInfo & { disks: Map<string, MemDisk> }>();
  readonly leases = new Map<string, string>();
  readonly restoredMemory: string[] = [];
  private seq = 0;

  constructor(private readonly world: SimWorld, readonly faults: Faults) {}

  addHost(id: string): void {
    this.hostList.push({ id, cpuCores: 32, ramMiB: 262144, cpuDemand: 0, ramAllocatedMiB: 0, failed: false });
  }

  addVm(id: string, hostId: string, options: { memoryBytes?: number; dirtyRateBytesPerS?: number; guest?: GuestConfig } = {}): FakeVm {
    const guest = options.guest ?? sampleGuest(id);
    const diskIds = [...new Set(guest.mounts.map((m) => m.diskId))];
    for (const d of diskIds) this.diskMap.set(d, { id: d, vmId: id, sizeBytes: 1 << 30, tier: 'ssd', imageId: `img-${id}`, dev: new MemDisk(`disk:${d}`, 1 << 30) });
    const vm: FakeVm = {
      id, name: id, hostId, power: 'running', vcpus: 4, ramMiB: 8192, diskIds, workload: 'web', cpuDemand: 2, guest,
      memoryBytes: options.memoryBytes ?? 8 * 1024 ** 3, dirtyRateBytesPerS: options.dirtyRateBytesPerS ?? 50 * 1024 ** 2,
    };
    this.vmMap.set(id, vm);
    return vm;
  }

  private async op(name: string): Promise<void> {
    await this.world.clock.sleepUs(OP_LATENCY_US);
    this.faults.check(`hv.${name}`);
  }

  private get(vmId: string): FakeVm {
    const vm = this.vmMap.get(vmId);
    if (!vm) throw new SpillwayError('E_NO_VM', `no VM ${vmId}`);
    return vm;
  }

  hosts(): HostInfo[] { return this.hostList.map((h) => ({ ...h })); }
  vms(): VmInfo[] { return [...this.vmMap.values()].map((v) => this.vm(v.id)); }
  vm(vmId: string): VmInfo { const v = this.get(vmId); return { ...v, diskIds: [...v.diskIds], guest: structuredClone(v.guest) }; }
  disk(diskId: string): DiskInfo {
    const d = this.diskMap.get(diskId);
    if (!d) throw new SpillwayError('E_NO_DISK', `no disk ${diskId}`);
    return { id: d.id, vmId: d.vmId, sizeBytes: d.sizeBytes, tier: d.tier, imageId: d.imageId };
  }

  async powerOn(vmId: string, hostId?: string): Promise<void> {
    await this.op('powerOn');
    const vm = this.get(vmId);
    if (vm.hostId === null) {
      if (!hostId) throw new SpillwayError('E_STATE', `${vmId} is deactivated`);
      vm.hostId = hostId;
    }
    vm.power = 'running';
  }
  async powerOff(vmId: string): Promise<void> { await this.op('powerOff'); this.get(vmId).power = 'stopped'; }
  async deactivate(vmId: string): Promise<void> {
    await this.op('deactivate');
    const vm = this.get(vmId);
    if (vm.power === 'running') throw new SpillwayError('E_STATE', `${vmId} must be off to deactivate`);
    vm.hostId = null;
  }
  async reactivate(vmId: string, hostId: string): Promise<void> {
    await this.op('reactivate');
    const vm = this.get(vmId);
    if (vm.hostId !== null) throw new SpillwayError('E_STATE', `${vmId} is active on ${vm.hostId}`);
    vm.hostId = hostId;
  }
  async snapshot(vmId: string, name: string, options: { memory?: boolean } = {}): Promise<SnapshotInfo> {
    await this.op('snapshot');
    const vm = this.get(vmId);
    const disks = new Map<string, MemDisk>();
    for (const d of vm.diskIds) {
      const copy = new MemDisk(`snap:${d}`, 1 << 30);
      copy.copyFrom(this.diskMap.get(d)!.dev);
      disks.set(d, copy);
    }
    const snap = { id: `snap-${++this.seq}`, vmId, name, takenAtUs: this.world.nowUs, guest: structuredClone(vm.guest), diskIds: [...vm.diskIds], hasMemory: !!options.memory, disks };
    this.snapshots.set(snap.id, snap);
    return { ...snap, guest: structuredClone(snap.guest) };
  }
  async revertToSnapshot(snapshotId: string): Promise<void> {
    await this.op('revertToSnapshot');
    const snap = this.snapshots.get(snapshotId);
    if (!snap) throw new SpillwayError('E_NO_SNAPSHOT', `no snapshot ${snapshotId}`);
    const vm = this.get(snap.vmId);
    vm.guest = structuredClone(snap.guest);
    for (const [d, copy] of snap.disks) this.diskMap.get(d)!.dev.copyFrom(copy);
  }
  async deleteSnapshot(snapshotId: string): Promise<void> { await this.op('deleteSnapshot'); this.snapshots.delete(snapshotId); }
  async updateGuest(vmId: string, change: (guest: GuestConfig) => void): Promise<GuestConfig> {
    await this.op('updateGuest');
    const vm = this.get(vmId);
    const next = structuredClone(vm.guest);
    change(next);
    vm.guest = next;
    return structuredClone(next);
  }
  async captureMemory(vmId: string): Promise<MemoryImage> {
    await this.op('captureMemory');
    const vm = this.get(vmId);
    return { vmId, bytes: vm.memoryBytes, dirtyRateBytesPerS: vm.power === 'running' ? vm.dirtyRateBytesPerS : 0 };
  }
  async restoreMemory(vmId: string, image: MemoryImage): Promise<void> {
    await this.op('restoreMemory');
    this.restoredMemory.push(`${vmId}:${image.bytes}`);
  }
  lockDisk(diskId: string, owner: string): DiskLease {
    const holder = this.leases.get(diskId);
    if (holder !== undefined && holder !== owner) throw new SpillwayError('E_LEASE_HELD', `disk ${diskId} is leased to ${holder}`);
    this.leases.set(diskId, owner);
    return { diskId, owner, release: () => { if (this.leases.get(diskId) === owner) this.leases.delete(diskId); } };
  }
  diskLeaseOwner(diskId: string): string | null { return this.leases.get(diskId) ?? null; }
  openDisk(diskId: string): BlockDevice { return this.diskMap.get(diskId)!.dev; }
}

const TYPES: InstanceTypeInfo[] = [
  { name: 'm5.large', vcpus: 2, memoryMiB: 8192, ebsIops: 3600, networkGbit: 10, pricePerHourUsd: 0.096 },
  { name: 'm5.xlarge', vcpus: 4, memoryMiB: 16384, ebsIops: 6000, networkGbit: 10, pricePerHourUsd: 0.192 },
  { name: 'm5.2xlarge', vcpus: 8, memoryMiB: 32768, ebsIops: 12000, networkGbit: 10, pricePerHourUsd: 0.384 },
  { name: 'r5.xlarge', vcpus: 4, memoryMiB: 32768, ebsIops: 6000, networkGbit: 10, pricePerHourUsd: 0.252 },
];

export class FakeCloud implements Cloud {
  readonly runId = 'run-test';
  readonly instances = new Map<string, CloudInstance>();
  readonly volumes = new Map<string, CloudVolume>();
  readonly tokens = new Map<string, string[]>();
  readonly calls: string[] = [];
  private seq = 0;
  bootUs = 20_000_000;
  stopUs = 10_000_000;

  constructor(private readonly world: SimWorld, readonly faults: Faults) {}

  private async op(name: string): Promise<void> {
    this.calls.push(name);
    await this.world.clock.sleepUs(OP_LATENCY_US);
    this.faults.check(`cloud.${name}`);
  }

  private later(us: number, fn: () => void): void { this.world.clock.schedule(us, fn); }

  private inst(id: string): CloudInstance {
    const i = this.instances.get(id);
    if (!i) throw new CloudError('InvalidInstanceID.NotFound', `no instance ${id}`, true);
    return i;
  }

  live(): CloudInstance[] { return [...this.instances.values()].filter((i) => i.state !== 'terminated'); }

  async describeInstanceTypes(names?: string[]): Promise<InstanceTypeInfo[]> {
    await this.op('describeInstanceTypes');
    return TYPES.filter((t) => !names || names.includes(t.name));
  }
  async describeImages(): Promise<ImageInfo[]> { await this.op('describeImages'); return [{ id: 'ami-staging', name: 'staging', tags: {} }]; }
  async runInstances(r: RunInstancesRequest): Promise<CloudInstance[]> {
    await this.op('runInstances');
    const known = this.tokens.get(r.clientToken);
    if (known) return known.map((id) => ({ ...this.inst(id) }));
    const out: CloudInstance[] = [];
    for (let n = 0; n < r.count; n++) {
      const i: CloudInstance = { id: `i-${String(++this.seq).padStart(4, '0')}`, type: r.instanceType, state: 'pending', zone: r.zone ?? 'us-east-1a', imageId: r.imageId, tags: { ...(r.tags ?? {}) } };
      this.instances.set(i.id, i);
      this.later(this.bootUs, () => { if (i.state === 'pending') i.state = 'running'; });
      out.push({ ...i });
    }
    this.tokens.set(r.clientToken, out.map((i) => i.id));
    return out;
  }
  async describeInstances(f: InstanceFilter = {}): Promise<CloudInstance[]> {
    await this.op('describeInstances');
    return [...this.instances.values()].filter((i) => (!f.ids || f.ids.includes(i.id)) && (!f.states || f.states.includes(i.state))).map((i) => ({ ...i }));
  }
  async startInstances(ids: string[]): Promise<void> {
    await this.op('startInstances');
    for (const id of ids) {
      const i = this.inst(id);
      if (i.state !== 'stopped') throw new CloudError('IncorrectInstanceState', `${id} is ${i.state}`, false);
      i.state = 'pending';
      this.later(this.bootUs, () => { if (i.state === 'pending') i.state = 'running'; });
    }
  }
  async stopInstances(ids: string[]): Promise<void> {
    await this.op('stopInstances');
    for (const id of ids) {
      const i = this.inst(id);
      if (i.state === 'stopped' || i.state === 'stopping') continue;
      i.state = 'stopping';
      this.later(this.stopUs, () => { if (i.state === 'stopping') i.state = 'stopped'; });
    }
  }
  async terminateInstances(ids: string[]): Promise<void> {
    await this.op('terminateInstances');
    for (const id of ids) this.inst(id).state = 'terminated';
  }
  async modifyInstanceType(id: string, type: string): Promise<void> {
    await this.op('modifyInstanceType');
    const i = this.inst(id);
    if (i.state !== 'stopped') throw new CloudError('IncorrectInstanceState', `${id} must be stopped to change type`, false);
    i.type = type;
  }
  async createVolume(r: { sizeGiB: number; type?: string; zone: string; tags?: Tags; clientToken?: string }): Promise<CloudVolume> {
    await this.op('createVolume');
    const known = r.clientToken ? this.tokens.get(r.clientToken) : undefined;
    if (known) return { ...this.volumes.get(known[0]!)! };
    const v: CloudVolume = { id: `vol-${String(++this.seq).padStart(4, '0')}`, sizeGiB: r.sizeGiB, type: r.type ?? 'gp3', zone: r.zone, state: 'creating', tags: { ...(r.tags ?? {}) } };
    this.volumes.set(v.id, v);
    if (r.clientToken) this.tokens.set(r.clientToken, [v.id]);
    this.later(5_000_000, () => { if (v.state === 'creating') v.state = 'available'; });
    return { ...v };
  }
  async attachVolume(volumeId: string, instanceId: string, device: string): Promise<void> {
    await this.op('attachVolume');
    const v = this.volumes.get(volumeId)!;
    v.state = 'in-use';
    v.attachedTo = instanceId;
    v.device = device;
  }
  async detachVolume(volumeId: string): Promise<void> {
    await this.op('detachVolume');
    const v = this.volumes.get(volumeId)!;
    v.state = 'available';
    delete v.attachedTo;
    delete v.device;
  }
  async deleteVolume(volumeId: string): Promise<void> {
    await this.op('deleteVolume');
    const v = this.volumes.get(volumeId);
    if (v) v.state = 'deleted';
  }
  async describeVolumes(f: VolumeFilter = {}): Promise<CloudVolume[]> {
    await this.op('describeVolumes');
    return [...this.volumes.values()].filter((v) => !f.ids || f.ids.includes(v.id)).map((v) => ({ ...v }));
  }
  async createSnapshot(volumeId: string): Promise<CloudSnapshot> { await this.op('createSnapshot'); return { id: `snap-${++this.seq}`, volumeId, state: 'completed', tags: {} }; }
  async deleteSnapshot(): Promise<void> { await this.op('deleteSnapshot'); }
  async describeSnapshots(): Promise<CloudSnapshot[]> { await this.op('describeSnapshots'); return []; }
  async createTags(): Promise<void> { await this.op('createTags'); }
  async vcpuQuota(): Promise<{ limit: number; used: number }> { await this.op('vcpuQuota'); return { limit: 1000, used: 0 }; }
}

interface VmProxyState {
  mounted: Map<string, DiskLease>;
  target?: { instanceId: string; disks: DiskExport[]; siblingSources: string[] };
  /** Acknowledged writes not yet shipped on-prem, in order. */
  pending: Array<{ diskId: string; offset: number; data: Buffer }>;
  cloudOnly: Map<string, number>;
  migration?: { totalBytes: number; syncedBytes: number; dirtyBytes: number };
}

export class FakeProxy implements ProxyControl {
  readonly vms = new Map<string, VmProxyState>();
  readonly clones = new Map<string, string[]>();
  readonly caches = new Map<string, CacheUsage>();
  readonly peers = new Map<string, string[]>();
  readonly drained = new Set<string>();
  readonly openedTargets: Array<{ vmId: string; siblingSources: string[] }> = [];
  linkRateBytesPerS = 125 * 1024 ** 2;

  /** Any Hypervisor: the e2e runs put this double in front of the emulated hypervisor. */
  constructor(private readonly world: SimWorld, private readonly hv: Hypervisor, readonly faults: Faults) {}

  private async op(name: string): Promise<void> {
    await this.world.clock.sleepUs(OP_LATENCY_US);
    this.faults.check(`proxy.${name}`);
  }
  /** Clones and run-state mirroring read the in-memory hypervisor's snapshots and memory model. */
  private fake(): FakeHypervisor {
    if (!(this.hv instanceof FakeHypervisor)) throw new SpillwayError('E_UNSUPPORTED', 'this proxy double models clones and mirroring only over FakeHypervisor');
    return this.hv;
  }
  private vm(vmId: string): VmProxyState {
    let s = this.vms.get(vmId);
    if (!s) { s = { mounted: new Map(), pending: [], cloudOnly: new Map() }; this.vms.set(vmId, s); }
    return s;
  }

  /** The guest writes through the storage target; acknowledged once journaled (write-behind). */
  guestWrite(vmId: string, diskId: string, offset: number, data: Buffer): void {
    const s = this.vm(vmId);
    const exp = s.target?.disks.find((d) => d.diskId === diskId);
    if (!exp) throw new SpillwayError('E_NO_TARGET', `${vmId} has no target for ${diskId}`);
    if (exp.policy === 'cloud-only') s.cloudOnly.set(diskId, (s.cloudOnly.get(diskId) ?? 0) + data.length);
    else s.pending.push({ diskId, offset, data: Buffer.from(data) });
    if (s.migration) s.migration.dirtyBytes += data.length;
  }

  async mountDisk(req: { vmId: string; diskId: string; owner: string }): Promise<{ exportName: string }> {
    await this.op('mountDisk');
    const s = this.vm(req.vmId);
    if (!s.mounted.has(req.diskId)) s.mounted.set(req.diskId, this.hv.lockDisk(req.diskId, req.owner));
    return { exportName: `exp-${req.diskId}` };
  }
  async unmountDisk(req: { vmId: string; diskId: string; owner: string }): Promise<void> {
    await this.op('unmountDisk');
    const s = this.vm(req.vmId);
    s.mounted.get(req.diskId)?.release();
    s.mounted.delete(req.diskId);
  }
  async cloneDisk(req: { snapshotId: string; diskId: string; cloneId: string }): Promise<{ exportName: string }> {
    await this.op('cloneDisk');
    if (!this.fake().snapshots.has(req.snapshotId)) throw new SpillwayError('E_NO_SNAPSHOT', `no snapshot ${req.snapshotId}`);
    const list = this.clones.get(req.cloneId) ?? [];
    const name = `clone-${req.cloneId}-${req.diskId}`;
    if (!list.includes(name)) list.push(name);
    this.clones.set(req.cloneId, list);
    return { exportName: name };
  }
  async dropClone(req: { cloneId: string }): Promise<void> { await this.op('dropClone'); this.clones.delete(req.cloneId); }
  async prioritize(req: { vmId: string; diskIds: string[] }): Promise<{ groups: number; bytes: number }> {
    await this.op('prioritize');
    return { groups: req.diskIds.length * 4, bytes: req.diskIds.length * 16 * 1024 ** 2 };
  }
  async openTarget(req: { vmId: string; instanceId: string; disks: DiskExport[]; siblingSources: string[] }): Promise<{ targetAddress: string }> {
    await this.op('openTarget');
    this.vm(req.vmId).target = { instanceId: req.instanceId, disks: req.disks, siblingSources: req.siblingSources };
    this.openedTargets.push({ vmId: req.vmId, siblingSources: req.siblingSources });
    return { targetAddress: `target/${req.vmId}` };
  }
  async startPrefetch(req: { vmId: string }): Promise<{ queuedBytes: number }> {
    await this.op('startPrefetch');
    if (!this.vm(req.vmId).target) throw new SpillwayError('E_NO_TARGET', `no target for ${req.vmId}`);
    return { queuedBytes: 64 * 1024 ** 2 };
  }
  async awaitBoot(req: { vmId: string; phase: 'staging' | 'target' }): Promise<{ bootReadBytes: number }> {
    await this.op(`awaitBoot.${req.phase}`);
    await this.world.clock.sleepUs(req.phase === 'staging' ? 5_000_000 : 30_000_000);
    return { bootReadBytes: req.phase === 'staging' ? 8 * 1024 ** 2 : 300 * 1024 ** 2 };
  }
  async flushWriteBehind(req: { vmId: string }): Promise<{ flushedBytes: number; pendingBytes: number }> {
    await this.op('flushWriteBehind');
    const s = this.vm(req.vmId);
    let flushed = 0;
    for (const w of s.pending) {
      await this.hv.openDisk(w.diskId).write(w.offset, w.data);
      flushed += w.data.length;
    }
    s.pending = [];
    return { flushedBytes: flushed, pendingBytes: 0 };
  }
  async discardCloudOnly(req: { vmId: string; diskId: string }): Promise<void> { await this.op('discardCloudOnly'); this.vm(req.vmId).cloudOnly.delete(req.diskId); }
  async closeTarget(req: { vmId: string }): Promise<void> { await this.op('closeTarget'); delete this.vm(req.vmId).target; }
  async startMigration(req: { vmId: string; volumes: Record<string, string> }): Promise<MigrationProgress> {
    await this.op('startMigration');
    const s = this.vm(req.vmId);
    s.migration ??= { totalBytes: Object.keys(req.volumes).length * 256 * 1024 ** 2, syncedBytes: 0, dirtyBytes: 0 };
    return { ...s.migration };
  }
  async syncRound(req: { vmId: string; maxBytes: number }): Promise<MigrationProgress> {
    await this.op('syncRound');
    const m = this.vm(req.vmId).migration;
    if (!m) throw new SpillwayError('E_NOT_MIGRATING', `${req.vmId} is not in migration mode`);
    let budget = req.maxBytes;
    const resend = Math.min(budget, m.dirtyBytes);
    m.dirtyBytes -= resend;
    budget -= resend;
    const fresh = Math.min(budget, m.totalBytes - m.syncedBytes);
    m.syncedBytes += fresh;
    await this.world.clock.sleepUs(Math.round(((resend + fresh) / this.linkRateBytesPerS) * 1e6));
    return { ...m };
  }
  async stopMigration(req: { vmId: string }): Promise<void> { await this.op('stopMigration'); delete this.vm(req.vmId).migration; }
  async mirrorRound(req: { sourceVmId: string; targetId: string; round: number }): Promise<MirrorRound> {
    await this.op('mirrorRound');
    const vm = this.fake().vmMap.get(req.sourceVmId)!;
    const s = this.vm(req.sourceVmId);
    const state = s as VmProxyState & { mirrorDirty?: number };
    const running = vm.power === 'running';
    const toSend = req.round === 0 || state.mirrorDirty === undefined ? vm.memoryBytes : state.mirrorDirty;
    const durationUs = Math.max(1, Math.round((toSend / this.linkRateBytesPerS) * 1e6));
    await this.world.clock.sleepUs(durationUs);
    const dirtyRate = running ? vm.dirtyRateBytesPerS : 0;
    const dirtyBytes = Math.min(vm.memoryBytes, Math.round(dirtyRate * (durationUs / 1e6)));
    state.mirrorDirty = dirtyBytes;
    return { round: req.round, sentBytes: toSend, durationUs, dirtyBytes, dirtyRateBytesPerS: dirtyRate, linkRateBytesPerS: this.linkRateBytesPerS };
  }
  async cacheUsage(req: { proxyId: string }): Promise<CacheUsage> {
    await this.op('cacheUsage');
    return { ...this.cache(req.proxyId) };
  }
  private cache(proxyId: string): CacheUsage {
    let c = this.caches.get(proxyId);
    if (!c) { c = { capacityBytes: 10 * 1024 ** 3, usedBytes: 6 * 1024 ** 3 }; this.caches.set(proxyId, c); }
    return c;
  }
  async resizeCache(req: { proxyId: string; capacityBytes: number }): Promise<CacheUsage> {
    await this.op('resizeCache');
    const c = this.cache(req.proxyId);
    c.capacityBytes = req.capacityBytes;
    c.usedBytes = Math.min(c.usedBytes, req.capacityBytes);
    return { ...c };
  }
  async drain(req: { proxyId: string }): Promise<void> { await this.op('drain'); this.drained.add(req.proxyId); }
  async resume(req: { proxyId: string }): Promise<void> { await this.op('resume'); this.drained.delete(req.proxyId); }
  async addPeers(req: { proxyId: string; instanceIds: string[] }): Promise<void> {
    await this.op('addPeers');
    this.peers.set(req.proxyId, [...new Set([...(this.peers.get(req.proxyId) ?? []), ...req.instanceIds])].sort());
  }
  async removePeers(req: { proxyId: string; instanceIds: string[] }): Promise<void> {
    await this.op('removePeers');
    this.peers.set(req.proxyId, (this.peers.get(req.proxyId) ?? []).filter((i) => !req.instanceIds.includes(i)));
  }
}

export class FakeDirectory implements Directory {
  readonly members = new Map<string, string>();
  constructor(private readonly world: SimWorld, readonly faults: Faults) {}
  async join(req: { machineName: string; machineId: string; domain: string }): Promise<void> {
    await this.world.clock.sleepUs(OP_LATENCY_US);
    this.faults.check('directory.join');
    const holder = [...this.members].find(([name, id]) => name === req.machineName && id !== req.machineId);
    if (holder) throw new SpillwayError('E_NAME_TAKEN', `${req.machineName} is already joined with another id`);
    this.members.set(req.machineName, req.machineId);
  }
  async leave(req: { machineName: string }): Promise<void> {
    await this.world.clock.sleepUs(OP_LATENCY_US);
    this.members.delete(req.machineName);
  }
}

export class FakeContainers implements ContainerPlatform {
  readonly images = new Map<string, ContainerManifest>();
  readonly running = new Map<string, { frameworkId: string; imageId: string }>();
  readonly stopped = new Set<string>();
  readonly frameworkList: ContainerFramework[] = [];
  private seq = 0;
  private readonly tokens = new Map<string, string>();
  constructor(private readonly world: SimWorld, readonly faults: Faults) {}
  private async op(name: string): Promise<void> { await this.world.clock.sleepUs(OP_LATENCY_US); this.faults.check(`containers.${name}`); }
  async collectStats(): Promise<RunStats> { await this.op('collectStats'); return { vcpus: 4, cpuUsed: 1.5, ramMiB: 8192, ramUsedMiB: 3000, iops: 800 }; }
  async templateFor(req: { family: string; distro: string; version: string }): Promise<{ template: string }> {
    await this.op('templateFor');
    return { template: `${req.family}/${req.distro}:${req.version}` };
  }
  async buildImage(req: { token: string; manifest: ContainerManifest }): Promise<{ imageId: string }> {
    await this.op('buildImage');
    const known = this.tokens.get(req.token);
    if (known) return { imageId: known };
    const imageId = `cimg-${++this.seq}`;
    this.images.set(imageId, structuredClone(req.manifest));
    this.tokens.set(req.token, imageId);
    return { imageId };
  }
  async deleteImage(req: { imageId: string }): Promise<void> { await this.op('deleteImage'); this.images.delete(req.imageId); }
  async checkpoint(req: { containerId: string }): Promise<{ imageId: string; manifest: ContainerManifest }> {
    await this.op('checkpoint');
    this.stopped.add(req.containerId);
    const manifest: ContainerManifest = {
      template: 'linux/alpine:3.19', vcpus: 2, ramMiB: 2048, network: { hostname: req.containerId, ipAddress: '10.1.0.9', dns: ['10.0.0.2'] },
      mounts: [{ mountPoint: '/var/lib/app', source: 'disk:ctr-d0', persistence: 'persistent' }], runStateBytes: 512 * 1024 ** 2,
    };
    const imageId = `ckpt-${req.containerId}`;
    this.images.set(imageId, manifest);
    return { imageId, manifest };
  }
  async restart(req: { containerId: string }): Promise<void> { await this.op('restart'); this.stopped.delete(req.containerId); }
  async frameworks(req: { site: 'local' | 'remote' }): Promise<ContainerFramework[]> {
    await this.op('frameworks');
    return this.frameworkList.filter((f) => (req.site === 'remote') === f.hostId.startsWith('i-')).map((f) => ({ ...f }));
  }
  async provisionFramework(req: { token: string; site: 'local' | 'remote'; vcpus: number; ramMiB: number }): Promise<ContainerFramework> {
    await this.op('provisionFramework');
    const known = this.frameworkList.find((f) => f.id === `fw-${req.token}`);
    if (known) return { ...known };
    const fw: ContainerFramework = { id: `fw-${req.token}`, hostId: req.site === 'remote' ? `i-fw${++this.seq}` : `h-fw${++this.seq}`, kind: 'system', idleContainers: 0, busyContainers: 0, freeVcpus: Math.max(8, req.vcpus), freeRamMiB: Math.max(16384, req.ramMiB) };
    this.frameworkList.push(fw);
    return { ...fw };
  }
  async run(req: { token: string; frameworkId: string; imageId: string }): Promise<{ containerId: string }> {
    await this.op('run');
    const containerId = `ctr-${req.token}`;
    if (!this.images.has(req.imageId)) throw new SpillwayError('E_NO_IMAGE', `no image ${req.imageId}`);
    this.running.set(containerId, { frameworkId: req.frameworkId, imageId: req.imageId });
    return { containerId };
  }
  async stop(req: { containerId: string }): Promise<void> { await this.op('stop'); this.running.delete(req.containerId); }
}

export interface TestEnv extends MachineEnv {
  world: SimWorld;
  hypervisor: FakeHypervisor;
  cloud: FakeCloud;
  proxy: FakeProxy;
  directory: FakeDirectory;
  containers: FakeContainers;
  faults: Faults;
}

export function makeEnv(world: SimWorld): TestEnv {
  const faults = new Faults();
  const hypervisor = new FakeHypervisor(world, faults);
  hypervisor.addHost('h1');
  hypervisor.addHost('h2');
  const cloud = new FakeCloud(world, faults);
  const proxy = new FakeProxy(world, hypervisor, faults);
  return { world, hypervisor, cloud, proxy, directory: new FakeDirectory(world, faults), containers: new FakeContainers(world, faults), faults, pollEveryUs: 1_000_000 };
}
