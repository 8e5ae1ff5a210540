import { SpillwayError, errorCode } from '../../errors.js';
import { act, type Step } from '../../machines/actors/common.js';
import { reverseSteps } from '../../machines/actors/reverse.js';
import type { InstanceReport } from '../../machines/instance.js';
import type { ReverseData, ReverseInput } from '../../machines/reverse.js';
import type { TransferData } from '../../machines/transfer.js';
import type { WiredMachines } from '../../machines/wiring.js';
import type { AppIoRequest, AppIoSession } from '../../ports/app-io.js';
import { RUN_FATAL_LAUNCH_CODES, type Cloud } from '../../ports/cloud.js';
import type { HostMonitor } from '../../ports/host-monitor.js';
import type { Hypervisor } from '../../ports/hypervisor.js';
import type { CloudProxy } from '../../proxy/cloud/index.js';
import type { BurstPolicy, BurstRates, Scenario } from '../../scenario/schema.js';
import { US_PER_H } from '../../util/units.js';
import type { World } from '../../world/types.js';
import { endOf, followStates } from '../instance-tracker.js';
import { cloudCostUsd, onpremCostUsd } from '../cost.js';
import type { MachineKit } from '../machine-kit.js';
import { Launcher } from './launch.js';
import { MonitoringService } from './monitor.js';
import { bringBack, scoreCandidates, type BurstCandidate, type SelectionPolicy } from './selection.js';
import { endedIo, sessionFigures, type BootFigures, type SessionFigures } from './session.js';

/** Why a VM went to the cloud: demand above the trigger, or standby for a failed host HA could not restart it on. */
export type BurstCause = 'demand' | 'standby';

/**
 * Everything the report says about one burst of one VM. Where the VM is (on
 * its way out, in the cloud, coming home) is not kept here: it is the VM's
 * instance machine (`BurstController.statusOf`).
 */
export interface BurstRecord {
  vmId: string;
  cause: BurstCause;
  decidedUs: number;
  /** When its transfer finished: it runs in the cloud from then. */
  runningUs: number | null;
  /** When it came home, or its burst failed. */
  homeUs: number | null;
  instanceId: string | null;
  instanceType: string | null;
  zone: string | null;
  pricePerHourUsd: number;
  launchAttempts: number;
  /** The machines' states, in order: "instance.decoupled", "transfer.stageBoot", "reverse.flushWrites"… */
  timeline: Array<{ atUs: number; state: string }>;
  /** The transfer machine's id: its lease owner and idempotency tokens. */
  transferId: string;
  /** What the transfer recorded (snapshot, exports, persistence…): what the reverse needs. */
  transfer: TransferData | null;
  /** The VM's disks' cloud proxies, kept so their counters stay readable after the reverse closed them. */
  proxies: CloudProxy[];
  /** The application I/O against the boot disk's storage target. */
  io: AppIoSession | null;
  boot: BootFigures;
  /** The figures taken as the reverse closes the proxies (their link counters are not meaningful after close). */
  frozen: SessionFigures | null;
  /** When the staging boot began (the transfer machine entered stageBoot). */
  bootStartedUs: number | null;
  /** Standby: when the controller saw the VM's host failed (the VM has been down since, at the latest). */
  downSinceUs: number | null;
  /** The host the VM left (where it comes back to when it still has room). */
  homeHostId: string | null;
  reason: string;
  /** Why the burst failed, when it did, or why its last reverse that did not bring it home did not. */
  error: string | null;
}

export interface ControllerHost {
  world: World;
  hypervisor: Hypervisor & HostMonitor;
  scenario: Scenario;
  /** Start a burst VM's application I/O against its storage target (the workload model of the run). */
  appIo(req: AppIoRequest): AppIoSession;
  /** The run's lifecycle machines, shared with the other controllers. */
  machineKit(): Promise<MachineKit>;
}

export interface ControllerOptions {
  cloud: Cloud;
  /** Keep every acknowledged guest write (tests compare disks with them). */
  recordWrites?: boolean;
}

const NO_BOOT: BootFigures = { bootUs: 0, bootReads: 0, bootBytes: 0, bootWorkingSetBytes: 0 };

/**
 * The burst controller (§5–§7.0) on the World clock. Every tick it reads the
 * monitoring service; when host demand stays above the trigger for
 * `trigger.for` it picks VMs with the selection strategies, sets each one's
 * goal to `cloud` on its INSTANCE machine (goal state, seed 001) and runs
 * the TRANSFER machine (FIG 7): the machine deactivates and snapshots the
 * VM, mounts its disks on the on-prem proxy, adapts the guest, launches the
 * instance (the launcher's provision step walks best-fit types × zones by
 * §6 target score), opens the cloud proxies and replays the boot through the
 * storage target. The VM's work then runs on the instance's vCPUs and its
 * application I/O goes through the target. When demand stays below the
 * release level for `release.for` (or a VM's task is done, or its cloud
 * storage latency passes the bring-back level) the goal goes back to
 * `onprem` and the REVERSE machine (FIG 16) brings it home: work paused and
 * instance stopped, write-behind flushed, config restored, disks unmounted,
 * VM reactivated on-prem, instance terminated; a reverse that rolls back
 * resumes the work in the cloud. Where each VM is, is its instance machine's
 * state: the flows report to it as they go.
 *
 * Standby (host failure): when HA could not restart a failed host's VMs on
 * the survivors for lack of room, the same transfer runs them in the cloud
 * until the host recovers; then the reverse brings them back to it.
 */
export class BurstController {
  readonly records = new Map<string, BurstRecord>();
  readonly monitor: MonitoringService;
  private kit: MachineKit | null = null;
  private ready: Promise<MachineKit> | null = null;
  private launcher: Launcher | null = null;
  private transferMachine: WiredMachines['transfer'] | null = null;
  private reverseMachine: WiredMachines['reverse'] | null = null;
  private aboveSinceUs: number | null = null;
  private belowSinceUs: number | null = null;
  private inFlight = 0;
  private cloudUsdSoFar = 0;
  /** Failed hosts and when HA gave up on their VMs (restart delay passed). */
  private readonly failedHosts = new Map<string, { failedUs: number; vms: string[] }>();
  /** A launch error no other VM would get past (the image, network or account is wrong): no more bursts. */
  private launchHalt: string | null = null;
  /** Per VM, stops following its instance machine into the current record's timeline. */
  private readonly following = new Map<string, () => void>();
  /** VMs whose work and I/O the reverse paused (the rollback resumes them). */
  private readonly paused = new Set<string>();
  /** Reverses started per burst (by transfer id): each has its own actor id, so its steps' tokens are its own. */
  private readonly reverses = new Map<string, number>();
  decisions = 0;
  private readonly policy: BurstPolicy;
  private readonly rates: BurstRates;

  constructor(private readonly host: ControllerHost, private readonly options: ControllerOptions) {
    this.policy = host.scenario.policies.burst;
    this.rates = this.policy.rates;
    this.monitor = new MonitoringService(host.hypervisor);
  }

  private get world(): World {
    return this.host.world;
  }

  /** Capacity faults the launches met (report.burst.launchFaults). */
  get launchFaults(): number {
    return this.launcher?.faults ?? 0;
  }

  /** The VM's instance machine: its state and goal (null before the controller moved it). */
  statusOf(vmId: string): InstanceReport | null {
    return this.kit?.instances.reportOf(vmId) ?? null;
  }

  /**
   * The shared machine kit, the instance catalog, and the transfer and reverse
   * machines with this controller's steps: the launch, and the pause and
   * resume of the VM's work around the instance stopping.
   */
  private start(): Promise<MachineKit> {
    this.ready ??= (async () => {
      const kit = await this.host.machineKit();
      const catalog = await this.options.cloud.describeInstanceTypes();
      this.launcher = new Launcher(this.world, this.host.scenario, this.policy, catalog, this.records);
      this.transferMachine = kit.machines.transfer.provide({ actors: { provision: this.launcher.provisionActor(kit) } }) as WiredMachines['transfer'];
      this.reverseMachine = kit.machines.reverse.provide({ actors: this.reverseWithWork(kit) }) as WiredMachines['reverse'];
      this.kit = kit;
      return kit;
    })();
    return this.ready;
  }

  /** The reverse's first step and its rollback, with the VM's work: it stops and starts with the instance. */
  private reverseWithWork(kit: MachineKit) {
    type I = ReverseInput;
    type D = ReverseData;
    const steps = reverseSteps(kit.env);
    const deactivateRemote: Step<I, D> = async (step, signal) => {
      await this.pauseInCloud(step.input.vmId);
      return steps.deactivateRemote(step, signal);
    };
    const rollback: Step<I, D> = async (step, signal) => {
      const out = await steps.rollback(step, signal);
      this.resumeInCloud(step.input.vmId);
      return out;
    };
    return { deactivateRemote: act(deactivateRemote), rollback: act(rollback) };
  }

  /** FIG 16 step 1607: the instance stops, and with it the VM's application I/O and work (until it runs on-prem again). */
  private async pauseInCloud(vmId: string): Promise<void> {
    const rec = this.records.get(vmId)!;
    this.paused.add(vmId);
    await rec.io?.stop();
    this.host.hypervisor.runElsewhere(vmId, null);
  }

  /** The reverse rolled back: the instance runs again with the VM's disks behind its target. */
  private resumeInCloud(vmId: string): void {
    if (!this.paused.delete(vmId)) return;
    const rec = this.records.get(vmId)!;
    this.host.hypervisor.runElsewhere(vmId, this.launcher!.typeOf(rec.instanceType)!.vcpus);
    rec.frozen = null;
    rec.io?.start();
  }

  /** The VM's burst is done and it runs in the cloud, its goal still `cloud` (not on its way home, not stuck). */
  private inCloud(rec: BurstRecord): boolean {
    return rec.runningUs !== null && rec.homeUs === null && this.kit !== null && this.kit.instances.atGoal(rec.vmId, 'cloud');
  }

  private eligible(): Scenario['datacenter']['vms'] {
    const wl = this.policy.workloads;
    return this.host.scenario.datacenter.vms.filter((vm) => wl.length === 0 || wl.includes(vm.workload));
  }

  private vmSpec(vmId: string): Scenario['datacenter']['vms'][number] {
    return this.host.scenario.datacenter.vms.find((v) => v.name === vmId)!;
  }

  /** One monitoring tick: called by the simulation after demand was re-evaluated. */
  tick(): void {
    const now = this.world.clock.nowUs();
    const s = this.monitor.sample();
    this.monitor.record(Math.floor(now / US_PER_H));
    const p = this.policy;
    const tasks = new Map(this.host.hypervisor.stats().vms.map((v) => [v.id, v.task]));
    this.aboveSinceUs = s.maxHostDemandRatio > p.trigger.hostUtilizationAbove ? this.aboveSinceUs ?? now : null;
    this.belowSinceUs = s.clusterDemandRatio < p.release.hostUtilizationBelow ? this.belowSinceUs ?? now : null;
    this.emitCost();
    this.standbyTick(now);

    for (const rec of this.records.values()) {
      if (!this.inCloud(rec)) continue;
      if (rec.cause === 'standby') {
        const home = rec.homeHostId ? this.host.hypervisor.hosts().find((h) => h.id === rec.homeHostId) : undefined;
        if (home && !home.failed) this.reverse(rec, `host ${home.id} recovered`);
        continue;
      }
      if ((tasks.get(rec.vmId)?.finishedUs ?? null) !== null) {
        this.reverse(rec, 'task finished');
      } else if (this.belowSinceUs !== null && now - this.belowSinceUs >= p.release.sustainedUs) {
        this.reverse(rec, `demand below ${p.release.hostUtilizationBelow} for ${p.release.sustainedUs / 60e6} min`);
      }
    }
    const latencies = [...this.records.values()]
      .filter((r) => this.inCloud(r) && r.cause === 'demand' && r.io)
      .map((r) => ({ vmId: r.vmId, storageLatencyUs: r.io!.meanReadLatencyUs() }));
    for (const vmId of bringBack(latencies, p.bringBack.storageLatencyAboveUs)) this.reverse(this.records.get(vmId)!, 'cloud storage latency above bring-back level');

    if (this.aboveSinceUs === null || now - this.aboveSinceUs < p.trigger.sustainedUs) return;
    this.burstSome(s.excessVcpus);
  }

  /**
   * HA restarts a failed host's VMs after its restart delay; the ones still
   * down a tick later found no host with room. Those go to the cloud as
   * standby (not counted against maxVms: they replace lost capacity).
   */
  private standbyTick(now: number): void {
    if (!this.policy.standby) return;
    const hv = this.host.hypervisor;
    for (const h of hv.hosts()) {
      if (h.failed && !this.failedHosts.has(h.id)) {
        const vms = hv.vms().filter((v) => v.hostId === h.id || (v.hostId === null && v.power === 'stopped' && this.lastHost.get(v.id) === h.id)).map((v) => v.id);
        this.failedHosts.set(h.id, { failedUs: now, vms });
      } else if (!h.failed && this.failedHosts.has(h.id)) {
        this.failedHosts.delete(h.id);
      }
    }
    for (const [hostId, f] of this.failedHosts) {
      if (now - f.failedUs < this.policy.standby.afterUs) continue;
      for (const vmId of f.vms) {
        const existing = this.records.get(vmId);
        if (existing && existing.homeUs === null) continue;
        const vm = hv.vm(vmId);
        if (vm.power === 'running' || vm.hostId !== null) continue;
        this.burst(vmId, 0, `host ${hostId} failed and HA found no host with room`, 'standby', hostId);
        this.records.get(vmId)!.downSinceUs = f.failedUs;
      }
    }
    for (const v of hv.vms()) if (v.hostId !== null) this.lastHost.set(v.id, v.hostId);
  }

  /** Where each VM last ran on-prem (a failed host unregisters its VMs). */
  private readonly lastHost = new Map<string, string>();

  private note(rec: BurstRecord, state: string): void {
    rec.timeline.push({ atUs: this.world.clock.nowUs(), state });
  }

  private burstSome(excessVcpus: number): void {
    const p = this.policy;
    const active = [...this.records.values()].filter((r) => r.homeUs === null && r.cause === 'demand').length;
    const room = Math.min(p.maxVms - active, p.maxConcurrentTransfers - this.inFlight);
    if (room <= 0 || excessVcpus <= 0) return;
    const hv = this.host.hypervisor;
    const tasks = new Map(hv.stats().vms.map((v) => [v.id, v.task]));
    const candidates: BurstCandidate[] = [];
    for (const [i, vm] of this.eligible().entries()) {
      if (this.records.has(vm.name) || hv.powerOf(vm.name) !== 'running') continue;
      const task = tasks.get(vm.name);
      const kind = this.host.scenario.workloads[vm.workload]!.kind;
      if (kind === 'batch' && (!task || task.finishedUs !== null)) continue;
      const info = hv.vm(vm.name);
      candidates.push({ vmId: vm.name, addedAtUs: i, vcpus: vm.vcpus, cpuDemand: info.cpuDemand, history: this.monitor.history(vm.name), iops: 0, transferable: true });
    }
    const selection: SelectionPolicy = { weights: p.selection.weights, cpuAbove: p.selection.cpuAbove, horizonHours: p.selection.horizonHours, hotSigma: p.selection.hotSigma };
    const hourOfWeek = Math.floor(this.world.clock.nowUs() / US_PER_H) % 168;
    const scored = scoreCandidates(candidates, selection, hourOfWeek);
    const demand = new Map(candidates.map((c) => [c.vmId, c.cpuDemand]));
    let relieved = 0;
    let n = 0;
    for (const c of scored) {
      if (n >= room || relieved >= excessVcpus) break;
      n++;
      relieved += demand.get(c.vmId) ?? 0;
      this.burst(c.vmId, c.score, `host demand above ${p.trigger.hostUtilizationAbove} for ${p.trigger.sustainedUs / 60e6} min`, 'demand', hv.vm(c.vmId).hostId);
    }
  }

  private burst(vmId: string, score: number, reason: string, cause: BurstCause, homeHostId: string | null): void {
    if (this.launchHalt !== null) return;
    const attempt = [...this.records.values()].filter((r) => r.vmId === vmId).length;
    const rec: BurstRecord = {
      vmId, cause, decidedUs: this.world.clock.nowUs(), runningUs: null, homeUs: null, instanceId: null, instanceType: null, zone: null,
      pricePerHourUsd: 0, launchAttempts: 0, timeline: [], transferId: `burst-${vmId}${attempt > 0 ? `-${attempt + 1}` : ''}`,
      transfer: null, proxies: [], io: null, boot: NO_BOOT, frozen: null, bootStartedUs: null, downSinceUs: null, homeHostId, reason, error: null,
    };
    this.records.set(vmId, rec);
    this.decisions++;
    this.world.trace.emit('controller', 'controller.decision', { action: cause === 'standby' ? 'standby' : 'burst', vm: vmId, reason, score: Math.round(score * 1000) / 1000 });
    this.inFlight++;
    this.runBurst(rec).catch((err: unknown) => {
      // The VM stays (or is back) on-prem: that is its goal again.
      this.kit?.instances.want(vmId, 'onprem');
      rec.homeUs = this.world.clock.nowUs();
      rec.error = `${errorCode(err) ?? 'E_UNKNOWN'}: ${(err as Error).message}`;
      this.world.log('warn', 'controller', `burst of ${vmId} failed: ${(err as Error).message}`, { code: errorCode(err) ?? 'E_UNKNOWN' });
      const code = errorCode(err);
      if (code !== undefined && RUN_FATAL_LAUNCH_CODES.has(code) && this.launchHalt === null) {
        this.launchHalt = code;
        this.world.trace.emit('controller', 'controller.decision', { action: 'halt', vm: vmId, reason: `${code}: no other VM would launch; bursting stops` });
      }
    }).finally(() => { this.inFlight--; });
  }

  private async runBurst(rec: BurstRecord): Promise<void> {
    const kit = await this.start();
    const vm = this.vmSpec(rec.vmId);
    const instance = kit.instances.want(vm.name, 'cloud');
    this.following.get(vm.name)?.();
    this.following.set(vm.name, followStates(instance, (state) => this.note(rec, `instance.${state}`)));
    const fit = this.launcher!.plan(vm);
    if (fit.length === 0) throw new SpillwayError('E_NO_FIT', `no instance type fits ${vm.name} (${vm.vcpus} vCPU, ${vm.ramMiB} MiB)`);
    const t = kit.runtime.start({ machine: this.transferMachine!, id: rec.transferId, src: `vm/${vm.name}` }, {
      id: rec.transferId, config: kit.flow,
      transfer: {
        vmId: vm.name, kind: 'stateless', direction: 'O2C', stagingImageId: this.stagingImage(),
        // The machine's best fit checks the controller's choice against the guest; provision then walks the fallbacks.
        instanceTypes: [fit[0]!.name],
        ...(rec.homeHostId ? { homeHostId: rec.homeHostId } : {}),
      },
    });
    const reporting = kit.instances.followTransfer(vm.name, t);
    followStates(t, (state) => {
      this.note(rec, `transfer.${state}`);
      if (state === 'stageBoot' && rec.bootStartedUs === null) rec.bootStartedUs = this.world.clock.nowUs();
    });
    const out = await t.done;
    reporting();
    this.launcher!.done(vm.name);
    kit.instances.ended(vm.name, endOf(out, 'cloud', 'onprem'));
    if (out.outcome !== 'ok') {
      const f = out.failure;
      throw new SpillwayError(f?.code ?? 'E_TRANSFER', `transfer ${out.outcome} at ${f?.step ?? '?'}: ${f?.message ?? 'no reason recorded'}`);
    }
    rec.transfer = out.data;
    rec.instanceId = out.data.instanceId ?? null;
    const bootDisk = vm.disks[0]!.id;
    const profile = kit.guestBoot.bootProfile(vm.name, vm.image);
    rec.boot = {
      bootUs: this.world.clock.nowUs() - (rec.bootStartedUs ?? this.world.clock.nowUs()), bootReads: profile.reads,
      bootBytes: (out.data.stagingBootBytes ?? 0) + (out.data.targetBootBytes ?? 0), bootWorkingSetBytes: profile.workingSetBytes,
    };
    rec.proxies = kit.proxy.proxyIds(vm.name).map((id) => kit.proxy.cloudProxy(id));
    this.host.hypervisor.runElsewhere(vm.name, this.launcher!.typeOf(rec.instanceType)!.vcpus);
    rec.runningUs = this.world.clock.nowUs();
    this.world.trace.emit(`vm/${vm.name}`, 'vm.placed', { where: 'cloud', instance: rec.instanceId, instanceType: rec.instanceType });
    rec.io = this.host.appIo({
      vmId: vm.name, diskId: bootDisk, device: kit.proxy.targetDevice(vm.name, bootDisk), stream: `controller/io/${vm.name}`, recordWrites: this.options.recordWrites ?? false,
    });
    rec.io.start();
  }

  private stagingImage(): string {
    const images = this.host.scenario.cloud.images;
    return images[0]?.id ?? 'ami-spillway-staging';
  }

  /** Where a VM comes home: the host it left if it is up and has room, else the up host with the most free cores. */
  private homeFor(rec: BurstRecord): string {
    const hv = this.host.hypervisor;
    const ram = hv.vm(rec.vmId).ramMiB;
    const ok = hv.hosts().filter((h) => !h.failed && h.ramMiB - h.ramAllocatedMiB >= ram);
    const home = ok.find((h) => h.id === rec.homeHostId);
    if (home) return home.id;
    const best = [...ok].sort((a, b) => (b.cpuCores - b.cpuDemand) - (a.cpuCores - a.cpuDemand) || a.id.localeCompare(b.id))[0];
    if (!best) throw new SpillwayError('E_NO_HOST', `no on-prem host has ${ram} MiB free for ${rec.vmId}`);
    return best.id;
  }

  private reverse(rec: BurstRecord, reason: string): void {
    if (!this.inCloud(rec)) return;
    let targetHostId: string;
    try {
      targetHostId = this.homeFor(rec);
    } catch (err) {
      this.world.log('warn', 'controller', `${rec.vmId} stays in the cloud: ${(err as Error).message}`, { code: errorCode(err) ?? 'E_UNKNOWN' });
      return;
    }
    this.kit!.instances.want(rec.vmId, 'onprem');
    this.decisions++;
    this.world.trace.emit('controller', 'controller.decision', { action: 'reverse', vm: rec.vmId, reason });
    void this.runReverse(rec, targetHostId).catch((err: unknown) => {
      rec.error = `${errorCode(err) ?? 'E_UNKNOWN'}: ${(err as Error).message}`;
      this.world.log('warn', 'controller', `reverse of ${rec.vmId} failed: ${(err as Error).message}`, { code: errorCode(err) ?? 'E_UNKNOWN' });
    });
  }

  private async runReverse(rec: BurstRecord, targetHostId: string): Promise<void> {
    const kit = this.kit!;
    const t = rec.transfer!;
    const n = (this.reverses.get(rec.transferId) ?? 0) + 1;
    this.reverses.set(rec.transferId, n);
    const id = `${rec.transferId}-reverse${n > 1 ? `-${n}` : ''}`;
    kit.instances.send(rec.vmId, { type: 'RETURNING' });
    const r = kit.runtime.start({ machine: this.reverseMachine!, id, src: `vm/${rec.vmId}` }, {
      id, config: kit.flow,
      reverse: {
        vmId: rec.vmId, preMoveSnapshotId: t.snapshotId!, originalGuest: t.originalGuest!, instanceId: rec.instanceId!,
        targetHostId, exports: t.exports!, persistence: t.persistence!, leaseOwner: rec.transferId, powerOn: true,
      },
    });
    followStates(r, (state) => {
      this.note(rec, `reverse.${state}`);
      // Writes are flushed; remount closes the target next.
      if (state === 'remount' && !rec.frozen) rec.frozen = sessionFigures(rec.proxies, rec.boot, rec.io);
    });
    const out = await r.done;
    kit.instances.ended(rec.vmId, endOf(out, 'onprem', 'cloud'));
    if (out.outcome !== 'ok') {
      // Rolled back (the machine's rollback resumed the work in the cloud): the cloud is the VM's goal again.
      if (out.outcome === 'rolled-back') kit.instances.want(rec.vmId, 'cloud');
      throw new SpillwayError(out.failure?.code ?? 'E_REVERSE', `reverse ${out.outcome} at ${out.failure?.step ?? '?'}: ${out.failure?.message ?? 'no reason recorded'}`);
    }
    this.paused.delete(rec.vmId);
    rec.homeUs = this.world.clock.nowUs();
    // Home: the figures are frozen, so the closed proxies (caches, windows, stores) and the I/O session can go.
    rec.frozen ??= sessionFigures(rec.proxies, rec.boot, rec.io);
    rec.proxies = [];
    if (rec.io) rec.io = endedIo(rec.io);
  }

  /** What the VM measured in the cloud (null before its transfer finished). */
  figures(rec: BurstRecord): SessionFigures | null {
    if (rec.runningUs === null) return null;
    return rec.frozen ?? sessionFigures(rec.proxies, rec.boot, rec.io);
  }

  /** Cloud cost so far (instance hours at list price, cache storage, write-back egress). */
  cloudCost(nowUs = this.world.clock.nowUs()): { cloudUsd: number; instanceHours: number; egressBytes: number } {
    const instanceHours: Array<{ pricePerHourUsd: number; hours: number }> = [];
    let egress = 0;
    let storageGiBHours = 0;
    for (const r of this.records.values()) {
      if (r.runningUs === null) continue;
      const hours = ((r.homeUs ?? nowUs) - r.runningUs) / US_PER_H;
      instanceHours.push({ pricePerHourUsd: r.pricePerHourUsd, hours });
      storageGiBHours += (this.policy.cache.sizeBytes / 1024 ** 3) * hours;
      egress += this.figures(r)?.writeBack.bytesShipped ?? 0;
    }
    return {
      cloudUsd: cloudCostUsd({ instanceHours, storageGiBHours, egressBytes: egress }, this.rates),
      instanceHours: instanceHours.reduce((a, u) => a + u.hours, 0),
      egressBytes: egress,
    };
  }

  /** What the work the cloud did would have cost on-prem, had the cores existed. */
  onpremCost(nowUs = this.world.clock.nowUs()): number {
    let vcpuHours = 0;
    for (const r of this.records.values()) {
      if (r.runningUs === null) continue;
      const vcpus = this.vmSpec(r.vmId).vcpus;
      vcpuHours += (vcpus * ((r.homeUs ?? nowUs) - r.runningUs)) / US_PER_H;
    }
    return onpremCostUsd(vcpuHours, this.rates.vcpusPerCore, this.rates);
  }

  private emitCost(): void {
    const c = this.cloudCost();
    if (c.cloudUsd === this.cloudUsdSoFar) return;
    this.cloudUsdSoFar = c.cloudUsd;
    this.world.trace.emit('controller', 'cost.tick', { cloudUsd: Math.round(c.cloudUsd * 100) / 100, onpremUsd: Math.round(this.onpremCost() * 100) / 100 });
  }
}
