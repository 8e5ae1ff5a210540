import { SpillwayError } from '../../errors.js';
import type { MachineEnv } from '../env.js';
import type { ReverseData, ReverseInput } from '../reverse.js';
import { actorsOf, mountAll, reactivateVm, restoreGuest, startInstance, stopInstance, terminate, unmountAll, type Step } from './common.js';

type I = ReverseInput;
type D = ReverseData;

/**
 * The reverse machine's steps (FIG 16): bring a VM that runs remotely home,
 * or back to running remotely on rollback. Plain functions, so a controller
 * can add what the move means to its own bookkeeping (the burst controller
 * pauses the VM's work with deactivateRemote and resumes it with rollback).
 */
export function reverseSteps(env: MachineEnv) {
  const hv = env.hypervisor;
  const s = (fn: Step<I, D>): Step<I, D> => fn;
  return {
    deactivateRemote: s(async ({ input, data }, signal) => {
      const remoteGuest = data.remoteGuest ?? structuredClone(hv.vm(input.vmId).guest);
      if (input.instanceId) await stopInstance(env, input.instanceId, signal);
      else if (hv.vm(input.vmId).power !== 'stopped') await hv.powerOff(input.vmId);
      return { remoteStopped: true, remoteGuest };
    }),
    flushWrites: s(async ({ input }) => {
      const { flushedBytes, pendingBytes } = await env.proxy.flushWriteBehind({ vmId: input.vmId });
      if (pendingBytes > 0) throw new SpillwayError('E_BUSY', `${pendingBytes} bytes of writes are still pending after the flush`);
      return { flushedBytes };
    }),
    snapshotLocal: s(async ({ input, token }) => ({ localSnapshotId: (await hv.snapshot(input.vmId, token)).id })),
    restoreConfig: s(async ({ input }) => {
      await hv.updateGuest(input.vmId, (g) => restoreGuest(g, input.originalGuest));
      return { configRestored: true };
    }),
    recreateCloudOnlyDisks: s(async ({ input }) => {
      const cloudOnly = Object.entries(input.persistence).filter(([, p]) => p === 'cloud-only').map(([d]) => d).sort();
      for (const diskId of cloudOnly) await env.proxy.discardCloudOnly({ vmId: input.vmId, diskId });
      // FIG 16 step 1619. With every disk cloud-only, nothing on-prem changed
      // since the pre-move snapshot, so reverting to it recreates the disks
      // (and the config, again). With mixed policies the port cannot revert a
      // single disk; the cloud-only ones were never written on-prem (their
      // lease was held), so they already equal the snapshot.
      if (cloudOnly.length === Object.keys(input.persistence).length) await hv.revertToSnapshot(input.preMoveSnapshotId);
      return { recreatedDisks: cloudOnly };
    }),
    remount: s(async ({ input }) => {
      await env.proxy.closeTarget({ vmId: input.vmId });
      await unmountAll(env, input.vmId, input.exports, input.leaseOwner);
      return { remounted: true };
    }),
    reactivate: s(async ({ input }) => {
      await reactivateVm(env, input.vmId, input.targetHostId, input.powerOn);
      return { reactivated: true };
    }),
    releaseRemote: s(async ({ input }) => {
      if (input.instanceId) await terminate(env, [input.instanceId]);
      await hv.deleteSnapshot(input.preMoveSnapshotId);
      return { remoteReleased: true };
    }),
    rollback: s(async ({ input, data }, signal) => {
      // Back to running remotely, as before the reverse began.
      if (data.reactivated || hv.vm(input.vmId).hostId !== null) {
        if (hv.vm(input.vmId).power !== 'stopped') await hv.powerOff(input.vmId);
        if (hv.vm(input.vmId).hostId !== null) await hv.deactivate(input.vmId);
      }
      if (data.remounted) {
        await mountAll(env, input.vmId, input.exports.map((e) => e.diskId), input.leaseOwner);
        if (input.instanceId) await env.proxy.openTarget({ vmId: input.vmId, instanceId: input.instanceId, disks: input.exports, siblingSources: [] });
      }
      if (data.remoteGuest) await hv.updateGuest(input.vmId, (g) => restoreGuest(g, data.remoteGuest!));
      if (data.localSnapshotId) await hv.deleteSnapshot(data.localSnapshotId);
      if (input.instanceId) await startInstance(env, input.instanceId, signal);
      return {};
    }),
  };
}

/** The reverse machine's actors: its steps as promise actors. */
export function reverseActors(env: MachineEnv) {
  return actorsOf(reverseSteps(env));
}
