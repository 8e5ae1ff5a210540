import type { TraceEvent } from '../src/world/types.js';
import { describeEvent } from './event-text.js';
import type { LogEntry } from './snapshot.js';
import { LIMITS, idAfter, n, push, s, vmEntry, type ModelState } from './model-state.js';

/**
 * What each trace event type does to the TUI model's state: one handler per
 * type (types not listed change nothing but the clock and the log). `vmName`
 * is the VM a `vm/<name>` source names, or null.
 */
type Handler = (st: ModelState, e: TraceEvent, vmName: string | null) => void;

const hostFailure: Handler = (st, e) => {
  const id = idAfter(e.src, 'host/') ?? e.src;
  const prev = st.hosts.get(id) ?? { id, cpuDemand: 0, cpuCapacity: 0, ramUsedMiB: 0, ramMiB: 0, vms: 0, failed: false };
  st.hosts.set(id, { ...prev, failed: e.type === 'host.failed' });
};

export const APPLY: Readonly<Record<string, Handler>> = {
  'run.start': (st, { data: d }) => {
    st.scenario = s(d.scenario);
    st.seed = typeof d.seed === 'number' ? d.seed : null;
  },
  'run.end': (st, { data: d }) => {
    st.ended = true;
    st.endReason = s(d.reason);
  },
  'host.load': (st, { src, data: d }) => {
    const id = idAfter(src, 'host/') ?? src;
    const prev = st.hosts.get(id);
    st.hosts.set(id, {
      id, cpuDemand: n(d.cpuDemand), cpuCapacity: n(d.cpuCapacity), ramUsedMiB: n(d.ramUsedMiB), ramMiB: n(d.ramMiB), vms: n(d.vms),
      failed: prev?.failed ?? false,
    });
  },
  'host.failed': hostFailure,
  'host.recovered': hostFailure,
  'vm.placed': (st, { t, data: d }, vmName) => {
    if (vmName === null) return;
    const vm = vmEntry(st, vmName, t);
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
  },
  'vm.power': (st, { t, data: d }, vmName) => {
    if (vmName === null) return;
    const vm = vmEntry(st, vmName, t);
    vm.power = s(d.power);
    if (vm.where === 'onprem' && d.host !== undefined) vm.host = s(d.host);
  },
  'vm.io': (st, { t, data: d }, vmName) => {
    if (vmName === null) return;
    const vm = vmEntry(st, vmName, t);
    vm.io = { t, readBps: n(d.readBps), writeBps: n(d.writeBps), readIops: n(d.readIops), writeIops: n(d.writeIops) };
    push(vm.ioSeries, vm.io, LIMITS.vmSamples);
  },
  'vm.progress': (st, { t, data: d }, vmName) => {
    if (vmName !== null) vmEntry(st, vmName, t).progress = { done: n(d.done), total: n(d.total), rate: n(d.rate) };
  },
  'vm.task.done': (st, { t }, vmName) => {
    if (vmName !== null) vmEntry(st, vmName, t).progress = null;
  },
  'machine.state': (st, { t, data: d }, vmName) => {
    if (vmName === null) return;
    const vm = vmEntry(st, vmName, t);
    vm.machine = s(d.machine);
    vm.state = s(d.state);
    vm.stateSinceUs = t;
    vm.error = null;
    push(vm.states, { t, machine: vm.machine ?? '?', state: vm.state ?? '?' }, LIMITS.vmStates);
  },
  'machine.error': (st, { t, data: d }, vmName) => {
    if (vmName !== null) vmEntry(st, vmName, t).error = s(d.code);
  },
  'machine.done': (st, { t, data: d }, vmName) => {
    if (vmName !== null) vmEntry(st, vmName, t).outcome = s(d.outcome);
  },
  'wan.stats': (st, { t, data: d }) => {
    push(st.wanSeries, { t, upBps: n(d.upBps), downBps: n(d.downBps), rttUs: n(d.rttUs), lossPct: n(d.lossPct), up: d.up !== false }, LIMITS.wanSamples);
  },
  'wan.outage': (st, { data: d }) => {
    if (d.start && !st.wanOutage) st.wanOutages++;
    st.wanOutage = Boolean(d.start);
  },
  'proxy.stats': (st, { src, data: d }) => {
    const vm = idAfter(src, 'proxy/cloud/') ?? idAfter(src, 'proxy/') ?? src;
    const hits = n(d.cacheHits);
    const misses = n(d.cacheMisses);
    st.proxies.set(src, {
      src, vm, cacheHits: hits, cacheMisses: misses, hitRatio: hits + misses > 0 ? hits / (hits + misses) : null,
      cacheBytes: n(d.cacheBytes), cacheCapacity: n(d.cacheCapacity), prefetchQueued: n(d.prefetchQueued), prefetchHits: n(d.prefetchHits),
      wbBacklogBytes: n(d.wbBacklogBytes), wbLagUs: n(d.wbLagUs), wireBytes: n(d.wireBytes), guestBytes: n(d.guestBytes),
    });
  },
  'proxy.blocks': (st, { t, src, data: d }) => {
    const name = idAfter(src, 'proxy/cloud/');
    if (name === null) return;
    const vm = vmEntry(st, name, t);
    const sample = { t, fetched: n(d.fetched), pushed: n(d.pushed), bytes: n(d.bytes) };
    push(vm.blocks, sample, LIMITS.vmSamples);
    vm.blocksTotal = {
      fetched: vm.blocksTotal.fetched + sample.fetched, pushed: vm.blocksTotal.pushed + sample.pushed, bytes: vm.blocksTotal.bytes + sample.bytes,
    };
  },
  'cloud.instance': (st, { t, data: d }) => {
    const id = s(d.id);
    if (id === null) return;
    const prev = st.instances.get(id);
    const state = s(d.state) ?? '?';
    st.instances.set(id, {
      id, type: s(d.type) ?? prev?.type ?? '?', state, vm: prev?.vm ?? null, sinceUs: prev && prev.state === state ? prev.sinceUs : t,
    });
  },
  'cost.tick': (st, { t, data: d }) => {
    st.cloudUsd = n(d.cloudUsd);
    st.onpremUsd = n(d.onpremUsd);
    push(st.cost, { t, cloudUsd: st.cloudUsd, onpremUsd: st.onpremUsd }, LIMITS.costSamples);
  },
};

/** Apply one event: its handler, then its line in the log (and in the VM's own events). */
export function applyEvent(st: ModelState, e: TraceEvent): void {
  const seq = st.eventCount++;
  if (e.t > st.nowUs) st.nowUs = e.t;
  const vmName = idAfter(e.src, 'vm/');
  // Own keys only: a trace type such as "constructor" must not find Object's.
  if (Object.hasOwn(APPLY, e.type)) APPLY[e.type]!(st, e, vmName);
  const line = describeEvent(e);
  if (!line) return;
  const entry: LogEntry = { seq, t: e.t, src: e.src, type: e.type, text: line.text, level: line.level };
  push(st.log, entry, LIMITS.logEntries);
  const about = vmName ?? (e.type === 'controller.decision' ? s(e.data.vm) : null) ?? idAfter(e.src, 'proxy/cloud/');
  if (about !== null && e.type !== 'machine.state' && st.vms.has(about)) push(st.vms.get(about)!.events, entry, LIMITS.vmEvents);
}
