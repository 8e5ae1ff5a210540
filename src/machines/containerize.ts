import { setup } from 'xstate';
import type { GuestAnalysis } from './adapt.js';
import type { ContainerManifest, RunStats } from '../ports/container-platform.js';
import {
  flowActions, flowDelays, flowGuards, flowOutput, initialFlowContext, rollbackOnRequest, rollbackStates, step,
  type FlowConfig, type FlowContext, type FlowEvent, type FlowOutput, type Loose,
} from './flow.js';
import { notProvided } from './not-provided.js';

/**
 * Containerization of a VM, FIG 25:
 *
 *   collectStats (2503) → quiesce (2505: deactivate, or snapshot while it runs)
 *   → containerize.analyseImage (2507) → containerize.selectTemplate (2509)
 *   → containerize.generateConfig (2511) → containerize.containerizeUserData
 *   (2513) → containerize.buildImage → imaged
 *
 * The `containerize.*` steps are shared with the remote VM transfer (FIG 26
 * step 2609) through `containerizeStates`.
 */

export interface ContainerizeInput {
  vmId: string;
  /** 'deactivate' shuts the VM down first; 'snapshot' images it while it keeps running (§7.3). */
  mode: 'deactivate' | 'snapshot';
}

export type ContainerizeData = {
  stats?: RunStats;
  snapshotId?: string;
  wasRunning?: boolean;
  originHostId?: string | null;
  analysis?: GuestAnalysis;
  template?: string;
  manifest?: ContainerManifest;
  userDataSources?: string[];
  imageId?: string;
};

export type ContainerizeContext = FlowContext<ContainerizeInput, ContainerizeData>;
export type ContainerizeOutput = FlowOutput<ContainerizeData>;
export interface ContainerizeMachineInput { id: string; containerize: ContainerizeInput; config: FlowConfig }

export const CONTAINERIZE_STEPS = ['analyseImage', 'selectTemplate', 'generateConfig', 'containerizeUserData', 'buildImage'] as const;

/** The FIG 25 image-building steps as a compound state `containerize`, continuing at `next`. */
export function containerizeStates(machineId: string, next: string): Loose {
  const states: Record<string, Loose> = {};
  CONTAINERIZE_STEPS.forEach((name, i) => {
    const following = CONTAINERIZE_STEPS[i + 1];
    states[name] = step(machineId, `containerize.${name}`, following ? `containerize.${following}` : next);
  });
  return { initial: CONTAINERIZE_STEPS[0], states };
}

export const containerizeActors = {
  analyseImage: notProvided<ContainerizeData>('analyseImage'),
  selectTemplate: notProvided<ContainerizeData>('selectTemplate'),
  generateConfig: notProvided<ContainerizeData>('generateConfig'),
  containerizeUserData: notProvided<ContainerizeData>('containerizeUserData'),
  buildImage: notProvided<ContainerizeData>('buildImage'),
};

const ID = 'containerize';

export const containerizeMachine = setup({
  types: {
    context: {} as ContainerizeContext,
    input: {} as ContainerizeMachineInput,
    events: {} as FlowEvent,
    output: {} as ContainerizeOutput,
  },
  actors: {
    collectStats: notProvided<ContainerizeData>('collectStats'),
    quiesce: notProvided<ContainerizeData>('quiesce'),
    ...containerizeActors,
    rollback: notProvided<ContainerizeData>('rollback'),
  },
  guards: flowGuards,
  actions: flowActions,
  delays: flowDelays,
}).createMachine({
  id: ID,
  context: ({ input }) => initialFlowContext<ContainerizeInput, ContainerizeData>(input.id, input.containerize, input.config, {}, 'collectStats'),
  initial: 'collectStats',
  on: rollbackOnRequest,
  states: {
    collectStats: step(ID, 'collectStats', 'quiesce'),
    quiesce: step(ID, 'quiesce', 'containerize'),
    containerize: containerizeStates(ID, 'imaged'),
    ...rollbackStates(ID, 'imaged'),
  },
  output: flowOutput,
});

export type ContainerizeMachine = typeof containerizeMachine;
