import type { TraceEvent } from '../world/types.js';
import type { CloudCallsT, CostT, InstanceT, VmT, WanT } from './schemas.js';

/**
 * The API's read model: current values folded from trace events, the same
 * events the SSE stream carries. It only listens, so serving reads can never
 * change a run. (The TUI keeps its own model with history for drawing.)
 */

interface VmRow {
  where: VmT['where'];
  host: string | null;
  instance: string | null;
  instanceType: string | null;
  power: string | null;
  machine: string | null;
  state: string | null;
  stateSinceUs: number | null;
  outcome: string | null;
  error: string | null;
  stageBootUs: number | null;
  targetBootUs: number | null;
  runningUs: number | null;
}

export interface MachineMark {
  state: string;
  sinceUs: number;
}

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

function after(src: string, prefix: string): string | null {
  return src.startsWith(prefix) && src.length > prefix.length ? src.slice(prefix.length) : null;
}

export class TraceState {
  scenario: string | null = null;
  seed: number | null = null;
  ended = false;
  lastUs = 0;
  private readonly vmRows = new Map<string, VmRow>();
  private readonly instances = new Map<string, InstanceT>();
  private readonly calls = new Map<string, CloudCallsT>();
  /** Latest machine.state per "<src>|<machine>": since when a flow is in its state. */
  private readonly marks = new Map<string, MachineMark>();
  private wanRow: WanT = { up: true, outages: 0, upBps: null, downBps: null, rttUs: null, lossPct: null, sampledUs: null, bytesUp: null, bytesDown: null };
  private costRow: CostT = { cloudUsd: 0, onpremUsd: 0, sampledUs: null };

  apply(e: TraceEvent): void {
    if (e.t > this.lastUs) this.lastUs = e.t;
    const d = e.data;
    const vm = after(e.src, 'vm/');
    switch (e.type) {
      case 'run.start':
        this.scenario = str(d.scenario);
        this.seed = num(d.seed);
        break;
      case 'run.end':
        this.ended = true;
        break;
      case 'vm.placed':
        if (vm) {
          const r = this.row(vm);
          r.where = d.where === 'cloud' || d.where === 'onprem' || d.where === 'none' ? d.where : 'unknown';
          r.host = str(d.host);
          r.instance = str(d.instance);
          r.instanceType = str(d.instanceType);
          if (r.instance) {
            const inst = this.instances.get(r.instance);
            if (inst) this.instances.set(r.instance, { ...inst, vm });
          }
        }
        break;
      case 'vm.power':
        if (vm) {
          const r = this.row(vm);
          r.power = str(d.power);
          if (r.where !== 'cloud' && typeof d.host === 'string') { r.host = d.host; r.where = 'onprem'; }
        }
        break;
      case 'machine.state':
        this.onMachineState(e, vm);
        break;
      case 'machine.error':
        if (vm) this.row(vm).error = str(d.code);
        break;
      case 'machine.done':
        if (vm) this.row(vm).outcome = str(d.outcome);
        break;
      case 'cloud.instance': {
        const id = str(d.id);
        if (id) {
          const prev = this.instances.get(id);
          const state = str(d.state) ?? 'unknown';
          this.instances.set(id, { id, type: str(d.type) ?? prev?.type ?? 'unknown', state, vm: prev?.vm ?? null, sinceUs: prev && prev.state === state ? prev.sinceUs : e.t });
        }
        break;
      }
      case 'cloud.call': {
        const api = str(d.api) ?? 'unknown';
        const c = this.calls.get(api) ?? { api, calls: 0, errors: 0, errorCodes: {}, latencyUsSum: 0 };
        c.calls++;
        c.latencyUsSum += num(d.latencyUs) ?? 0;
        if (d.ok === false) {
          c.errors++;
          const code = str(d.code) ?? 'unknown';
          c.errorCodes[code] = (c.errorCodes[code] ?? 0) + 1;
        }
        this.calls.set(api, c);
        break;
      }
      case 'wan.stats':
        this.wanRow = {
          ...this.wanRow, up: d.up !== false, upBps: num(d.upBps), downBps: num(d.downBps), rttUs: num(d.rttUs), lossPct: num(d.lossPct), sampledUs: e.t,
        };
        break;
      case 'wan.outage':
        if (d.start && this.wanRow.up) this.wanRow = { ...this.wanRow, outages: this.wanRow.outages + 1 };
        this.wanRow = { ...this.wanRow, up: !d.start };
        break;
      case 'cost.tick':
        this.costRow = { cloudUsd: num(d.cloudUsd) ?? 0, onpremUsd: num(d.onpremUsd) ?? 0, sampledUs: e.t };
        break;
      default:
        break;
    }
  }

  private onMachineState(e: TraceEvent, vm: string | null): void {
    const machine = str(e.data.machine) ?? 'unknown';
    const state = str(e.data.state) ?? 'unknown';
    this.marks.set(`${e.src}|${machine}`, { state, sinceUs: e.t });
    if (!vm) return;
    const r = this.row(vm);
    r.machine = machine;
    r.state = state;
    r.stateSinceUs = e.t;
    r.error = null;
    if (machine === 'transfer' || machine === 'clone') {
      if (state === 'stageBoot') { r.stageBootUs = e.t; r.targetBootUs = null; r.runningUs = null; }
      if (state === 'targetBoot') r.targetBootUs = e.t;
      if ((state === 'running' || state === 'restoreState' || state === 'joinDomain') && r.targetBootUs !== null && r.runningUs === null) r.runningUs = e.t;
    }
  }

  private row(name: string): VmRow {
    let r = this.vmRows.get(name);
    if (!r) {
      r = {
        where: 'unknown', host: null, instance: null, instanceType: null, power: null, machine: null, state: null, stateSinceUs: null,
        outcome: null, error: null, stageBootUs: null, targetBootUs: null, runningUs: null,
      };
      this.vmRows.set(name, r);
    }
    return r;
  }

  /** The trace-derived view of a VM; `nowUs` gives time in state. */
  vm(name: string, nowUs: number): VmT {
    const r = this.vmRows.get(name) ?? this.row(name);
    const staging = r.stageBootUs !== null && r.targetBootUs !== null ? r.targetBootUs - r.stageBootUs : null;
    const target = r.targetBootUs !== null && r.runningUs !== null ? r.runningUs - r.targetBootUs : null;
    return {
      name, where: r.where, host: r.host, instance: r.instance, instanceType: r.instanceType, power: r.power,
      machine: r.machine, state: r.state, stateSinceUs: r.stateSinceUs, timeInStateUs: r.stateSinceUs === null ? null : Math.max(0, nowUs - r.stateSinceUs),
      outcome: r.outcome, error: r.error,
      boot: { stagingBootUs: staging, targetBootUs: target, bootUs: staging !== null && target !== null ? staging + target : null },
    };
  }

  vmNames(): string[] {
    return [...this.vmRows.keys()];
  }

  mark(src: string, machine: string): MachineMark | undefined {
    return this.marks.get(`${src}|${machine}`);
  }

  wan(): WanT {
    return { ...this.wanRow };
  }

  cost(): CostT {
    return { ...this.costRow };
  }

  instanceList(): InstanceT[] {
    return [...this.instances.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  cloudCalls(): CloudCallsT[] {
    return [...this.calls.values()].sort((a, b) => a.api.localeCompare(b.api)).map((c) => ({ ...c, errorCodes: { ...c.errorCodes } }));
  }
}
