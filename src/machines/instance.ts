import { assign, setup } from 'xstate';
import { InputError } from '../errors.js';
import { flowActions, flowDelays, flowGuards, initialFlowContext, type FlowConfig, type FlowContext, type FlowEvent } from './flow.js';

/**
 * A VM as the controller sees it, with goal-state reporting (seed 001): the
 * controller sets a goal, the flows report what happened, and `report()`
 * says where the instance is relative to the goal.
 *
 *   onpremRunning ─DEACTIVATED→ deactivated ─DECOUPLED→ decoupled ─STREAMING→ cloudStreaming
 *   cloudStreaming ─RETURNING→ returning ─REACTIVATED→ onpremRunning      (the reverse, FIG 16)
 *   cloudStreaming ─MIGRATING→ migrating ─MIGRATED→ migrated
 *   onpremRunning ─CLONED→ cloned ─CLONES_RETIRED→ onpremRunning
 *   deactivated | decoupled | cloudStreaming ─REACTIVATED→ onpremRunning   (rollback)
 *   migrating | returning ─STREAMING→ cloudStreaming                      (migration or reverse rolled back)
 *   any ─FAILED→ failed ─RECOVERED→ onpremRunning | cloudStreaming
 *
 * The in-between states (deactivated, decoupled, returning, migrating) wait
 * on a flow and time out into `failed` (E_STUCK) after their configured time.
 * Controllers follow it: the burst controller and the migration wave keep
 * one per VM they move and report its state (src/controller/instance-tracker.ts).
 */

export type InstanceGoal = 'onprem' | 'cloud' | 'cloned' | 'migrated';
export type InstanceState =
  | 'onpremRunning' | 'deactivated' | 'decoupled' | 'cloudStreaming' | 'returning' | 'cloned' | 'migrating' | 'migrated' | 'failed';

export interface InstanceInput {
  vmId: string;
  initial: 'onprem' | 'cloud';
}

export type InstanceData = {
  clones?: number;
  lastFailure?: { code: string; message: string };
};

export type InstanceEvent =
  | FlowEvent
  | { type: 'SET_GOAL'; goal: InstanceGoal }
  | { type: 'DEACTIVATED' } | { type: 'DECOUPLED' } | { type: 'STREAMING' } | { type: 'RETURNING' } | { type: 'REACTIVATED' }
  | { type: 'CLONED'; count: number } | { type: 'CLONES_RETIRED' }
  | { type: 'MIGRATING' } | { type: 'MIGRATED' }
  | { type: 'FAILED'; code: string; message: string }
  | { type: 'RECOVERED'; where: 'onprem' | 'cloud' };

export type InstanceContext = FlowContext<InstanceInput, InstanceData> & { goal: InstanceGoal };
export interface InstanceMachineInput { id: string; instance: InstanceInput; goal: InstanceGoal; config: FlowConfig }

const GOALS: readonly InstanceGoal[] = ['onprem', 'cloud', 'cloned', 'migrated'];
const AT_GOAL: Record<InstanceGoal, InstanceState> = { onprem: 'onpremRunning', cloud: 'cloudStreaming', cloned: 'cloned', migrated: 'migrated' };
const IN_FLIGHT: readonly InstanceState[] = ['deactivated', 'decoupled', 'returning', 'migrating'];

export type GoalRelation = 'at-goal' | 'converging' | 'diverged' | 'failed';

export interface InstanceReport {
  vmId: string;
  goal: InstanceGoal;
  current: InstanceState;
  relation: GoalRelation;
}

/** The status report of seed 001: the current state relative to the goal. */
export function report(snapshot: { value: unknown; context: InstanceContext }): InstanceReport {
  const current = snapshot.value as InstanceState;
  const goal = snapshot.context.goal;
  const relation: GoalRelation = current === 'failed' ? 'failed'
    : current === AT_GOAL[goal] ? 'at-goal'
      : IN_FLIGHT.includes(current) ? 'converging' : 'diverged';
  return { vmId: snapshot.context.input.vmId, goal, current, relation };
}

export function checkGoal(goal: unknown, path = 'goal'): InstanceGoal {
  if (!GOALS.includes(goal as InstanceGoal)) throw new InputError('E_BAD_GOAL', `${path}: expected one of ${GOALS.join(', ')}, got ${JSON.stringify(goal)}`);
  return goal as InstanceGoal;
}

const waiting = (name: InstanceState, on: Record<string, unknown>) => ({
  entry: [{ type: 'beginStep' as const, params: { step: name } }, 'armTimeout' as const],
  exit: 'clearTimer' as const,
  after: { stepTimeout: { target: 'failed', actions: 'noteStuck' as const } },
  on: {
    ...on,
    'timer.fired': { guard: 'timerMatches' as const, target: 'failed', actions: 'noteStuck' as const },
  },
});

const fail = { target: 'failed', actions: 'noteFailed' } as const;

export const instanceMachine = setup({
  types: {
    context: {} as InstanceContext,
    input: {} as InstanceMachineInput,
    events: {} as InstanceEvent,
  },
  guards: {
    ...flowGuards,
    startsInCloud: ({ context }) => context.input.initial === 'cloud',
    toCloud: ({ event }) => event.type === 'RECOVERED' && event.where === 'cloud',
  },
  actions: {
    ...flowActions,
    setGoal: assign(({ event }) => (event.type === 'SET_GOAL' ? { goal: checkGoal(event.goal) } : {})),
    noteClones: assign(({ context, event }) => (event.type === 'CLONED' ? { data: { ...context.data, clones: event.count } } : {})),
    noteFailed: assign(({ context, event }) => (event.type === 'FAILED'
      ? { data: { ...context.data, lastFailure: { code: event.code, message: event.message } } }
      : {})),
    noteStuck: assign(({ context }) => ({
      data: { ...context.data, lastFailure: { code: 'E_STUCK', message: `instance stayed ${context.step} longer than its timeout` } },
      timer: null,
    })),
  },
  delays: flowDelays,
}).createMachine({
  id: 'instance',
  context: ({ input }) => ({
    ...initialFlowContext<InstanceInput, InstanceData>(input.id, input.instance, input.config, {}, 'onpremRunning'),
    goal: checkGoal(input.goal),
  }),
  initial: 'start',
  on: { SET_GOAL: { actions: 'setGoal' } },
  states: {
    start: { always: [{ guard: 'startsInCloud', target: 'cloudStreaming' }, { target: 'onpremRunning' }] },
    onpremRunning: {
      on: { DEACTIVATED: 'deactivated', CLONED: { target: 'cloned', actions: 'noteClones' }, FAILED: fail },
    },
    deactivated: waiting('deactivated', { DECOUPLED: 'decoupled', REACTIVATED: 'onpremRunning', FAILED: fail }),
    decoupled: waiting('decoupled', { STREAMING: 'cloudStreaming', REACTIVATED: 'onpremRunning', FAILED: fail }),
    cloudStreaming: {
      on: { MIGRATING: 'migrating', RETURNING: 'returning', REACTIVATED: 'onpremRunning', FAILED: fail },
    },
    returning: waiting('returning', { REACTIVATED: 'onpremRunning', STREAMING: 'cloudStreaming', FAILED: fail }),
    cloned: {
      on: { CLONES_RETIRED: 'onpremRunning', DEACTIVATED: 'deactivated', CLONED: { actions: 'noteClones' }, FAILED: fail },
    },
    migrating: waiting('migrating', { MIGRATED: 'migrated', STREAMING: 'cloudStreaming', FAILED: fail }),
    migrated: {
      on: { FAILED: fail },
    },
    failed: {
      on: { RECOVERED: [{ guard: 'toCloud', target: 'cloudStreaming' }, { target: 'onpremRunning' }] },
    },
  },
});

export type InstanceMachine = typeof instanceMachine;
