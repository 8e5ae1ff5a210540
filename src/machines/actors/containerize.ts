import type { ContainerManifest } from '../../ports/container-platform.js';
import type { DiskExport } from '../../ports/proxy-control.js';
import { PLATFORMS, analyseGuest, type GuestAnalysis } from '../adapt.js';
import type { ContainerizeData, ContainerizeInput } from '../containerize.js';
import type { MachineEnv } from '../env.js';
import { act, deactivateVm, need, reactivateVm } from './common.js';

/**
 * The containerize machine's actors (FIG 25), and the image-building steps
 * the container-transfer machine (FIG 26) shares with it.
 */

type ImageData = { analysis?: GuestAnalysis; stats?: ContainerizeData['stats']; template?: string; manifest?: ContainerManifest; exports?: DiskExport[]; userDataSources?: string[]; imageId?: string };

/** The FIG 25 image-building steps, for the VM `vmOf(input)`. */
export function containerizeStepActors<I, D extends ImageData>(env: MachineEnv, vmOf: (input: I) => string) {
  const hv = env.hypervisor;
  return {
    analyseImage: act<I, D>(async ({ input }) => ({ analysis: analyseGuest(hv.vm(vmOf(input)), PLATFORMS.onprem) } as Partial<D>)),
    selectTemplate: act<I, D>(async ({ input }) => {
      const { os } = hv.vm(vmOf(input)).guest;
      return { template: (await env.containers.templateFor(os)).template } as Partial<D>;
    }),
    generateConfig: act<I, D>(async ({ input, data }) => {
      const vm = hv.vm(vmOf(input));
      const stats = data.stats;
      // Sized from what the VM used, not what it was given (FIG 25 step 2503).
      const manifest: ContainerManifest = {
        template: need(data.template, 'template'),
        vcpus: Math.max(1, Math.ceil(stats?.cpuUsed ?? vm.vcpus)),
        ramMiB: Math.max(256, Math.ceil(stats?.ramUsedMiB ?? vm.ramMiB)),
        network: { hostname: vm.guest.network.hostname, ipAddress: vm.guest.network.ipAddress, dns: [...vm.guest.network.dns] },
        mounts: [],
        runStateBytes: 0,
      };
      return { manifest } as Partial<D>;
    }),
    containerizeUserData: act<I, D>(async ({ input, data }) => {
      const vm = hv.vm(vmOf(input));
      const byDisk = new Map((data.exports ?? []).map((e) => [e.diskId, e.exportName]));
      const mounts = vm.guest.mounts
        .filter((m) => m.mountPoint !== '/' && m.mountPoint.toUpperCase() !== 'C:')
        .map((m) => ({ mountPoint: m.mountPoint, source: byDisk.get(m.diskId) ?? `disk:${m.diskId}`, persistence: m.persistence }));
      const manifest = { ...need(data.manifest, 'manifest'), mounts };
      return { manifest, userDataSources: [...new Set(mounts.map((m) => m.source))].sort() } as Partial<D>;
    }),
    buildImage: act<I, D>(async ({ input, data, token }) => ({
      imageId: (await env.containers.buildImage({ token, sourceId: vmOf(input), manifest: need(data.manifest, 'manifest') })).imageId,
    } as Partial<D>)),
  };
}

export function containerizeActorsFor(env: MachineEnv) {
  type I = ContainerizeInput;
  type D = ContainerizeData;
  const hv = env.hypervisor;
  return {
    collectStats: act<I, D>(async ({ input }) => ({ stats: await env.containers.collectStats({ vmId: input.vmId }) })),
    quiesce: act<I, D>(async ({ input, token }) => {
      if (input.mode === 'snapshot') return { snapshotId: (await hv.snapshot(input.vmId, token, { memory: true })).id };
      return deactivateVm(env, input.vmId);
    }),
    ...containerizeStepActors<I, D>(env, (i) => i.vmId),
    rollback: act<I, D>(async ({ input, data }) => {
      if (data.imageId) await env.containers.deleteImage({ imageId: data.imageId });
      if (data.snapshotId) await hv.deleteSnapshot(data.snapshotId);
      if (input.mode === 'deactivate' && data.originHostId !== undefined) await reactivateVm(env, input.vmId, data.originHostId, data.wasRunning ?? true);
      return {};
    }),
  };
}
