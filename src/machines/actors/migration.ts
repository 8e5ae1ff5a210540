import { SpillwayError } from '../../errors.js';
import type { MachineEnv } from '../env.js';
import type { MigrationData, MigrationInput } from '../migration.js';
import { act, describeOne, need, startInstance, stopInstance, tagsFor, waitVolumes } from './common.js';

/** The migration machine's actors (FIG 17/18): cloud volumes filled behind the proxies, then a cut-over onto them. */

/** GiB, the unit cloud volumes are sized in. */
const GiB = 1024 ** 3;
/** EBS volumes top out at 16 TiB. */
const MAX_VOLUME_BYTES = 16 * 1024 ** 4;

export function migrationActors(env: MachineEnv) {
  type I = MigrationInput;
  type D = MigrationData;
  const hv = env.hypervisor;
  const device = (i: number): string => `/dev/sd${String.fromCharCode('f'.charCodeAt(0) + i)}`;
  return {
    compatibilityCheck: act<I, D>(async ({ input }) => {
      const inst = await describeOne(env, input.instanceId);
      if (!inst) throw new SpillwayError('E_INSTANCE_LOST', `instance ${input.instanceId} does not exist`);
      for (const diskId of input.diskIds) {
        const disk = hv.disk(diskId);
        if (disk.sizeBytes > MAX_VOLUME_BYTES) {
          throw new SpillwayError('E_INCOMPATIBLE', `disk ${diskId} (${disk.sizeBytes} bytes) is larger than a cloud volume can be (${MAX_VOLUME_BYTES})`);
        }
      }
      return { compatible: true };
    }),
    setupStorage: act<I, D>(async ({ input, token, id }, signal) => {
      const volumes: Record<string, string> = {};
      for (const diskId of input.diskIds) {
        const vol = await env.cloud.createVolume({
          sizeGiB: Math.max(1, Math.ceil(hv.disk(diskId).sizeBytes / GiB)), type: input.volumeType, zone: input.zone,
          clientToken: `${token}:${diskId}`, tags: tagsFor(env, id, { 'spillway:disk': diskId }),
        });
        volumes[diskId] = vol.id;
      }
      await waitVolumes(env, Object.values(volumes), signal);
      return { volumes };
    }),
    enterMigrationMode: act<I, D>(async ({ input, data }) => ({
      progress: await env.proxy.startMigration({ vmId: input.vmId, volumes: need(data.volumes, 'volumes') }),
    })),
    sync: act<I, D>(async ({ input }) => ({ progress: await env.proxy.syncRound({ vmId: input.vmId, maxBytes: input.syncChunkBytes }) })),
    stopInstance: act<I, D>(async ({ input }, signal) => {
      await stopInstance(env, input.instanceId, signal);
      return { instanceStopped: true };
    }),
    attachVolumes: act<I, D>(async ({ input, data }, signal) => {
      const volumes = need(data.volumes, 'volumes');
      const ids = input.diskIds.map((d) => volumes[d]!);
      const now = await env.cloud.describeVolumes({ ids });
      for (const [i, volumeId] of ids.entries()) {
        if (now.find((v) => v.id === volumeId)?.attachedTo !== input.instanceId) await env.cloud.attachVolume(volumeId, input.instanceId, device(i));
      }
      await waitVolumes(env, ids, signal);
      return { volumesAttached: true };
    }),
    reboot: act<I, D>(async ({ input }, signal) => {
      await startInstance(env, input.instanceId, signal);
      return { rebooted: true };
    }),
    detachProxies: act<I, D>(async ({ input }) => {
      await env.proxy.stopMigration({ vmId: input.vmId });
      await env.proxy.closeTarget({ vmId: input.vmId });
      return { proxiesDetached: true };
    }),
    rollback: act<I, D>(async ({ input, data }, signal) => {
      // Back to proxied running: the instance streams from on-prem again, the new volumes go away.
      const ids = Object.values(data.volumes ?? {});
      if (ids.length > 0) {
        const attached = (await env.cloud.describeVolumes({ ids })).filter((v) => v.attachedTo === input.instanceId);
        if (attached.length > 0) await stopInstance(env, input.instanceId, signal);
        for (const v of attached) await env.cloud.detachVolume(v.id);
        await waitVolumes(env, ids, signal);
      }
      if (data.progress) await env.proxy.stopMigration({ vmId: input.vmId });
      for (const v of ids) await env.cloud.deleteVolume(v);
      await startInstance(env, input.instanceId, signal);
      return {};
    }),
  };
}
