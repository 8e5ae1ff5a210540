import { setup } from 'xstate';
import type { PersistencePolicy, DiskExport } from '../ports/proxy-control.js';
import type { GuestAnalysis } from './adapt.js';
import type { GuestConfig, MemoryImage } from '../ports/hypervisor.js';
import {
  flowActions, flowDelays, flowGuards, flowOutput, initialFlowContext, rollbackOnRequest, rollbackStates, step,
  type FlowConfig, type FlowContext, type FlowEvent, type FlowOutput,
} from './flow.js';
import { notProvided } from './not-provided.js';

/**
 * Instance transfer, FIG 7: every step is a state, in the patent's order.
 *
 *   captureState (stateful / run-time only) → deactivate (703) → snapshot (705)
 *   → mount (707) → classify (707, persistence) → adapt.analyse (709)
 *   → adapt.disableDevices (711) → adapt.installDrivers (712)
 *   → adapt.remapMounts (713) → adapt.rewriteNetwork (715)
 *   → adapt.enableMonitoring (717) → adapt.prioritizeBlocks (719)
 *   → adapt.chooseServer (721) → provision (723) → startCacheFill (731)
 *   → loadStagingImage (725) → stageBoot (727) → targetBoot (729)
 *   → restoreState (stateful / run-time only, §3.2) → running
 *
 * Directions O2C, C2O, C2C and O2O share the flow (§3.1: "local" and
 * "remote" proxies swap roles); the actors read `direction` to act on the
 * right side.
 */

export type TransferKind = 'stateless' | 'stateful' | 'run-time';
export type TransferDirection = 'O2C' | 'C2O' | 'C2C' | 'O2O';

export interface TransferInput {
  vmId: string;
  kind: TransferKind;
  direction: TransferDirection;
  /** Staging image (FIG 8) for a cloud target. */
  stagingImageId?: string;
  /** Target host for C2O / O2O. */
  targetHostId?: string;
  /** For C2O / C2C: the cloud instance the VM runs on now. */
  sourceInstanceId?: string;
  zone?: string;
  /** Per-disk persistence overrides; unlisted disks are classified from their mounts. */
  persistence?: Record<string, PersistencePolicy>;
  /** Instance types the best-fit may pick from (all offered when absent). */
  instanceTypes?: string[];
  /** IOPS the workload needs (step 721). */
  iops?: number;
  /** Host to return to on rollback when the origin host was not recorded (a restart during deactivate). */
  homeHostId?: string;
  /** Clones of the same image whose targets the read path may use (FIG 14); empty: none. */
  siblingSources?: string[];
}

export type TransferData = {
  /** Host the VM ran on before it was deactivated (for rollback). */
  originHostId?: string | null;
  wasRunning?: boolean;
  memoryImage?: MemoryImage;
  snapshotId?: string;
  /** The guest config at snapshot time: what rollback and reverse restore. */
  originalGuest?: GuestConfig;
  exports?: DiskExport[];
  persistence?: Record<string, PersistencePolicy>;
  analysis?: GuestAnalysis;
  adaptations?: string[];
  prioritizedBytes?: number;
  serverType?: string;
  /** O2O / C2O: the on-prem host chosen to run the VM. */
  targetHostId?: string;
  instanceId?: string;
  targetAddress?: string;
  prefetchQueuedBytes?: number;
  stagingBootBytes?: number;
  targetBootBytes?: number;
  stateRestored?: boolean;
};

export type TransferContext = FlowContext<TransferInput, TransferData>;
export type TransferOutput = FlowOutput<TransferData>;

export interface TransferMachineInput {
  id: string;
  transfer: TransferInput;
  config: FlowConfig;
}

export const TRANSFER_STEPS = [
  'captureState', 'deactivate', 'snapshot', 'mount', 'classify',
  'adapt.analyse', 'adapt.disableDevices', 'adapt.installDrivers', 'adapt.remapMounts', 'adapt.rewriteNetwork',
  'adapt.enableMonitoring', 'adapt.prioritizeBlocks', 'adapt.chooseServer',
  'provision', 'startCacheFill', 'loadStagingImage', 'stageBoot', 'targetBoot', 'restoreState',
] as const;

const ID = 'transfer';

export const transferMachine = setup({
  types: {
    context: {} as TransferContext,
    input: {} as TransferMachineInput,
    events: {} as FlowEvent,
    output: {} as TransferOutput,
  },
  actors: {
    captureState: notProvided<TransferData>('captureState'),
    deactivate: notProvided<TransferData>('deactivate'),
    snapshot: notProvided<TransferData>('snapshot'),
    mount: notProvided<TransferData>('mount'),
    classify: notProvided<TransferData>('classify'),
    analyse: notProvided<TransferData>('analyse'),
    disableDevices: notProvided<TransferData>('disableDevices'),
    installDrivers: notProvided<TransferData>('installDrivers'),
    remapMounts: notProvided<TransferData>('remapMounts'),
    rewriteNetwork: notProvided<TransferData>('rewriteNetwork'),
    enableMonitoring: notProvided<TransferData>('enableMonitoring'),
    prioritizeBlocks: notProvided<TransferData>('prioritizeBlocks'),
    chooseServer: notProvided<TransferData>('chooseServer'),
    provision: notProvided<TransferData>('provision'),
    startCacheFill: notProvided<TransferData>('startCacheFill'),
    loadStagingImage: notProvided<TransferData>('loadStagingImage'),
    stageBoot: notProvided<TransferData>('stageBoot'),
    targetBoot: notProvided<TransferData>('targetBoot'),
    restoreState: notProvided<TransferData>('restoreState'),
    rollback: notProvided<TransferData>('rollback'),
  },
  guards: {
    ...flowGuards,
    keepsState: ({ context }) => context.input.kind !== 'stateless',
  },
  actions: flowActions,
  delays: flowDelays,
}).createMachine({
  id: ID,
  context: ({ input }) => initialFlowContext<TransferInput, TransferData>(input.id, input.transfer, input.config, {}, 'deactivate'),
  initial: 'start',
  on: rollbackOnRequest,
  states: {
    start: {
      always: [{ guard: 'keepsState', target: 'captureState' }, { target: 'deactivate' }],
    },
    captureState: step(ID, 'captureState', 'deactivate'),
    deactivate: step(ID, 'deactivate', 'snapshot'),
    snapshot: step(ID, 'snapshot', 'mount'),
    mount: step(ID, 'mount', 'classify'),
    classify: step(ID, 'classify', 'adapt'),
    adapt: {
      initial: 'analyse',
      states: {
        analyse: step(ID, 'adapt.analyse', 'adapt.disableDevices'),
        disableDevices: step(ID, 'adapt.disableDevices', 'adapt.installDrivers'),
        installDrivers: step(ID, 'adapt.installDrivers', 'adapt.remapMounts'),
        remapMounts: step(ID, 'adapt.remapMounts', 'adapt.rewriteNetwork'),
        rewriteNetwork: step(ID, 'adapt.rewriteNetwork', 'adapt.enableMonitoring'),
        enableMonitoring: step(ID, 'adapt.enableMonitoring', 'adapt.prioritizeBlocks'),
        prioritizeBlocks: step(ID, 'adapt.prioritizeBlocks', 'adapt.chooseServer'),
        chooseServer: step(ID, 'adapt.chooseServer', 'provision'),
      },
    },
    provision: step(ID, 'provision', 'startCacheFill'),
    startCacheFill: step(ID, 'startCacheFill', 'loadStagingImage'),
    loadStagingImage: step(ID, 'loadStagingImage', 'stageBoot'),
    stageBoot: step(ID, 'stageBoot', 'targetBoot'),
    targetBoot: step(ID, 'targetBoot', 'running', { branches: [{ guard: 'keepsState', target: 'restoreState' }] }),
    restoreState: step(ID, 'restoreState', 'running'),
    ...rollbackStates(ID, 'running'),
  },
  output: flowOutput,
});

export type TransferMachine = typeof transferMachine;
