import type { TraceEvent } from '../src/world/types.js';
import { describeEvent } from './event-text.js';
import { deepFreeze } from './freeze.js';
import type {
  BlocksSample, CostSample, Progress, HostView, InstanceView, IoSample, LogEntry, ProxyView, Snapshot, StateEntry, VmDetail, VmView, WanSample, Where,
} from './snapshot.js';

/** How much history the model keeps; older entries fall off the front. */
export const LIMITS = {
  wanSamples: 720,
  costSamples: 720,
  logEntries: 500,
  vmStates: 200,
  vmSamples: 360,
  vmEvents: 100,
} as const;

interface VmState {
  name: string;
  where: Where;
  host: string | null;
  instance: string | null;
  instanceType: string | null;
  power: string | null;
  machine: string | null;
  state: string | null;
  stateSinceUs: number;
  io: IoSample;
  outcome: string | null;
  error: string | null;
  progress: Progress | null;
  states: StateEntry[];
  ioSeries: IoSample[];
  blocks: BlocksSample[];
  blocksTotal: { fetched: number; pushed: number; bytes: number };
  events: LogEntry[];
}

/**
 * Everything the model knows, as plain data (Maps and arrays). Replay
 * checkpoints are copies of it (copyState).
 */
export interface ModelState {
  eventCount: number;
  nowUs: number;
  seed: number | null;
  scenario: string | null;
  ended: boolean;
  endReason: string | null;
  hosts: Map<string, HostView>;
  instances: Map<string, InstanceView>;
  vms: Map<string, VmState>;
  wanSeries: WanSample[];
  wanOutage: boolean;
  wanOutages: number;
  proxies: Map<string, ProxyView>;
  cost: CostSample[];
  cloudUsd: number;
  onpremUsd: number;
  log: LogEntry[];
}

function emptyState(): ModelState {
  return {
    eventCount: 0, nowUs: 0, seed: null, scenario: null, ended: false, endReason: null,
    hosts: new Map(), instances: new Map(), vms: new Map(),
    wanSeries: [], wanOutage: false, wanOutages: 0,
    proxies: new Map(), cost: [], cloudUsd: 0, onpremUsd: 0, log: [],
  };
}

const n = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
const s = (v: unknown): string | null => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : null);

/** Append; trim back to `limit` only once the list doubles, so appends stay O(1) amortized. */
function push<T>(list: T[], item: T, limit: number): void {
  list.push(item);
  if (list.length >= limit * 2) list.splice(0, list.length - limit);
}

/** The newest `limit` entries, as a new array. */
function tail<T>(list: readonly T[], limit: number): T[] {
  return list.length > limit ? list.slice(list.length - limit) : list.slice();
}

/**
 * Entries inside the state (samples, log entries, host/instance/proxy views)
 * are never mutated once stored — changes replace them — so a copy of the
 * containers is a full copy of the state, and snapshots may share entries.
 */
function copyState(st: ModelState): ModelState {
  return {
    ...st,
    hosts: new Map(st.hosts),
    instances: new Map(st.instances),
    proxies: new Map(st.proxies),
    vms: new Map([...st.vms].map(([k, v]) => [k, {
      ...v, states: v.states.slice(), ioSeries: v.ioSeries.slice(), blocks: v.blocks.slice(), events: v.events.slice(),
    }])),
    wanSeries: st.wanSeries.slice(),
    cost: st.cost.slice(),
    log: st.log.slice(),
  };
}

/** `vm/web-03` → `web-03`; `proxy/cloud/web-03` → `web-03`. */
function idAfter(src: string, prefix: string): string | null {
  return src.startsWith(prefix) && src.length > prefix.length ? src.slice(prefix.length) : null;
}

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

  apply(e: TraceEvent): void {
    const st = this.st;
    const seq = st.eventCount++;
    this.version++;
    if (e.t > st.nowUs) st.nowUs = e.t;
    const d = e.data;
    const vmName = idAfter(e.src, 'vm/');
    switch (e.type) {
      case 'run.start':
        st.scenario = s(d.scenario);
        st.seed = typeof d.seed === 'number' ? d.seed : null;
        break;
      case 'run.end':
        st.ended = true;
        st.endReason = s(d.reason);
        break;
      case 'host.load': {
        const id = idAfter(e.src, 'host/') ?? e.src;
        const prev = st.hosts.get(id);
        st.hosts.set(id, {
          id, cpuDemand: n(d.cpuDemand), cpuCapacity: n(d.cpuCapacity), ramUsedMiB: n(d.ramUsedMiB), ramMiB: n(d.ramMiB), vms: n(d.vms),
          failed: prev?.failed ?? false,
        });
        break;
      }
      case 'host.failed':
      case 'host.recovered': {
        const id = idAfter(e.src, 'host/') ?? e.src;
        const prev = st.hosts.get(id) ?? { id, cpuDemand: 0, cpuCapacity: 0, ramUsedMiB: 0, ramMiB: 0, vms: 0, failed: false };
        st.hosts.set(id, { ...prev, failed: e.type === 'host.failed' });
        break;
      }
      case 'vm.placed':
        if (vmName !== null) {
          const vm = this.vm(vmName, e.t);
          vm.where = d.where === 'cloud' ? 'cloud' : d.where === 'onprem' ? 'onprem' : 'unknown';
          vm.host = s(d.host);
          vm.instance = s(d.instance);
          vm.instanceType = s(d.instanceType);
          if (vm.instance !== null) {
            const inst = st.instances.get(vm.instance);
            if (inst) st.instances.set(vm.instance, { ...inst, vm: vmName });
          }
          // Back on-prem, its cloud proxy is gone; its last counters would otherwise linger in the totals.
          if (vm.where === 'onprem') st.proxies.delete(`proxy/cloud/${vmName}`);
        }
        break;
      case 'vm.power':
        if (vmName !== null) {
          const vm = this.vm(vmName, e.t);
          vm.power = s(d.power);
          if (vm.where === 'onprem' && d.host !== undefined) vm.host = s(d.host);
        }
        break;
      case 'vm.io':
        if (vmName !== null) {
          const vm = this.vm(vmName, e.t);
          vm.io = { t: e.t, readBps: n(d.readBps), writeBps: n(d.writeBps), readIops: n(d.readIops), writeIops: n(d.writeIops) };
          push(vm.ioSeries, vm.io, LIMITS.vmSamples);
        }
        break;
      case 'vm.progress':
        if (vmName !== null) this.vm(vmName, e.t).progress = { done: n(d.done), total: n(d.total), rate: n(d.rate) };
        break;
      case 'vm.task.done':
        if (vmName !== null) this.vm(vmName, e.t).progress = null;
        break;
      case 'machine.state':
        if (vmName !== null) {
          const vm = this.vm(vmName, e.t);
          vm.machine = s(d.machine);
          vm.state = s(d.state);
          vm.stateSinceUs = e.t;
          vm.error = null;
          push(vm.states, { t: e.t, machine: vm.machine ?? '?', state: vm.state ?? '?' }, LIMITS.vmStates);
        }
        break;
      case 'machine.error':
        if (vmName !== null) this.vm(vmName, e.t).error = s(d.code);
        break;
      case 'machine.done':
        if (vmName !== null) this.vm(vmName, e.t).outcome = s(d.outcome);
        break;
      case 'wan.stats':
        push(st.wanSeries, { t: e.t, upBps: n(d.upBps), downBps: n(d.downBps), rttUs: n(d.rttUs), lossPct: n(d.lossPct), up: d.up !== false }, LIMITS.wanSamples);
        break;
      case 'wan.outage':
        if (d.start && !st.wanOutage) st.wanOutages++;
        st.wanOutage = Boolean(d.start);
        break;
      case 'proxy.stats': {
        const vm = idAfter(e.src, 'proxy/cloud/') ?? idAfter(e.src, 'proxy/') ?? e.src;
        const hits = n(d.cacheHits);
        const misses = n(d.cacheMisses);
        st.proxies.set(e.src, {
          src: e.src, vm, cacheHits: hits, cacheMisses: misses, hitRatio: hits + misses > 0 ? hits / (hits + misses) : null,
          cacheBytes: n(d.cacheBytes), cacheCapacity: n(d.cacheCapacity), prefetchQueued: n(d.prefetchQueued), prefetchHits: n(d.prefetchHits),
          wbBacklogBytes: n(d.wbBacklogBytes), wbLagUs: n(d.wbLagUs), wireBytes: n(d.wireBytes), guestBytes: n(d.guestBytes),
        });
        break;
      }
      case 'proxy.blocks': {
        const name = idAfter(e.src, 'proxy/cloud/');
        if (name !== null) {
          const vm = this.vm(name, e.t);
          const sample = { t: e.t, fetched: n(d.fetched), pushed: n(d.pushed), bytes: n(d.bytes) };
          push(vm.blocks, sample, LIMITS.vmSamples);
          vm.blocksTotal = {
            fetched: vm.blocksTotal.fetched + sample.fetched, pushed: vm.blocksTotal.pushed + sample.pushed, bytes: vm.blocksTotal.bytes + sample.bytes,
          };
        }
        break;
      }
      case 'cloud.instance': {
        const id = s(d.id);
        if (id !== null) {
          const prev = st.instances.get(id);
          const state = s(d.state) ?? '?';
          st.instances.set(id, {
            id, type: s(d.type) ?? prev?.type ?? '?', state, vm: prev?.vm ?? null, sinceUs: prev && prev.state === state ? prev.sinceUs : e.t,
          });
        }
        break;
      }
      case 'cost.tick':
        st.cloudUsd = n(d.cloudUsd);
        st.onpremUsd = n(d.onpremUsd);
        push(st.cost, { t: e.t, cloudUsd: st.cloudUsd, onpremUsd: st.onpremUsd }, LIMITS.costSamples);
        break;
      default:
        break;
    }
    const line = describeEvent(e);
    if (line) {
      const entry: LogEntry = { seq, t: e.t, src: e.src, type: e.type, text: line.text, level: line.level };
      push(st.log, entry, LIMITS.logEntries);
      const about = vmName ?? (e.type === 'controller.decision' ? s(d.vm) : null) ?? idAfter(e.src, 'proxy/cloud/');
      if (about !== null && e.type !== 'machine.state' && st.vms.has(about)) push(st.vms.get(about)!.events, entry, LIMITS.vmEvents);
    }
  }

  private vm(name: string, t: number): VmState {
    let vm = this.st.vms.get(name);
    if (!vm) {
      vm = {
        name, where: 'unknown', host: null, instance: null, instanceType: null, power: null, machine: null, state: null, stateSinceUs: t,
        io: { t, readBps: 0, writeBps: 0, readIops: 0, writeIops: 0 }, outcome: null, error: null, progress: null,
        states: [], ioSeries: [], blocks: [], blocksTotal: { fetched: 0, pushed: 0, bytes: 0 }, events: [],
      };
      this.st.vms.set(name, vm);
    }
    return vm;
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
