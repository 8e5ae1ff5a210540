import { FLOW_EVENTS } from '../../scenario/timeline.js';
import type { ReportInput } from '../types.js';

/** What the section reads from the running simulation (its OperatorFlows). */
interface FlowsSim {
  operatorFlows: {
    flowRecords(): ReadonlyMap<string, { kind: string; vm: string; running: { state: string; snapshot: { status: string; context: unknown } }; startedUs: number; endedUs: number | null }>;
    readonly refused: ReadonlyArray<{ id: string; kind: string; vm: string; code: string; message: string }>;
    readonly rollbacksSent: ReadonlySet<string>;
  };
}

type Outcome = 'ok' | 'rolled-back' | 'failed' | 'running' | 'refused' | 'not-reached';

interface Counts { started: number; ok: number; rolledBack: number; failed: number; running: number; refused: number }

const zero = (): Counts => ({ started: 0, ok: 0, rolledBack: 0, failed: 0, running: 0, refused: 0 });

function outcomeOf(r: { running: { snapshot: { status: string; context: unknown } } }): Outcome {
  const snap = r.running.snapshot;
  if (snap.status === 'active') return 'running';
  const o = (snap.context as { outcome?: string }).outcome;
  return o === 'ok' || o === 'rolled-back' ? o : 'failed';
}

/**
 * `report.flows`: the flows an operator started on one VM (timeline events
 * and the management API): how many of each kind ended ok, rolled back,
 * failed, still ran or were refused, and per timeline event its outcome, so
 * a scenario can expect that its clone booted and its cut-over switched.
 */
export function buildFlowsSection(input: ReportInput): Record<string, unknown> {
  const sim = (input.sim ?? null) as FlowsSim | null;
  const records = sim?.operatorFlows.flowRecords() ?? new Map();
  const refused = sim?.operatorFlows.refused ?? [];
  const totals = zero();
  const byKind: Record<string, Counts> = Object.fromEntries([...FLOW_EVENTS, 'rollback'].map((k) => [k, zero()]));
  const list: Array<Record<string, unknown>> = [];
  const count = (kind: string, outcome: Outcome): void => {
    for (const c of [totals, byKind[kind]!]) {
      if (outcome !== 'refused') c.started++;
      if (outcome === 'ok') c.ok++;
      else if (outcome === 'rolled-back') c.rolledBack++;
      else if (outcome === 'failed') c.failed++;
      else if (outcome === 'running') c.running++;
      else if (outcome === 'refused') c.refused++;
    }
  };
  const byId = new Map<string, { outcome: Outcome; state: string | null; tookSeconds: number | null }>();
  for (const [id, r] of records) {
    const outcome = outcomeOf(r);
    count(r.kind, outcome);
    const tookSeconds = r.endedUs === null ? null : Math.round((r.endedUs - r.startedUs) / 1000) / 1000;
    byId.set(id, { outcome, state: r.running.state, tookSeconds });
    list.push({ id, kind: r.kind, vm: r.vm, outcome, state: r.running.state, startedHours: Math.round((r.startedUs / 3.6e9) * 1000) / 1000, tookSeconds });
  }
  for (const id of sim?.operatorFlows.rollbacksSent ?? []) {
    count('rollback', 'ok');
    byId.set(id, { outcome: 'ok', state: null, tookSeconds: null });
  }
  for (const f of refused) {
    count(f.kind, 'refused');
    byId.set(f.id, { outcome: 'refused', state: null, tookSeconds: null });
    list.push({ id: f.id, kind: f.kind, vm: f.vm, outcome: 'refused', code: f.code, message: f.message });
  }
  // Per timeline flow event, by its index: known from the scenario alone, so expect: clauses can name them.
  const timeline: Record<string, unknown> = {};
  for (const ev of input.scenario.timeline) {
    if (!('flow' in ev) && ev.event !== 'rollback') continue;
    const vm = 'flow' in ev && ev.flow ? ev.flow.vm : (ev as { vm: string }).vm;
    const got = byId.get(`timeline-${ev.index}-${ev.event}-${vm}`);
    timeline[String(ev.index)] = { event: ev.event, vm, outcome: got?.outcome ?? 'not-reached', state: got?.state ?? null, tookSeconds: got?.tookSeconds ?? null };
  }
  return { ...totals, byKind, timeline, list };
}
