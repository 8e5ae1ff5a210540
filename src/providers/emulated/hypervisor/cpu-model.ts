import { SpillwayError, invariant } from '../../../errors.js';
import { US_PER_H } from '../../../util/units.js';
import type { World } from '../../../world/types.js';
import type { PowerState } from '../../../ports/hypervisor.js';
import { shareCpu, type CpuClaim } from './cpu-share.js';
import type { HostState, HostStats, TaskInfo, VmState, VmStats } from './types.js';

export const EPS = 1e-9;

/**
 * The emulated hypervisor's CPU model: per host, `shareCpu` divides the cores
 * (steady services first, batch gets the leftover); batch tasks progress at
 * the rate they are granted and their completion is scheduled exactly, so a
 * task's finish time is exact in virtual time rather than rounded to a
 * sampling tick. It keeps the time integrals (demand, granted, starved,
 * saturated) the report reads, and emits the load and progress samples.
 *
 * It works on the hypervisor's host and VM state (the same objects, not
 * copies); the hypervisor resolves ids and checks power and room first.
 */
export class CpuModel {
  private readonly claims: CpuClaim[] = [];
  private readonly grants: number[] = [];
  private readonly elsewhere = new Set<VmState>();
  private saturatedHosts = 0;
  private anySaturatedUs = 0;
  private anyLastUs: number;

  constructor(private readonly world: World, private readonly hostList: readonly HostState[], private readonly vmList: readonly VmState[]) {
    this.anyLastUs = world.clock.nowUs();
  }

  /** Set what a VM's workload wants now; takes effect at the next `rebalance()`. */
  setDemand(vm: VmState, vcpus: number): void {
    this.settleVm(vm);
    vm.baseDemand = Math.max(0, Math.min(vm.def.vcpus, vcpus));
  }

  /**
   * Start a fixed amount of work on a VM. It runs at up to `maxRate` cores
   * and finishes when `workVcpuUs` has been granted; `onDone` fires then.
   */
  startTask(vm: VmState, task: { name: string; workVcpuUs: number; maxRate: number }, onDone?: (task: TaskInfo) => void): void {
    if (vm.task && vm.task.finishedUs === null) throw new SpillwayError('E_TASK_RUNNING', `VM ${vm.id} already runs task ${vm.task.name}`);
    const maxRate = Math.min(vm.def.vcpus, task.maxRate);
    invariant(maxRate > 0 && task.workVcpuUs > 0, () => `task ${task.name} needs positive work and rate`);
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
  runElsewhere(vm: VmState, vcpus: number | null): void {
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
    invariant(vcpus > 0, () => `runElsewhere(${vm.id}) needs a positive number of vCPUs, got ${vcpus}`);
    const first = vm.elsewhereVcpus === null;
    vm.elsewhereVcpus = vcpus;
    this.elsewhere.add(vm);
    if (first) vm.placements.push({ atUs: now, where: 'cloud', host: null });
    if (vm.host) this.rebalanceHost(vm.host);
    this.updateVmRate(vm, Math.min(vcpus, this.claimOf(vm).demand));
  }

  // ---- samples and statistics ------------------------------------------------------

  emitSamples(): void {
    const trace = this.world.trace;
    for (const h of this.hostList) {
      trace.emit(`host/${h.id}`, 'host.load', {
        cpuDemand: round3(h.failed ? 0 : h.demand), cpuCapacity: h.cpuCores, ramUsedMiB: ramUsed(h), ramMiB: h.ramMiB, vms: h.vms.size,
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

  // ---- placement and accrual (the hypervisor's power, snapshot and HA paths call these) ----

  start(vm: VmState, host: HostState): void {
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
  stop(vm: VmState, host: HostState | null, power: PowerState): void {
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

  detach(vm: VmState): void {
    if (!vm.host) return;
    this.settleHost(vm.host);
    vm.host.vms.delete(vm);
    const old = vm.host;
    vm.host = null;
    this.rebalanceHost(old);
  }

  rebalanceHost(host: HostState): void {
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

  claimOf(vm: VmState): CpuClaim {
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

  settleHost(host: HostState): void {
    const now = this.world.clock.nowUs();
    if (now <= host.lastUs) return;
    const a = this.hostAccrual(host, now);
    host.lastUs = now;
    host.demandVcpuUs += a.demand;
    host.grantedVcpuUs += a.granted;
    host.saturatedUs += a.saturated;
    host.starvedUs += a.saturated;
  }
}

/** RAM held on a host by the VMs that are not stopped. */
export function ramUsed(h: HostState): number {
  let n = 0;
  for (const v of h.vms) if (v.power !== 'stopped') n += v.def.ramMiB;
  return n;
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;
