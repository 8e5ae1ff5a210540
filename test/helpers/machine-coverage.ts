import { initialTransition, type AnyEventObject, type AnyMachineSnapshot, type AnyStateMachine, type StateValue } from 'xstate';
import { getAdjacencyMap, getShortestPaths } from 'xstate/graph';

/**
 * Path coverage of a machine with xstate/graph: every state node and every
 * transition the machine declares, against what the generated paths reach.
 * The events offered in each state are derived from the state's own
 * transitions (done/error of its actor, its `after` timers, `timer.fired`,
 * operator events), with payload variants supplied per machine so that every
 * guarded branch can be taken.
 */

type AnyNode = AnyStateMachine['root'];

export interface CoverageOptions {
  /** One traversal per input; coverage is the union. */
  inputs: unknown[];
  /** Payload variants per event type (default: one bare event). */
  variants?: Record<string, AnyEventObject[]>;
  /** Done-event outputs per invoked actor id (default: one empty output). */
  outputs?: Record<string, unknown[]>;
  /** Extra context that decides guards, for telling snapshots apart. */
  project?: (snapshot: AnyMachineSnapshot) => unknown;
  /** Traversal bound (states per input). */
  limit?: number;
}

export interface CoverageReport {
  machine: string;
  states: { total: number; covered: number; missing: string[] };
  transitions: { total: number; covered: number; missing: string[] };
  paths: number;
}

export function allStateNodes(machine: AnyStateMachine): AnyNode[] {
  const out: AnyNode[] = [];
  const walk = (n: AnyNode): void => {
    out.push(n);
    for (const c of Object.values(n.states) as AnyNode[]) walk(c);
  };
  walk(machine.root);
  return out;
}

const targetsOf = (t: { target?: ReadonlyArray<{ id: string }> | undefined }): string => (t.target?.map((x) => x.id).join('+')) || '(self)';

export function transitionKey(source: string, eventType: string, target: string): string {
  return `${source} --${eventType}--> ${target}`;
}

/** Every declared transition, keyed by source, event and target. */
export function allTransitions(machine: AnyStateMachine): string[] {
  const keys = new Set<string>();
  for (const n of allStateNodes(machine)) {
    for (const [eventType, list] of n.transitions) for (const t of list) keys.add(transitionKey(n.id, eventType, targetsOf(t)));
    for (const t of n.always ?? []) keys.add(transitionKey(n.id, 'always', targetsOf(t)));
  }
  return [...keys].sort();
}

/** The active state nodes of a state value, root first. */
export function activeNodes(machine: AnyStateMachine, value: StateValue): AnyNode[] {
  const out: AnyNode[] = [machine.root];
  const walk = (node: AnyNode, v: StateValue): void => {
    const entries: Array<[string, StateValue | undefined]> = typeof v === 'string' ? [[v, undefined]] : Object.entries(v);
    for (const [key, sub] of entries) {
      const child = node.states[key] as AnyNode | undefined;
      if (!child) continue;
      out.push(child);
      if (sub !== undefined) walk(child, sub);
    }
  };
  walk(machine.root, value);
  return out;
}

function eventsFor(machine: AnyStateMachine, snapshot: AnyMachineSnapshot, options: CoverageOptions): AnyEventObject[] {
  if (snapshot.status !== 'active') return [];
  const types = new Set<string>();
  for (const n of activeNodes(machine, snapshot.value)) for (const t of n.transitions.keys()) types.add(t);
  const out: AnyEventObject[] = [];
  for (const type of [...types].sort()) {
    if (type.startsWith('xstate.done.actor.')) {
      const actor = type.slice('xstate.done.actor.'.length);
      for (const output of options.outputs?.[actor] ?? [{}]) out.push({ type, output, actorId: actor });
    } else if (type.startsWith('xstate.error.actor.')) {
      const retryable = Object.assign(new Error('transient'), { code: 'RequestLimitExceeded', retryable: true });
      const fatal = Object.assign(new Error('fatal'), { code: 'E_FATAL', retryable: false });
      out.push({ type, error: retryable }, { type, error: fatal });
    } else if (type === 'timer.fired') {
      const key = (snapshot.context as { timer?: { key: string } | null }).timer?.key;
      out.push({ type, key: key ?? 'no-timer' });
    } else {
      out.push(...(options.variants?.[type] ?? [{ type }]));
    }
  }
  return out;
}

function serialize(snapshot: AnyMachineSnapshot, options: CoverageOptions): string {
  const c = snapshot.context as { attempt?: number; phase?: string; timer?: unknown };
  return JSON.stringify([snapshot.value, snapshot.status, c.attempt, c.phase, c.timer ? 1 : 0, options.project?.(snapshot)]);
}

/** Which declared transitions one edge (snapshot --event--> next) takes, eventless hops included. */
function takenBy(machine: AnyStateMachine, snapshot: AnyMachineSnapshot, event: AnyEventObject, next: AnyMachineSnapshot): string[] {
  const taken: string[] = [];
  const nextIds = new Set(activeNodes(machine, next.value).map((n) => n.id));
  for (const t of machine.getTransitionData(snapshot as never, event as never)) {
    taken.push(transitionKey(t.source.id, t.eventType, targetsOf(t)));
    for (const target of t.target ?? []) {
      // A transient target's `always` branch is the one whose target the macrostep ended in.
      const hop = (target.always ?? []).find((a: { target?: ReadonlyArray<{ id: string }> }) => a.target?.some((x) => nextIds.has(x.id)));
      if (hop) taken.push(transitionKey(target.id, 'always', targetsOf(hop)));
    }
  }
  return taken;
}

export function pathCoverage(machine: AnyStateMachine, options: CoverageOptions): CoverageReport {
  const states = new Set<string>();
  const transitions = new Set<string>();
  let paths = 0;
  for (const input of options.inputs) {
    const traversal = {
      input,
      events: (s: AnyMachineSnapshot) => eventsFor(machine, s, options),
      serializeState: (s: AnyMachineSnapshot) => serialize(s, options),
      serializeEvent: (e: AnyEventObject) => JSON.stringify(e, (k, v) => (v instanceof Error ? { code: (v as { code?: string }).code } : v)),
      limit: options.limit ?? 20_000,
    };
    // The initial macrostep may pass through a transient choice (`start`): cover that hop too.
    const [initial] = initialTransition(machine, input as never) as unknown as [AnyMachineSnapshot];
    const initialIds = new Set(activeNodes(machine, initial.value).map((n) => n.id));
    const first = machine.root.states[String(machine.root.config.initial)] as AnyNode | undefined;
    const hop = first?.always?.find((a: { target?: ReadonlyArray<{ id: string }> }) => a.target?.some((x) => initialIds.has(x.id)));
    if (first && hop) transitions.add(transitionKey(first.id, 'always', targetsOf(hop)));
    const found = getShortestPaths(machine, traversal as never);
    paths += found.length;
    for (const p of found) {
      for (const n of activeNodes(machine, (p.state as AnyMachineSnapshot).value)) states.add(n.id);
      // The initial macrostep's eventless hops (a `start` choice) are part of every path.
      const first = p.steps[0]?.state as AnyMachineSnapshot | undefined;
      if (first) for (const n of activeNodes(machine, first.value)) states.add(n.id);
    }
    const adjacency = getAdjacencyMap(machine, traversal as never);
    type Edge = { event: AnyEventObject; state: AnyMachineSnapshot };
    for (const { state, transitions: edges } of Object.values(adjacency) as Array<{ state: AnyMachineSnapshot; transitions: Record<string, Edge> }>) {
      for (const { event, state: next } of Object.values(edges)) {
        for (const k of takenBy(machine, state as AnyMachineSnapshot, event as AnyEventObject, next as AnyMachineSnapshot)) transitions.add(k);
      }
    }
  }
  // Transient states are left within the macrostep that entered them; an eventless hop out of one covers it.
  for (const k of transitions) {
    const m = /^(.*) --always--> /.exec(k);
    if (m) states.add(m[1]!);
  }
  const allStates = allStateNodes(machine).map((n) => n.id).sort();
  const allTrans = allTransitions(machine);
  return {
    machine: machine.id,
    states: { total: allStates.length, covered: allStates.filter((s) => states.has(s)).length, missing: allStates.filter((s) => !states.has(s)) },
    transitions: { total: allTrans.length, covered: allTrans.filter((t) => transitions.has(t)).length, missing: allTrans.filter((t) => !transitions.has(t)) },
    paths,
  };
}

export function formatCoverage(reports: CoverageReport[]): string {
  const lines = ['machine              states        transitions   paths'];
  for (const r of reports) {
    const pct = (a: number, b: number): string => `${a}/${b} ${((100 * a) / b).toFixed(0)}%`;
    lines.push(`${r.machine.padEnd(20)} ${pct(r.states.covered, r.states.total).padEnd(13)} ${pct(r.transitions.covered, r.transitions.total).padEnd(13)} ${r.paths}`);
  }
  return lines.join('\n');
}
