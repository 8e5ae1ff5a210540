import { SpillwayError } from '../../../errors.js';
import type { BlockDevice } from '../../../proxy/block-device.js';
import { SparseStore } from '../../../proxy/stores/sparse-store.js';
import { CpuModel, EPS, ramUsed } from './cpu-model.js';
import { LeaseGuard } from './lease-guard.js';
import { DiskChain, SnapshotDelta } from './snapshot-disk.js';
import {
  DEFAULT_LATENCIES, type DiskState, type HaOptions, type HostDef, type HostState, type HostStats, type HypervisorLatencies,
  type SnapshotState, type TaskInfo, type VmDef, type VmState, type VmStats,
} from './types.js';
import { US_PER_S } from '../../../util/units.js';
import type { World } from '../../../world/types.js';
import type {
  DiskInfo, DiskLease, GuestConfig, HostInfo, Hypervisor, MemoryImage, PowerState, SnapshotInfo, VmInfo,
} from '../../../ports/hypervisor.js';
import type { HostMonitor } from '../../../ports/host-monitor.js';

export {
  DEFAULT_LATENCIES, type CpuIntegrals, type DiskDef, type HaOptions, type HostDef, type HostStats, type HypervisorLatencies,
  type Placement, type TaskInfo, type VmDef, type VmStats,
} from './types.js';

/**
 * An emulated on-prem hypervisor on the World clock: hosts with cores and
 * RAM, VMs whose CPU demand is set by their workload, power operations and
 * snapshots that take modeled time, exclusive disk leases, host failure with
 * HA restart. The CPU model (shares, batch tasks, integrals, samples) is
 * CpuModel (cpu-model.ts); this class is the port surface and delegates to it.
 */

const GiB_MiB = 1024;

export class EmulatedHypervisor implements Hypervisor, HostMonitor {
  readonly latencies: HypervisorLatencies;
  readonly ha: HaOptions;
  private readonly hostList: HostState[] = [];
  private readonly hostById = new Map<string, HostState>();
  private readonly vmList: VmState[] = [];
  private readonly vmById = new Map<string, VmState>();
  private readonly guestViews = new WeakMap<GuestConfig, GuestConfig>();
  private readonly disks = new Map<string, DiskState>();
  private readonly snapshots = new Map<string, SnapshotState>();
  private snapshotSeq = 0;
  private readonly cpu: CpuModel;

  constructor(private readonly world: World, options: { hosts: HostDef[]; latencies?: Partial<HypervisorLatencies>; ha?: Partial<HaOptions> }) {
    this.latencies = { ...DEFAULT_LATENCIES, ...options.latencies };
    this.ha = { enabled: true, restartUs: 2 * 60 * US_PER_S, ...options.ha };
    this.cpu = new CpuModel(world, this.hostList, this.vmList);
    for (const h of options.hosts) {
      if (this.hostById.has(h.id)) throw new SpillwayError('E_BAD_CONFIG', `host ${h.id} is defined twice`);
      const host: HostState = {
        id: h.id, cpuCores: h.cpuCores, ramMiB: h.ramMiB, failed: false, failedSinceUs: 0, vms: new Set(),
        demand: 0, granted: 0, lastUs: world.clock.nowUs(), saturated: false,
        demandVcpuUs: 0, grantedVcpuUs: 0, starvedUs: 0, saturatedUs: 0, peakDemandRatio: 0, failedUs: 0,
      };
      this.hostList.push(host);
      this.hostById.set(h.id, host);
    }
  }

  // ---- building the data center -------------------------------------------------

  /** Register a VM, stopped and on no host. */
  addVm(def: VmDef): void {
    if (this.vmById.has(def.id)) throw new SpillwayError('E_BAD_CONFIG', `VM ${def.id} is defined twice`);
    const vm: VmState = {
      id: def.id, def, host: null, power: 'stopped', guest: structuredClone(def.guest), baseDemand: 0, granted: 0,
      lastUs: this.world.clock.nowUs(), completion: null, onTaskDone: null, elsewhereVcpus: null,
      placements: [], task: null, demandVcpuUs: 0, grantedVcpuUs: 0, starvedUs: 0,
    };
    this.vmList.push(vm);
    this.vmById.set(def.id, vm);
    for (const d of def.disks) {
      if (this.disks.has(d.id)) throw new SpillwayError('E_BAD_CONFIG', `disk ${d.id} is defined twice`);
      this.disks.set(d.id, { def: d, vmId: def.id, chain: null, device: null, lease: null });
    }
  }

  /** Start a VM at once (the data center as it is when the run begins). */
  placeRunning(vmId: string, hostId?: string): void {
    const vm = this.vmState(vmId);
    const host = hostId ? this.hostState(hostId) : this.choosePlacement(vm);
    this.checkFits(vm, host);
    this.cpu.start(vm, host);
  }

  /** The host `auto` placement picks: room for the RAM, lowest committed vCPUs per core, then list order. */
  choosePlacement(vm: { id: string; def: VmDef }): HostState {
    let best: HostState | null = null;
    let bestRatio = Infinity;
    for (const h of this.hostList) {
      if (h.failed || ramUsed(h) + vm.def.ramMiB > h.ramMiB) continue;
      let committed = vm.def.vcpus;
      for (const v of h.vms) committed += v.def.vcpus;
      const ratio = committed / h.cpuCores;
      if (ratio < bestRatio - EPS) { best = h; bestRatio = ratio; }
    }
    if (!best) throw new SpillwayError('E_NO_HOST', `no working host has ${vm.def.ramMiB} MiB of RAM free for VM ${vm.id}`);
    return best;
  }

  // ---- Hypervisor port: inventory --------------------------------------------------

  hosts(): HostInfo[] {
    return this.hostList.map((h) => ({
      id: h.id, cpuCores: h.cpuCores, ramMiB: h.ramMiB, cpuDemand: h.demand, ramAllocatedMiB: ramUsed(h), failed: h.failed,
    }));
  }

  vms(): VmInfo[] {
    return this.vmList.map((v) => this.info(v));
  }

  vm(vmId: string): VmInfo {
    return this.info(this.vmState(vmId));
  }

  /** A VM's power state, without copying its configuration (hot path of the load loop). */
  powerOf(vmId: string): PowerState {
    return this.vmState(vmId).power;
  }

  disk(diskId: string): DiskInfo {
    const d = this.diskState(diskId);
    return { id: d.def.id, vmId: d.vmId, sizeBytes: d.def.sizeBytes, tier: d.def.tier, imageId: d.def.imageId };
  }

  // ---- power -----------------------------------------------------------------------

  async powerOn(vmId: string, hostId?: string): Promise<void> {
    const vm = this.vmState(vmId);
    this.expectPower(vm, 'powerOn', ['stopped', 'suspended']);
    const host = hostId ? this.hostState(hostId) : vm.host && !vm.host.failed ? vm.host : this.choosePlacement(vm);
    this.checkFits(vm, host);
    await this.world.clock.sleepUs(this.latencies.powerOnUs);
    this.expectPower(vm, 'powerOn', ['stopped', 'suspended']);
    this.checkFits(vm, host);
    this.cpu.start(vm, host);
  }

  async powerOff(vmId: string): Promise<void> {
    const vm = this.vmState(vmId);
    this.expectPower(vm, 'powerOff', ['running', 'suspended']);
    await this.world.clock.sleepUs(this.latencies.powerOffUs);
    this.cpu.stop(vm, vm.host, 'stopped');
  }

  async deactivate(vmId: string): Promise<void> {
    const vm = this.vmState(vmId);
    await this.world.clock.sleepUs(this.latencies.deactivateUs);
    this.cpu.stop(vm, null, 'stopped');
  }

  /** Register the VM on `hostId` again and run it (the way back from the cloud, FIG 16). */
  async reactivate(vmId: string, hostId: string): Promise<void> {
    const vm = this.vmState(vmId);
    const host = this.hostState(hostId);
    this.expectPower(vm, 'reactivate', ['stopped']);
    this.checkFits(vm, host);
    await this.world.clock.sleepUs(this.latencies.reactivateUs);
    this.checkFits(vm, host);
    this.cpu.start(vm, host);
  }

  // ---- snapshots ---------------------------------------------------------------------

  async snapshot(vmId: string, name: string, options: { memory?: boolean } = {}): Promise<SnapshotInfo> {
    const vm = this.vmState(vmId);
    const memory = options.memory ?? false;
    if (memory && vm.power !== 'running') {
      throw new SpillwayError('E_VM_STATE', `snapshot of ${vmId} with memory needs a running VM; it is ${vm.power}`);
    }
    const latency = this.latencies.snapshotUs + (memory ? Math.round((vm.def.ramMiB / GiB_MiB) * this.latencies.memoryPerGiBUs) : 0);
    await this.world.clock.sleepUs(latency);
    const id = `${vmId}/snap-${++this.snapshotSeq}`;
    // Freeze each disk's current contents; later writes go to a fresh delta on top.
    const frozen = new Map<string, BlockDevice>();
    for (const d of vm.def.disks) {
      const chain = this.chainOf(this.diskState(d.id));
      frozen.set(d.id, chain.current);
      chain.current = new SnapshotDelta(chain.current, `${d.id}@${id}`);
    }
    const snap: SnapshotState = {
      id, vmId, name, takenAtUs: this.world.clock.nowUs(),
      guest: structuredClone(vm.guest), diskIds: vm.def.disks.map((d) => d.id), hasMemory: memory, power: vm.power, frozen,
    };
    this.snapshots.set(snap.id, snap);
    return publicSnapshot(snap);
  }

  async revertToSnapshot(snapshotId: string): Promise<void> {
    const snap = this.snapshotState(snapshotId);
    const vm = this.vmState(snap.vmId);
    await this.world.clock.sleepUs(this.latencies.revertUs + (snap.hasMemory ? Math.round((vm.def.ramMiB / GiB_MiB) * this.latencies.memoryPerGiBUs) : 0));
    vm.guest = structuredClone(snap.guest);
    for (const [diskId, base] of snap.frozen) this.chainOf(this.diskState(diskId)).current = new SnapshotDelta(base, `${diskId}@${snap.id}`);
    // A memory snapshot resumes the guest where it was; a disk-only one leaves it powered off.
    if (snap.hasMemory && snap.power === 'running' && vm.host && !vm.host.failed) {
      if (vm.power !== 'running') this.cpu.start(vm, vm.host);
    } else if (vm.power !== 'stopped') {
      this.cpu.stop(vm, vm.host, 'stopped');
    }
  }

  async deleteSnapshot(snapshotId: string): Promise<void> {
    this.snapshotState(snapshotId);
    await this.world.clock.sleepUs(this.latencies.deleteSnapshotUs);
    this.snapshots.delete(snapshotId);
  }

  async updateGuest(vmId: string, change: (guest: GuestConfig) => void): Promise<GuestConfig> {
    const vm = this.vmState(vmId);
    await this.world.clock.sleepUs(this.latencies.updateGuestUs);
    const next = structuredClone(vm.guest);
    change(next);
    vm.guest = next;
    return structuredClone(next);
  }

  async captureMemory(vmId: string): Promise<MemoryImage> {
    const vm = this.vmState(vmId);
    this.expectPower(vm, 'captureMemory', ['running', 'suspended']);
    await this.world.clock.sleepUs(Math.round((vm.def.ramMiB / GiB_MiB) * this.latencies.memoryPerGiBUs));
    return { vmId, bytes: vm.def.ramMiB * 1024 * 1024, dirtyRateBytesPerS: vm.def.dirtyRateBytesPerS };
  }

  async restoreMemory(vmId: string, image: MemoryImage): Promise<void> {
    const vm = this.vmState(vmId);
    if (image.vmId !== vmId) throw new SpillwayError('E_MEMORY_IMAGE', `memory image of ${image.vmId} cannot be restored into ${vmId}`);
    await this.world.clock.sleepUs(Math.round((image.bytes / 1024 ** 3) * this.latencies.memoryPerGiBUs));
    const host = vm.host && !vm.host.failed ? vm.host : this.choosePlacement(vm);
    if (vm.power !== 'running') {
      this.checkFits(vm, host);
      this.cpu.start(vm, host);
    }
  }

  // ---- disks -------------------------------------------------------------------------

  /** Who holds a disk's write lease, or null (read-only: the management API checks before it acts). */
  leaseHolder(diskId: string): string | null {
    return this.diskState(diskId).lease?.owner ?? null;
  }

  lockDisk(diskId: string, owner: string): DiskLease {
    const d = this.diskState(diskId);
    if (d.lease) {
      throw new SpillwayError('E_LEASE_HELD', `disk ${diskId} is locked for writing by ${d.lease.owner}; ${owner} is refused (one writer per disk)`, {
        details: { diskId, holder: d.lease.owner, requester: owner },
      });
    }
    let released = false;
    const lease: DiskLease = {
      diskId,
      owner,
      release: () => {
        if (released) return;
        released = true;
        if (d.lease === lease) d.lease = null;
      },
    };
    d.lease = lease;
    return lease;
  }

  /**
   * A disk as frozen by a snapshot, read-only: what a clone of that snapshot
   * starts from (FIG 12). The frozen state is never written, so it stays valid
   * while the VM keeps running and writing its own delta.
   */
  openSnapshotDisk(snapshotId: string, diskId: string): BlockDevice {
    const frozen = this.snapshotState(snapshotId).frozen.get(diskId);
    if (!frozen) throw new SpillwayError('E_NO_DISK', `snapshot ${snapshotId} has no disk ${diskId}`);
    return new LeaseGuard(frozen, () => false, `${diskId}@${snapshotId}`);
  }

  /** Who holds the write lease on a disk, if anyone. */
  diskLeaseOwner(diskId: string): string | null {
    return this.diskState(diskId).lease?.owner ?? null;
  }

  openDisk(diskId: string): BlockDevice {
    const d = this.diskState(diskId);
    if (!d.device) {
      const chain = this.chainOf(d);
      d.device = d.def.layers ? d.def.layers(chain) : chain;
    }
    return new LeaseGuard(d.device, () => d.lease !== null, diskId);
  }

  private chainOf(d: DiskState): DiskChain {
    d.chain ??= new DiskChain(d.def.create ? d.def.create() : new SparseStore(`disk:${d.def.id}`, d.def.sizeBytes), d.def.id);
    return d.chain;
  }

  // ---- CPU demand and batch tasks (CpuModel) -----------------------------------------

  /** Set what a VM's workload wants now; takes effect at the next `rebalance()`. */
  setDemand(vmId: string, vcpus: number): void {
    this.cpu.setDemand(this.vmState(vmId), vcpus);
  }

  /**
   * Start a fixed amount of work on a VM. It runs at up to `maxRate` cores
   * and finishes when `workVcpuUs` has been granted; `onDone` fires then.
   */
  startTask(vmId: string, task: { name: string; workVcpuUs: number; maxRate: number }, onDone?: (task: TaskInfo) => void): void {
    this.cpu.startTask(this.vmState(vmId), task, onDone);
  }

  /** Recompute every host's shares from the demands set since the last call. */
  rebalance(): void {
    this.cpu.rebalance();
  }

  /**
   * Run a VM's workload outside this hypervisor (a burst to a cloud instance
   * with `vcpus` cores), or bring it back under this hypervisor's shares with
   * null (CpuModel.runElsewhere says what changes).
   */
  runElsewhere(vmId: string, vcpus: number | null): void {
    this.cpu.runElsewhere(this.vmState(vmId), vcpus);
  }

  /** Trace `host.load` per host and `vm.progress` per running task. */
  emitSamples(): void {
    this.cpu.emitSamples();
  }

  /** Demand and cores granted right now, per host, for time series. */
  hostLoadNow(): Array<{ id: string; demand: number; granted: number; capacity: number; failed: boolean }> {
    return this.cpu.hostLoadNow();
  }

  /** Every integral as of now, as copies; nothing is settled (CpuModel.stats). */
  stats(): { hosts: HostStats[]; vms: VmStats[]; anySaturatedUs: number } {
    return this.cpu.stats();
  }

  // ---- faults --------------------------------------------------------------------------

  failHost(hostId: string): void {
    const host = this.hostState(hostId);
    if (host.failed) return;
    this.cpu.settleHost(host);
    host.failed = true;
    host.failedSinceUs = this.world.clock.nowUs();
    this.world.trace.emit(`host/${host.id}`, 'host.failed', {});
    const victims = [...host.vms].filter((v) => v.power === 'running');
    for (const vm of victims) this.cpu.stop(vm, null, 'stopped');
    this.cpu.rebalanceHost(host);
    if (!this.ha.enabled) return;
    for (const vm of victims) {
      this.world.clock.schedule(this.ha.restartUs, () => {
        if (vm.power === 'running') return;
        let target: HostState;
        try {
          target = this.choosePlacement(vm);
        } catch {
          this.world.log('warn', `vm/${vm.id}`, 'HA restart found no host with room; the VM stays down');
          return;
        }
        this.cpu.start(vm, target);
      });
    }
  }

  recoverHost(hostId: string): void {
    const host = this.hostState(hostId);
    if (!host.failed) return;
    host.failedUs += this.world.clock.nowUs() - host.failedSinceUs;
    host.failed = false;
    host.lastUs = this.world.clock.nowUs();
    this.world.trace.emit(`host/${host.id}`, 'host.recovered', {});
  }

  // ---- internals ---------------------------------------------------------------------

  private checkFits(vm: VmState, host: HostState): void {
    if (host.failed) throw new SpillwayError('E_HOST_FAILED', `host ${host.id} has failed; VM ${vm.id} cannot run there`);
    const others = ramUsed(host) - (vm.host === host && vm.power !== 'stopped' ? vm.def.ramMiB : 0);
    if (others + vm.def.ramMiB > host.ramMiB) {
      throw new SpillwayError('E_HOST_RAM', `host ${host.id} has ${host.ramMiB - others} MiB of RAM free; VM ${vm.id} needs ${vm.def.ramMiB}`);
    }
  }

  private expectPower(vm: VmState, op: string, allowed: PowerState[]): void {
    if (!allowed.includes(vm.power)) {
      throw new SpillwayError('E_VM_STATE', `${op} needs VM ${vm.id} to be ${allowed.join(' or ')}; it is ${vm.power}`);
    }
  }

  private info(v: VmState): VmInfo {
    return {
      id: v.id, name: v.def.name, hostId: v.host?.id ?? null, power: v.power, vcpus: v.def.vcpus, ramMiB: v.def.ramMiB,
      diskIds: v.def.disks.map((d) => d.id), workload: v.def.workload,
      cpuDemand: v.power === 'running' ? this.cpu.claimOf(v).demand : 0, guest: this.guestView(v.guest),
    };
  }

  /**
   * A frozen copy of a guest config, made once per config: the monitoring asks
   * for every VM every tick, and a fresh clone each time was seconds of a run.
   * Safe to share because a VM's config is replaced, never changed in place.
   */
  private guestView(guest: GuestConfig): GuestConfig {
    let view = this.guestViews.get(guest);
    if (!view) {
      view = deepFreeze(structuredClone(guest));
      this.guestViews.set(guest, view);
    }
    return view;
  }

  private vmState(id: string): VmState {
    const vm = this.vmById.get(id);
    if (!vm) throw new SpillwayError('E_NO_VM', `no VM named ${id}`);
    return vm;
  }

  private hostState(id: string): HostState {
    const h = this.hostById.get(id);
    if (!h) throw new SpillwayError('E_NO_HOST', `no host named ${id}; the hosts are ${this.hostList.map((x) => x.id).join(', ')}`);
    return h;
  }

  private diskState(id: string): DiskState {
    const d = this.disks.get(id);
    if (!d) throw new SpillwayError('E_NO_DISK', `no disk named ${id}`);
    return d;
  }

  private snapshotState(id: string): SnapshotState {
    const s = this.snapshots.get(id);
    if (!s) throw new SpillwayError('E_NO_SNAPSHOT', `no snapshot ${id}`);
    return s;
  }
}

function publicSnapshot(s: SnapshotState): SnapshotInfo {
  return { id: s.id, vmId: s.vmId, name: s.name, takenAtUs: s.takenAtUs, guest: structuredClone(s.guest), diskIds: [...s.diskIds], hasMemory: s.hasMemory };
}


function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
