import type { GuestConfig } from '../../ports/hypervisor.js';
import type { DiskExport } from '../../ports/proxy-control.js';
import {
  PLATFORMS, analyseGuest, bootDiskOf, cloneIdentity, disableDevices, enableMonitoring, installDrivers, regenerateIdentity, remapMounts,
  rewriteNetwork,
} from '../adapt.js';
import type { CloneData, CloneInput } from '../clone.js';
import type { MachineEnv } from '../env.js';
import { act, chooseCloudType, need, tagsFor, terminate, waitInstances } from './common.js';

/** The clone machine's actors (FIG 12/14): a new identity on a copy-on-write copy of a snapshot, booted in the cloud. */

export function cloneActors(env: MachineEnv) {
  type I = CloneInput;
  type D = CloneData;
  const hv = env.hypervisor;
  const ec2 = PLATFORMS.ec2;
  const edit = (data: D, change: (g: GuestConfig) => void): Partial<D> => {
    const guest = structuredClone(need(data.guest, 'clone guest config'));
    change(guest);
    return { guest };
  };
  const cloneVmId = (input: I): string => `${input.sourceVmId}-c${input.cloneIndex}`;
  return {
    snapshot: act<I, D>(async ({ input, token }) => {
      if (input.snapshotId) return { snapshotId: input.snapshotId, snapshotOwned: false, guest: structuredClone(hv.vm(input.sourceVmId).guest) };
      const snap = await hv.snapshot(input.sourceVmId, token);
      return { snapshotId: snap.id, snapshotOwned: true, guest: structuredClone(snap.guest) };
    }),
    cloneVolumes: act<I, D>(async ({ input, data, id }) => {
      const snapshotId = need(data.snapshotId, 'snapshotId');
      const exports: DiskExport[] = [];
      for (const diskId of hv.vm(input.sourceVmId).diskIds) {
        const { exportName } = await env.proxy.cloneDisk({ snapshotId, diskId, cloneId: id, policy: input.persistence });
        exports.push({ diskId, exportName, policy: input.persistence });
      }
      return { exports };
    }),
    analyse: act<I, D>(async ({ input, data }) => ({ analysis: analyseGuest({ ...hv.vm(input.sourceVmId), guest: need(data.guest, 'clone guest config') }, ec2) })),
    disableDevices: act<I, D>(async ({ data }) => edit(data, (g) => disableDevices(g, ec2))),
    regenerateIdentity: act<I, D>(async ({ input, data }) => {
      const identity = cloneIdentity(need(data.guest, 'clone guest config'), input.cloneIndex, env.cloud.runId);
      return { ...edit(data, (g) => regenerateIdentity(g, identity)), identity };
    }),
    installDrivers: act<I, D>(async ({ data }) => edit(data, (g) => installDrivers(g, ec2))),
    remapMounts: act<I, D>(async ({ input, data }) =>
      edit(data, (g) => remapMounts(g, need(data.exports, 'exports'), bootDiskOf(hv.vm(input.sourceVmId))))),
    rewriteNetwork: act<I, D>(async ({ data }) => edit(data, (g) => rewriteNetwork(g, ec2))),
    enableMonitoring: act<I, D>(async ({ data }) => edit(data, (g) => enableMonitoring(g, ec2))),
    prioritizeBlocks: act<I, D>(async ({ input }) => {
      const { bytes } = await env.proxy.prioritize({ vmId: input.sourceVmId, diskIds: hv.vm(input.sourceVmId).diskIds });
      return { prioritizedBytes: bytes };
    }),
    chooseServer: act<I, D>(async ({ input, data }) => ({ serverType: await chooseCloudType(env, need(data.analysis, 'analysis'), input.instanceTypes, input.iops) })),
    provision: act<I, D>(async ({ input, data, token, id }) => {
      const [inst] = await env.cloud.runInstances({
        clientToken: token, imageId: input.stagingImageId, instanceType: need(data.serverType, 'serverType'),
        ...(input.zone ? { zone: input.zone } : {}), count: 1,
        // The adapted clone config is the clone's provisioning data.
        userData: JSON.stringify({ vmId: cloneVmId(input), flow: id, guest: data.guest }),
        tags: tagsFor(env, id, { 'spillway:clone-of': input.sourceVmId }),
      });
      return { instanceId: need(inst, 'runInstances result').id };
    }),
    startCacheFill: act<I, D>(async ({ input, data }) => {
      const { targetAddress } = await env.proxy.openTarget({
        vmId: cloneVmId(input), instanceId: need(data.instanceId, 'instanceId'), disks: need(data.exports, 'exports'),
        siblingSources: input.siblingReads ? input.siblingSources : [],
      });
      const { queuedBytes } = await env.proxy.startPrefetch({ vmId: cloneVmId(input) });
      return { targetAddress, prefetchQueuedBytes: queuedBytes };
    }),
    loadStagingImage: act<I, D>(async ({ data }, signal) => {
      await waitInstances(env, [need(data.instanceId, 'instanceId')], 'running', signal);
      return {};
    }),
    stageBoot: act<I, D>(async ({ input, data }) => ({
      stagingBootBytes: (await env.proxy.awaitBoot({ vmId: cloneVmId(input), instanceId: need(data.instanceId, 'instanceId'), phase: 'staging' })).bootReadBytes,
    })),
    targetBoot: act<I, D>(async ({ input, data }) => ({
      targetBootBytes: (await env.proxy.awaitBoot({ vmId: cloneVmId(input), instanceId: need(data.instanceId, 'instanceId'), phase: 'target' })).bootReadBytes,
    })),
    joinDomain: act<I, D>(async ({ data }) => {
      const identity = need(data.identity, 'identity');
      await env.directory.join({ ...identity, domain: need(data.guest, 'clone guest config').network.domain });
      return { domainJoined: true };
    }),
    rollback: act<I, D>(async ({ input, data, id }) => {
      if (data.domainJoined && data.identity && data.guest) await env.directory.leave({ machineName: data.identity.machineName, domain: data.guest.network.domain });
      if (data.instanceId) await terminate(env, [data.instanceId]);
      if (data.targetAddress) await env.proxy.closeTarget({ vmId: cloneVmId(input) });
      await env.proxy.dropClone({ cloneId: id });
      if (data.snapshotOwned && data.snapshotId) await hv.deleteSnapshot(data.snapshotId);
      return {};
    }),
  };
}
