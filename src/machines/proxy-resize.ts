import { setup } from 'xstate';
import { InputError } from '../errors.js';
import {
  flowActions, flowDelays, flowGuards, flowOutput, initialFlowContext, rollbackOnRequest, rollbackStates, step,
  type FlowConfig, type FlowContext, type FlowEvent, type FlowOutput,
} from './flow.js';
import { notProvided } from './not-provided.js';

/**
 * Resizing an edge proxy, §4.4:
 *
 *   cache:    checkUsage → resizeCache                        (online, no restart)
 *   scaleUp:  drain → stopProxy → modifyType → startProxy → resumeProxy
 *   scaleOut: provisionPeers → awaitPeers → joinPeers
 *
 * Rollback puts back what was there: the old cache size, the old instance
 * type (restarted), or no extra peers.
 */

export type ResizeRequest =
  | { kind: 'cache'; capacityBytes: number }
  | { kind: 'scaleUp'; instanceType: string }
  | { kind: 'scaleOut'; count: number; instanceType: string; imageId: string; zone?: string };

export interface ResizeInput {
  proxyId: string;
  /** The cloud instance the proxy runs on. */
  instanceId: string;
  request: ResizeRequest;
}

export type ResizeData = {
  previousCapacityBytes?: number;
  usedBytes?: number;
  capacityBytes?: number;
  previousType?: string;
  drained?: boolean;
  stopped?: boolean;
  typeChanged?: boolean;
  started?: boolean;
  resumed?: boolean;
  peerIds?: string[];
  peersRunning?: boolean;
  peersJoined?: boolean;
};

export type ResizeContext = FlowContext<ResizeInput, ResizeData>;
export type ResizeOutput = FlowOutput<ResizeData>;
export interface ResizeMachineInput { id: string; resize: ResizeInput; config: FlowConfig }

export function checkResizeRequest(r: ResizeRequest, path = 'resize.request'): ResizeRequest {
  switch (r.kind) {
    case 'cache':
      if (!Number.isInteger(r.capacityBytes) || r.capacityBytes <= 0) throw new InputError('E_BAD_CONFIG', `${path}.capacityBytes: expected a positive integer of bytes, got ${JSON.stringify(r.capacityBytes)}`);
      return r;
    case 'scaleUp':
      if (!r.instanceType) throw new InputError('E_BAD_CONFIG', `${path}.instanceType: expected an instance type name`);
      return r;
    case 'scaleOut':
      if (!Number.isInteger(r.count) || r.count < 1 || r.count > 64) throw new InputError('E_BAD_CONFIG', `${path}.count: expected an integer from 1 to 64, got ${JSON.stringify(r.count)}`);
      return r;
    default:
      throw new InputError('E_BAD_CONFIG', `${path}.kind: expected "cache", "scaleUp" or "scaleOut", got ${JSON.stringify((r as { kind: unknown }).kind)}`);
  }
}

const ID = 'proxyResize';

export const proxyResizeMachine = setup({
  types: {
    context: {} as ResizeContext,
    input: {} as ResizeMachineInput,
    events: {} as FlowEvent,
    output: {} as ResizeOutput,
  },
  actors: {
    checkUsage: notProvided<ResizeData>('checkUsage'),
    resizeCache: notProvided<ResizeData>('resizeCache'),
    drain: notProvided<ResizeData>('drain'),
    stopProxy: notProvided<ResizeData>('stopProxy'),
    modifyType: notProvided<ResizeData>('modifyType'),
    startProxy: notProvided<ResizeData>('startProxy'),
    resumeProxy: notProvided<ResizeData>('resumeProxy'),
    provisionPeers: notProvided<ResizeData>('provisionPeers'),
    awaitPeers: notProvided<ResizeData>('awaitPeers'),
    joinPeers: notProvided<ResizeData>('joinPeers'),
    rollback: notProvided<ResizeData>('rollback'),
  },
  guards: {
    ...flowGuards,
    isCache: ({ context }) => context.input.request.kind === 'cache',
    isScaleUp: ({ context }) => context.input.request.kind === 'scaleUp',
  },
  actions: flowActions,
  delays: flowDelays,
}).createMachine({
  id: ID,
  context: ({ input }) => {
    checkResizeRequest(input.resize.request);
    return initialFlowContext<ResizeInput, ResizeData>(input.id, input.resize, input.config, {}, 'cache.checkUsage');
  },
  initial: 'start',
  on: rollbackOnRequest,
  states: {
    start: {
      always: [{ guard: 'isCache', target: 'cache' }, { guard: 'isScaleUp', target: 'scaleUp' }, { target: 'scaleOut' }],
    },
    cache: {
      initial: 'checkUsage',
      states: {
        checkUsage: step(ID, 'cache.checkUsage', 'cache.resizeCache'),
        resizeCache: step(ID, 'cache.resizeCache', 'resized'),
      },
    },
    scaleUp: {
      initial: 'drain',
      states: {
        drain: step(ID, 'scaleUp.drain', 'scaleUp.stopProxy'),
        stopProxy: step(ID, 'scaleUp.stopProxy', 'scaleUp.modifyType'),
        modifyType: step(ID, 'scaleUp.modifyType', 'scaleUp.startProxy'),
        startProxy: step(ID, 'scaleUp.startProxy', 'scaleUp.resumeProxy'),
        resumeProxy: step(ID, 'scaleUp.resumeProxy', 'resized'),
      },
    },
    scaleOut: {
      initial: 'provisionPeers',
      states: {
        provisionPeers: step(ID, 'scaleOut.provisionPeers', 'scaleOut.awaitPeers'),
        awaitPeers: step(ID, 'scaleOut.awaitPeers', 'scaleOut.joinPeers'),
        joinPeers: step(ID, 'scaleOut.joinPeers', 'resized'),
      },
    },
    ...rollbackStates(ID, 'resized'),
  },
  output: flowOutput,
});

export type ProxyResizeMachine = typeof proxyResizeMachine;
