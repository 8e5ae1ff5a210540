import { setup } from 'xstate';
import type { DiskExport } from '../ports/proxy-control.js';
import {
  flowActions, flowDelays, flowGuards, flowOutput, initialFlowContext, rollbackOnRequest, rollbackStates, step,
  type FlowConfig, type FlowContext, type FlowEvent, type FlowOutput,
} from './flow.js';
import { notProvided } from './not-provided.js';

/**
 * Retiring the on-prem copy of a migrated VM (after FIG 17/18: the VM runs
 * from its cloud volumes, the proxies have left the data path):
 *
 *   releaseDisks (the transfer's leases, through the on-prem proxy)
 *   → deleteSnapshot (the transfer's pre-move snapshot, when it took one)
 *   → verify (the VM is deactivated and off, no disk of it is leased) → retired
 *
 * Rollback takes the leases back, so the on-prem copy stays protected until
 * a later retirement; a deleted snapshot cannot come back, so `deleteSnapshot`
 * is the last step that changes anything.
 */

export interface RetireInput {
  vmId: string;
  /** The disks the transfer mounted, and the owner of their leases (the transfer's actor id). */
  exports: DiskExport[];
  leaseOwner: string;
  snapshotId: string | null;
}

export type RetireData = {
  disksReleased?: boolean;
  snapshotDeleted?: boolean;
  retired?: boolean;
};

export type RetireContext = FlowContext<RetireInput, RetireData>;
export type RetireOutput = FlowOutput<RetireData>;
export interface RetireMachineInput { id: string; retire: RetireInput; config: FlowConfig }

export const RETIRE_STEPS = ['releaseDisks', 'deleteSnapshot', 'verify'] as const;

const ID = 'retire';

export const retireMachine = setup({
  types: {
    context: {} as RetireContext,
    input: {} as RetireMachineInput,
    events: {} as FlowEvent,
    output: {} as RetireOutput,
  },
  actors: {
    releaseDisks: notProvided<RetireData>('releaseDisks'),
    deleteSnapshot: notProvided<RetireData>('deleteSnapshot'),
    verify: notProvided<RetireData>('verify'),
    rollback: notProvided<RetireData>('rollback'),
  },
  guards: {
    ...flowGuards,
    hasSnapshot: ({ context }) => context.input.snapshotId !== null,
  },
  actions: flowActions,
  delays: flowDelays,
}).createMachine({
  id: ID,
  context: ({ input }) => initialFlowContext<RetireInput, RetireData>(input.id, input.retire, input.config, {}, 'releaseDisks'),
  initial: 'releaseDisks',
  on: rollbackOnRequest,
  states: {
    releaseDisks: step(ID, 'releaseDisks', 'verify', { branches: [{ guard: 'hasSnapshot', target: 'deleteSnapshot' }] }),
    deleteSnapshot: step(ID, 'deleteSnapshot', 'verify'),
    verify: step(ID, 'verify', 'retired'),
    ...rollbackStates(ID, 'retired'),
  },
  output: flowOutput,
});

export type RetireMachine = typeof retireMachine;
