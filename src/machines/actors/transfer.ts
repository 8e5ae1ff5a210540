import { SpillwayError } from '../../errors.js';
import type { VmInfo } from '../../ports/hypervisor.js';
import {
  PLATFORMS, analyseGuest, bootDiskOf, classifyPersistence, disableDevices, enableMonitoring, installDrivers, remapMounts, rewriteNetwork,
  type PlatformProfile,
} from '../adapt.js';
import type { MachineEnv } from '../env.js';
import type { TransferData, TransferInput } from '../transfer.js';
import {
  act, adaptGuest, chooseCloudType, deactivateVm, mountAll, need, reactivateVm, restoreGuest, startInstance, stopInstance, tagsFor, terminate,
  unmountAll, waitInstances,
} from './common.js';

/**
 * The transfer machine's actors (FIG 7), in the machine's three stretches:
 * on-prem (the VM leaves its host and its disks go behind the proxy), adapt
 * (the guest is made fit for where it goes) and cloud (a server is chosen,
 * provisioned and booted through the proxies), plus the rollback that
 * undoes whatever `data` says was done.
 */

type I = TransferInput;
type D = TransferData;

function platformFor(direction: TransferInput['direction']): PlatformProfile {
  return direction === 'O2C' || direction === 'C2C' ? PLATFORMS.ec2 : PLATFORMS.onprem;
}

const cloudTarget = (direction: TransferInput['direction']): boolean => direction === 'O2C' || direction === 'C2C';
const cloudSource = (direction: TransferInput['direction']): boolean => direction === 'C2O' || direction === 'C2C';

/** The on-prem host with the most spare CPU that has room, other than the one the VM left. */
function bestHost(env: MachineEnv, vm: VmInfo, leaving: string | null | undefined): string {
  const hosts = env.hypervisor.hosts()
    .filter((h) => !h.failed && h.id !== (vm.hostId ?? leaving) && h.ramMiB - h.ramAllocatedMiB >= vm.ramMiB)
    .sort((a, b) => (b.cpuCores - b.cpuDemand) - (a.cpuCores - a.cpuDemand) || a.id.localeCompare(b.id));
  if (!hosts[0]) throw new SpillwayError('E_NO_HOST', `no on-prem host has ${vm.ramMiB} MiB free for ${vm.id}`);
  return hosts[0].id;
}

/** FIG 7 steps 703-707 (and the run state of a stateful transfer): capture, deactivate, snapshot, mount, classify. */
function onpremSteps(env: MachineEnv) {
  const hv = env.hypervisor;
  return {
    captureState: act<I, D>(async ({ input }) => ({ memoryImage: await hv.captureMemory(input.vmId) })),
    deactivate: act<I, D>(async ({ input }, signal) => {
      if (cloudSource(input.direction)) {
        await stopInstance(env, need(input.sourceInstanceId, 'transfer.sourceInstanceId'), signal);
        return { originHostId: null, wasRunning: true };
      }
      return deactivateVm(env, input.vmId);
    }),
    snapshot: act<I, D>(async ({ input, token }) => {
      // The disks only: a stateful or run-time transfer captured the memory before deactivating (captureState),
      // and a deactivated VM has none left to snapshot.
      const snap = await hv.snapshot(input.vmId, token, { memory: false });
      return { snapshotId: snap.id, originalGuest: structuredClone(snap.guest) };
    }),
    mount: act<I, D>(async ({ input, id }) => ({ exports: await mountAll(env, input.vmId, hv.vm(input.vmId).diskIds, id) })),
    classify: act<I, D>(async ({ input, data }) => {
      const persistence = classifyPersistence(hv.vm(input.vmId), input.persistence);
      return { persistence, exports: need(data.exports, 'exports').map((e) => ({ ...e, policy: persistence[e.diskId] ?? 'on-prem' })) };
    }),
  };
}

/** FIG 7 steps 709-719: the guest analysed and adapted, its blocks prioritized. */
function adaptSteps(env: MachineEnv) {
  const hv = env.hypervisor;
  return {
    analyse: act<I, D>(async ({ input }) => ({ analysis: analyseGuest(hv.vm(input.vmId), platformFor(input.direction)) })),
    disableDevices: act<I, D>(async ({ input, data }) =>
      adaptGuest(env, input.vmId, 'disableDevices', data.adaptations, (g) => disableDevices(g, platformFor(input.direction)))),
    installDrivers: act<I, D>(async ({ input, data }) =>
      adaptGuest(env, input.vmId, 'installDrivers', data.adaptations, (g) => installDrivers(g, platformFor(input.direction)))),
    remapMounts: act<I, D>(async ({ input, data }) => {
      const exports = need(data.exports, 'exports');
      const bootDisk = bootDiskOf(hv.vm(input.vmId));
      return adaptGuest(env, input.vmId, 'remapMounts', data.adaptations, (g) => remapMounts(g, exports, bootDisk));
    }),
    rewriteNetwork: act<I, D>(async ({ input, data }) =>
      adaptGuest(env, input.vmId, 'rewriteNetwork', data.adaptations, (g) => rewriteNetwork(g, platformFor(input.direction)))),
    enableMonitoring: act<I, D>(async ({ input, data }) =>
      adaptGuest(env, input.vmId, 'enableMonitoring', data.adaptations, (g) => enableMonitoring(g, platformFor(input.direction)))),
    prioritizeBlocks: act<I, D>(async ({ input }) => {
      const { bytes } = await env.proxy.prioritize({ vmId: input.vmId, diskIds: hv.vm(input.vmId).diskIds });
      return { prioritizedBytes: bytes };
    }),
  };
}

/** FIG 7 steps 721-731 and §3.2: choose and provision the server, fill the cache, boot, restore the run state. */
function cloudSteps(env: MachineEnv) {
  const hv = env.hypervisor;
  return {
    chooseServer: act<I, D>(async ({ input, data }) => {
      const analysis = need(data.analysis, 'analysis');
      if (cloudTarget(input.direction)) return { serverType: await chooseCloudType(env, analysis, input.instanceTypes, input.iops) };
      const targetHostId = input.targetHostId ?? bestHost(env, hv.vm(input.vmId), data.originHostId);
      return { serverType: `host:${targetHostId}`, targetHostId };
    }),
    provision: act<I, D>(async ({ input, data, token, id }) => {
      if (!cloudTarget(input.direction)) {
        // On-prem target: the VM is registered on the chosen host, its disks still decoupled behind the proxy.
        const hostId = need(data.targetHostId, 'targetHostId');
        if (hv.vm(input.vmId).hostId === null) await hv.reactivate(input.vmId, hostId);
        return { instanceId: `host:${hostId}` };
      }
      const [inst] = await env.cloud.runInstances({
        clientToken: token,
        imageId: need(input.stagingImageId, 'transfer.stagingImageId'),
        instanceType: need(data.serverType, 'serverType'),
        ...(input.zone ? { zone: input.zone } : {}),
        count: 1,
        // Provisioning data for the staging image (seed 000): which VM's target to connect to.
        userData: JSON.stringify({ vmId: input.vmId, flow: id }),
        tags: tagsFor(env, id, { 'spillway:vm': input.vmId }),
      });
      return { instanceId: need(inst, 'runInstances result').id };
    }),
    startCacheFill: act<I, D>(async ({ input, data }) => {
      const { targetAddress } = await env.proxy.openTarget({
        vmId: input.vmId, instanceId: need(data.instanceId, 'instanceId'), disks: need(data.exports, 'exports'),
        siblingSources: input.siblingSources ?? [],
      });
      const { queuedBytes } = await env.proxy.startPrefetch({ vmId: input.vmId });
      return { targetAddress, prefetchQueuedBytes: queuedBytes };
    }),
    loadStagingImage: act<I, D>(async ({ input, data }, signal) => {
      const instanceId = need(data.instanceId, 'instanceId');
      if (cloudTarget(input.direction)) {
        await waitInstances(env, [instanceId], 'running', signal);
      } else if (hv.vm(input.vmId).power !== 'running') {
        await hv.powerOn(input.vmId, need(data.targetHostId, 'targetHostId'));
      }
      return {};
    }),
    stageBoot: act<I, D>(async ({ input, data }) => {
      const { bootReadBytes } = await env.proxy.awaitBoot({ vmId: input.vmId, instanceId: need(data.instanceId, 'instanceId'), phase: 'staging' });
      return { stagingBootBytes: bootReadBytes };
    }),
    targetBoot: act<I, D>(async ({ input, data }) => {
      const { bootReadBytes } = await env.proxy.awaitBoot({ vmId: input.vmId, instanceId: need(data.instanceId, 'instanceId'), phase: 'target' });
      return { targetBootBytes: bootReadBytes };
    }),
    restoreState: act<I, D>(async ({ input, data }) => {
      const image = need(data.memoryImage, 'memoryImage');
      if (cloudTarget(input.direction)) {
        // §3.2: the captured state is replicated to the booted instance through the proxies.
        await env.proxy.mirrorRound({ sourceVmId: input.vmId, targetId: need(data.instanceId, 'instanceId'), round: 0 });
      } else {
        await hv.restoreMemory(input.vmId, image);
      }
      return { stateRestored: true };
    }),
  };
}

/** Undo what the completed steps did; the VM ends where it started, as it was. */
function rollback(env: MachineEnv) {
  const hv = env.hypervisor;
  return act<I, D>(async ({ input, data, id }, signal) => {
    if (data.instanceId && cloudTarget(input.direction)) await terminate(env, [data.instanceId]);
    if (data.targetAddress) await env.proxy.closeTarget({ vmId: input.vmId });
    await unmountAll(env, input.vmId, data.exports, id);
    if (data.originalGuest) await hv.updateGuest(input.vmId, (g) => restoreGuest(g, data.originalGuest!));
    if (data.snapshotId) await hv.deleteSnapshot(data.snapshotId);
    if (cloudSource(input.direction)) {
      await startInstance(env, need(input.sourceInstanceId, 'transfer.sourceInstanceId'), signal);
      return {};
    }
    const vm = hv.vm(input.vmId);
    const home = data.originHostId ?? input.homeHostId;
    // An on-prem target may have registered the VM on another host: move it home.
    if (vm.hostId !== null && home && vm.hostId !== home) {
      if (vm.power !== 'stopped') await hv.powerOff(input.vmId);
      await hv.deactivate(input.vmId);
    }
    const wasRunning = data.wasRunning ?? true;
    await reactivateVm(env, input.vmId, home, wasRunning);
    if (wasRunning && data.memoryImage) await hv.restoreMemory(input.vmId, data.memoryImage);
    return {};
  });
}

export function transferActors(env: MachineEnv) {
  return { ...onpremSteps(env), ...adaptSteps(env), ...cloudSteps(env), rollback: rollback(env) };
}
