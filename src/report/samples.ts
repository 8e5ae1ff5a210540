import type { TraceEvent } from '../world/types.js';

/**
 * The trace lines the report export draws that the report JSON does not keep
 * (WAN throughput, cost over time, VM lifecycle states, power changes). A
 * collector subscribes to the run's trace and keeps only those, so exporting a
 * report costs memory in proportion to samples, not to the whole trace.
 */
export interface ExportSamples {
  wan: Array<{ tUs: number; upBps: number; downBps: number; up: boolean }>;
  wanOutages: Array<{ tUs: number; start: boolean }>;
  cost: Array<{ tUs: number; cloudUsd: number; onpremUsd: number }>;
  /** Lifecycle machine states per VM, in time order (top-level state of each machine). */
  states: Array<{ tUs: number; vm: string; machine: string; state: string }>;
  decisions: Array<{ tUs: number; vm: string; action: string }>;
}

export function emptySamples(): ExportSamples {
  return { wan: [], wanOutages: [], cost: [], states: [], decisions: [] };
}

export function collectSamples(): { onTrace: (e: TraceEvent) => void; samples: ExportSamples } {
  const samples = emptySamples();
  const lastByVm = new Map<string, string>();
  const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
  const onTrace = (e: TraceEvent): void => {
    const d = e.data as Record<string, unknown>;
    switch (e.type) {
      case 'wan.stats':
        samples.wan.push({ tUs: e.t, upBps: num(d.upBps), downBps: num(d.downBps), up: d.up !== false });
        return;
      case 'wan.outage':
        samples.wanOutages.push({ tUs: e.t, start: d.start === true });
        return;
      case 'cost.tick':
        samples.cost.push({ tUs: e.t, cloudUsd: num(d.cloudUsd), onpremUsd: num(d.onpremUsd) });
        return;
      case 'machine.state': {
        if (!e.src.startsWith('vm/')) return;
        const state = String(d.state ?? '').split('.')[0]!;
        const vm = e.src.slice(3);
        const machine = String(d.machine ?? '');
        // Sub-state hops inside one top-level state draw as one segment.
        if (lastByVm.get(vm) === `${machine}/${state}`) return;
        lastByVm.set(vm, `${machine}/${state}`);
        samples.states.push({ tUs: e.t, vm, machine, state });
        return;
      }
      case 'machine.done':
        if (!e.src.startsWith('vm/')) return;
        lastByVm.delete(e.src.slice(3));
        samples.states.push({ tUs: e.t, vm: e.src.slice(3), machine: String(d.machine ?? ''), state: `done:${String(d.outcome ?? '')}` });
        return;
      case 'controller.decision':
        samples.decisions.push({ tUs: e.t, vm: String(d.vm ?? ''), action: String(d.action ?? '') });
        return;
    }
  };
  return { onTrace, samples };
}
