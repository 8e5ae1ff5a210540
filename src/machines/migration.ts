import { assign, setup } from 'xstate';
import { InputError } from '../errors.js';
import type { MigrationProgress } from '../ports/proxy-control.js';
import {
  flowActions, flowDelays, flowGuards, flowOutput, initialFlowContext, rollbackOnRequest, rollbackStates, step,
  type FlowConfig, type FlowContext, type FlowEvent, type FlowOutput,
} from './flow.js';
import { notProvided } from './not-provided.js';

/**
 * Migration, FIG 17/18: a VM already running in the cloud through the
 * proxies gets its storage moved into cloud volumes for good.
 *
 *   compatibilityCheck (1703) → setupStorage (1705) → enterMigrationMode
 *   (1707: copy-on-read) → sync (1709) → syncWait → sync … (intervals shorten
 *   by `intervalFactor` down to `minIntervalUs`) → awaitWindow (1713) →
 *   cutover.stopInstance → cutover.attachVolumes → cutover.reboot (1715)
 *   → cutover.detachProxies → migrated
 *
 * PAUSE stops the background sync at any point (copy-on-read continues in
 * the proxy); RESUME picks it up from the proxy's persistent log. A pause
 * longer than its timeout resumes by itself. An unanswered maintenance-window
 * prompt times out back into syncing and prompts again.
 */

export interface MigrationInput {
  vmId: string;
  instanceId: string;
  zone: string;
  diskIds: string[];
  volumeType: string;
  /** Bytes per background sync round. */
  syncChunkBytes: number;
  initialIntervalUs: number;
  minIntervalUs: number;
  /** Each round's interval is the previous one times this (0 < f <= 1). */
  intervalFactor: number;
}

export type MigrationData = {
  compatible?: boolean;
  volumes?: Record<string, string>;
  progress?: MigrationProgress;
  /** Length of the next wait between sync rounds. */
  waitUs?: number;
  rounds?: number;
  pauses?: number;
  windowPrompts?: number;
  instanceStopped?: boolean;
  volumesAttached?: boolean;
  rebooted?: boolean;
  proxiesDetached?: boolean;
};

export type MigrationEvent = FlowEvent | { type: 'PAUSE' } | { type: 'RESUME' } | { type: 'MAINTENANCE_WINDOW' };
export type MigrationContext = FlowContext<MigrationInput, MigrationData>;
export type MigrationOutput = FlowOutput<MigrationData>;
export interface MigrationMachineInput { id: string; migration: MigrationInput; config: FlowConfig }

export function checkMigrationInput(m: MigrationInput, path = 'migration'): MigrationInput {
  if (!Number.isInteger(m.syncChunkBytes) || m.syncChunkBytes <= 0) throw new InputError('E_BAD_CONFIG', `${path}.syncChunkBytes: expected a positive integer of bytes, got ${JSON.stringify(m.syncChunkBytes)}`);
  if (!Number.isInteger(m.initialIntervalUs) || m.initialIntervalUs <= 0) throw new InputError('E_BAD_CONFIG', `${path}.initialIntervalUs: expected a positive integer of microseconds, got ${JSON.stringify(m.initialIntervalUs)}`);
  if (!Number.isInteger(m.minIntervalUs) || m.minIntervalUs <= 0 || m.minIntervalUs > m.initialIntervalUs) throw new InputError('E_BAD_CONFIG', `${path}.minIntervalUs: expected a positive integer no larger than initialIntervalUs, got ${JSON.stringify(m.minIntervalUs)}`);
  if (!(m.intervalFactor > 0 && m.intervalFactor <= 1)) throw new InputError('E_BAD_CONFIG', `${path}.intervalFactor: expected a number in (0, 1], got ${JSON.stringify(m.intervalFactor)}`);
  if (m.diskIds.length === 0) throw new InputError('E_BAD_CONFIG', `${path}.diskIds: expected at least one disk`);
  return m;
}

export const MIGRATION_STEPS = [
  'compatibilityCheck', 'setupStorage', 'enterMigrationMode', 'sync',
  'cutover.stopInstance', 'cutover.attachVolumes', 'cutover.reboot', 'cutover.detachProxies',
] as const;

const ID = 'migration';
const synced = (p: MigrationProgress | undefined): boolean => p !== undefined && p.syncedBytes >= p.totalBytes && p.dirtyBytes === 0;

export const migrationMachine = setup({
  types: {
    context: {} as MigrationContext,
    input: {} as MigrationMachineInput,
    events: {} as MigrationEvent,
    output: {} as MigrationOutput,
  },
  actors: {
    compatibilityCheck: notProvided<MigrationData>('compatibilityCheck'),
    setupStorage: notProvided<MigrationData>('setupStorage'),
    enterMigrationMode: notProvided<MigrationData>('enterMigrationMode'),
    sync: notProvided<MigrationData>('sync'),
    stopInstance: notProvided<MigrationData>('stopInstance'),
    attachVolumes: notProvided<MigrationData>('attachVolumes'),
    reboot: notProvided<MigrationData>('reboot'),
    detachProxies: notProvided<MigrationData>('detachProxies'),
    rollback: notProvided<MigrationData>('rollback'),
  },
  guards: {
    ...flowGuards,
    synced: ({ context }) => synced(context.data.progress),
  },
  actions: {
    ...flowActions,
    /** Shorten the interval each round (FIG 17 step 1709: "successively shorter intervals"). */
    planNextRound: assign(({ context }) => {
      const { initialIntervalUs, minIntervalUs, intervalFactor } = context.input;
      const prev = context.data.waitUs ?? initialIntervalUs / intervalFactor;
      const waitUs = Math.max(minIntervalUs, Math.round(prev * intervalFactor));
      return { data: { ...context.data, waitUs, rounds: (context.data.rounds ?? 0) + 1 } };
    }),
    countPause: assign(({ context }) => ({ data: { ...context.data, pauses: (context.data.pauses ?? 0) + 1 }, timer: null })),
    countPrompt: assign(({ context }) => ({ data: { ...context.data, windowPrompts: (context.data.windowPrompts ?? 0) + 1 } })),
  },
  delays: flowDelays,
}).createMachine({
  id: ID,
  context: ({ input }) => initialFlowContext<MigrationInput, MigrationData>(input.id, checkMigrationInput(input.migration), input.config, {}, 'compatibilityCheck'),
  initial: 'compatibilityCheck',
  on: rollbackOnRequest,
  states: {
    compatibilityCheck: step(ID, 'compatibilityCheck', 'setupStorage'),
    setupStorage: step(ID, 'setupStorage', 'enterMigrationMode'),
    enterMigrationMode: step(ID, 'enterMigrationMode', 'syncCheck'),
    sync: {
      ...step(ID, 'sync', 'syncCheck'),
      on: { PAUSE: { target: 'paused', actions: 'countPause' } },
    },
    syncCheck: {
      always: [{ guard: 'synced', target: 'awaitWindow' }, { target: 'syncWait', actions: 'planNextRound' }],
    },
    syncWait: {
      entry: 'armWait',
      after: { waitDelay: 'sync' },
      on: {
        'timer.fired': { guard: 'timerMatches', target: 'sync' },
        PAUSE: { target: 'paused', actions: 'countPause' },
      },
    },
    paused: {
      entry: [{ type: 'beginStep', params: { step: 'paused' } }, 'armTimeout'],
      after: { stepTimeout: 'sync' },
      on: {
        RESUME: { target: 'sync', actions: 'clearTimer' },
        'timer.fired': { guard: 'timerMatches', target: 'sync' },
      },
    },
    awaitWindow: {
      entry: [{ type: 'beginStep', params: { step: 'awaitWindow' } }, 'armTimeout', 'countPrompt'],
      after: { stepTimeout: { target: 'syncWait', actions: 'planNextRound' } },
      on: {
        MAINTENANCE_WINDOW: { target: 'cutover', actions: 'clearTimer' },
        'timer.fired': { guard: 'timerMatches', target: 'syncWait', actions: 'planNextRound' },
      },
    },
    cutover: {
      initial: 'stopInstance',
      states: {
        stopInstance: step(ID, 'cutover.stopInstance', 'cutover.attachVolumes'),
        attachVolumes: step(ID, 'cutover.attachVolumes', 'cutover.reboot'),
        reboot: step(ID, 'cutover.reboot', 'cutover.detachProxies'),
        detachProxies: step(ID, 'cutover.detachProxies', 'migrated'),
      },
    },
    ...rollbackStates(ID, 'migrated'),
  },
  output: flowOutput,
});

export type MigrationMachine = typeof migrationMachine;
