import { assign, setup } from 'xstate';
import { InputError } from '../errors.js';
import type { MemoryImage } from '../ports/hypervisor.js';
import type { MirrorRound } from '../ports/proxy-control.js';
import {
  flowActions, flowDelays, flowGuards, flowOutput, initialFlowContext, rollbackOnRequest, rollbackStates, step,
  type FlowConfig, type FlowContext, type FlowEvent, type FlowOutput,
} from './flow.js';
import { notProvided } from './not-provided.js';

/**
 * Cloning cut-over, FIG 15: the run state is mirrored to a standby clone in
 * rounds until what is left to send fits the switch budget, then a brief
 * switch.
 *
 *   captureRunState (1505) → replicateRunState (1527) → mirror (1531)
 *   → evaluate → mirror … | switchover.pauseSource → switchover.finalCopy
 *   → switchover.activateTarget → switchover.retireSource (1533) → cutOver
 *
 * Convergence is measured, not assumed: after each round the dirty bytes left
 * are divided by the measured link rate; when that is within `switchBudgetUs`
 * the switch starts. A round whose measured dirty rate is at least
 * `stallRatio` × the link rate is a stall; `stallRounds` stalls in a row, or
 * `maxRounds` rounds, fail the cut-over with NOT_CONVERGING and roll back
 * (the source keeps running, the standby is released).
 */

export interface CutoverInput {
  sourceVmId: string;
  /** The standby clone (a cloud instance booted by the clone flow). */
  targetId: string;
  maxRounds: number;
  /** Longest pause the final copy may take. */
  switchBudgetUs: number;
  stallRatio: number;
  stallRounds: number;
}

export type CutoverData = {
  runStateBytes?: number;
  /** The source's latest memory image: rollback resumes the source from it. */
  sourceMemory?: MemoryImage;
  replicatedBytes?: number;
  /** The round just mirrored (the actor's output). */
  round?: MirrorRound;
  rounds?: number;
  stalls?: number;
  history?: MirrorRound[];
  predictedSwitchUs?: number;
  sourcePaused?: boolean;
  finalCopyBytes?: number;
  targetActive?: boolean;
  sourceRetired?: boolean;
};

export type CutoverContext = FlowContext<CutoverInput, CutoverData>;
export type CutoverOutput = FlowOutput<CutoverData>;
export interface CutoverMachineInput { id: string; cutover: CutoverInput; config: FlowConfig }

export const NOT_CONVERGING = 'NOT_CONVERGING';
const HISTORY_KEPT = 64;

export function checkCutoverInput(c: CutoverInput, path = 'cutover'): CutoverInput {
  if (!Number.isInteger(c.maxRounds) || c.maxRounds < 1) throw new InputError('E_BAD_CONFIG', `${path}.maxRounds: expected an integer >= 1, got ${JSON.stringify(c.maxRounds)}`);
  if (!Number.isInteger(c.switchBudgetUs) || c.switchBudgetUs <= 0) throw new InputError('E_BAD_CONFIG', `${path}.switchBudgetUs: expected a positive integer of microseconds, got ${JSON.stringify(c.switchBudgetUs)}`);
  if (!(c.stallRatio > 0 && c.stallRatio <= 1)) throw new InputError('E_BAD_CONFIG', `${path}.stallRatio: expected a number in (0, 1], got ${JSON.stringify(c.stallRatio)}`);
  if (!Number.isInteger(c.stallRounds) || c.stallRounds < 1) throw new InputError('E_BAD_CONFIG', `${path}.stallRounds: expected an integer >= 1, got ${JSON.stringify(c.stallRounds)}`);
  return c;
}

/** Time the final stop-and-copy would take at the measured link rate. */
export function predictedSwitchUs(round: MirrorRound): number {
  return round.linkRateBytesPerS > 0 ? Math.ceil((round.dirtyBytes / round.linkRateBytesPerS) * 1_000_000) : Infinity;
}

const ID = 'cutover';

export const cutoverMachine = setup({
  types: {
    context: {} as CutoverContext,
    input: {} as CutoverMachineInput,
    events: {} as FlowEvent,
    output: {} as CutoverOutput,
  },
  actors: {
    captureRunState: notProvided<CutoverData>('captureRunState'),
    replicateRunState: notProvided<CutoverData>('replicateRunState'),
    mirror: notProvided<CutoverData>('mirror'),
    pauseSource: notProvided<CutoverData>('pauseSource'),
    finalCopy: notProvided<CutoverData>('finalCopy'),
    activateTarget: notProvided<CutoverData>('activateTarget'),
    retireSource: notProvided<CutoverData>('retireSource'),
    rollback: notProvided<CutoverData>('rollback'),
  },
  guards: {
    ...flowGuards,
    converged: ({ context }) => context.data.round !== undefined && predictedSwitchUs(context.data.round) <= context.input.switchBudgetUs,
    notConverging: ({ context }) =>
      (context.data.rounds ?? 0) >= context.input.maxRounds || (context.data.stalls ?? 0) >= context.input.stallRounds,
  },
  actions: {
    ...flowActions,
    noteNotConverging: assign(({ context }) => {
      const r = context.data.round;
      const failure = {
        step: 'mirror', code: NOT_CONVERGING, retryable: false, attempt: context.attempt,
        message: `run state did not converge after ${context.data.rounds} rounds: ${r?.dirtyBytes} dirty bytes need ${context.data.predictedSwitchUs}us at ${Math.round(r?.linkRateBytesPerS ?? 0)} B/s (dirty rate ${Math.round(r?.dirtyRateBytesPerS ?? 0)} B/s), budget ${context.input.switchBudgetUs}us`,
      };
      return { failure, errors: [...context.errors, failure].slice(-32), timer: null };
    }),
    assessRound: assign(({ context }) => {
      const round = context.data.round;
      if (!round) return {};
      const stalled = round.dirtyRateBytesPerS >= context.input.stallRatio * round.linkRateBytesPerS;
      return {
        data: {
          ...context.data,
          rounds: (context.data.rounds ?? 0) + 1,
          stalls: stalled ? (context.data.stalls ?? 0) + 1 : 0,
          predictedSwitchUs: predictedSwitchUs(round),
          history: [...(context.data.history ?? []), round].slice(-HISTORY_KEPT),
        },
      };
    }),
  },
  delays: flowDelays,
}).createMachine({
  id: ID,
  context: ({ input }) => initialFlowContext<CutoverInput, CutoverData>(input.id, checkCutoverInput(input.cutover), input.config, {}, 'captureRunState'),
  initial: 'captureRunState',
  on: rollbackOnRequest,
  states: {
    captureRunState: step(ID, 'captureRunState', 'replicateRunState'),
    replicateRunState: step(ID, 'replicateRunState', 'mirror'),
    mirror: step(ID, 'mirror', 'evaluate'),
    evaluate: {
      entry: 'assessRound',
      always: [
        { guard: 'converged', target: 'switchover' },
        {
          guard: 'notConverging',
          target: 'rollingBack',
          actions: 'noteNotConverging',
        },
        { target: 'mirror' },
      ],
    },
    switchover: {
      initial: 'pauseSource',
      states: {
        pauseSource: step(ID, 'switchover.pauseSource', 'switchover.finalCopy'),
        finalCopy: step(ID, 'switchover.finalCopy', 'switchover.activateTarget'),
        activateTarget: step(ID, 'switchover.activateTarget', 'switchover.retireSource'),
        retireSource: step(ID, 'switchover.retireSource', 'cutOver'),
      },
    },
    ...rollbackStates(ID, 'cutOver'),
  },
  output: flowOutput,
});

export type CutoverMachine = typeof cutoverMachine;
