import type { TraceEvent } from '../src/world/types.js';
import { applyEvent } from './apply.js';
import { deepFreeze } from './freeze.js';
import { LIMITS, copyState, emptyState, tail, type ModelState, type VmState } from './model-state.js';
import type { Snapshot, VmDetail, VmView } from './snapshot.js';

const NAME_ORDER = new Intl.Collator('en', { numeric: true });

/**
 * The TUI's data layer. Fed trace events in order (from a live simulation or
 * a trace file), it exposes immutable snapshots. It never draws and never
 * reads a clock: time only moves through events and `setNow`.
 */
export class TuiModel {
  private st: ModelState;
  private version = 0;
  private cached: { version: number; detailVm: string | null; snap: Snapshot } | null = null;

  constructor(state?: ModelState) {
    this.st = state ?? emptyState();
  }

  /** A copy of the state that later events do not change, for a replay checkpoint. */
  save(): ModelState {
    return copyState(this.st);
  }

  static restore(state: ModelState): TuiModel {
    return new TuiModel(copyState(state));
  }

  get eventCount(): number {
    return this.st.eventCount;
  }

  get nowUs(): number {
    return this.st.nowUs;
  }

  /** Move the clock forward between events (live pacing, replay cursor). Never backwards. */
  setNow(us: number): void {
    if (us > this.st.nowUs) {
      this.st.nowUs = us;
      this.version++;
    }
  }

  /** Scenario and seed known before the trace says them (a live run); run.start overrides both. */
  setRunInfo(scenario: string | null, seed: number | null): void {
    if (this.st.scenario === null) this.st.scenario = scenario;
    if (this.st.seed === null) this.st.seed = seed;
    this.version++;
  }

  /** Take one trace event in (what each type changes: APPLY in apply.ts). */
  apply(e: TraceEvent): void {
    this.version++;
    applyEvent(this.st, e);
  }

  /** A frozen snapshot; the same object is returned until something changes. */
  snapshot(detailVm: string | null = null): Snapshot {
    if (this.cached && this.cached.version === this.version && this.cached.detailVm === detailVm) return this.cached.snap;
    const st = this.st;
    const vmViews = [...st.vms.values()].map(vmView).sort((a, b) => NAME_ORDER.compare(a.name, b.name));
    const proxies = [...st.proxies.values()].sort((a, b) => NAME_ORDER.compare(a.vm, b.vm));
    let hits = 0;
    let misses = 0;
    let queued = 0;
    let backlog = 0;
    let lag = 0;
    for (const p of proxies) {
      hits += p.cacheHits;
      misses += p.cacheMisses;
      queued += p.prefetchQueued;
      backlog += p.wbBacklogBytes;
      lag = Math.max(lag, p.wbLagUs);
    }
    const instances = [...st.instances.values()].sort(
      (a, b) => Number(isGone(a.state)) - Number(isGone(b.state)) || NAME_ORDER.compare(a.id, b.id),
    );
    const detailState = detailVm === null ? undefined : st.vms.get(detailVm);
    const detail: VmDetail | null = detailState
      ? {
        vm: vmView(detailState),
        states: tail(detailState.states, LIMITS.vmStates),
        io: tail(detailState.ioSeries, LIMITS.vmSamples),
        blocks: tail(detailState.blocks, LIMITS.vmSamples),
        blocksTotal: { ...detailState.blocksTotal },
        proxy: proxies.find((p) => p.vm === detailState.name) ?? null,
        events: tail(detailState.events, LIMITS.vmEvents),
      }
      : null;
    const snap: Snapshot = {
      version: this.version,
      eventCount: st.eventCount,
      clock: { nowUs: st.nowUs, seed: st.seed, scenario: st.scenario, ended: st.ended, endReason: st.endReason },
      hosts: [...st.hosts.values()].sort((a, b) => NAME_ORDER.compare(a.id, b.id)),
      instances,
      vms: vmViews,
      wan: { current: st.wanSeries.at(-1) ?? null, series: tail(st.wanSeries, LIMITS.wanSamples), outage: st.wanOutage, outages: st.wanOutages },
      proxies: { hitRatio: hits + misses > 0 ? hits / (hits + misses) : null, prefetchQueued: queued, wbBacklogBytes: backlog, wbLagUsMax: lag, byVm: proxies },
      cost: { cloudUsd: st.cloudUsd, onpremUsd: st.onpremUsd, series: tail(st.cost, LIMITS.costSamples) },
      log: tail(st.log, LIMITS.logEntries),
      detail,
    };
    // Every container here is new and every shared entry is never mutated,
    // so freezing makes the snapshot safe to hand to views: the model keeps
    // changing its own state, never what it gave away.
    const frozen = deepFreeze(snap);
    this.cached = { version: this.version, detailVm, snap: frozen };
    return frozen;
  }
}

function isGone(state: string): boolean {
  return state === 'terminated' || state === 'shutting-down';
}

function vmView(vm: VmState): VmView {
  return {
    name: vm.name, where: vm.where, host: vm.host, instance: vm.instance, instanceType: vm.instanceType, power: vm.power,
    machine: vm.machine, state: vm.state, stateSinceUs: vm.stateSinceUs,
    io: { readBps: vm.io.readBps, writeBps: vm.io.writeBps, readIops: vm.io.readIops, writeIops: vm.io.writeIops },
    outcome: vm.outcome, error: vm.error, progress: vm.progress,
  };
}
