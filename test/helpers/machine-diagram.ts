import type { AnyStateMachine } from 'xstate';

/**
 * A mermaid `stateDiagram-v2` of a machine, for the docs. A flow step (a
 * state with `run` and `backoff` children) is drawn as one state: its retries
 * are implied, and its error and timeout edges are drawn once. docs/machines/
 * pages embed this text; a test keeps them equal to the machines.
 */

type AnyNode = AnyStateMachine['root'];

const isStep = (n: AnyNode): boolean => 'run' in n.states && 'backoff' in n.states;
const mid = (id: string): string => id.replace(/[^A-Za-z0-9]/g, '_');

function label(eventType: string): string {
  if (eventType.startsWith('xstate.done.actor.')) return 'done';
  if (eventType.startsWith('xstate.error.actor.')) return 'error';
  if (eventType.startsWith('xstate.after.') || eventType === 'timer.fired') return 'timeout';
  return eventType;
}

/** The drawn node a state node belongs to: the step that contains it, or itself. */
function drawnOf(n: AnyNode): AnyNode {
  let cur: AnyNode | undefined = n;
  while (cur) {
    if (isStep(cur)) return cur;
    cur = cur.parent as AnyNode | undefined;
  }
  return n;
}

export function mermaid(machine: AnyStateMachine): string {
  const lines: string[] = ['stateDiagram-v2'];
  // One arrow per pair of drawn states, its labels joined: "error / timeout".
  const edges = new Map<string, string[]>();
  const edgeLines: string[] = [];
  const addEdge = (from: AnyNode, to: AnyNode, text: string): void => {
    const a = drawnOf(from);
    const b = drawnOf(to);
    if (a === b) return;
    const key = `${mid(a.id)} --> ${mid(b.id)}`;
    const labels = edges.get(key) ?? [];
    if (!labels.includes(text)) labels.push(text);
    edges.set(key, labels);
  };
  const render = (n: AnyNode, indent: string): void => {
    for (const child of Object.values(n.states) as AnyNode[]) {
      const id = mid(child.id);
      if (child.type === 'final') lines.push(`${indent}${id} : ${child.key} (final)`);
      if (!isStep(child) && Object.keys(child.states).length > 0) {
        lines.push(`${indent}state ${child.key} as ${id} {`);
        const first = child.states[String(child.config.initial)] as AnyNode | undefined;
        if (first) lines.push(`${indent}  [*] --> ${mid(first.id)}`);
        render(child, `${indent}  `);
        lines.push(`${indent}}`);
      } else if (child.type !== 'final') {
        lines.push(`${indent}${id} : ${child.key}${isStep(child) ? ' ↻' : ''}`);
      }
    }
  };
  const root = machine.root as AnyNode;
  const initial = root.states[String(root.config.initial)] as AnyNode | undefined;
  if (initial) lines.push(`  [*] --> ${mid(initial.id)}`);
  render(root, '  ');
  const walk = (n: AnyNode): void => {
    for (const [eventType, list] of n.transitions) {
      if (n === root) continue;
      for (const t of list) {
        const guard = typeof t.guard === 'string' && label(eventType) === 'done' ? ` [${t.guard}]` : '';
        for (const target of (t.target ?? []) as AnyNode[]) addEdge(n, target, label(eventType) + guard);
      }
    }
    for (const t of n.always ?? []) for (const target of (t.target ?? []) as AnyNode[]) addEdge(n, target, t.guard ? `[${typeof t.guard === 'string' ? t.guard : 'guard'}]` : 'else');
    for (const c of Object.values(n.states) as AnyNode[]) walk(c);
  };
  walk(root);
  for (const [key, labels] of edges) edgeLines.push(`  ${key}: ${labels.join(' / ')}`);
  for (const [eventType, list] of root.transitions) {
    for (const t of list) for (const target of (t.target ?? []) as AnyNode[]) edgeLines.push(`  note right of ${mid(drawnOf(target).id)} : ${eventType} from any forward state`);
  }
  for (const n of Object.values(root.states) as AnyNode[]) if (n.type === 'final') edgeLines.push(`  ${mid(n.id)} --> [*]`);
  return [...lines, ...edgeLines].join('\n');
}
