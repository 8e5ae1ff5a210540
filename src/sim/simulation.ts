import { SpillwayError, errorCode } from '../errors.js';
import { SparseStore } from '../proxy/stores/sparse-store.js';
import { GuestImage } from '../providers/emulated/guest/image.js';
import { DEFAULT_TIER, StorageTier } from '../providers/emulated/hypervisor/storage-tier.js';
import { EmulatedHypervisor } from '../providers/emulated/hypervisor/hypervisor.js';
import { globToRegExp } from '../scenario/names.js';
import type { Scenario, TimelineEvent } from '../scenario/schema.js';
import { US_PER_H } from '../util/units.js';
import { SimWorld } from '../world/sim-world.js';
import type { TraceEvent } from '../world/types.js';
import { evaluateExpectations } from '../report/expectations.js';
import { buildReport, type BaselineFigures, type Report, type SeriesPoint } from '../report/report.js';

export type { BaselineFigures } from '../report/report.js';
import { buildGuestConfig } from './vm-guest.js';
import { WanLink } from '../providers/emulated/wan/wan-link.js';
import { BurstController } from '../controller/burst/controller.js';
import type { Cloud } from '../ports/cloud.js';
import { EmulatedEc2Cloud, createEmulatedCloud } from '../providers/emulated/ec2/emulated-cloud.js';
import type { LiveResources } from '../providers/emulated/ec2/model.js';
import { createSimMachineEnv, type SimMachineEnv } from './machine-env.js';
import { OperatorFlows } from './operator-flows.js';
import { ScaleOutController } from '../controller/scale-out/scale-out.js';
import { scaleOutPolicyOf } from '../scenario/policies/scale-out.js';
import type { ScaleOutBaseline } from '../report/sections/scale-out.js';
import { MigrationWave } from '../controller/migration-wave/migration-wave.js';
import { migrationWavePolicyOf } from '../scenario/policies/migration-wave.js';
import { VmDemand } from '../providers/emulated/workload/demand.js';
import type { WorkloadSpec } from '../providers/emulated/workload/spec.js';
import { AppIo } from '../providers/emulated/workload/app-io.js';
import type { AppIoRequest, AppIoSession } from '../ports/app-io.js';

const ONPREM_ADDRESS = 'onprem:7000';
const RUN_STATE_ADDRESS = 'onprem:7100';
/** Cloud cache block of a moved VM: 16 KiB quarters the per-block seals, hashes and index entries of 4 KiB for ~9% more WAN bytes (read amplification), measured on quarter-end. */
const CACHE_BLOCK_BYTES = 16 * 1024;

/** What the TUI and the CLI drive: a world that can be stepped to a virtual time. */
export interface Simulation {
  readonly world: SimWorld;
  readonly endUs: number;
  readonly done: boolean;
  step(untilUs: number): Promise<void>;
}

export interface SimulationOptions {
  /** Overrides the scenario's seed. */
  seed?: number;
  /** Stop here instead of at the scenario's duration. */
  untilUs?: number;
  /** Subscribed before the first event, so it sees every trace line. */
  onTrace?: (event: TraceEvent, line: string) => void;
  /** Burst runs: keep every acknowledged guest write in the controller's sessions (tests compare disks). */
  recordWrites?: boolean;
  /** Burst runs: skip the same-seed no-burst baseline run (tests that only look at the burst). */
  noBaseline?: boolean;
  /**
   * Burst runs: the cloud to burst into. Defaults to the emulated EC2; the CLI
   * passes the live AWS adapter for `--cloud aws` (same port, same adapter code).
   */
  makeCloud?: (world: SimWorld, config: Scenario['cloud'], runId: string) => Cloud & { dispose(): void };
  /**
   * Runs a comparison run (the same scenario and seed with bursting or
   * scale-out off) and resolves to its report. Given, comparison runs start
   * with the main run instead of after it: the CLI passes
   * `runComparisonInWorker`, which puts them on another core. Absent, they
   * run in this thread once the main run ends. Either way the figures are the
   * same: a comparison run shares nothing with the main one.
   */
  runComparison?: ComparisonRunner;
}

export type ComparisonRunner = (scenario: Scenario, seed: number, untilUs: number) => Promise<Report>;

/** A comparison run in this thread. */
export const runComparisonHere: ComparisonRunner = (scenario, seed, untilUs) =>
  new ScenarioSimulation(scenario, { seed, untilUs }).runToEnd();

/** The no-burst run of the same scenario and seed, for the report's comparison. */
interface VmRuntime {
  name: string;
  workload: WorkloadSpec;
  demand: VmDemand;
  /** Load events (indexes into the timeline) that apply to this VM. */
  factors: number[];
}

interface ActiveLoad {
  index: number;
  factor: number;
}

/**
 * Builds a scenario's data center on a SimWorld and runs it: load curves
 * re-evaluated every `tickEvery`, batch tasks started on schedule, timeline
 * events applied, host load sampled every `sampleEvery`. Nothing happens until
 * the first `step`: the first event (t = 0) places the VMs, so a trace
 * subscriber attached after creation still sees the whole run.
 */
export class ScenarioSimulation implements Simulation {
  readonly world: SimWorld;
  readonly hypervisor: EmulatedHypervisor;
  readonly wan: WanLink | null;
  readonly endUs: number;
  readonly seed: number;
  private readonly runtimes: VmRuntime[] = [];
  private readonly webTiers = new Map<string, VmRuntime[]>();
  private readonly activeLoads: ActiveLoad[] = [];
  private readonly series: SeriesPoint[] = [];
  private finalReport: Report | null = null;
  private readonly guestImages = new Map<string, GuestImage>();
  /** The burst controller when `policies.burst.enabled`; null for a no-burst run. */
  readonly controller: BurstController | null = null;
  /** Flows an operator starts on one VM (timeline events, the management API). */
  readonly operatorFlows = new OperatorFlows(this);
  private cloud: (Cloud & { dispose(): void }) | null = null;
  private machineEnvP: Promise<SimMachineEnv> | null = null;
  private machineEnvReady: SimMachineEnv | null = null;
  private readonly tiers = new Map<string, StorageTier>();
  /**
   * Controllers that watch the data center: each is called every tick, after
   * demand was re-evaluated and the hosts rebalanced, in the order added.
   */
  private readonly tickers: Array<() => void> = [];
  baseline: BaselineFigures | null = null;
  /** The web-tier scale-out controller when `policies.scaleOut.enabled`; null otherwise. */
  readonly scaleOut: ScaleOutController | null = null;
  /** The permanent migration wave when `policies.migrate.enabled`; null otherwise. */
  readonly migrationWave: MigrationWave | null = null;
  /** The same scenario and seed without scale-out, for report.scaleOut.baseline. */
  scaleOutBaseline: ScaleOutBaseline | null = null;

  constructor(readonly scenario: Scenario, options: SimulationOptions = {}) {
    this.seed = options.seed ?? scenario.seed;
    this.world = new SimWorld(this.seed);
    if (options.onTrace) this.world.trace.subscribe(options.onTrace);
    this.endUs = options.untilUs ?? scenario.durationUs;
    const dc = scenario.datacenter;
    this.hypervisor = new EmulatedHypervisor(this.world, { hosts: dc.hosts, latencies: dc.latencies, ha: dc.ha });
    this.wan = scenario.wan ? new WanLink(this.world, scenario.wan) : null;
    const images = new Map(dc.images.map((im) => [im.id, im]));
    const tiers = new Map(dc.storage.map((t) => [t.name, t]));
    const defaultTier = tiers.get(DEFAULT_TIER) ?? dc.storage[0]!;
    dc.vms.forEach((vm, i) => {
      const workload = scenario.workloads[vm.workload]!;
      this.hypervisor.addVm({
        id: vm.name, name: vm.name, vcpus: vm.vcpus, ramMiB: vm.ramMiB, workload: vm.workload, batch: workload.kind === 'batch',
        disks: vm.disks.map((d) => {
          const tier = (d.tier ? tiers.get(d.tier) : undefined) ?? defaultTier;
          const fromImage = images.has(d.imageId);
          return {
            id: d.id, sizeBytes: d.sizeBytes, tier: tier.name, imageId: d.imageId,
            // Image disks read the image's generated content; data disks start empty. Both answer at their tier's speed.
            create: () => (fromImage ? this.guestImage(d.imageId).disk(d.id, d.sizeBytes) : new SparseStore(`disk:${d.id}`, d.sizeBytes)),
            layers: (below) => {
              const t = new StorageTier(this.world, below, tier);
              this.tiers.set(d.id, t);
              return t;
            },
          };
        }),
        guest: buildGuestConfig(vm, images.get(vm.image)!, i, this.world.rng(`guest/${vm.name}`)),
        dirtyRateBytesPerS: workload.dirtyRateBytesPerS,
      });
      const rt: VmRuntime = { name: vm.name, workload, demand: new VmDemand(vm.vcpus, workload, this.world.rng(`workload/${vm.name}`)), factors: [] };
      scenario.timeline.forEach((ev) => {
        if (ev.event !== 'load') return;
        if ((ev.workload === null || ev.workload === vm.workload) && (ev.vms === null || globToRegExp(ev.vms).test(vm.name))) rt.factors.push(ev.index);
      });
      this.runtimes.push(rt);
      if (workload.kind === 'web') {
        const tier = this.webTiers.get(vm.workload) ?? [];
        tier.push(rt);
        this.webTiers.set(vm.workload, tier);
      }
    });
    this.options = options;
    // ---- controllers (each adds its tick to this.tickers) ----
    if (scenario.policies.burst.enabled) {
      if (!this.wan) throw new SpillwayError('E_NO_WAN', `scenario ${scenario.name}: policies.burst.enabled needs a wan: section (the link the burst VMs stream over)`);
      this.controller = new BurstController(
        { world: this.world, hypervisor: this.hypervisor, scenario, appIo: (req) => this.appIo(req), machineKit: () => this.machineEnv() },
        { cloud: this.cloudPort(), recordWrites: options.recordWrites ?? false },
      );
      const controller = this.controller;
      this.tickers.push(() => controller.tick());
    }
    if (scaleOutPolicyOf(scenario.policies).enabled) {
      const scaleOut = new ScaleOutController({ world: this.world, hypervisor: this.hypervisor, scenario, appIo: (req) => this.appIo(req), machineKit: () => this.machineEnv() });
      this.scaleOut = scaleOut;
      this.tickers.push(() => scaleOut.tick());
    }
    if (migrationWavePolicyOf(scenario.policies).enabled) {
      // The wave runs on its own schedule (policies.migrate.start), not on the monitoring tick.
      this.migrationWave = new MigrationWave({ world: this.world, hypervisor: this.hypervisor, scenario, wan: this.wan, machineKit: () => this.machineEnv() });
    }
    this.world.clock.schedule(0, () => this.boot());
  }

  private readonly options: SimulationOptions;

  /** The cloud port of this run (created on first use): the emulated EC2, or what `makeCloud` gives. */
  cloudPort(): Cloud {
    if (!this.cloud) {
      const runId = this.cloudRunId();
      this.cloud = this.options.makeCloud ? this.options.makeCloud(this.world, this.scenario.cloud, runId) : createEmulatedCloud(this.world, this.scenario.cloud, runId);
    }
    return this.cloud;
  }

  /** The `spillway:run` tag on everything this run creates in the cloud (a live cloud brings its own). */
  cloudRunId(): string {
    return this.cloud?.runId ?? `sim-${this.seed}`;
  }

  /**
   * What the emulated cloud still holds (nothing when the run never used a
   * cloud); null for a cloud that cannot be read back synchronously (a live
   * account, whose run lists what it left when it cleans up).
   */
  resourcesLeft(): LiveResources | null {
    if (!this.cloud) return { instances: [], volumes: [], snapshots: [] };
    return this.cloud instanceof EmulatedEc2Cloud ? this.cloud.model.liveResources() : null;
  }

  /**
   * The lifecycle machines' environment of this run, shared by every
   * controller that moves VMs (burst, scale-out, migration wave): the proxy
   * core behind CoreProxyControl on the scenario's WAN, the emulated cloud,
   * directory and container platform. Created on first use; await it from
   * inside the run (its proxies listen on world.net).
   */
  machineEnv(): Promise<SimMachineEnv> {
    if (!this.machineEnvP) {
      if (!this.wan) throw new SpillwayError('E_NO_WAN', `scenario ${this.scenario.name}: moving VMs to the cloud needs a wan: section (the link their disks stream over)`);
      this.world.net.setLink(ONPREM_ADDRESS, this.wan);
      this.world.net.setLink(RUN_STATE_ADDRESS, this.wan);
      const p = this.scenario.policies.burst;
      const images = new Map(this.scenario.datacenter.images.map((im) => [im.id, this.guestImage(im.id)]));
      this.machineEnvP = createSimMachineEnv({
        world: this.world, hypervisor: this.hypervisor, cloud: this.cloudPort(), onpremAddress: ONPREM_ADDRESS, runStateAddress: RUN_STATE_ADDRESS,
        images,
        cache: { capacityBytes: p.cache.sizeBytes, maxCapacityBytes: 2 * p.cache.sizeBytes, blockBytes: CACHE_BLOCK_BYTES },
        boot: { depth: p.boot.depth, thinkUs: p.boot.thinkUs },
        prefetch: p.prefetch,
        rpoUs: p.writeBack.rpoUs,
        containers: { diskOps: (diskId) => { const st = this.tiers.get(diskId)?.stats; return st ? st.reads + st.writes + st.other : 0; } },
      });
      this.machineEnvP.then((env) => { this.machineEnvReady = env; }, () => undefined);
    }
    return this.machineEnvP;
  }

  /** The machines' environment if the run has created it, else null: a reader (the management API) must not create it. */
  machineEnvIfCreated(): SimMachineEnv | null {
    return this.machineEnvReady;
  }

  /** A moved VM's application I/O: the workload model at `policies.burst.io` against its storage target. */
  private appIo(req: AppIoRequest): AppIoSession {
    return new AppIo(this.world, req.vmId, req.diskId, req.device, this.scenario.policies.burst.io, this.world.rng(req.stream), req.recordWrites);
  }

  /** The comparison runs this one needs, by what they switch off; each starts at most once. */
  private readonly comparisons = new Map<'burst' | 'scaleOut', Promise<Report>>();

  private comparison(off: 'burst' | 'scaleOut'): Promise<Report> {
    let run = this.comparisons.get(off);
    if (!run) {
      const s = this.scenario;
      const policies = off === 'burst'
        ? { ...s.policies, burst: { ...s.policies.burst, enabled: false } }
        : { ...s.policies, scaleOut: { ...this.scaleOut!.policy, enabled: false } };
      run = (this.options.runComparison ?? runComparisonHere)({ ...s, policies, expect: [] }, this.seed, this.endUs);
      // Started early, a failure must not surface as an unhandled rejection before the main run asks.
      run.catch(() => {});
      this.comparisons.set(off, run);
    }
    return run;
  }

  /** With a runner that works elsewhere, start the comparison runs now, alongside the main run. */
  private startComparisons(): void {
    if (!this.options.runComparison || this.options.noBaseline) return;
    if (this.controller && !this.baseline) void this.comparison('burst');
    if (this.scaleOut && !this.scaleOutBaseline) void this.comparison('scaleOut');
  }

  /** Run the same scenario and seed with scale-out off (once), for report.scaleOut.baseline. */
  async runScaleOutBaseline(): Promise<void> {
    if (!this.scaleOut || this.options.noBaseline || this.scaleOutBaseline) return;
    const r = await this.comparison('scaleOut');
    this.scaleOutBaseline = {
      steadyServedPct: r.totals.cpu.steadyServedPct, tierServedPct: (r.scaleOut as { tier: { servedPct: number | null } }).tier.servedPct,
      peakUtilization: r.totals.saturation.peakUtilization, hoursAnyHostSaturated: r.totals.saturation.hoursAnyHostSaturated,
    };
  }

  /** Run the same scenario and seed with bursting off (once), for the report's baseline. */
  async runBaseline(): Promise<BaselineFigures | null> {
    if (!this.controller || this.options.noBaseline) return null;
    if (this.baseline) return this.baseline;
    const r = await this.comparison('burst');
    this.baseline = {
      batchCompletionHours: r.totals.batch.completionHours, batchSlowdown: r.totals.batch.slowdown,
      hoursAnyHostSaturated: r.totals.saturation.hoursAnyHostSaturated, peakUtilization: r.totals.saturation.peakUtilization,
    };
    return this.baseline;
  }

  get done(): boolean {
    return this.finalReport !== null;
  }

  async step(untilUs: number): Promise<void> {
    if (this.done) return;
    this.startComparisons();
    await this.world.run({ untilUs: Math.min(untilUs, this.endUs) });
    if (this.world.nowUs >= this.endUs) {
      await this.runBaseline();
      await this.runScaleOutBaseline();
      this.finish();
    }
  }

  /**
   * Ask a running `runToEnd` or `step` to return after the current event,
   * leaving the run unfinished: an operator stopping a paced run. The report
   * is then the report so far (`report()`), not a final one.
   */
  stop(): void {
    this.world.stop();
  }

  /** Run to the end (or until `stop()`); `onProgress` is called about 50 times on the way. */
  async runToEnd(onProgress?: (nowUs: number, endUs: number) => void): Promise<Report> {
    if (!this.done) {
      this.startComparisons();
      const r = await this.world.run({
        untilUs: this.endUs,
        ...(onProgress ? { onProgress: (t: number) => onProgress(t, this.endUs), progressEveryUs: Math.max(1, Math.floor(this.endUs / 50)) } : {}),
      });
      if (r.reason === 'stopped') return this.report();
      await this.runBaseline();
      await this.runScaleOutBaseline();
      this.finish();
    }
    return this.report();
  }

  /** The final report once done; before that, the report of the run so far (expectations not yet traced). */
  report(): Report {
    if (this.finalReport) return this.finalReport;
    const report = this.buildReport();
    report.expectations = evaluateExpectations(report, this.scenario.expect);
    report.traceHash = this.world.trace.hash();
    return report;
  }

  /** An image's generated content, file tree and boot profile (built on first use, shared by its clones). */
  guestImage(imageId: string): GuestImage {
    let image = this.guestImages.get(imageId);
    if (!image) {
      const spec = this.scenario.datacenter.images.find((im) => im.id === imageId);
      if (!spec) throw new SpillwayError('E_NO_IMAGE', `no image ${imageId} in scenario ${this.scenario.name}`);
      image = new GuestImage({
        seed: spec.content.seed ?? this.seed, imageId, sizeBytes: spec.sizeBytes, os: spec.os.family, version: spec.os.version, app: spec.app,
        content: spec.content, bootProfile: spec.bootProfile,
      });
      this.guestImages.set(imageId, image);
    }
    return image;
  }

  // ---- the run --------------------------------------------------------------------

  private boot(): void {
    const s = this.scenario;
    this.world.trace.emit('world', 'run.start', { scenario: s.name, seed: this.seed, vms: s.datacenter.vms.length, hosts: s.datacenter.hosts.length });
    for (const vm of s.datacenter.vms) this.hypervisor.placeRunning(vm.name, vm.host ?? undefined);
    this.every(s.tickEveryUs, () => this.tick());
    this.every(s.sampleEveryUs, () => this.sample());
    for (const rt of this.runtimes) {
      const w = rt.workload;
      if (w.kind !== 'batch' || w.startUs > this.endUs) continue;
      const vm = s.datacenter.vms.find((v) => v.name === rt.name)!;
      this.world.clock.schedule(w.startUs, () => {
        this.hypervisor.startTask(rt.name, { name: w.name, workVcpuUs: w.workVcpuHours * US_PER_H, maxRate: w.parallelism * vm.vcpus });
      });
    }
    for (const ev of s.timeline) this.world.clock.schedule(ev.atUs, () => this.apply(ev));
    // Guarantees an event at the end, so the world's clock reaches it.
    this.world.clock.schedule(this.endUs, () => undefined);
  }

  private every(periodUs: number, fn: () => void): void {
    const loop = (): void => {
      fn();
      this.world.clock.schedule(periodUs, loop);
    };
    loop();
  }

  private tick(): void {
    const now = this.world.nowUs;
    const tickUs = this.scenario.tickEveryUs;
    const hv = this.hypervisor;
    for (const [workload, tier] of this.webTiers) {
      let running = 0;
      for (const rt of tier) if (hv.powerOf(rt.name) === 'running') running++;
      // Serving scale-out clones take equal shares of the tier's load.
      const members = running + (this.scaleOut?.servingClones(workload) ?? 0);
      const scale = running > 0 ? tier.length / members : 1;
      for (const rt of tier) hv.setDemand(rt.name, rt.demand.at(now, tickUs, this.factorOf(rt), scale));
    }
    for (const rt of this.runtimes) {
      if (rt.workload.kind === 'web') continue;
      hv.setDemand(rt.name, rt.demand.at(now, tickUs, this.factorOf(rt)));
    }
    hv.rebalance();
    for (const tick of this.tickers) tick();
  }

  private factorOf(rt: VmRuntime): number {
    let f = 1;
    if (rt.factors.length === 0) return f;
    for (const a of this.activeLoads) if (rt.factors.includes(a.index)) f *= a.factor;
    return f;
  }

  private sample(): void {
    this.hypervisor.emitSamples();
    const load = this.hypervisor.hostLoadNow();
    this.series.push({
      tUs: this.world.nowUs,
      demandRatio: load.map((l) => (l.failed ? null : l.demand / l.capacity)),
      utilization: load.map((l) => (l.failed ? null : l.granted / l.capacity)),
    });
  }

  private apply(ev: TimelineEvent): void {
    const hv = this.hypervisor;
    switch (ev.event) {
      case 'load': {
        const active = { index: ev.index, factor: ev.factor };
        this.activeLoads.push(active);
        if (ev.forUs !== null) {
          this.world.clock.schedule(ev.forUs, () => {
            this.activeLoads.splice(this.activeLoads.indexOf(active), 1);
            this.tick();
          });
        }
        this.tick();
        return;
      }
      case 'host-fail':
        hv.failHost(ev.host);
        if (ev.forUs !== null) this.world.clock.schedule(ev.forUs, () => hv.recoverHost(ev.host));
        return;
      case 'host-recover':
        hv.recoverHost(ev.host);
        return;
      case 'wan-outage':
        this.wan!.scheduleOutage(this.world.nowUs, ev.forUs, ev.reset);
        return;
      case 'power-off':
        this.attempt(ev, hv.powerOff(ev.vm));
        return;
      case 'power-on':
        this.attempt(ev, hv.powerOn(ev.vm));
        return;
      case 'snapshot':
        this.attempt(ev, hv.snapshot(ev.vm, ev.name, { memory: ev.memory }));
        return;
      case 'rollback':
        this.operatorFlows.rollbackFromTimeline(ev.index, ev.vm);
        return;
      default:
        this.operatorFlows.fromTimeline(ev.index, ev.flow);
    }
  }

  /** A timeline operation the hypervisor refuses (power-on of a running VM) is logged, not fatal. */
  private attempt(ev: TimelineEvent, op: Promise<unknown>): void {
    op.catch((err: unknown) => {
      this.world.log('warn', 'timeline', `timeline[${ev.index}] ${ev.event} failed: ${(err as Error).message}`, { code: errorCode(err) ?? 'E_UNKNOWN' });
    });
  }

  private finish(): void {
    if (this.finalReport) return;
    this.world.trace.emit('world', 'run.end', { reason: this.endUs === this.scenario.durationUs ? 'duration' : 'until', events: this.world.eventsRun });
    const report = this.buildReport();
    report.expectations = evaluateExpectations(report, this.scenario.expect);
    for (const r of report.expectations) {
      this.world.trace.emit('world', 'expect.result', { id: r.id, pass: r.pass, actual: r.actual ?? null, expected: `${r.op} ${String(r.value)}` });
    }
    report.traceHash = this.world.trace.hash();
    this.finalReport = report;
    this.cloud?.dispose();
  }

  private buildReport(): Report {
    const stats = this.hypervisor.stats();
    const report = buildReport({
      scenario: this.scenario, seed: this.seed, endUs: this.world.nowUs, events: this.world.eventsRun,
      hosts: stats.hosts, vms: stats.vms, anySaturatedUs: stats.anySaturatedUs, series: this.series, sim: this,
    });
    if (this.controller) report.mode = 'burst';
    return report;
  }
}

export async function createSimulation(scenario: Scenario, options: SimulationOptions = {}): Promise<ScenarioSimulation> {
  return new ScenarioSimulation(scenario, options);
}
