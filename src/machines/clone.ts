import { setup } from 'xstate';
import type { GuestConfig } from '../ports/hypervisor.js';
import type { GuestAnalysis } from './adapt.js';
import type { DiskExport, PersistencePolicy } from '../ports/proxy-control.js';
import {
  flowActions, flowDelays, flowGuards, flowOutput, initialFlowContext, rollbackOnRequest, rollbackStates, step,
  type FlowConfig, type FlowContext, type FlowEvent, type FlowOutput,
} from './flow.js';
import { notProvided } from './not-provided.js';

/**
 * Cloning, FIG 12 (the source keeps running):
 *
 *   snapshot (1205) → cloneVolumes (1207) → adapt.analyse (1209)
 *   → adapt.disableDevices (1211) → adapt.regenerateIdentity (1211: unique
 *   machine name and id) → adapt.installDrivers (1212) → adapt.remapMounts
 *   (1213) → adapt.rewriteNetwork (1215) → adapt.enableMonitoring (1217)
 *   → adapt.prioritizeBlocks (1219) → adapt.chooseServer (1221) → provision
 *   (1223) → startCacheFill → loadStagingImage (1225) → stageBoot (1227)
 *   → targetBoot (1229, reading from sibling clones per FIG 14 when enabled)
 *   → joinDomain (1211: the new identity re-joins) → running
 *
 * The adaptations edit the clone's own copy of the guest config, never the
 * running source's; the copy is handed to the booting clone as provisioning
 * data.
 */

export interface CloneInput {
  sourceVmId: string;
  /** 1-based; names the clone ("<source>-c<index>") and keeps its id unique. */
  cloneIndex: number;
  stagingImageId: string;
  zone?: string;
  /** Where the clone's writes persist. */
  persistence: PersistencePolicy;
  /** FIG 14: let the cloud proxy read blocks from sibling clones before going on-prem. */
  siblingReads: boolean;
  /** Targets of sibling clones (used only when siblingReads is on). */
  siblingSources: string[];
  /** Reuse an existing source snapshot (a scale-out takes one snapshot for all clones). */
  snapshotId?: string;
  instanceTypes?: string[];
  iops?: number;
}

export type CloneData = {
  snapshotId?: string;
  snapshotOwned?: boolean;
  exports?: DiskExport[];
  guest?: GuestConfig;
  analysis?: GuestAnalysis;
  identity?: { machineName: string; machineId: string };
  prioritizedBytes?: number;
  serverType?: string;
  instanceId?: string;
  targetAddress?: string;
  prefetchQueuedBytes?: number;
  stagingBootBytes?: number;
  targetBootBytes?: number;
  domainJoined?: boolean;
};

export type CloneContext = FlowContext<CloneInput, CloneData>;
export type CloneOutput = FlowOutput<CloneData>;
export interface CloneMachineInput { id: string; clone: CloneInput; config: FlowConfig }

export const CLONE_STEPS = [
  'snapshot', 'cloneVolumes', 'adapt.analyse', 'adapt.disableDevices', 'adapt.regenerateIdentity', 'adapt.installDrivers',
  'adapt.remapMounts', 'adapt.rewriteNetwork', 'adapt.enableMonitoring', 'adapt.prioritizeBlocks', 'adapt.chooseServer',
  'provision', 'startCacheFill', 'loadStagingImage', 'stageBoot', 'targetBoot', 'joinDomain',
] as const;

const ID = 'clone';

export const cloneMachine = setup({
  types: {
    context: {} as CloneContext,
    input: {} as CloneMachineInput,
    events: {} as FlowEvent,
    output: {} as CloneOutput,
  },
  actors: {
    snapshot: notProvided<CloneData>('snapshot'),
    cloneVolumes: notProvided<CloneData>('cloneVolumes'),
    analyse: notProvided<CloneData>('analyse'),
    disableDevices: notProvided<CloneData>('disableDevices'),
    regenerateIdentity: notProvided<CloneData>('regenerateIdentity'),
    installDrivers: notProvided<CloneData>('installDrivers'),
    remapMounts: notProvided<CloneData>('remapMounts'),
    rewriteNetwork: notProvided<CloneData>('rewriteNetwork'),
    enableMonitoring: notProvided<CloneData>('enableMonitoring'),
    prioritizeBlocks: notProvided<CloneData>('prioritizeBlocks'),
    chooseServer: notProvided<CloneData>('chooseServer'),
    provision: notProvided<CloneData>('provision'),
    startCacheFill: notProvided<CloneData>('startCacheFill'),
    loadStagingImage: notProvided<CloneData>('loadStagingImage'),
    stageBoot: notProvided<CloneData>('stageBoot'),
    targetBoot: notProvided<CloneData>('targetBoot'),
    joinDomain: notProvided<CloneData>('joinDomain'),
    rollback: notProvided<CloneData>('rollback'),
  },
  guards: flowGuards,
  actions: flowActions,
  delays: flowDelays,
}).createMachine({
  id: ID,
  context: ({ input }) => initialFlowContext<CloneInput, CloneData>(input.id, input.clone, input.config, {}, 'snapshot'),
  initial: 'snapshot',
  on: rollbackOnRequest,
  states: {
    snapshot: step(ID, 'snapshot', 'cloneVolumes'),
    cloneVolumes: step(ID, 'cloneVolumes', 'adapt'),
    adapt: {
      initial: 'analyse',
      states: {
        analyse: step(ID, 'adapt.analyse', 'adapt.disableDevices'),
        disableDevices: step(ID, 'adapt.disableDevices', 'adapt.regenerateIdentity'),
        regenerateIdentity: step(ID, 'adapt.regenerateIdentity', 'adapt.installDrivers'),
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
    targetBoot: step(ID, 'targetBoot', 'joinDomain'),
    joinDomain: step(ID, 'joinDomain', 'running'),
    ...rollbackStates(ID, 'running'),
  },
  output: flowOutput,
});

export type CloneMachine = typeof cloneMachine;
