import { CloudError, type Cloud, type CloudInstance, type InstanceTypeInfo } from '../providers/cloud.js';
import type { EmulatedHypervisor } from '../providers/emulated/hypervisor.js';
import { createOnpremProxy, type OnpremProxy } from '../proxy/onprem/index.js';
import { SpillwayError } from '../errors.js';
import type { BurstPolicy, BurstRates, Scenario } from '../scenario/schema.js';
import type { GuestImage } from '../sim/guest/image.js';
import { US_PER_H } from '../util/units.js';
import type { World } from '../world/types.js';
import { bestFit } from './best-fit.js';
import { BurstSession } from './burst-session.js';
import { cloudCostUsd, onpremCostUsd } from './cost.js';
import { MonitoringService } from './monitor.js';
import { bringBack, scoreCandidates, type BurstCandidate, type SelectionPolicy } from './selection.js';
import { scoreTargets, type CloudTarget } from './target-scoring.js';

export type BurstState = 'deciding' | 'launching' | 'booting' | 'running' | 'reversing' | 'home' | 'failed';

/** Everything the report says about one burst VM. */
export interface BurstRecord {
  vmId: string;
  decidedUs: number;
  runningUs: number | null;
  homeUs: number | null;
  instanceId: string | null;
  instanceType: string | null;
  zone: string | null;
  pricePerHourUsd: number;
  launchAttempts: number;
  timeline: Array<{ atUs: number; state: BurstState }>;
  session: BurstSession | null;
  reason: string;
  /** Why the burst failed, when it did. */
  error: string | null;
}

export interface ControllerHost {
  world: World;
  hypervisor: EmulatedHypervisor;
  scenario: Scenario;
  guestImage(imageId: string): GuestImage;
  /** The WAN link is registered on world.net at this address. */
  onpremAddress: string;
  /** The simulation's lifecycle machines (src/controller/machine-env.ts). */
  machineEnv?: () => Promise<import('./machine-env.js').SimMachineEnv>;
}

export interface ControllerOptions {
  cloud: Cloud;
  /** Keep every acknowledged guest write (tests compare disks with them). */
  recordWrites?: boolean;
}

const PAIRING_KEY = '5b'.repeat(32);
const POLL_US = 5_000_000;

/**
 * The burst controller (§5–§7.0) on the World clock. Every tick it reads the
 * monitoring service; when host demand stays above the trigger for
 * `trigger.for` it picks VMs with the selection strategies, a zone with target
 * scoring and an instance type by best fit, launches through the Cloud port,
 * boots the VM through its cloud proxy and hands its work to the instance's
 * vCPUs. When demand stays below the release level for `release.for` (or a
 * VM's task is done, or its cloud storage latency passes the bring-back
 * level) it reverses the VM: write-back drained to on-prem, instance
 * terminated, work back under the hypervisor.
 */
export class BurstController {
  readonly records = new Map<string, BurstRecord>();
  readonly monitor: MonitoringService;
  private onprem: OnpremProxy | null = null;
  private ready: Promise<void> | null = null;
  private catalog: InstanceTypeInfo[] | null = null;
  private aboveSinceUs: number | null = null;
  private belowSinceUs: number | null = null;
  private inFlight = 0;
  private cloudUsdSoFar = 0;
  launchFaults = 0;
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

  /** The on-prem proxy, serving the boot disk of every VM the policy may burst. */
  private start(): Promise<void> {
    this.ready ??= (async () => {
      const hv = this.host.hypervisor;
      const disks = this.eligible().map((vm) => {
        const disk = vm.disks[0]!;
        const image = this.host.guestImage(vm.image);
        return {
          id: disk.id, device: hv.openDisk(disk.id), image: vm.image,
          bootFiles: image.boot.files.map((f) => ({ path: f.path, ranges: f.extents.map((e) => ({ offset: e.offset, length: e.length })), firstAccess: f.bootPhase })),
        };
      });
      this.onprem = await createOnpremProxy(this.world, { address: this.host.onpremAddress, pairingKey: PAIRING_KEY, disks, name: 'onprem' });
      this.catalog = await this.options.cloud.describeInstanceTypes();
    })();
    return this.ready;
  }

  private eligible(): Scenario['datacenter']['vms'] {
    const wl = this.policy.workloads;
    return this.host.scenario.datacenter.vms.filter((vm) => wl.length === 0 || wl.includes(vm.workload));
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

    for (const rec of this.records.values()) {
      if (rec.homeUs !== null || rec.runningUs === null || this.state(rec) !== 'running') continue;
      if ((tasks.get(rec.vmId)?.finishedUs ?? null) !== null) {
        this.reverse(rec, 'task finished');
      } else if (this.belowSinceUs !== null && now - this.belowSinceUs >= p.release.sustainedUs) {
        this.reverse(rec, `demand below ${p.release.hostUtilizationBelow} for ${p.release.sustainedUs / 60e6} min`);
      }
    }
    const latencies = [...this.records.values()]
      .filter((r) => this.state(r) === 'running' && r.session)
      .map((r) => ({ vmId: r.vmId, storageLatencyUs: r.session!.figures().meanReadLatencyUs }));
    for (const vmId of bringBack(latencies, p.bringBack.storageLatencyAboveUs)) this.reverse(this.records.get(vmId)!, 'cloud storage latency above bring-back level');

    if (this.aboveSinceUs === null || now - this.aboveSinceUs < p.trigger.sustainedUs) return;
    this.burstSome(s.excessVcpus);
  }

  private state(rec: BurstRecord): BurstState {
    return rec.timeline[rec.timeline.length - 1]!.state;
  }

  private setState(rec: BurstRecord, state: BurstState): void {
    rec.timeline.push({ atUs: this.world.clock.nowUs(), state });
  }

  private burstSome(excessVcpus: number): void {
    const p = this.policy;
    const active = [...this.records.values()].filter((r) => r.homeUs === null).length;
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
      this.burst(c.vmId, c.score, `host demand above ${p.trigger.hostUtilizationAbove} for ${p.trigger.sustainedUs / 60e6} min`);
    }
  }

  private burst(vmId: string, score: number, reason: string): void {
    const rec: BurstRecord = {
      vmId, decidedUs: this.world.clock.nowUs(), runningUs: null, homeUs: null, instanceId: null, instanceType: null, zone: null,
      pricePerHourUsd: 0, launchAttempts: 0, timeline: [], session: null, reason, error: null,
    };
    this.setState(rec, 'deciding');
    this.records.set(vmId, rec);
    this.decisions++;
    this.world.trace.emit('controller', 'controller.decision', { action: 'burst', vm: vmId, reason, score: Math.round(score * 1000) / 1000 });
    this.inFlight++;
    this.runBurst(rec).catch((err: unknown) => {
      this.setState(rec, 'failed');
      rec.homeUs = this.world.clock.nowUs();
      rec.error = `${(err as SpillwayError).code ?? 'E_UNKNOWN'}: ${(err as Error).message}`;
      this.world.log('warn', 'controller', `burst of ${vmId} failed: ${(err as Error).message}`, { code: (err as SpillwayError).code ?? 'E_UNKNOWN' });
    }).finally(() => { this.inFlight--; });
  }

  private async runBurst(rec: BurstRecord): Promise<void> {
    await this.start();
    const vm = this.host.scenario.datacenter.vms.find((v) => v.name === rec.vmId)!;
    const fit = this.fits(vm);
    if (fit.length === 0) throw new SpillwayError('E_NO_FIT', `no instance type fits ${vm.name} (${vm.vcpus} vCPU, ${vm.ramMiB} MiB)`);
    this.setState(rec, 'launching');
    const instance = await this.launch(rec, fit, vm.name);
    this.setState(rec, 'booting');
    const disk = vm.disks[0]!;
    const hv = this.host.hypervisor;
    const lease = hv.lockDisk(disk.id, `burst:${vm.name}`);
    const session = new BurstSession(this.world, vm.name, disk.id, disk.sizeBytes, this.host.guestImage(vm.image), vm.image, this.policy,
      this.host.onpremAddress, PAIRING_KEY, this.world.rng(`controller/io/${vm.name}`), this.options.recordWrites ?? false);
    rec.session = session;
    (rec as BurstRecord & { lease?: { release(): void } }).lease = lease;
    await session.boot();
    const type = this.catalog!.find((t) => t.name === instance.type)!;
    hv.runElsewhere(vm.name, type.vcpus);
    rec.runningUs = this.world.clock.nowUs();
    this.setState(rec, 'running');
    this.world.trace.emit(`vm/${vm.name}`, 'vm.placed', { where: 'cloud', instance: instance.id, instanceType: instance.type });
    session.startIo();
  }

  /** Best fit first, then the next cheapest fits (tried when a type has no capacity). */
  private fits(vm: Scenario['datacenter']['vms'][number]): InstanceTypeInfo[] {
    const catalog = this.policy.instanceType === 'auto' ? this.catalog! : this.catalog!.filter((t) => t.name === this.policy.instanceType);
    const out: InstanceTypeInfo[] = [];
    let rest = [...catalog];
    for (;;) {
      const f = bestFit(rest, { vcpus: vm.vcpus, memoryMiB: vm.ramMiB, iops: 0, licences: [] });
      if (!f) return out;
      out.push(f.type);
      rest = rest.filter((t) => t.name !== f.type.name);
    }
  }

  /** Zones by §6 target score: the latency of proxies already there, how full they are, similar work. */
  private zones(workload: string): string[] {
    const zones = this.host.scenario.cloud.zones;
    const targets: CloudTarget[] = zones.map((z) => {
      const here = [...this.records.values()].filter((r) => r.zone === z && r.homeUs === null);
      const lat = here.map((r) => r.session?.figures().meanReadLatencyUs ?? 0);
      return {
        id: z, storageLatencyUs: lat.length ? lat.reduce((a, b) => a + b, 0) / lat.length : 0, workloadsOnHost: here.length,
        workloadKinds: here.map((r) => this.host.scenario.datacenter.vms.find((v) => v.name === r.vmId)!.workload),
        expandableGiB: 16384, storageUsdPerGiBMonth: this.rates.cloudStorageUsdPerGiBMonth, allowedDataClasses: ['internal'],
        storageTransformations: 0, managementComplexity: 0.2, supportsHa: true,
      };
    });
    return scoreTargets(targets, { workloadKind: workload, diskGiB: 0, dataClass: 'internal', needsHa: false }, this.policy.targets.weights).map((t) => t.targetId);
  }

  /** RunInstances over the fits × zones; capacity faults move to the next zone, then the next type. */
  private async launch(rec: BurstRecord, fits: InstanceTypeInfo[], vmId: string): Promise<CloudInstance> {
    const cloud = this.options.cloud;
    const workload = this.host.scenario.datacenter.vms.find((v) => v.name === vmId)!.workload;
    let lastErr: unknown = null;
    for (const type of fits) {
      for (const zone of this.zones(workload)) {
        rec.launchAttempts++;
        try {
          const [inst] = await cloud.runInstances({
            clientToken: `burst-${vmId}-${rec.launchAttempts}`, imageId: this.stagingImage(), instanceType: type.name, zone, count: 1,
            tags: { 'spillway:vm': vmId },
          });
          rec.instanceId = inst!.id;
          rec.instanceType = type.name;
          rec.zone = inst!.zone;
          rec.pricePerHourUsd = type.pricePerHourUsd;
          return await this.waitRunning(inst!.id);
        } catch (err) {
          lastErr = err;
          if (!(err instanceof CloudError) || !/InsufficientInstanceCapacity|Unsupported|InsufficientCapacity/.test(err.code)) throw err;
          this.launchFaults++;
          this.world.trace.emit('controller', 'controller.decision', { action: 'burst', vm: vmId, reason: `${err.code} for ${type.name} in ${zone}: trying the next zone or type` });
        }
      }
    }
    throw new SpillwayError('E_NO_CAPACITY', `no capacity for ${vmId} in any fitting type or zone`, { cause: lastErr });
  }

  private stagingImage(): string {
    const images = this.host.scenario.cloud.images;
    return images[0]?.id ?? 'ami-spillway-staging';
  }

  private async waitRunning(id: string): Promise<CloudInstance> {
    for (;;) {
      let inst: CloudInstance | undefined;
      try {
        [inst] = await this.options.cloud.describeInstances({ ids: [id] });
      } catch (err) {
        // EC2 is eventually consistent: a new instance id can be unknown to Describe* for a while.
        if (!(err instanceof CloudError) || err.code !== 'InvalidInstanceID.NotFound') throw err;
      }
      if (inst && inst.state === 'running') return inst;
      if (inst && (inst.state === 'terminated' || inst.state === 'shutting-down')) throw new SpillwayError('E_INSTANCE_LOST', `instance ${id} ended while starting`);
      await this.world.clock.sleepUs(POLL_US);
    }
  }

  private reverse(rec: BurstRecord, reason: string): void {
    if (this.state(rec) !== 'running') return;
    this.setState(rec, 'reversing');
    this.decisions++;
    this.world.trace.emit('controller', 'controller.decision', { action: 'reverse', vm: rec.vmId, reason });
    void (async () => {
      await rec.session?.reverse();
      (rec as BurstRecord & { lease?: { release(): void } }).lease?.release();
      if (rec.instanceId) await this.options.cloud.terminateInstances([rec.instanceId]);
      this.host.hypervisor.runElsewhere(rec.vmId, null);
      rec.homeUs = this.world.clock.nowUs();
      this.setState(rec, 'home');
      const vm = this.host.hypervisor.vm(rec.vmId);
      this.world.trace.emit(`vm/${rec.vmId}`, 'vm.placed', { where: 'onprem', host: vm.hostId });
    })().catch((err: unknown) => {
      this.world.log('warn', 'controller', `reverse of ${rec.vmId} failed: ${(err as Error).message}`);
    });
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
      egress += r.session?.figures().writeBack.bytesShipped ?? 0;
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
      const vcpus = this.host.scenario.datacenter.vms.find((v) => v.name === r.vmId)!.vcpus;
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

  onpremStats(): OnpremProxy | null {
    return this.onprem;
  }
}
