import { SpillwayError } from '../../errors.js';
import type { CloneDropData, CloneDropInput } from '../clone-drop.js';
import type { MachineEnv } from '../env.js';
import { actorsOf, terminate, waitLeaving, type Step } from './common.js';

type I = CloneDropInput;
type D = CloneDropData;

/**
 * The clone-drop machine's steps: a serving clone's target, instance, disks
 * and machine account go, in that order. Plain functions, so a controller can
 * add what the drop means to its own bookkeeping (the scale-out controller
 * stops the clone's application I/O before its target closes).
 */
export function cloneDropSteps(env: MachineEnv) {
  const s = (fn: Step<I, D>): Step<I, D> => fn;
  return {
    flushWrites: s(async ({ input }) => {
      const { flushedBytes, pendingBytes } = await env.proxy.flushWriteBehind({ vmId: input.cloneVmId });
      if (pendingBytes > 0) throw new SpillwayError('E_BUSY', `${pendingBytes} bytes of the clone's writes are still pending after the flush`);
      return { flushedBytes };
    }),
    // Cloud-only clone writes are discarded with the target.
    closeTarget: s(async ({ input }) => {
      await env.proxy.closeTarget({ vmId: input.cloneVmId });
      return { targetClosed: true };
    }),
    terminate: s(async ({ input }, signal) => {
      if (input.instanceId) {
        await terminate(env, [input.instanceId]);
        await waitLeaving(env, [input.instanceId], signal);
      }
      return { terminated: true };
    }),
    dropDisks: s(async ({ input }) => {
      await env.proxy.dropClone({ cloneId: input.cloneId });
      return { disksDropped: true };
    }),
    leaveDomain: s(async ({ input }) => {
      if (input.identity && input.domain) await env.directory.leave({ machineName: input.identity.machineName, domain: input.domain });
      return { domainLeft: true };
    }),
    rollback: s(async ({ input, data }) => {
      if (data.terminated) {
        const left = [...(data.disksDropped ? [] : ['its copy-on-write exports']), ...(data.domainLeft || !input.identity ? [] : ['its machine account'])];
        throw new SpillwayError('E_DROP_PAST_RETURN', `clone ${input.cloneVmId} has no instance any more and cannot serve again; left behind: ${left.join(', ') || 'nothing'}`);
      }
      if (data.targetClosed && input.instanceId) {
        await env.proxy.openTarget({ vmId: input.cloneVmId, instanceId: input.instanceId, disks: input.exports, siblingSources: input.siblingSources });
      }
      return {};
    }),
  };
}

/** The clone-drop machine's actors: its steps as promise actors. */
export function cloneDropActors(env: MachineEnv) {
  return actorsOf(cloneDropSteps(env));
}
