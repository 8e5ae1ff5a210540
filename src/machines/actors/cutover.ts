import { SpillwayError } from '../../errors.js';
import type { CutoverData, CutoverInput } from '../cutover.js';
import type { MachineEnv } from '../env.js';
import { act, startInstance, terminate } from './common.js';

/** The cut-over machine's actors (FIG 15): mirror the run state until the switch fits its budget, then switch. */

export function cutoverActors(env: MachineEnv) {
  type I = CutoverInput;
  type D = CutoverData;
  const hv = env.hypervisor;
  return {
    captureRunState: act<I, D>(async ({ input }) => {
      const image = await hv.captureMemory(input.sourceVmId);
      return { runStateBytes: image.bytes, sourceMemory: image };
    }),
    replicateRunState: act<I, D>(async ({ input }) => {
      const r = await env.proxy.mirrorRound({ sourceVmId: input.sourceVmId, targetId: input.targetId, round: 0 });
      return { replicatedBytes: r.sentBytes, round: r };
    }),
    mirror: act<I, D>(async ({ input, data }) => ({
      round: await env.proxy.mirrorRound({ sourceVmId: input.sourceVmId, targetId: input.targetId, round: (data.rounds ?? 0) + 1 }),
    })),
    pauseSource: act<I, D>(async ({ input }) => {
      // The last image is taken with the source stopped: nothing dirties it any more.
      const image = await hv.captureMemory(input.sourceVmId);
      if (hv.vm(input.sourceVmId).power !== 'stopped') await hv.powerOff(input.sourceVmId);
      return { sourcePaused: true, sourceMemory: image };
    }),
    finalCopy: act<I, D>(async ({ input, data }) => {
      const r = await env.proxy.mirrorRound({ sourceVmId: input.sourceVmId, targetId: input.targetId, round: (data.rounds ?? 0) + 1 });
      if (r.dirtyBytes > 0) throw new SpillwayError('E_BUSY', `${r.dirtyBytes} bytes still dirty after the final copy`);
      return { finalCopyBytes: r.sentBytes };
    }),
    activateTarget: act<I, D>(async ({ input }, signal) => {
      await startInstance(env, input.targetId, signal);
      return { targetActive: true };
    }),
    retireSource: act<I, D>(async ({ input }) => {
      if (hv.vm(input.sourceVmId).hostId !== null) await hv.deactivate(input.sourceVmId);
      return { sourceRetired: true };
    }),
    rollback: act<I, D>(async ({ input, data }) => {
      // The source keeps (or resumes) the workload; the standby is released.
      const vm = hv.vm(input.sourceVmId);
      if (vm.hostId !== null && vm.power !== 'running') {
        await hv.powerOn(input.sourceVmId, vm.hostId);
        if (data.sourceMemory) await hv.restoreMemory(input.sourceVmId, data.sourceMemory);
      }
      await terminate(env, [input.targetId]);
      return {};
    }),
  };
}
