import { setup } from 'xstate';
import type { GuestConfig } from '../ports/hypervisor.js';
import type { DiskExport, PersistencePolicy } from '../ports/proxy-control.js';
import {
  flowActions, flowDelays, flowGuards, flowOutput, initialFlowContext, rollbackOnRequest, rollbackStates, step,
  type FlowConfig, type FlowContext, type FlowEvent, type FlowOutput,
} from './flow.js';
import { notProvided } from './not-provided.js';

/**
 * Reverse an instance transfer, FIG 16:
 *
 *   deactivateRemote (1607) → flushWrites (1609) → snapshotLocal (1613, when
 *   any disk persists on-prem) → restoreConfig (1615: original config, devices
 *   re-enabled, from the pre-move snapshot) → recreateCloudOnlyDisks (1619,
 *   when any disk was cloud-only) → remount (1615/1623) → reactivate (1621)
 *   → releaseRemote (the cloud instance goes away) → restored
 */

export interface ReverseInput {
  vmId: string;
  /** The pre-move snapshot the transfer took (FIG 7 step 705). */
  preMoveSnapshotId: string;
  /** That snapshot's guest config: what restoreConfig puts back. */
  originalGuest: GuestConfig;
  /** Where the VM runs now (a cloud instance for O2C). */
  instanceId?: string;
  targetHostId: string;
  exports: DiskExport[];
  persistence: Record<string, PersistencePolicy>;
  /** The lease owner the transfer mounted the disks with. */
  leaseOwner: string;
  /** Whether to power the VM on after reactivation. */
  powerOn: boolean;
}

export type ReverseData = {
  remoteStopped?: boolean;
  /** The adapted config the VM ran with remotely (rollback re-applies it). */
  remoteGuest?: GuestConfig;
  flushedBytes?: number;
  localSnapshotId?: string;
  configRestored?: boolean;
  recreatedDisks?: string[];
  remounted?: boolean;
  reactivated?: boolean;
  remoteReleased?: boolean;
};

export type ReverseContext = FlowContext<ReverseInput, ReverseData>;
export type ReverseOutput = FlowOutput<ReverseData>;
export interface ReverseMachineInput { id: string; reverse: ReverseInput; config: FlowConfig }

export const REVERSE_STEPS = [
  'deactivateRemote', 'flushWrites', 'snapshotLocal', 'restoreConfig', 'recreateCloudOnlyDisks',
  'remount', 'reactivate', 'releaseRemote',
] as const;

const ID = 'reverse';
const hasPolicy = (context: ReverseContext, policy: PersistencePolicy): boolean =>
  Object.values(context.input.persistence).includes(policy);

export const reverseMachine = setup({
  types: {
    context: {} as ReverseContext,
    input: {} as ReverseMachineInput,
    events: {} as FlowEvent,
    output: {} as ReverseOutput,
  },
  actors: {
    deactivateRemote: notProvided<ReverseData>('deactivateRemote'),
    flushWrites: notProvided<ReverseData>('flushWrites'),
    snapshotLocal: notProvided<ReverseData>('snapshotLocal'),
    restoreConfig: notProvided<ReverseData>('restoreConfig'),
    recreateCloudOnlyDisks: notProvided<ReverseData>('recreateCloudOnlyDisks'),
    remount: notProvided<ReverseData>('remount'),
    reactivate: notProvided<ReverseData>('reactivate'),
    releaseRemote: notProvided<ReverseData>('releaseRemote'),
    rollback: notProvided<ReverseData>('rollback'),
  },
  guards: {
    ...flowGuards,
    hasOnpremDisks: ({ context }) => hasPolicy(context, 'on-prem'),
    hasCloudOnlyDisks: ({ context }) => hasPolicy(context, 'cloud-only'),
  },
  actions: flowActions,
  delays: flowDelays,
}).createMachine({
  id: ID,
  context: ({ input }) => initialFlowContext<ReverseInput, ReverseData>(input.id, input.reverse, input.config, {}, 'deactivateRemote'),
  initial: 'deactivateRemote',
  on: rollbackOnRequest,
  states: {
    deactivateRemote: step(ID, 'deactivateRemote', 'flushWrites'),
    flushWrites: step(ID, 'flushWrites', 'restoreConfig', { branches: [{ guard: 'hasOnpremDisks', target: 'snapshotLocal' }] }),
    snapshotLocal: step(ID, 'snapshotLocal', 'restoreConfig'),
    restoreConfig: step(ID, 'restoreConfig', 'remount', { branches: [{ guard: 'hasCloudOnlyDisks', target: 'recreateCloudOnlyDisks' }] }),
    recreateCloudOnlyDisks: step(ID, 'recreateCloudOnlyDisks', 'remount'),
    remount: step(ID, 'remount', 'reactivate'),
    reactivate: step(ID, 'reactivate', 'releaseRemote'),
    releaseRemote: step(ID, 'releaseRemote', 'restored'),
    ...rollbackStates(ID, 'restored'),
  },
  output: flowOutput,
});

export type ReverseMachine = typeof reverseMachine;
