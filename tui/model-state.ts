import type {
  BlocksSample, CostSample, HostView, InstanceView, IoSample, LogEntry, Progress, ProxyView, StateEntry, WanSample, Where,
} from './snapshot.js';

/** The TUI model's state as plain data, and the small helpers its event handlers share (model.ts, apply.ts). */

/** How much history the model keeps; older entries fall off the front. */
export const LIMITS = {
  wanSamples: 720,
  costSamples: 720,
  logEntries: 500,
  vmStates: 200,
  vmSamples: 360,
  vmEvents: 100,
} as const;

export interface VmState {
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

export function emptyState(): ModelState {
  return {
    eventCount: 0, nowUs: 0, seed: null, scenario: null, ended: false, endReason: null,
    hosts: new Map(), instances: new Map(), vms: new Map(),
    wanSeries: [], wanOutage: false, wanOutages: 0,
    proxies: new Map(), cost: [], cloudUsd: 0, onpremUsd: 0, log: [],
  };
}

export const n = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
export const s = (v: unknown): string | null => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : null);

/** Append; trim back to `limit` only once the list doubles, so appends stay O(1) amortized. */
export function push<T>(list: T[], item: T, limit: number): void {
  list.push(item);
  if (list.length >= limit * 2) list.splice(0, list.length - limit);
}

/** The newest `limit` entries, as a new array. */
export function tail<T>(list: readonly T[], limit: number): T[] {
  return list.length > limit ? list.slice(list.length - limit) : list.slice();
}

/**
 * Entries inside the state (samples, log entries, host/instance/proxy views)
 * are never mutated once stored — changes replace them — so a copy of the
 * containers is a full copy of the state, and snapshots may share entries.
 */
export function copyState(st: ModelState): ModelState {
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
export function idAfter(src: string, prefix: string): string | null {
  return src.startsWith(prefix) && src.length > prefix.length ? src.slice(prefix.length) : null;
}

/** The VM's entry, made on first mention. */
export function vmEntry(st: ModelState, name: string, t: number): VmState {
  let vm = st.vms.get(name);
  if (!vm) {
    vm = {
      name, where: 'unknown', host: null, instance: null, instanceType: null, power: null, machine: null, state: null, stateSinceUs: t,
      io: { t, readBps: 0, writeBps: 0, readIops: 0, writeIops: 0 }, outcome: null, error: null, progress: null,
      states: [], ioSeries: [], blocks: [], blocksTotal: { fetched: 0, pushed: 0, bytes: 0 }, events: [],
    };
    st.vms.set(name, vm);
  }
  return vm;
}
