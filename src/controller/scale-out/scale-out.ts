import { InputError, SpillwayError, errorCode } from '../../errors.js';
import { act, type Step } from '../../machines/actors/common.js';
import { cloneDropSteps } from '../../machines/actors/clone-drop.js';
import type { CloneOutput } from '../../machines/clone.js';
import type { CloneDropData, CloneDropInput } from '../../machines/clone-drop.js';
import type { FlowOutput } from '../../machines/flow.js';
import type { RunningMachine } from '../../machines/runtime.js';
import type { WiredMachines } from '../../machines/wiring.js';
import type { AppIoRequest, AppIoSession } from '../../ports/app-io.js';
import type { InstanceTypeInfo } from '../../ports/cloud.js';
import type { HostMonitor } from '../../ports/host-monitor.js';
import type { Hypervisor } from '../../ports/hypervisor.js';
import type { Scenario } from '../../scenario/schema.js';
import { US_PER_H } from '../../util/units.js';
import type { World } from '../../world/types.js';
import { cloudCostUsd, DEFAULT_RATES, type CostRates } from '../cost.js';
import type { MachineKit } from '../machine-kit.js';
import { scaleOutPolicyOf, type ScaleOutPolicy } from '../../scenario/policies/scale-out.js';

/**
 * The report's word for where a clone's machines are (`statusOf`): its clone
 * machine running (cloning), done (serving), its clone-drop machine running
 * (dropping), done (dropped; a drop rolled back serves again), or either
 * ending without the clone (failed).
 */
export type CloneStatus = 'cloning' | 'serving' | 'dropping' | 'dropped' | 'failed';

/** What a clone's cloud proxies moved, summed over its disks. */
export interface CloneTraffic {
  /** Link bytes both ways between the clone's cloud proxies and on-prem. */
  wanBytes: number;
  /** Blocks its read path copied from a sibling clone's cache (FIG 14). */
  siblingBlocks: number;
  /** Blocks its read path fetched from on-prem over the WAN. */
  remoteBlocks: number;
  /** Blocks on-prem pushed to it (the boot profile stream). */
  pushedBlocks: number;
  /** Bytes its guest read through the storage target (boot and application I/O). */
  guestBytesRead: number;
  /** Cache lookups of its read paths that hit and missed. */
  cacheHits: number;
  cacheMisses: number;
}

/** Everything the report says about one clone. */
export interface CloneRecord {
  /** The clone's VM id ("<template>-c<index>"). */
  vmId: string;
  index: number;
  /** The clone machine's actor id (the proxy's clone id). */
  flowId: string;
  decidedUs: number;
  servingUs: number | null;
  droppedUs: number | null;
  instanceId: string | null;
  instanceType: string | null;
  vcpus: number;
  pricePerHourUsd: number;
  /** Traffic when it started serving (its boot) and when it was dropped (or now). */
  atServing: CloneTraffic | null;
  atDrop: CloneTraffic | null;
  /** Secure-cache capacity of its disk proxies (cloud storage it rents while it serves). */
  cacheBytes: number;
  /** Demand it took off the tier and what its vCPUs granted, vCPU·µs. */
  demandVcpuUs: number;
  grantedVcpuUs: number;
  /** Why its cloning failed, or why a drop of it did not finish (a later drop may have). */
  error: string | null;
  identity: { machineName: string; machineId: string } | null;
  domain: string | null;
  /** Its application I/O while it serves (policies.burst.io, against its first disk), null before. */
  io: AppIoSession | null;
  /** What its clone machine produced (exports, sibling sources): what its drop needs to reopen its target on rollback. */
  exports: CloneOutput['data']['exports'] | null;
  siblingSources: string[];
}

/** The outcome of a flow that ended, null while it runs. */
function outcomeOf(m: RunningMachine<WiredMachines['cloneDrop']>): FlowOutput<unknown>['outcome'] | null {
  const snapshot = m.snapshot;
  return snapshot.status === 'done' ? (snapshot.output as FlowOutput<unknown>).outcome : null;
}

export interface ScaleOutHost {
  world: World;
  hypervisor: Hypervisor & HostMonitor;
  scenario: Scenario;
  /** Start a serving clone's application I/O against its storage target (the workload model of the run). */
  appIo(req: AppIoRequest): AppIoSession;
  /** The run's lifecycle machines (the proxies, the clone machine, the runtime), created on first use. */
  machineKit(): Promise<MachineKit>;
}

const ZERO_TRAFFIC: CloneTraffic = { wanBytes: 0, siblingBlocks: 0, remoteBlocks: 0, pushedBlocks: 0, guestBytesRead: 0, cacheHits: 0, cacheMisses: 0 };

/**
 * Web-tier scale-out by cloning (FIG 12-14) on the World clock. Every tick it
 * reads the tier's CPU demand per member (on-prem members and serving clones
 * carry equal shares of the tier's load); when that stays above the trigger
 * for `trigger.for` it runs the clone machine for `clonesPerStep` new clones
 * of one snapshot of the template VM: copy-on-write clone disks exported by
 * the on-prem proxy, an instance launched from the staging image, a new
 * identity that re-joins the directory, and a boot that reads its siblings'
 * caches before the WAN. A serving clone takes its share of the tier's load
 * off the on-prem hosts. When the demand per member, were the newest step of
 * clones gone, stays below the release level for `release.for`, that step is
 * dropped: target closed, instance terminated, clone disks dropped, domain
 * left. Cloud-only clone writes never come home, so nothing ships.
 */
export class ScaleOutController {
  readonly policy: ScaleOutPolicy;
  readonly clones: CloneRecord[] = [];
  readonly members: string[];
  readonly template: string;
  private snapshotId: Promise<string> | null = null;
  private catalog: Promise<InstanceTypeInfo[]> | null = null;
  private aboveSinceUs: number | null = null;
  private belowSinceUs: number | null = null;
  private lastStepUs = -Infinity;
  private lastTickUs: number | null = null;
  private nextIndex = 1;
  private readonly rates: CostRates;
  /** Peak of the tier's demand per member, with the clones sharing it and as it would have been without them. */
  peakPerMember = 0;
  peakPerMemberWithoutClones = 0;
  /** Most clones sharing the tier's load at once. */
  peakClones = 0;
  decisions = 0;

  constructor(private readonly host: ScaleOutHost) {
    this.policy = scaleOutPolicyOf(host.scenario.policies);
    const p = this.policy;
    this.members = host.scenario.datacenter.vms.filter((v) => v.workload === p.tier).map((v) => v.name);
    if (this.members.length === 0) throw new InputError('E_SCALE_OUT_TIER', `policies.scaleOut.tier: no VM runs workload ${p.tier}`);
    if (!host.scenario.wan) throw new InputError('E_NO_WAN', `policies.scaleOut.enabled: scenario ${host.scenario.name} needs a wan: section (the link the clones' disks stream over)`);
    this.template = p.template ?? this.members[0]!;
    this.rates = { ...DEFAULT_RATES, ...host.scenario.policies.burst.rates };
  }

  private get world(): World {
    return this.host.world;
  }

  private get nowUs(): number {
    return this.world.clock.nowUs();
  }

  /**
   * Clones taking a share of `workload`'s load now: the simulation spreads the
   * tier over its running members plus these. A clone being dropped still
   * serves until its instance is gone.
   */
  servingClones(workload: string): number {
    if (workload !== this.policy.tier) return 0;
    return this.clones.filter((c) => this.sharing(c)).length;
  }

  /** Clones cloning or serving: what counts against maxClones. */
  activeClones(): CloneRecord[] {
    return this.clones.filter((c) => ['cloning', 'serving'].includes(this.statusOf(c)));
  }

  /** Where the clone's machines are (see CloneStatus). */
  statusOf(rec: CloneRecord): CloneStatus {
    const drop = this.drops.get(rec);
    if (drop) {
      const outcome = outcomeOf(drop);
      return outcome === null ? 'dropping' : outcome === 'ok' ? 'dropped' : outcome === 'rolled-back' ? 'serving' : 'failed';
    }
    if (rec.error !== null) return 'failed';
    return rec.servingUs === null ? 'cloning' : 'serving';
  }

  /** A clone takes its share of the tier's load while it serves, and while it is dropped until its instance is gone. */
  private sharing(rec: CloneRecord): boolean {
    const status = this.statusOf(rec);
    return status === 'serving' || status === 'dropping';
  }

  /**
   * The tier's demand per member as a fraction of a member's vCPUs. On-prem
   * members that run carry the same share as each serving clone, so their
   * mean is the tier's per-member demand.
   */
  private perMemberDemand(): { perMember: number; perMemberVcpus: number; running: number } {
    const hv = this.host.hypervisor;
    let demand = 0;
    let vcpus = 0;
    let running = 0;
    for (const name of this.members) {
      if (hv.powerOf(name) !== 'running') continue;
      const vm = hv.vm(name);
      demand += vm.cpuDemand;
      vcpus += vm.vcpus;
      running++;
    }
    return { perMember: vcpus > 0 ? demand / vcpus : 0, perMemberVcpus: running > 0 ? demand / running : 0, running };
  }

  /** One monitoring tick: called by the simulation after it re-evaluated (and spread) the tier's demand. */
  tick(): void {
    const now = this.nowUs;
    const p = this.policy;
    const { perMember, perMemberVcpus, running } = this.perMemberDemand();
    this.accrue(now, perMemberVcpus);
    const serving = this.clones.filter((c) => this.statusOf(c) === 'serving').length;
    const shares = this.servingClones(p.tier);
    this.peakPerMember = Math.max(this.peakPerMember, perMember);
    this.peakClones = Math.max(this.peakClones, shares);
    if (running > 0) this.peakPerMemberWithoutClones = Math.max(this.peakPerMemberWithoutClones, (perMember * (running + shares)) / running);

    this.aboveSinceUs = perMember > p.trigger.demandPerMemberAbove ? this.aboveSinceUs ?? now : null;
    // Release is judged on the load the members would carry without the newest step of clones.
    const step = Math.min(p.clonesPerStep, serving);
    const withoutStep = running + shares - step > 0 ? (perMember * (running + shares)) / (running + shares - step) : Infinity;
    this.belowSinceUs = step > 0 && withoutStep < p.release.demandPerMemberBelow ? this.belowSinceUs ?? now : null;

    if (now - this.lastStepUs < p.cooldownUs) return;
    const cloning = this.clones.some((c) => ['cloning', 'dropping'].includes(this.statusOf(c)));
    if (this.aboveSinceUs !== null && now - this.aboveSinceUs >= p.trigger.sustainedUs && !cloning) {
      const n = Math.min(p.clonesPerStep, p.maxClones - this.activeClones().length);
      if (n > 0) {
        this.lastStepUs = now;
        this.grow(n, `tier demand per member ${perMember.toFixed(2)} above ${p.trigger.demandPerMemberAbove} for ${p.trigger.sustainedUs / 60e6} min`);
      }
      return;
    }
    if (this.belowSinceUs !== null && now - this.belowSinceUs >= p.release.sustainedUs && !cloning) {
      this.lastStepUs = now;
      this.belowSinceUs = null;
      const newest = this.clones.filter((c) => this.statusOf(c) === 'serving').slice(-step);
      for (const c of newest) this.drop(c, `tier demand per member would be ${withoutStep.toFixed(2)} without it, below ${p.release.demandPerMemberBelow} for ${p.release.sustainedUs / 60e6} min`);
    }
  }

  /**
   * The clones the simulation counted at the last tick carried one member's
   * share of the tier's demand as it was spread then (demand is constant
   * between ticks), up to their instance's vCPUs.
   */
  private accrue(now: number, perMemberVcpus: number): void {
    for (const [c, a] of this.pendingAccrual(now)) {
      c.demandVcpuUs += a.demand;
      c.grantedVcpuUs += a.granted;
    }
    this.lastTickUs = now;
    this.lastShareVcpus = perMemberVcpus;
    this.sharedLastTick = this.clones.filter((c) => this.sharing(c));
  }

  /** Demand and grant since the last tick, per clone, not yet added (the report reads it mid-interval without changing the run). */
  private pendingAccrual(now: number): Map<CloneRecord, { demand: number; granted: number }> {
    const out = new Map<CloneRecord, { demand: number; granted: number }>();
    if (this.lastTickUs === null) return out;
    const dt = now - this.lastTickUs;
    for (const c of this.sharedLastTick) out.set(c, { demand: this.lastShareVcpus * dt, granted: Math.min(this.lastShareVcpus, c.vcpus) * dt });
    return out;
  }

  /** A clone's demand and grant as of `nowUs`, vCPU·µs. */
  servedOf(rec: CloneRecord, nowUs = this.nowUs): { demandVcpuUs: number; grantedVcpuUs: number } {
    const a = this.pendingAccrual(nowUs).get(rec);
    return { demandVcpuUs: rec.demandVcpuUs + (a?.demand ?? 0), grantedVcpuUs: rec.grantedVcpuUs + (a?.granted ?? 0) };
  }

  private sharedLastTick: CloneRecord[] = [];
  private lastShareVcpus = 0;

  /**
   * Start `n` clones. While no clone has served yet there is no warm sibling,
   * so the step's first clone boots alone and the others start once it serves
   * and read its cache (FIG 14) instead of all pulling their boot over the WAN.
   */
  private grow(n: number, reason: string): void {
    let warm: Promise<unknown> | null = null;
    const cold = !this.clones.some((c) => c.servingUs !== null);
    for (let k = 0; k < n; k++) {
      const index = this.nextIndex++;
      const vmId = `${this.template}-c${index}`;
      const rec: CloneRecord = {
        vmId, index, flowId: `scale-out-${vmId}`, decidedUs: this.nowUs, servingUs: null, droppedUs: null,
        instanceId: null, instanceType: null, vcpus: 0, pricePerHourUsd: 0, cacheBytes: 0, atServing: null, atDrop: null,
        demandVcpuUs: 0, grantedVcpuUs: 0, error: null, identity: null, domain: null, io: null, exports: null, siblingSources: [],
      };
      this.clones.push(rec);
      this.decisions++;
      this.world.trace.emit('controller', 'controller.decision', { action: 'clone', vm: vmId, reason });
      const run = this.runClone(rec, warm);
      if (cold && k === 0) warm = run.catch(() => undefined);
      run.catch((err: unknown) => {
        rec.droppedUs = this.nowUs;
        rec.error = `${errorCode(err) ?? 'E_UNKNOWN'}: ${(err as Error).message}`;
        this.world.log('warn', 'controller', `clone ${vmId} of ${this.template} failed: ${(err as Error).message}`, { code: errorCode(err) ?? 'E_UNKNOWN' });
      });
    }
  }

  /** One snapshot of the template for every clone: the same base is what makes siblings' caches reusable (FIG 14). */
  private snapshot(): Promise<string> {
    this.snapshotId ??= this.host.hypervisor.snapshot(this.template, 'scale-out').then((s) => s.id);
    return this.snapshotId;
  }

  private async runClone(rec: CloneRecord, after: Promise<unknown> | null): Promise<void> {
    if (after) await after;
    const m = await this.host.machineKit();
    this.env = m;
    const snapshotId = await this.snapshot();
    const p = this.policy;
    // Siblings resolve at read time: every clone index up to the newest, open or not yet.
    const siblings = Array.from({ length: this.nextIndex - 1 }, (_, i) => `${this.template}-c${i + 1}`);
    const run = m.runtime.start({ machine: m.machines.clone, id: rec.flowId, src: `vm/${rec.vmId}` }, {
      id: rec.flowId, config: m.flow,
      clone: {
        sourceVmId: this.template, cloneIndex: rec.index, stagingImageId: this.stagingImage(), persistence: p.persistence,
        siblingReads: p.siblingReads, siblingSources: siblings, snapshotId,
        ...(p.instanceType === 'auto' ? {} : { instanceTypes: [p.instanceType] }),
      },
    });
    const out: CloneOutput = await run.done;
    if (out.outcome !== 'ok') {
      throw new SpillwayError(out.failure?.code ?? 'E_CLONE_FAILED', `clone machine ended ${out.outcome}: ${out.failure?.message ?? 'no reason given'}`);
    }
    const type = (await this.types()).find((t) => t.name === out.data.serverType);
    rec.instanceId = out.data.instanceId ?? null;
    rec.instanceType = out.data.serverType ?? null;
    rec.vcpus = type?.vcpus ?? this.host.hypervisor.vm(this.template).vcpus;
    rec.pricePerHourUsd = type?.pricePerHourUsd ?? 0;
    rec.identity = out.data.identity ?? null;
    rec.exports = out.data.exports ?? null;
    rec.siblingSources = p.siblingReads ? siblings : [];
    rec.domain = out.data.guest?.network.domain ?? null;
    rec.atServing = this.traffic(m, rec.vmId);
    rec.cacheBytes = m.proxy.proxyIds(rec.vmId).reduce((n, id) => n + m.proxy.cloudProxy(id).cache.stats().capacityBytes, 0);
    rec.servingUs = this.nowUs;
    this.world.trace.emit(`vm/${rec.vmId}`, 'vm.placed', { where: 'cloud', instance: rec.instanceId, instanceType: rec.instanceType });
    // A serving clone reads and writes its disk like a burst VM (cloud-only writes stay in the cloud).
    const [proxyId] = m.proxy.proxyIds(rec.vmId);
    if (proxyId) {
      const diskId = proxyId.slice(rec.vmId.length + 1);
      rec.io = this.host.appIo({ vmId: rec.vmId, diskId, device: m.proxy.targetOf(proxyId), stream: `scale-out/io/${rec.vmId}`, recordWrites: false });
      rec.io.start();
    }
  }

  private types(): Promise<InstanceTypeInfo[]> {
    this.catalog ??= this.host.machineKit().then((m) => m.env.cloud.describeInstanceTypes());
    return this.catalog;
  }

  private stagingImage(): string {
    return this.host.scenario.cloud.images[0]?.id ?? 'ami-spillway-staging';
  }

  /** What the clone's cloud proxies moved so far (zero once its target is closed). */
  private traffic(m: MachineKit, vmId: string): CloneTraffic {
    const t = { ...ZERO_TRAFFIC };
    for (const id of m.proxy.proxyIds(vmId)) {
      const cp = m.proxy.cloudProxy(id);
      const c = cp.readPath.counters;
      t.wanBytes += cp.wireBytes();
      t.siblingBlocks += c.siblingBlocks;
      t.remoteBlocks += c.remoteBlocks;
      t.pushedBlocks += c.pushedBlocks;
      const cache = cp.cache.stats();
      t.guestBytesRead += cp.guestBytes();
      t.cacheHits += cache.hits;
      t.cacheMisses += cache.misses;
    }
    return t;
  }

  /** The clone's traffic as the report sees it: frozen at its drop, live while it serves. */
  trafficOf(rec: CloneRecord): CloneTraffic {
    if (rec.atDrop) return rec.atDrop;
    if (!this.sharing(rec) || !this.env) return rec.atServing ?? ZERO_TRAFFIC;
    return this.traffic(this.env, rec.vmId);
  }

  private env: MachineKit | null = null;
  /** Each clone's latest clone-drop machine, and how many drops it had. */
  private readonly drops = new Map<CloneRecord, RunningMachine<WiredMachines['cloneDrop']>>();
  private readonly dropAttempts = new Map<CloneRecord, number>();
  private dropMachine: WiredMachines['cloneDrop'] | null = null;

  /**
   * Drop a serving clone through the clone-drop machine (target closed,
   * instance terminated, clone disks dropped, domain left, each a step with
   * a timeout and retries). A drop that rolls back leaves the clone serving.
   */
  private drop(rec: CloneRecord, reason: string): void {
    const kit = this.env;
    if (this.statusOf(rec) !== 'serving' || !kit) return;
    this.decisions++;
    this.world.trace.emit('controller', 'controller.decision', { action: 'drop', vm: rec.vmId, reason });
    const attempt = (this.dropAttempts.get(rec) ?? 0) + 1;
    this.dropAttempts.set(rec, attempt);
    const id = `${rec.flowId}-drop${attempt > 1 ? `-${attempt}` : ''}`;
    this.dropMachine ??= kit.machines.cloneDrop.provide({ actors: this.dropWithWork(kit) }) as WiredMachines['cloneDrop'];
    const m = kit.runtime.start({ machine: this.dropMachine, id, src: `vm/${rec.vmId}` }, {
      id, config: kit.flow,
      drop: {
        cloneVmId: rec.vmId, cloneId: rec.flowId, instanceId: rec.instanceId, persistence: this.policy.persistence,
        exports: rec.exports ?? [], siblingSources: rec.siblingSources, identity: rec.identity, domain: rec.domain,
      },
    });
    this.drops.set(rec, m);
    void m.done.then((out) => {
      if (out.outcome === 'ok' || out.data.terminated) rec.droppedUs = this.nowUs;
      if (out.outcome === 'ok') {
        this.world.trace.emit(`vm/${rec.vmId}`, 'vm.placed', { where: 'none' });
        return;
      }
      rec.error = `${out.failure?.code ?? 'E_DROP'}: drop ${out.outcome} at ${out.failure?.step ?? '?'}: ${out.failure?.message ?? 'no reason recorded'}`;
      this.world.log('warn', 'controller', `drop of clone ${rec.vmId} ${out.outcome}: ${rec.error}`, { code: out.failure?.code ?? 'E_DROP' });
    });
  }

  /**
   * The drop's first step (the write-behind flush of an on-prem clone, else
   * closing its target) starts by stopping the clone's application I/O and
   * freezing its traffic figures; a drop that rolls back starts the I/O again.
   */
  private dropWithWork(kit: MachineKit) {
    type I = CloneDropInput;
    type D = CloneDropData;
    const steps = cloneDropSteps(kit.env);
    const quiesced = new Set<CloneRecord>();
    const recOf = (vmId: string): CloneRecord => this.clones.find((c) => c.vmId === vmId)!;
    const quiesce = async (vmId: string): Promise<void> => {
      const rec = recOf(vmId);
      if (quiesced.has(rec)) return;
      quiesced.add(rec);
      await rec.io?.stop();
      rec.atDrop = this.traffic(kit, vmId);
    };
    const first = (step: Step<I, D>): Step<I, D> => async (input, signal) => {
      await quiesce(input.input.cloneVmId);
      return step(input, signal);
    };
    const rollback: Step<I, D> = async (input, signal) => {
      const out = await steps.rollback(input, signal);
      const rec = recOf(input.input.cloneVmId);
      if (quiesced.delete(rec)) {
        rec.atDrop = null;
        rec.io?.start();
      }
      return out;
    };
    return { flushWrites: act(first(steps.flushWrites)), closeTarget: act(first(steps.closeTarget)), rollback: act(rollback) };
  }

  /** Instance hours at list price plus the clones' cache storage; cloud-only clones ship nothing, so no egress is counted. */
  cloudCost(nowUs = this.nowUs): { cloudUsd: number; instanceHours: number } {
    const instanceHours: Array<{ pricePerHourUsd: number; hours: number }> = [];
    let storageGiBHours = 0;
    for (const c of this.clones) {
      if (c.servingUs === null) continue;
      const hours = ((c.droppedUs ?? nowUs) - c.servingUs) / US_PER_H;
      instanceHours.push({ pricePerHourUsd: c.pricePerHourUsd, hours });
      storageGiBHours += (c.cacheBytes / 1024 ** 3) * hours;
    }
    return {
      cloudUsd: cloudCostUsd({ instanceHours, storageGiBHours, egressBytes: 0 }, this.rates),
      instanceHours: instanceHours.reduce((a, u) => a + u.hours, 0),
    };
  }
}
