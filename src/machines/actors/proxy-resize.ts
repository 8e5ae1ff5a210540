import { SpillwayError } from '../../errors.js';
import type { MachineEnv } from '../env.js';
import type { ResizeData, ResizeInput } from '../proxy-resize.js';
import { act, describeOne, need, startInstance, stopInstance, tagsFor, terminate, waitInstances } from './common.js';

/** The proxy-resize machine's actors (§4.4): grow or shrink the cache, scale the proxy up, or add peers. */

export function proxyResizeActors(env: MachineEnv) {
  type I = ResizeInput;
  type D = ResizeData;
  return {
    checkUsage: act<I, D>(async ({ input }) => {
      const u = await env.proxy.cacheUsage({ proxyId: input.proxyId });
      return { previousCapacityBytes: u.capacityBytes, usedBytes: u.usedBytes };
    }),
    resizeCache: act<I, D>(async ({ input }) => {
      if (input.request.kind !== 'cache') throw new SpillwayError('E_STEP_ORDER', 'resizeCache needs a cache request');
      const u = await env.proxy.resizeCache({ proxyId: input.proxyId, capacityBytes: input.request.capacityBytes });
      return { capacityBytes: u.capacityBytes, usedBytes: u.usedBytes };
    }),
    drain: act<I, D>(async ({ input }) => {
      await env.proxy.drain({ proxyId: input.proxyId });
      return { drained: true };
    }),
    stopProxy: act<I, D>(async ({ input, data }, signal) => {
      const inst = await describeOne(env, input.instanceId);
      if (!inst) throw new SpillwayError('InvalidInstanceID.NotFound', `proxy instance ${input.instanceId} does not exist`);
      const previousType = data.previousType ?? inst.type;
      await stopInstance(env, input.instanceId, signal);
      return { previousType, stopped: true };
    }),
    modifyType: act<I, D>(async ({ input }) => {
      if (input.request.kind !== 'scaleUp') throw new SpillwayError('E_STEP_ORDER', 'modifyType needs a scaleUp request');
      await env.cloud.modifyInstanceType(input.instanceId, input.request.instanceType);
      return { typeChanged: true };
    }),
    startProxy: act<I, D>(async ({ input }, signal) => {
      await startInstance(env, input.instanceId, signal);
      return { started: true };
    }),
    resumeProxy: act<I, D>(async ({ input }) => {
      await env.proxy.resume({ proxyId: input.proxyId });
      return { resumed: true };
    }),
    provisionPeers: act<I, D>(async ({ input, token, id }) => {
      if (input.request.kind !== 'scaleOut') throw new SpillwayError('E_STEP_ORDER', 'provisionPeers needs a scaleOut request');
      const r = input.request;
      const peers = await env.cloud.runInstances({
        clientToken: token, imageId: r.imageId, instanceType: r.instanceType, count: r.count,
        ...(r.zone ? { zone: r.zone } : {}), tags: tagsFor(env, id, { 'spillway:proxy-peer-of': input.proxyId }),
      });
      return { peerIds: peers.map((p) => p.id).sort() };
    }),
    awaitPeers: act<I, D>(async ({ data }, signal) => {
      await waitInstances(env, need(data.peerIds, 'peerIds'), 'running', signal);
      return { peersRunning: true };
    }),
    joinPeers: act<I, D>(async ({ input, data }) => {
      await env.proxy.addPeers({ proxyId: input.proxyId, instanceIds: need(data.peerIds, 'peerIds') });
      return { peersJoined: true };
    }),
    rollback: act<I, D>(async ({ input, data }, signal) => {
      switch (input.request.kind) {
        case 'cache':
          if (data.previousCapacityBytes !== undefined) await env.proxy.resizeCache({ proxyId: input.proxyId, capacityBytes: data.previousCapacityBytes });
          break;
        case 'scaleUp': {
          const inst = await describeOne(env, input.instanceId);
          if (data.previousType && inst && inst.type !== data.previousType) {
            await stopInstance(env, input.instanceId, signal);
            await env.cloud.modifyInstanceType(input.instanceId, data.previousType);
          }
          if (data.stopped) await startInstance(env, input.instanceId, signal);
          if (data.drained) await env.proxy.resume({ proxyId: input.proxyId });
          break;
        }
        case 'scaleOut':
          if (data.peersJoined && data.peerIds) await env.proxy.removePeers({ proxyId: input.proxyId, instanceIds: data.peerIds });
          if (data.peerIds) await terminate(env, data.peerIds);
          break;
      }
      return {};
    }),
  };
}
