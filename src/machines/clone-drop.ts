import { setup } from 'xstate';
import type { DiskExport, PersistencePolicy } from '../ports/proxy-control.js';
import {
  flowActions, flowDelays, flowGuards, flowOutput, initialFlowContext, rollbackOnRequest, rollbackStates, step,
  type FlowConfig, type FlowContext, type FlowEvent, type FlowOutput,
} from './flow.js';
import { notProvided } from './not-provided.js';

/**
 * Tearing down a clone (the end of FIG 12's scale-out), every side effect a
 * step with a timeout and retries:
 *
 *   flushWrites (only when the clone's writes persist on-prem) → closeTarget
 *   → terminate (the instance is shutting down or gone) → dropDisks (the
 *   clone's copy-on-write exports) → leaveDomain (its machine account, when
 *   it joined one) → dropped
 *
 * Rollback puts the clone back to serving while that is still possible: the
 * target is opened again on the same exports and instance. Once the instance
 * is terminated there is nothing to go back to, so a drop that fails after
 * `terminate` ends `failed`, naming what was left behind.
 */

export interface CloneDropInput {
  /** The clone's VM id ("<source>-c<index>"), its storage target's name. */
  cloneVmId: string;
  /** The clone machine's actor id: the proxy's clone id. */
  cloneId: string;
  instanceId: string | null;
  persistence: PersistencePolicy;
  /** The clone's exports and sibling sources, to reopen its target on rollback. */
  exports: DiskExport[];
  siblingSources: string[];
  /** The regenerated identity and the domain it joined; null when it joined none. */
  identity: { machineName: string; machineId: string } | null;
  domain: string | null;
}

export type CloneDropData = {
  flushedBytes?: number;
  targetClosed?: boolean;
  terminated?: boolean;
  disksDropped?: boolean;
  domainLeft?: boolean;
};

export type CloneDropContext = FlowContext<CloneDropInput, CloneDropData>;
export type CloneDropOutput = FlowOutput<CloneDropData>;
export interface CloneDropMachineInput { id: string; drop: CloneDropInput; config: FlowConfig }

export const CLONE_DROP_STEPS = ['flushWrites', 'closeTarget', 'terminate', 'dropDisks', 'leaveDomain'] as const;

const ID = 'cloneDrop';

export const cloneDropMachine = setup({
  types: {
    context: {} as CloneDropContext,
    input: {} as CloneDropMachineInput,
    events: {} as FlowEvent,
    output: {} as CloneDropOutput,
  },
  actors: {
    flushWrites: notProvided<CloneDropData>('flushWrites'),
    closeTarget: notProvided<CloneDropData>('closeTarget'),
    terminate: notProvided<CloneDropData>('terminate'),
    dropDisks: notProvided<CloneDropData>('dropDisks'),
    leaveDomain: notProvided<CloneDropData>('leaveDomain'),
    rollback: notProvided<CloneDropData>('rollback'),
  },
  guards: {
    ...flowGuards,
    writesPersistOnprem: ({ context }) => context.input.persistence === 'on-prem',
    joinedDomain: ({ context }) => context.input.identity !== null && context.input.domain !== null,
  },
  actions: flowActions,
  delays: flowDelays,
}).createMachine({
  id: ID,
  context: ({ input }) => initialFlowContext<CloneDropInput, CloneDropData>(input.id, input.drop, input.config, {}, 'start'),
  initial: 'start',
  on: rollbackOnRequest,
  states: {
    start: { always: [{ guard: 'writesPersistOnprem', target: 'flushWrites' }, { target: 'closeTarget' }] },
    flushWrites: step(ID, 'flushWrites', 'closeTarget'),
    closeTarget: step(ID, 'closeTarget', 'terminate'),
    terminate: step(ID, 'terminate', 'dropDisks'),
    dropDisks: step(ID, 'dropDisks', 'dropped', { branches: [{ guard: 'joinedDomain', target: 'leaveDomain' }] }),
    leaveDomain: step(ID, 'leaveDomain', 'dropped'),
    ...rollbackStates(ID, 'dropped'),
  },
  output: flowOutput,
});

export type CloneDropMachine = typeof cloneDropMachine;
