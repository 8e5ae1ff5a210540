import { setup } from 'xstate';
import type { GuestAnalysis } from './adapt.js';
import type { ContainerManifest, RunStats } from '../ports/container-platform.js';
import type { DiskExport } from '../ports/proxy-control.js';
import { containerizeActors, containerizeStates } from './containerize.js';
import {
  flowActions, flowDelays, flowGuards, flowOutput, initialFlowContext, rollbackOnRequest, rollbackStates, step,
  type FlowConfig, type FlowContext, type FlowEvent, type FlowOutput,
} from './flow.js';
import { notProvided } from './not-provided.js';

/**
 * Remote transfer onto a container framework.
 *
 * FIG 26 (a VM, containerized on the way):
 *   deactivate (2603) → snapshot (2605) → mount (2607) → collectStats
 *   → containerize.* (2609, the FIG 25 steps) → prioritizeBlocks (2619)
 *   → chooseServer (2621) → provision (2623) → loadImage (2625) → running (2627)
 *
 * FIG 27 (a container, same framework type on both sides):
 *   checkpoint (2702-2703) → mount (2707) → analyse (2709) → remapMounts
 *   (2713) → rewriteNetwork (2715) → prioritizeBlocks (2719) → chooseServer
 *   (2721) → provision (2723) → loadImage (2725) → running (2727)
 *
 * chooseServer places the container on the framework with the largest ratio
 * of idle to busy containers among those with room (§7.4); provision creates
 * a framework only when none has room.
 */

export interface ContainerTransferInput {
  kind: 'vm' | 'container';
  /** The VM (FIG 26) … */
  vmId?: string;
  /** … or the container (FIG 27) to move. */
  containerId?: string;
  /** Disks behind the container's storage (FIG 27: the framework host's storage). */
  diskIds?: string[];
  site: 'local' | 'remote';
}

export type ContainerTransferData = {
  wasRunning?: boolean;
  originHostId?: string | null;
  snapshotId?: string;
  exports?: DiskExport[];
  stats?: RunStats;
  analysis?: GuestAnalysis;
  template?: string;
  manifest?: ContainerManifest;
  userDataSources?: string[];
  imageId?: string;
  checkpointed?: boolean;
  prioritizedBytes?: number;
  frameworkId?: string;
  frameworkProvisioned?: boolean;
  containerId?: string;
};

export type ContainerTransferContext = FlowContext<ContainerTransferInput, ContainerTransferData>;
export type ContainerTransferOutput = FlowOutput<ContainerTransferData>;
export interface ContainerTransferMachineInput { id: string; transfer: ContainerTransferInput; config: FlowConfig }

const ID = 'containerTransfer';

export const containerTransferMachine = setup({
  types: {
    context: {} as ContainerTransferContext,
    input: {} as ContainerTransferMachineInput,
    events: {} as FlowEvent,
    output: {} as ContainerTransferOutput,
  },
  actors: {
    deactivate: notProvided<ContainerTransferData>('deactivate'),
    snapshot: notProvided<ContainerTransferData>('snapshot'),
    checkpoint: notProvided<ContainerTransferData>('checkpoint'),
    mount: notProvided<ContainerTransferData>('mount'),
    collectStats: notProvided<ContainerTransferData>('collectStats'),
    ...containerizeActors,
    analyse: notProvided<ContainerTransferData>('analyse'),
    remapMounts: notProvided<ContainerTransferData>('remapMounts'),
    rewriteNetwork: notProvided<ContainerTransferData>('rewriteNetwork'),
    prioritizeBlocks: notProvided<ContainerTransferData>('prioritizeBlocks'),
    chooseServer: notProvided<ContainerTransferData>('chooseServer'),
    provision: notProvided<ContainerTransferData>('provision'),
    loadImage: notProvided<ContainerTransferData>('loadImage'),
    rollback: notProvided<ContainerTransferData>('rollback'),
  },
  guards: {
    ...flowGuards,
    isVm: ({ context }) => context.input.kind === 'vm',
  },
  actions: flowActions,
  delays: flowDelays,
}).createMachine({
  id: ID,
  context: ({ input }) => initialFlowContext<ContainerTransferInput, ContainerTransferData>(input.id, input.transfer, input.config, {}, 'deactivate'),
  initial: 'start',
  on: rollbackOnRequest,
  states: {
    start: { always: [{ guard: 'isVm', target: 'deactivate' }, { target: 'checkpoint' }] },
    deactivate: step(ID, 'deactivate', 'snapshot'),
    snapshot: step(ID, 'snapshot', 'mount'),
    checkpoint: step(ID, 'checkpoint', 'mount'),
    mount: step(ID, 'mount', 'analyse', { branches: [{ guard: 'isVm', target: 'collectStats' }] }),
    collectStats: step(ID, 'collectStats', 'containerize'),
    containerize: containerizeStates(ID, 'prioritizeBlocks'),
    analyse: step(ID, 'analyse', 'remapMounts'),
    remapMounts: step(ID, 'remapMounts', 'rewriteNetwork'),
    rewriteNetwork: step(ID, 'rewriteNetwork', 'prioritizeBlocks'),
    prioritizeBlocks: step(ID, 'prioritizeBlocks', 'chooseServer'),
    chooseServer: step(ID, 'chooseServer', 'provision'),
    provision: step(ID, 'provision', 'loadImage'),
    loadImage: step(ID, 'loadImage', 'running'),
    ...rollbackStates(ID, 'running'),
  },
  output: flowOutput,
});

export type ContainerTransferMachine = typeof containerTransferMachine;
