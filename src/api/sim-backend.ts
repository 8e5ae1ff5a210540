import type { ScenarioSimulation } from '../sim/simulation.js';
import type { RecordedAction } from '../world/action-inbox.js';
import type { ApiBackend } from './backend.js';
import { onpremLink, proxyFigures, type ProxyFigures } from './proxy-figures.js';
import type { CloudT, CostT, FlowT, HealthT, OnpremLinkT, VmT, WanT } from './schemas.js';
import { SimFlows, type SimAction } from './sim-flows.js';
import { TraceState } from './trace-state.js';

export interface SimBackendOptions {
  /** The pacing clock's virtual now (operator actions land there); absent: just after the current event. */
  virtualNowUs?: () => number | undefined;
  /** Actions recorded by an earlier run (its `api.action` lines), put back at their slots. */
  recorded?: ReadonlyArray<RecordedAction<SimAction>>;
}

/**
 * The API over a running simulation. Reads come from the trace (TraceState)
 * and from read-only accessors of the data center, the proxies and the
 * machine runtime; none of them creates anything, so a run served by the API
 * and left alone has the trace it has without it.
 */
export class SimBackend implements ApiBackend {
  readonly state = new TraceState();
  readonly actions: SimFlows;
  private readonly unsubscribe: () => void;

  constructor(private readonly sim: ScenarioSimulation, options: SimBackendOptions = {}) {
    this.unsubscribe = sim.world.trace.subscribe((e) => this.state.apply(e));
    this.actions = new SimFlows(sim, options);
  }

  get trace(): ScenarioSimulation['world']['trace'] {
    return this.sim.world.trace;
  }

  close(): void {
    this.unsubscribe();
    this.actions.inbox.close('the run has ended');
  }

  health(): Omit<HealthT, 'ok' | 'events' | 'actions'> {
    const s = this.sim;
    return { kind: 'simulation', name: s.scenario.name, seed: s.seed, nowUs: s.world.nowUs, endUs: s.endUs, done: s.done };
  }

  private names(): string[] {
    const names = new Set(this.sim.hypervisor.vms().map((v) => v.id));
    for (const n of this.state.vmNames()) names.add(n);
    return [...names].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  }

  vms(): VmT[] {
    return this.names().map((n) => this.vm(n)!);
  }

  vm(name: string): VmT | undefined {
    const hv = this.sim.hypervisor.vms().find((v) => v.id === name);
    if (!hv && !this.state.vmNames().includes(name)) return undefined;
    const v = this.state.vm(name, this.sim.world.nowUs);
    if (!hv || v.where === 'cloud' || v.where === 'none') return v;
    // The hypervisor knows where an on-prem VM is before any event said so.
    return { ...v, where: hv.hostId !== null ? 'onprem' : v.where === 'unknown' ? 'none' : v.where, host: hv.hostId, power: hv.power };
  }

  flows(): FlowT[] {
    const runtime = this.actions.runtime();
    if (!runtime) return [];
    return [...runtime.started.keys()].map((id) => this.flow(id)!);
  }

  flow(id: string): FlowT | undefined {
    const entry = this.actions.runtime()?.started.get(id);
    if (!entry) return undefined;
    const m = entry.running;
    const snap = m.snapshot;
    const ctx = snap.context as { outcome?: string | null; failure?: { step: string; code: string; message: string } | null };
    const f = ctx.failure;
    return {
      id, machine: m.machineName, src: m.src, vm: m.src.startsWith('vm/') ? m.src.slice(3) : null,
      state: m.state, status: snap.status === 'active' ? 'running' : snap.status, outcome: ctx.outcome ?? null, startedUs: entry.startedUs,
      stateSinceUs: this.state.mark(m.src, m.machineName)?.sinceUs ?? null,
      failure: f ? `${f.code} at ${f.step}: ${f.message}` : null,
      origin: this.actions.origin.has(id) ? 'api' : 'controller',
    };
  }

  proxies(): ProxyFigures[] {
    const env = this.sim.machineEnvIfCreated();
    if (!env) return [];
    const out: ProxyFigures[] = [];
    for (const vm of this.names()) {
      for (const id of env.proxy.proxyIds(vm)) out.push(proxyFigures(id, vm, id.slice(vm.length + 1), env.proxy.cloudProxy(id)));
    }
    return out;
  }

  onprem(): OnpremLinkT | null {
    const env = this.sim.machineEnvIfCreated();
    return env ? onpremLink(env.proxy.onprem.server) : null;
  }

  wan(): WanT {
    const w = this.state.wan();
    const link = this.sim.wan;
    if (!link) return w;
    const s = link.stats();
    return { ...w, up: s.linkUp, bytesUp: s.up.deliveredBytes, bytesDown: s.down.deliveredBytes, rttUs: w.rttUs ?? s.rttUs };
  }

  cloud(): CloudT {
    return { instances: this.state.instanceList(), calls: this.state.cloudCalls() };
  }

  cost(): CostT {
    return this.state.cost();
  }
}
