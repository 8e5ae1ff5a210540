import { SpillwayError } from '../../errors.js';
import type { MachineEnv } from '../env.js';
import type { RetireData, RetireInput } from '../retire.js';
import { act, mountAll, need, unmountAll } from './common.js';

/** The retire machine's actors: the on-prem copy of a migrated VM gives up its leases and its pre-move snapshot. */

export function retireActors(env: MachineEnv) {
  type I = RetireInput;
  type D = RetireData;
  const hv = env.hypervisor;
  return {
    releaseDisks: act<I, D>(async ({ input }) => {
      await unmountAll(env, input.vmId, input.exports, input.leaseOwner);
      return { disksReleased: true };
    }),
    deleteSnapshot: act<I, D>(async ({ input }) => {
      await hv.deleteSnapshot(need(input.snapshotId, 'retire.snapshotId'));
      return { snapshotDeleted: true };
    }),
    verify: act<I, D>(async ({ input }) => {
      const vm = hv.vm(input.vmId);
      const wrong = [
        ...(vm.hostId === null ? [] : [`it is still registered on ${vm.hostId}`]),
        ...(vm.power === 'stopped' ? [] : [`it is ${vm.power}`]),
        ...vm.diskIds.filter((d) => hv.diskLeaseOwner(d) !== null).map((d) => `disk ${d} is leased to ${hv.diskLeaseOwner(d)}`),
      ];
      if (wrong.length > 0) throw new SpillwayError('E_NOT_RETIRED', `${input.vmId} is not retired: ${wrong.join('; ')}`);
      return { retired: true };
    }),
    rollback: act<I, D>(async ({ input, data }) => {
      // Take the leases back: the on-prem copy stays protected until a later retirement.
      if (data.disksReleased) await mountAll(env, input.vmId, input.exports.map((e) => e.diskId), input.leaseOwner);
      return {};
    }),
  };
}
