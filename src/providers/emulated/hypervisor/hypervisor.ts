import { SpillwayError } from '../../../errors.js';
import { BlockError, type BlockDevice, type WriteOptions, type ZeroOptions } from '../../../proxy/block-device.js';
import { Layer } from '../../../proxy/layer.js';
import { SparseStore } from '../../../proxy/stores/sparse-store.js';
import { shareCpu, type CpuClaim } from './cpu-share.js';
import { DiskChain, SnapshotDelta } from './snapshot-disk.js';
import { US_PER_H, US_PER_S } from '../../../util/units.js';
import type { Timer, World } from '../../../world/types.js';
import type {
  DiskInfo, DiskLease, GuestConfig, HostInfo, Hypervisor, MemoryImage, PowerState, SnapshotInfo, VmInfo,
} from '../../../ports/hypervisor.js';
import type { HostMonitor } from '../../../ports/host-monitor.js';

/**
 * An emulated on-prem hypervisor on the World clock: hosts with cores and
 * RAM, VMs whose CPU demand is set by their workload, power operations and
 * snapshots that take modeled time, exclusive disk leases, host failure with
 * HA restart. CPU is divided per host by `shareCpu` (steady services first,
 * batch gets the leftover); batch tasks progress at the rate they are granted
 * and their completion is scheduled exactly, so a task's finish time is exact
 * in virtual time rather than rounded to a sampling tick.
 */

export interface HypervisorLatencies {
  powerOnUs: number;
  powerOffUs: number;
  deactivateUs: number;
  reactivateUs: number;
  snapshotUs: number;
  /** Added per GiB of guest RAM when a snapshot includes memory; also the rate for capture/restore. */
  memoryPerGiBUs: number;
  revertUs: number;
  deleteSnapshotUs: number;
  updateGuestUs: number;
}

export const DEFAULT_LATENCIES: Readonly<HypervisorLatencies> = {
  powerOnUs: 30 * US_PER_S,
  powerOffUs: 8 * US_PER_S,
  deactivateUs: 5 * US_PER_S,
  reactivateUs: 5 * US_PER_S,
  snapshotUs: 3 * US_PER_S,
  memoryPerGiBUs: 2 * US_PER_S,
  revertUs: 10 * US_PER_S,
  deleteSnapshotUs: 4 * US_PER_S,
  updateGuestUs: 2 * US_PER_S,
};

export interface HaOptions {
  enabled: boolean;
  /** From host failure to the VM running again elsewhere (detection + boot). */
  restartUs: number;
}

export interface HostDef {
  id: string;
  cpuCores: number;
  ramMiB: number;
}

export interface DiskDef {
  id: string;
  sizeBytes: number;
  tier: string;
  imageId: string;
  /** Builds the disk's blocks on first open (generated content; default an empty sparse store). */
  create?: () => BlockDevice;
  /** Stacks layers over the disk's blocks (its storage tier). */
  layers?: (below: BlockDevice) => BlockDevice;
}

export interface VmDef {
  id: string;
  name: string;
  vcpus: number;
  ramMiB: number;
  workload: string;
  /** Batch VMs run at low shares: they get what steady services leave. */
  batch: boolean;
  disks: DiskDef[];
  guest: GuestConfig;
  dirtyRateBytesPerS: number;
}

export interface TaskInfo {
  name: string;
  workVcpuUs: number;
  doneVcpuUs: number;
  /** The cores the task would use with nothing in its way. */
  maxRate: number;
  startedUs: number;
  finishedUs: number | null;
  unconstrainedUs: number;
}

export interface Placement {
  atUs: number;
  where: 'onprem' | 'cloud' | 'none';
  host: string | null;
}

/** Time integrals kept per VM and host for the report (vCPU-µs). */
export interface CpuIntegrals {
  demandVcpuUs: number;
  grantedVcpuUs: number;
  /** Time during which it got less than it asked for. */
  starvedUs: number;
}

export interface HostStats extends CpuIntegrals {
  id: string;
  cpuCores: number;
  saturatedUs: number;
  /** Highest demand / capacity seen at any instant (may exceed 1). */
  peakDemandRatio: number;
  failedUs: number;
}

export interface VmStats extends CpuIntegrals {
  id: string;
  placements: Placement[];
  task: TaskInfo | null;
}

interface HostState extends HostStats {
  ramMiB: number;
  failed: boolean;
  failedSinceUs: number;
  vms: Set<VmState>;
  demand: number;
  granted: number;
  lastUs: number;
  saturated: boolean;
}

interface VmState extends VmStats {
  def: VmDef;
  host: HostState | null;
  power: PowerState;
  guest: GuestConfig;
  /** Demand set by the workload driver (ignored while a task runs). */
  baseDemand: number;
  granted: number;
  lastUs: number;
  completion: Timer | null;
  onTaskDone: ((task: TaskInfo) => void) | null;
  /** Cores available where the VM runs outside this hypervisor (a cloud instance); null while it runs here. */
  elsewhereVcpus: number | null;
}

interface DiskState {
  def: DiskDef;
  vmId: string;
  /** The disk's contents; snapshots swap what is underneath. */
  chain: DiskChain | null;
  device: BlockDevice | null;
  lease: DiskLease | null;
}

interface SnapshotState extends SnapshotInfo {
  power: PowerState;
  /** Each disk's contents as frozen at snapshot time. */
  frozen: Map<string, BlockDevice>;
}

const GiB_MiB = 1024;
const EPS = 1e-9;

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
  private readonly claims: CpuClaim[] = [];
  private readonly grants: number[] = [];
  private readonly elsewhere = new Set<VmState>();
  private saturatedHosts = 0;
  private anySaturatedUs = 0;
  private anyLastUs = 0;

  constructor(private readonly world: World, options: { hosts: HostDef[]; latencies?: Partial<HypervisorLatencies>; ha?: Partial<HaOptions> }) {
    this.latencies = { ...DEFAULT_LATENCIES, ...options.latencies };
    this.ha = { enabled: true, restartUs: 2 * 60 * US_PER_S, ...options.ha };
    this.anyLastUs = world.clock.nowUs();
    for (const h of options.hosts) {
      if (this.hostById.has(h.id)) throw new SpillwayError('E_DUPLICATE_HOST', `host ${h.id} is defined twice`);
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
    if (this.vmById.has(def.id)) throw new SpillwayError('E_DUPLICATE_VM', `VM ${def.id} is defined twice`);
    const vm: VmState = {
      id: def.id, def, host: null, power: 'stopped', guest: structuredClone(def.guest), baseDemand: 0, granted: 0,
      lastUs: this.world.clock.nowUs(), completion: null, onTaskDone: null, elsewhereVcpus: null,
      placements: [], task: null, demandVcpuUs: 0, grantedVcpuUs: 0, starvedUs: 0,
    };
    this.vmList.push(vm);
    this.vmById.set(def.id, vm);
    for (const d of def.disks) {
      if (this.disks.has(d.id)) throw new SpillwayError('E_DUPLICATE_DISK', `disk ${d.id} is defined twice`);
      this.disks.set(d.id, { def: d, vmId: def.id, chain: null, device: null, lease: null });
    }
  }

  /** Start a VM at once (the data center as it is when the run begins). */
  placeRunning(vmId: string, hostId?: string): void {
    const vm = this.vmState(vmId);
    const host = hostId ? this.hostState(hostId) : this.choosePlacement(vm);
    this.checkFits(vm, host);
    this.start(vm, host);
  }

  /** The host `auto` placement picks: room for the RAM, lowest committed vCPUs per core, then list order. */
  choosePlacement(vm: { id: string; def: VmDef }): HostState {
    let best: HostState | null = null;
    let bestRatio = Infinity;
    for (const h of this.hostList) {
      if (h.failed || this.ramUsed(h) + vm.def.ramMiB > h.ramMiB) continue;
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
      id: h.id, cpuCores: h.cpuCores, ramMiB: h.ramMiB, cpuDemand: h.demand, ramAllocatedMiB: this.ramUsed(h), failed: h.failed,
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
    this.start(vm, host);
  }

  async powerOff(vmId: string): Promise<void> {
    const vm = this.vmState(vmId);
    this.expectPower(vm, 'powerOff', ['running', 'suspended']);
    await this.world.clock.sleepUs(this.latencies.powerOffUs);
    this.stop(vm, vm.host, 'stopped');
  }

  async deactivate(vmId: string): Promise<void> {
    const vm = this.vmState(vmId);
    await this.world.clock.sleepUs(this.latencies.deactivateUs);
    this.stop(vm, null, 'stopped');
  }

  /** Register the VM on `hostId` again and run it (the way back from the cloud, FIG 16). */
  async reactivate(vmId: string, hostId: string): Promise<void> {
    const vm = this.vmState(vmId);
    const host = this.hostState(hostId);
    this.expectPower(vm, 'reactivate', ['stopped']);
    this.checkFits(vm, host);
    await this.world.clock.sleepUs(this.latencies.reactivateUs);
    this.checkFits(vm, host);
    this.start(vm, host);
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
      if (vm.power !== 'running') this.start(vm, vm.host);
    } else if (vm.power !== 'stopped') {
      this.stop(vm, vm.host, 'stopped');
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
      this.start(vm, host);
    }
  }

  // ---- disks -------------------------------------------------------------------------

  lockDisk(diskId: string, owner: string): DiskLease {
    const d = this.diskState(diskId);
    if (d.lease) {
      throw new SpillwayError('E_DISK_LOCKED', `disk ${diskId} is locked for writing by ${d.lease.owner}; ${owner} is refused (one writer per disk)`, {
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

  // ---- CPU demand and batch tasks ---------------------------------------------------

  /** Set what a VM's workload wants now; takes effect at the next `rebalance()`. */
  setDemand(vmId: string, vcpus: number): void {
    const vm = this.vmState(vmId);
    this.settleVm(vm);
    vm.baseDemand = Math.max(0, Math.min(vm.def.vcpus, vcpus));
  }

  /**
   * Start a fixed amount of work on a VM. It runs at up to `maxRate` cores
   * and finishes when `workVcpuUs` has been granted; `onDone` fires then.
   */
  startTask(vmId: string, task: { name: string; workVcpuUs: number; maxRate: number }, onDone?: (task: TaskInfo) => void): void {
    const vm = this.vmState(vmId);
    if (vm.task && vm.task.finishedUs === null) throw new SpillwayError('E_TASK_RUNNING', `VM ${vmId} already runs task ${vm.task.name}`);
    const maxRate = Math.min(vm.def.vcpus, task.maxRate);
    if (!(maxRate > 0) || !(task.workVcpuUs > 0)) throw new SpillwayError('E_BAD_TASK', `task ${task.name} needs positive work and rate`);
    this.settleVm(vm);
    if (vm.host) this.settleHost(vm.host);
    vm.task = {
      name: task.name, workVcpuUs: task.workVcpuUs, doneVcpuUs: 0, maxRate, startedUs: this.world.clock.nowUs(),
      finishedUs: null, unconstrainedUs: Math.ceil(task.workVcpuUs / maxRate),
    };
    vm.onTaskDone = onDone ?? null;
    if (vm.host) this.rebalanceHost(vm.host);
  }

  /** Recompute every host's shares from the demands set since the last call. */
  rebalance(): void {
    for (const h of this.hostList) this.rebalanceHost(h);
    for (const vm of this.elsewhere) this.updateVmRate(vm, Math.min(vm.elsewhereVcpus!, this.claimOf(vm).demand));
  }

  /**
   * Run a VM's workload outside this hypervisor (a burst to a cloud instance
   * with `vcpus` cores), or bring it back under this hypervisor's shares with
   * null. While it runs elsewhere it takes no share of any host, its task keeps
   * progressing at min(vcpus, demand), and its placement timeline says
   * `cloud`; whoever moved it traces `vm.placed` with the instance.
   */
  runElsewhere(vmId: string, vcpus: number | null): void {
    const vm = this.vmState(vmId);
    this.settleVm(vm);
    if (vm.host) this.settleHost(vm.host);
    const now = this.world.clock.nowUs();
    if (vcpus === null) {
      if (vm.elsewhereVcpus === null) return;
      vm.elsewhereVcpus = null;
      this.elsewhere.delete(vm);
      vm.placements.push(vm.power === 'running' && vm.host ? { atUs: now, where: 'onprem', host: vm.host.id } : { atUs: now, where: 'none', host: null });
      if (vm.host) this.rebalanceHost(vm.host);
      else this.updateVmRate(vm, 0);
      return;
    }
    if (!(vcpus > 0)) throw new SpillwayError('E_BAD_TASK', `runElsewhere(${vmId}) needs a positive number of vCPUs, got ${vcpus}`);
    const first = vm.elsewhereVcpus === null;
    vm.elsewhereVcpus = vcpus;
    this.elsewhere.add(vm);
    if (first) vm.placements.push({ atUs: now, where: 'cloud', host: null });
    if (vm.host) this.rebalanceHost(vm.host);
    this.updateVmRate(vm, Math.min(vcpus, this.claimOf(vm).demand));
  }

  // ---- faults --------------------------------------------------------------------------

  failHost(hostId: string): void {
    const host = this.hostState(hostId);
    if (host.failed) return;
    this.settleHost(host);
    host.failed = true;
    host.failedSinceUs = this.world.clock.nowUs();
    this.world.trace.emit(`host/${host.id}`, 'host.failed', {});
    const victims = [...host.vms].filter((v) => v.power === 'running');
    for (const vm of victims) this.stop(vm, null, 'stopped');
    this.rebalanceHost(host);
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
        this.start(vm, target);
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

  // ---- samples and statistics ------------------------------------------------------

  emitSamples(): void {
    const trace = this.world.trace;
    for (const h of this.hostList) {
      trace.emit(`host/${h.id}`, 'host.load', {
        cpuDemand: round3(h.failed ? 0 : h.demand), cpuCapacity: h.cpuCores, ramUsedMiB: this.ramUsed(h), ramMiB: h.ramMiB, vms: h.vms.size,
      });
    }
    for (const vm of this.vmList) {
      const task = vm.task;
      if (!task || task.finishedUs !== null) continue;
      this.settleVm(vm);
      trace.emit(`vm/${vm.id}`, 'vm.progress', {
        done: round3(task.doneVcpuUs / US_PER_H), total: round3(task.workVcpuUs / US_PER_H), rate: round3(vm.granted),
      });
    }
  }

  /** Demand and cores granted right now, per host, for time series. */
  hostLoadNow(): Array<{ id: string; demand: number; granted: number; capacity: number; failed: boolean }> {
    return this.hostList.map((h) => ({ id: h.id, demand: h.failed ? 0 : h.demand, granted: h.failed ? 0 : h.granted, capacity: h.cpuCores, failed: h.failed }));
  }

  /** Bring every integral up to now and return copies. */
  /**
   * Every integral as of now, as copies. Nothing is settled: watching a run
   * (the TUI asking for a report mid-run) must not change its arithmetic, or
   * a watched run could hash differently from an unwatched one.
   */
  stats(): { hosts: HostStats[]; vms: VmStats[]; anySaturatedUs: number } {
    const now = this.world.clock.nowUs();
    return {
      hosts: this.hostList.map((h) => {
        const a = this.hostAccrual(h, now);
        return {
          id: h.id, cpuCores: h.cpuCores, demandVcpuUs: h.demandVcpuUs + a.demand, grantedVcpuUs: h.grantedVcpuUs + a.granted,
          starvedUs: h.starvedUs + a.saturated, saturatedUs: h.saturatedUs + a.saturated, peakDemandRatio: h.peakDemandRatio,
          failedUs: h.failedUs + (h.failed ? now - h.failedSinceUs : 0),
        };
      }),
      vms: this.vmList.map((v) => {
        const a = this.vmAccrual(v, now);
        const task = v.task ? { ...v.task } : null;
        if (task && task.finishedUs === null) task.doneVcpuUs = Math.min(task.workVcpuUs, task.doneVcpuUs + a.granted);
        return {
          id: v.id, placements: v.placements.map((p) => ({ ...p })), task,
          demandVcpuUs: v.demandVcpuUs + a.demand, grantedVcpuUs: v.grantedVcpuUs + a.granted, starvedUs: v.starvedUs + a.starved,
        };
      }),
      anySaturatedUs: this.anySaturatedUs + (this.saturatedHosts > 0 ? now - this.anyLastUs : 0),
    };
  }

  // ---- internals ---------------------------------------------------------------------

  private start(vm: VmState, host: HostState): void {
    if (vm.host && vm.host !== host) this.detach(vm);
    this.settleVm(vm);
    this.settleHost(host);
    vm.host = host;
    host.vms.add(vm);
    vm.power = 'running';
    const src = `vm/${vm.id}`;
    this.world.trace.emit(src, 'vm.power', { power: 'running', host: host.id });
    this.world.trace.emit(src, 'vm.placed', { where: 'onprem', host: host.id });
    vm.placements.push({ atUs: this.world.clock.nowUs(), where: 'onprem', host: host.id });
    this.rebalanceHost(host);
  }

  /** Stop a VM; `host` null also unregisters it from its host. */
  private stop(vm: VmState, host: HostState | null, power: PowerState): void {
    const old = vm.host;
    this.settleVm(vm);
    if (old) this.settleHost(old);
    const wasRunning = vm.power === 'running';
    vm.power = power;
    if (host === null && old) this.detach(vm);
    this.world.trace.emit(`vm/${vm.id}`, 'vm.power', { power, host: vm.host?.id ?? null });
    // A VM running elsewhere is still placed there; stopping its on-prem copy does not change that.
    if (wasRunning && vm.elsewhereVcpus === null) vm.placements.push({ atUs: this.world.clock.nowUs(), where: 'none', host: vm.host?.id ?? null });
    if (old) this.rebalanceHost(old);
    else if (vm.elsewhereVcpus === null) this.updateVmRate(vm, 0);
  }

  private detach(vm: VmState): void {
    if (!vm.host) return;
    this.settleHost(vm.host);
    vm.host.vms.delete(vm);
    const old = vm.host;
    vm.host = null;
    this.rebalanceHost(old);
  }

  private rebalanceHost(host: HostState): void {
    this.settleHost(host);
    const members: VmState[] = [];
    const claims = this.claims;
    claims.length = 0;
    for (const vm of host.vms) {
      if (vm.elsewhereVcpus !== null) continue;
      if (vm.power !== 'running' || host.failed) {
        this.updateVmRate(vm, 0);
        continue;
      }
      members.push(vm);
      claims.push(this.claimOf(vm));
    }
    const result = shareCpu(host.cpuCores, claims, this.grants);
    host.demand = result.steadyDemand + result.batchDemand;
    host.granted = result.granted;
    if (!host.failed) host.peakDemandRatio = Math.max(host.peakDemandRatio, host.demand / host.cpuCores);
    const saturated = !host.failed && host.demand > host.cpuCores * (1 + EPS);
    if (saturated !== host.saturated) {
      this.settleAny();
      host.saturated = saturated;
      this.saturatedHosts += saturated ? 1 : -1;
    }
    for (let i = 0; i < members.length; i++) this.updateVmRate(members[i]!, this.grants[i]!);
  }

  private claimOf(vm: VmState): CpuClaim {
    const running = vm.task !== null && vm.task.finishedUs === null;
    return { demand: running ? vm.task!.maxRate : vm.baseDemand, batch: vm.def.batch };
  }

  /** Integrate the VM up to now, then switch it to `granted` cores and re-aim its task's finish. */
  private updateVmRate(vm: VmState, granted: number): void {
    this.settleVm(vm);
    vm.granted = granted;
    const task = vm.task;
    if (!task || task.finishedUs !== null) return;
    vm.completion?.cancel();
    vm.completion = null;
    if (granted <= EPS) return;
    const remaining = Math.max(0, task.workVcpuUs - task.doneVcpuUs);
    vm.completion = this.world.clock.schedule(Math.ceil(remaining / granted - EPS), () => this.finishTask(vm));
  }

  private finishTask(vm: VmState): void {
    const task = vm.task!;
    this.settleVm(vm);
    if (vm.host) this.settleHost(vm.host);
    const now = this.world.clock.nowUs();
    task.doneVcpuUs = task.workVcpuUs;
    task.finishedUs = now;
    vm.completion = null;
    const delayedUs = Math.max(0, now - task.startedUs - task.unconstrainedUs);
    this.world.trace.emit(`vm/${vm.id}`, 'vm.task.done', { task: task.name, startedUs: task.startedUs, finishedUs: now, delayedUs });
    if (vm.host) this.rebalanceHost(vm.host);
    vm.onTaskDone?.({ ...task });
  }

  /** Time with at least one saturated host, kept apart because host intervals overlap. */
  private settleAny(): void {
    const now = this.world.clock.nowUs();
    if (this.saturatedHosts > 0) this.anySaturatedUs += now - this.anyLastUs;
    this.anyLastUs = now;
  }

  /** What a VM accrued since it was last settled (vCPU-µs and µs). */
  private vmAccrual(vm: VmState, now: number): { demand: number; granted: number; starved: number } {
    const dt = now - vm.lastUs;
    if (dt <= 0 || (vm.elsewhereVcpus === null && (vm.power !== 'running' || !vm.host))) return { demand: 0, granted: 0, starved: 0 };
    const demand = this.claimOf(vm).demand;
    return { demand: demand * dt, granted: vm.granted * dt, starved: vm.granted < demand - EPS ? dt : 0 };
  }

  private settleVm(vm: VmState): void {
    const now = this.world.clock.nowUs();
    if (now <= vm.lastUs) return;
    const a = this.vmAccrual(vm, now);
    vm.lastUs = now;
    vm.demandVcpuUs += a.demand;
    vm.grantedVcpuUs += a.granted;
    vm.starvedUs += a.starved;
    const task = vm.task;
    if (task && task.finishedUs === null) task.doneVcpuUs = Math.min(task.workVcpuUs, task.doneVcpuUs + a.granted);
  }

  private hostAccrual(host: HostState, now: number): { demand: number; granted: number; saturated: number } {
    const dt = now - host.lastUs;
    if (dt <= 0 || host.failed) return { demand: 0, granted: 0, saturated: 0 };
    return { demand: host.demand * dt, granted: host.granted * dt, saturated: host.demand > host.cpuCores * (1 + EPS) ? dt : 0 };
  }

  private settleHost(host: HostState): void {
    const now = this.world.clock.nowUs();
    if (now <= host.lastUs) return;
    const a = this.hostAccrual(host, now);
    host.lastUs = now;
    host.demandVcpuUs += a.demand;
    host.grantedVcpuUs += a.granted;
    host.saturatedUs += a.saturated;
    host.starvedUs += a.saturated;
  }

  private ramUsed(h: HostState): number {
    let n = 0;
    for (const v of h.vms) if (v.power !== 'stopped') n += v.def.ramMiB;
    return n;
  }

  private checkFits(vm: VmState, host: HostState): void {
    if (host.failed) throw new SpillwayError('E_HOST_FAILED', `host ${host.id} has failed; VM ${vm.id} cannot run there`);
    const others = this.ramUsed(host) - (vm.host === host && vm.power !== 'stopped' ? vm.def.ramMiB : 0);
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
      cpuDemand: v.power === 'running' ? this.claimOf(v).demand : 0, guest: this.guestView(v.guest),
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

const round3 = (x: number): number => Math.round(x * 1000) / 1000;

/** Reads pass; writes are refused unless someone holds the disk's write lease. */
class LeaseGuard extends Layer {
  readonly name: string;
  constructor(below: BlockDevice, private readonly leased: () => boolean, private readonly diskId: string) {
    super(below);
    this.name = `lease-guard:${diskId}`;
  }
  private check(): void {
    if (!this.leased()) throw new BlockError('E_DISK_NOT_LOCKED', `disk ${this.diskId}: writes need the disk's lease (lockDisk) first`);
  }
  override async write(offset: number, data: Uint8Array, options?: WriteOptions): Promise<void> {
    this.check();
    return super.write(offset, data, options);
  }
  override async trim(offset: number, length: number, options?: WriteOptions): Promise<void> {
    this.check();
    return super.trim(offset, length, options);
  }
  override async writeZeroes(offset: number, length: number, options?: ZeroOptions): Promise<void> {
    this.check();
    return super.writeZeroes(offset, length, options);
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
