import { PLATFORMS, chooseFramework, type GuestAnalysis } from '../adapt.js';
import type { ContainerTransferData, ContainerTransferInput } from '../container-transfer.js';
import type { MachineEnv } from '../env.js';
import { act, deactivateVm, mountAll, need, reactivateVm, unmountAll } from './common.js';
import { containerizeStepActors } from './containerize.js';

/** The container-transfer machine's actors (FIG 26/27): a VM or a container moved to a framework at the other site. */

export function containerTransferActors(env: MachineEnv) {
  type I = ContainerTransferInput;
  type D = ContainerTransferData;
  const hv = env.hypervisor;
  const vmOf = (i: I): string => need(i.vmId, 'transfer.vmId');
  const disksOf = (i: I): string[] => (i.kind === 'vm' ? hv.vm(vmOf(i)).diskIds : i.diskIds ?? []);
  const ownerVm = (i: I): string => (i.kind === 'vm' ? vmOf(i) : need(i.containerId, 'transfer.containerId'));
  return {
    deactivate: act<I, D>(async ({ input }) => deactivateVm(env, vmOf(input))),
    // FIG 26 step 2605 follows the shut-down of step 2603: memory only if the VM still runs.
    snapshot: act<I, D>(async ({ input, token }) => ({ snapshotId: (await hv.snapshot(vmOf(input), token, { memory: hv.vm(vmOf(input)).power === 'running' })).id })),
    checkpoint: act<I, D>(async ({ input }) => {
      const { imageId, manifest } = await env.containers.checkpoint({ containerId: need(input.containerId, 'transfer.containerId') });
      return { imageId, manifest, checkpointed: true };
    }),
    mount: act<I, D>(async ({ input, id }) => ({ exports: await mountAll(env, ownerVm(input), disksOf(input), id) })),
    collectStats: act<I, D>(async ({ input }) => ({ stats: await env.containers.collectStats({ vmId: vmOf(input) }) })),
    ...containerizeStepActors<I, D>(env, vmOf),
    analyse: act<I, D>(async ({ data }) => {
      const m = need(data.manifest, 'manifest');
      const analysis: GuestAnalysis = {
        os: { family: 'linux', distro: m.template, version: '' }, vcpus: m.vcpus, ramMiB: m.ramMiB, bootDevice: '',
        mounts: m.mounts.length, incompatibleDevices: [], missingDrivers: [], licences: [],
        nonPersistentDisks: [],
      };
      return { analysis };
    }),
    remapMounts: act<I, D>(async ({ data }) => {
      const m = need(data.manifest, 'manifest');
      const exports = data.exports ?? [];
      // FIG 27 step 2713: each mount's source becomes the proxied export of the same disk.
      const mounts = m.mounts.map((mt) => {
        const exp = exports.find((e) => mt.source === `disk:${e.diskId}`);
        return exp ? { ...mt, source: `nbd:${exp.exportName}` } : mt;
      });
      return { manifest: { ...m, mounts } };
    }),
    rewriteNetwork: act<I, D>(async ({ input, data }) => {
      const m = need(data.manifest, 'manifest');
      // Address and hostname stay (packets for the old instance reach the new one); resolvers are the remote site's.
      const dns = input.site === 'remote' ? [...PLATFORMS.ec2.dns] : m.network.dns;
      return { manifest: { ...m, network: { ...m.network, dns } } };
    }),
    prioritizeBlocks: act<I, D>(async ({ input }) => ({
      prioritizedBytes: (await env.proxy.prioritize({ vmId: ownerVm(input), diskIds: disksOf(input) })).bytes,
    })),
    chooseServer: act<I, D>(async ({ input, data }) => {
      const m = need(data.manifest, 'manifest');
      const chosen = chooseFramework(await env.containers.frameworks({ site: input.site }), { vcpus: m.vcpus, ramMiB: m.ramMiB });
      return chosen ? { frameworkId: chosen.id } : {};
    }),
    provision: act<I, D>(async ({ input, data, token }) => {
      if (data.frameworkId) return { frameworkProvisioned: false };
      const m = need(data.manifest, 'manifest');
      const fw = await env.containers.provisionFramework({ token, site: input.site, vcpus: m.vcpus, ramMiB: m.ramMiB });
      return { frameworkId: fw.id, frameworkProvisioned: true };
    }),
    loadImage: act<I, D>(async ({ data, token }) => {
      const storageAddress = data.exports?.[0]?.exportName ?? '';
      const { containerId } = await env.containers.run({ token, frameworkId: need(data.frameworkId, 'frameworkId'), imageId: need(data.imageId, 'imageId'), storageAddress });
      return { containerId };
    }),
    rollback: act<I, D>(async ({ input, data, id }) => {
      if (data.containerId) await env.containers.stop({ containerId: data.containerId });
      await unmountAll(env, ownerVm(input), data.exports, id);
      if (input.kind === 'vm') {
        if (data.imageId) await env.containers.deleteImage({ imageId: data.imageId });
        if (data.snapshotId) await hv.deleteSnapshot(data.snapshotId);
        if (data.originHostId !== undefined) await reactivateVm(env, vmOf(input), data.originHostId, data.wasRunning ?? true);
      } else if (data.checkpointed) {
        await env.containers.restart({ containerId: need(input.containerId, 'transfer.containerId') });
      }
      return {};
    }),
  };
}
