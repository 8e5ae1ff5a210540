import type { AnyStateMachine } from 'xstate';
import { SpillwayError, errorCode } from '../errors.js';
import type { RunningMachine } from '../machines/runtime.js';
import type { TransferData } from '../machines/transfer.js';
import { untilCutoverAllowedUs } from '../scenario/policies/cutover-window.js';
import { migrationWavePolicyOf, type MigrationWavePolicy } from '../scenario/policies/migration-wave.js';
import type { BurstController } from '../controller/burst/controller.js';
import type { EmulatedHypervisor } from '../providers/emulated/hypervisor/hypervisor.js';
import type { Scenario } from '../scenario/schema.js';
import { FLOW_EVENTS, type TimelineFlow } from '../scenario/timeline.js';
import type { SimWorld } from '../world/sim-world.js';
import type { SimMachineEnv } from './machine-env.js';

/** The lifecycles an operator can start on one VM (a timeline event or the management API). */
export const FLOW_KINDS = FLOW_EVENTS;
export type FlowKind = (typeof FLOW_KINDS)[number];

/** One operator flow: the kind, the VM, and what that kind needs (the API's FlowRequest and a timeline event's flow). */
export type FlowRequest = TimelineFlow;

/** What operator flows need of the simulation they run in (ScenarioSimulation). */
export interface FlowHost {
  readonly done: boolean;
  readonly world: SimWorld;
  readonly scenario: Scenario;
  readonly hypervisor: EmulatedHypervisor;
  readonly controller: BurstController | null;
  machineEnv(): Promise<SimMachineEnv>;
}

/** A refusal: the run's state does not allow the flow now (the API answers 409; a timeline event logs it). */
export class FlowConflict extends SpillwayError {}

type AnyRunning = RunningMachine<AnyStateMachine>;

/** One operator flow as the report sees it. */
export interface FlowRecord {
  kind: FlowKind;
  vm: string;
  running: AnyRunning;
  startedUs: number;
  /** When its machine reached a final state (null: still running at the end). */
  endedUs: number | null;
}

/** A VM an operator flow moved to the cloud, with what its transfer recorded (what reverse, migrate and resize need). */
interface Placement {
  transferId: string;
  data: TransferData;
  migrated: boolean;
}

const S = 1_000_000;

/** A machine that crashed was traced as machine.error by the runtime; nothing is left to book. */
const ignoreCrash = (): void => undefined;

/**
 * Flows an operator starts on one VM, in a simulation: from a timeline
 * event or from the management API (which puts its actions through an
 * inbox first, src/api/sim-flows.ts). One per run, so a VM a timeline event
 * moved can be brought back through the API and the other way round. Each
 * starts a lifecycle machine on the run's MachineRuntime, after the checks
 * that keep one flow per VM, one writer per disk, and the controllers' VMs
 * theirs.
 */
export class OperatorFlows {
  private readonly placements = new Map<string, Placement>();
  /** Ids of the flows started here, in order (timeline and API). */
  readonly started: string[] = [];
  private readonly records = new Map<string, FlowRecord>();
  /** Timeline rollbacks that reached a running flow (its own outcome says how the rollback went). */
  readonly rollbacksSent = new Set<string>();
  /** Timeline flows the run's state refused, in order. */
  readonly refused: Array<{ id: string; kind: string; vm: string; code: string; message: string }> = [];

  constructor(private readonly sim: FlowHost) {}

  /** The machine environment of the run (created on first use), or a FlowConflict saying why there is none. */
  async env(): Promise<SimMachineEnv> {
    if (this.sim.done) throw new FlowConflict('E_RUN_ENDED', 'the run has ended: nothing can be started or rolled back');
    try {
      return await this.sim.machineEnv();
    } catch (err) {
      throw new FlowConflict(errorCode(err) ?? 'E_NO_MACHINES', (err as Error).message, { cause: err });
    }
  }

  /** Start `req` as flow `id` on an environment env() gave; throws FlowConflict when the run's state refuses it. */
  start(env: SimMachineEnv, id: string, req: FlowRequest): AnyRunning {
    this.checkFree(env, req.vm);
    const running = this.startMachine(env, id, req);
    this.started.push(id);
    const clock = this.sim.world.clock;
    this.records.set(id, { kind: req.kind, vm: req.vm, running, startedUs: clock.nowUs(), endedUs: null });
    void running.done.then(() => { this.records.get(id)!.endedUs = clock.nowUs(); }, () => { this.records.get(id)!.endedUs = clock.nowUs(); });
    return running;
  }

  /** Every flow started here with its machine and times (what the report's `flows` section reads). */
  flowRecords(): ReadonlyMap<string, FlowRecord> {
    return this.records;
  }

  /**
   * A timeline event's flow, started as `timeline-<index>-<kind>-<vm>` and
   * traced as `timeline.flow`; a refusal (the VM busy, not in the cloud, a
   * lease held...) is traced as `timeline.refused` with its code and kept for
   * the report: the run goes on, as it does after a refused power-on.
   */
  fromTimeline(index: number, flow: FlowRequest): void {
    const id = `timeline-${index}-${flow.kind}-${flow.vm}`;
    this.sim.world.trace.emit('timeline', 'timeline.flow', { index, id, kind: flow.kind, vm: flow.vm });
    this.env().then((env) => { this.start(env, id, flow); }).catch((err: unknown) => this.refusedAt(index, id, flow.kind, flow.vm, err));
  }

  /** A timeline `rollback`: the operator flow running on `vm` rolls back. */
  rollbackFromTimeline(index: number, vm: string): void {
    const id = `timeline-${index}-rollback-${vm}`;
    this.sim.world.trace.emit('timeline', 'timeline.flow', { index, id, kind: 'rollback', vm });
    this.env().then((env) => {
      const running = [...this.started].reverse().find((f) => env.runtime.started.get(f)?.running.src === `vm/${vm}` && env.runtime.started.get(f)?.running.snapshot.status === 'active');
      if (!running) throw new FlowConflict('E_NO_FLOW', `no operator flow is running on ${vm}: nothing to roll back`);
      this.rollback(env, running, `timeline[${index}]: operator rollback`);
      this.rollbacksSent.add(id);
    }).catch((err: unknown) => this.refusedAt(index, id, 'rollback', vm, err));
  }

  private refusedAt(index: number, id: string, kind: string, vm: string, err: unknown): void {
    const code = errorCode(err) ?? 'E_UNKNOWN';
    const message = (err as Error).message;
    this.refused.push({ id, kind, vm, code, message });
    this.sim.world.trace.emit('timeline', 'timeline.refused', { index, id, code, message });
    this.sim.world.log('warn', 'timeline', `timeline[${index}] ${kind} of ${vm} refused: ${message}`, { code });
  }

  /** Roll back flow `id` (started by any operator flow or controller): its machine's state after the ROLLBACK. */
  rollback(env: SimMachineEnv, id: string, reason: string): string {
    const entry = env.runtime.started.get(id);
    if (!entry) throw new FlowConflict('E_NO_FLOW', `no flow "${id}" in this run`);
    const m = entry.running;
    const snap = m.snapshot;
    if (snap.status !== 'active') throw new FlowConflict('E_FLOW_FINISHED', `flow ${id} has finished (${(snap.context as { outcome?: string }).outcome ?? snap.status}): there is nothing to roll back`);
    if ((snap.context as { phase?: string }).phase !== 'forward') throw new FlowConflict('E_FLOW_ROLLING_BACK', `flow ${id} is already rolling back (state ${m.state})`);
    m.send({ type: 'ROLLBACK', reason } as never);
    return m.state;
  }

  /** 409 when another flow is at work on the VM, or a controller owns it. */
  private checkFree(env: SimMachineEnv, vm: string): void {
    for (const [id, e] of env.runtime.started) {
      if (e.running.src === `vm/${vm}` && e.running.snapshot.status === 'active') {
        throw new FlowConflict('E_FLOW_RUNNING', `flow ${id} (${e.running.machineName}, state ${e.running.state}) is running on ${vm}; wait for it or roll it back first`);
      }
    }
    // A burst record without homeUs is a burst under way or in the cloud (homeUs: home again, or failed).
    const controller = this.sim.controller;
    const rec = controller?.records.get(vm);
    if (controller && rec && rec.homeUs === null) {
      const status = controller.statusOf(vm);
      throw new FlowConflict('E_VM_MANAGED', `${vm} is in the burst controller's hands (instance ${status ? `${status.current}, goal ${status.goal}` : 'not launched yet'}); its flows are the controller's`);
    }
  }

  private checkLeases(vm: string): void {
    const hv = this.sim.hypervisor;
    for (const d of hv.vm(vm).diskIds) {
      const holder = hv.leaseHolder(d);
      if (holder !== null) throw new FlowConflict('E_LEASE_HELD', `disk ${d} of ${vm} is leased to ${holder}: a second writer would break the lease (one writer per disk)`);
    }
  }

  private placed(vm: string): Placement {
    const p = this.placements.get(vm);
    if (!p) throw new FlowConflict('E_NOT_IN_CLOUD', `${vm} was not moved to the cloud by a flow of this API; transfer it first`);
    return p;
  }

  private staging(): string {
    return this.sim.scenario.cloud.images[0]?.id ?? 'ami-spillway-staging';
  }

  private startMachine(env: SimMachineEnv, id: string, req: FlowRequest): AnyRunning {
    const hv = this.sim.hypervisor;
    const m = env.machines;
    const start = <T extends AnyStateMachine>(machine: T, src: string, input: Record<string, unknown>): AnyRunning =>
      env.runtime.start({ machine, id, src }, { id, config: env.flow, ...input } as never) as unknown as AnyRunning;
    const vm = req.vm;
    switch (req.kind) {
      case 'transfer': {
        const info = hv.vm(vm);
        if (this.placements.has(vm) || info.hostId === null) throw new FlowConflict('E_NOT_ONPREM', `${vm} does not run on-prem now: bring it back with kind reverse`);
        this.checkLeases(vm);
        const toCloud = (req.to ?? 'cloud') === 'cloud';
        const run = start(m.transfer, `vm/${vm}`, {
          transfer: {
            vmId: vm, kind: req.transferKind ?? 'stateless', direction: toCloud ? 'O2C' : 'O2O', homeHostId: info.hostId,
            ...(toCloud ? { stagingImageId: this.staging() } : {}),
            ...(req.host ? { targetHostId: req.host } : {}),
            ...(req.instanceType ? { instanceTypes: [req.instanceType] } : {}),
          },
        });
        if (toCloud) this.afterTransfer(vm, id, run);
        return run;
      }
      case 'reverse': {
        const p = this.placed(vm);
        if (p.migrated) throw new FlowConflict('E_MIGRATED', `${vm} was migrated for good: its disks live in the cloud now`);
        const d = p.data;
        const home = req.host ?? d.originHostId ?? hv.hosts().find((h) => !h.failed)?.id;
        if (!home) throw new FlowConflict('E_NO_HOST', `no healthy on-prem host to bring ${vm} back to`);
        hv.runElsewhere(vm, null);
        const run = start(m.reverse, `vm/${vm}`, {
          reverse: {
            vmId: vm, preMoveSnapshotId: d.snapshotId, originalGuest: d.originalGuest, instanceId: d.instanceId, targetHostId: home,
            exports: d.exports, persistence: d.persistence, leaseOwner: p.transferId, powerOn: d.wasRunning ?? true,
          },
        });
        void run.done.then((out) => {
          if (out.outcome === 'ok') this.placements.delete(vm);
          else this.runInCloud(vm, d);
        }, ignoreCrash);
        return run;
      }
      case 'clone': {
        const index = 1 + Math.max(0, ...[...env.runtime.started.values()]
          .filter((e) => e.running.machineName === 'clone' && e.running.src.startsWith(`vm/${vm}-c`))
          .map((e) => Number(e.running.src.slice(`vm/${vm}-c`.length)) || 0));
        const cloneVm = `${vm}-c${index}`;
        const run = start(m.clone, `vm/${cloneVm}`, {
          clone: {
            sourceVmId: vm, cloneIndex: index, stagingImageId: this.staging(), persistence: req.persistence ?? 'cloud-only', siblingReads: false, siblingSources: [],
            ...(req.instanceType ? { instanceTypes: [req.instanceType] } : {}),
          },
        });
        void run.done.then((out) => {
          const data = out.data as { instanceId?: string; serverType?: string };
          if (out.outcome === 'ok') this.sim.world.trace.emit(`vm/${cloneVm}`, 'vm.placed', { where: 'cloud', instance: data.instanceId ?? null, instanceType: data.serverType ?? null });
        }, ignoreCrash);
        return run;
      }
      case 'cutover': {
        if (!req.target) throw new SpillwayError('E_BAD_FIELD', 'target: cutover needs the standby clone to cut over to (e.g. web-01-c1)');
        const clone = [...env.runtime.started.values()].find((e) => e.running.machineName === 'clone' && e.running.src === `vm/${req.target}`);
        const standby = clone?.running.snapshot.context as { outcome?: string; input?: { sourceVmId?: string }; data?: { instanceId?: string; serverType?: string } } | undefined;
        if (!standby || standby.outcome !== 'ok' || standby.input?.sourceVmId !== vm || !standby.data?.instanceId) {
          throw new FlowConflict('E_NO_STANDBY', `${req.target} is not a clone of ${vm} that booted (start one with kind clone)`);
        }
        // The machine mirrors to and activates the standby's instance, not the clone's name.
        const instanceId = standby.data.instanceId;
        const run = start(m.cutover, `vm/${vm}`, { cutover: { sourceVmId: vm, targetId: instanceId, maxRounds: 8, switchBudgetUs: 2 * S, stallRatio: 0.9, stallRounds: 2 } });
        // Switched: the VM's work goes on on the standby's instance, as after a transfer.
        void run.done.then((out) => {
          if (out.outcome === 'ok') this.runInCloud(vm, { instanceId, serverType: standby.data?.serverType });
        }, ignoreCrash);
        return run;
      }
      case 'migrate': {
        const p = this.placed(vm);
        if (p.migrated) throw new FlowConflict('E_MIGRATED', `${vm} is already migrated`);
        const pol = migrationWavePolicyOf(this.sim.scenario.policies);
        const run = start(m.migration, `vm/${vm}`, {
          migration: {
            vmId: vm, instanceId: p.data.instanceId, zone: this.sim.scenario.cloud.zones[0] ?? '', diskIds: hv.vm(vm).diskIds, volumeType: pol.volumeType,
            syncChunkBytes: pol.syncChunkBytes, initialIntervalUs: pol.syncInterval.initialUs, minIntervalUs: pol.syncInterval.minUs, intervalFactor: pol.syncInterval.factor,
          },
        });
        this.cutOverWhenAllowed(run, pol.cutover);
        void run.done.then((out) => { if (out.outcome === 'ok') p.migrated = true; }, ignoreCrash);
        return run;
      }
      case 'resize': {
        const p = this.placed(vm);
        if (req.cacheBytes === undefined) throw new SpillwayError('E_BAD_FIELD', 'cacheBytes: resize needs the new cache capacity in bytes (at least 1048576)');
        const ids = env.proxy.proxyIds(vm);
        const proxyId = req.disk ? `${vm}/${req.disk}` : ids[0];
        if (!proxyId || !ids.includes(proxyId)) throw new FlowConflict('E_NO_PROXY', `${vm} has no cloud proxy${req.disk ? ` for disk ${req.disk}` : ''}; proxies: ${ids.join(', ') || '(none)'}`);
        return start(m.proxyResize, `vm/${vm}`, { resize: { proxyId, instanceId: p.data.instanceId, request: { kind: 'cache', capacityBytes: req.cacheBytes } } });
      }
      case 'containerize': {
        if (hv.vm(vm).hostId === null) throw new FlowConflict('E_NOT_ONPREM', `${vm} does not run on-prem: containerize images an on-prem VM`);
        return start(m.containerize, `vm/${vm}`, { containerize: { vmId: vm, mode: req.mode ?? 'snapshot' } });
      }
    }
  }

  /**
   * A synced migration waits in awaitWindow for the operator's go; the
   * operator here is the API, which gives it by the scenario's cut-over rule
   * (at once when synced, or when the daily window opens), as the
   * migration-wave controller does for its own migrations.
   */
  private cutOverWhenAllowed(run: AnyRunning, rule: MigrationWavePolicy['cutover']): void {
    const clock = this.sim.world.clock;
    let last = run.state;
    const sub = run.actor.subscribe({
      next: () => {
        const path = run.state;
        if (path === last) return;
        last = path;
        if (path !== 'awaitWindow') return;
        clock.schedule(untilCutoverAllowedUs(rule, clock.nowUs()), () => {
          if (run.state === 'awaitWindow') run.send({ type: 'MAINTENANCE_WINDOW' } as never);
        });
      },
      error: ignoreCrash,
    });
    void run.done.finally(() => sub.unsubscribe()).catch(ignoreCrash);
  }

  /** A VM transferred to the cloud runs there: its work goes on on the instance's vCPUs. */
  private afterTransfer(vm: string, transferId: string, run: AnyRunning): void {
    void run.done.then((out) => {
      if (out.outcome !== 'ok') return;
      const data = out.data as TransferData;
      this.placements.set(vm, { transferId, data, migrated: false });
      this.runInCloud(vm, data);
    }, ignoreCrash);
  }

  private runInCloud(vm: string, data: Pick<TransferData, 'instanceId' | 'serverType'>): void {
    const type = this.sim.scenario.cloud.catalog.find((t) => t.type === data.serverType);
    this.sim.hypervisor.runElsewhere(vm, type?.vcpus ?? this.sim.hypervisor.vm(vm).vcpus);
    this.sim.world.trace.emit(`vm/${vm}`, 'vm.placed', { where: 'cloud', instance: data.instanceId ?? null, instanceType: data.serverType ?? null });
  }
}
