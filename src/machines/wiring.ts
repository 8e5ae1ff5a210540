import { fromPromise } from 'xstate';
import { SpillwayError } from '../errors.js';
import type { CloudInstance, InstanceState, Tags } from '../ports/cloud.js';
import type { GuestConfig, VmInfo } from '../ports/hypervisor.js';
import {
  PLATFORMS, analyseGuest, bootDiskOf, chooseFramework, chooseInstanceType, classifyPersistence, cloneIdentity,
  disableDevices, enableMonitoring, installDrivers, regenerateIdentity, remapMounts, rewriteNetwork, type GuestAnalysis,
  type PlatformProfile,
} from './adapt.js';
import { cloneMachine, type CloneData, type CloneInput } from './clone.js';
import { containerTransferMachine, type ContainerTransferData, type ContainerTransferInput } from './container-transfer.js';
import { containerizeMachine, type ContainerizeData, type ContainerizeInput } from './containerize.js';
import { cutoverMachine, type CutoverData, type CutoverInput } from './cutover.js';
import type { StepInput } from './flow.js';
import { migrationMachine, type MigrationData, type MigrationInput } from './migration.js';
import type { ContainerManifest } from '../ports/container-platform.js';
import type { DiskExport } from '../ports/proxy-control.js';
import type { MachineEnv } from './env.js';
import { proxyResizeMachine, type ResizeData, type ResizeInput } from './proxy-resize.js';
import { reverseMachine, type ReverseData, type ReverseInput } from './reverse.js';
import { transferMachine, type TransferData, type TransferInput } from './transfer.js';

/**
 * Builds every machine's named actors from a MachineEnv (a Hypervisor, a
 * Cloud, the proxy control port, a directory and the container platform).
 * The same wiring serves the emulated adapters, live AWS and the test
 * doubles: only the MachineEnv changes.
 *
 * Every actor is written to be re-run: after a controller restart the step
 * that was in flight runs again with the same input and token, so each one
 * checks what is already done (a VM already deactivated, a volume already
 * attached) and passes the token to the cloud as its idempotency key.
 */

type Step<TIn, TData> = (input: StepInput<TIn, TData>, signal: AbortSignal) => Promise<Partial<TData>>;

function act<TIn, TData>(fn: Step<TIn, TData>) {
  return fromPromise<Partial<TData>, StepInput<TIn, TData>>(({ input, signal }) => fn(input, signal));
}

const GiB = 1024 ** 3;
const DEFAULT_POLL_US = 2_000_000;

function tagsFor(env: MachineEnv, id: string, extra: Tags = {}): Tags {
  return { 'spillway:run': env.cloud.runId, 'spillway:flow': id, ...extra };
}

async function describeOne(env: MachineEnv, id: string): Promise<CloudInstance | undefined> {
  return (await env.cloud.describeInstances({ ids: [id] }))[0];
}

/** Poll until every instance is in `state`; the step's timeout bounds the wait (and aborts it). */
async function waitInstances(env: MachineEnv, ids: string[], state: InstanceState, signal: AbortSignal): Promise<void> {
  const every = env.pollEveryUs ?? DEFAULT_POLL_US;
  for (;;) {
    if (signal.aborted) throw new SpillwayError('E_ABORTED', `stopped waiting for ${ids.join(',')} to be ${state}`);
    const found = await env.cloud.describeInstances({ ids });
    if (found.length === ids.length && found.every((i) => i.state === state)) return;
    const bad = found.find((i) => i.state === 'terminated' || (state === 'running' && i.state === 'shutting-down'));
    if (bad) throw new SpillwayError('E_INSTANCE_LOST', `instance ${bad.id} is ${bad.state} while waiting for ${state}`);
    await env.world.clock.sleepUs(every);
  }
}

async function waitVolumes(env: MachineEnv, ids: string[], signal: AbortSignal): Promise<void> {
  const every = env.pollEveryUs ?? DEFAULT_POLL_US;
  for (;;) {
    if (signal.aborted) throw new SpillwayError('E_ABORTED', `stopped waiting for volumes ${ids.join(',')}`);
    const found = await env.cloud.describeVolumes({ ids });
    const failed = found.find((v) => v.state === 'error');
    if (failed) throw new SpillwayError('E_VOLUME_FAILED', `volume ${failed.id} went to error`);
    if (found.length === ids.length && found.every((v) => v.state === 'available' || v.state === 'in-use')) return;
    await env.world.clock.sleepUs(every);
  }
}

async function stopInstance(env: MachineEnv, id: string, signal: AbortSignal): Promise<void> {
  const inst = await describeOne(env, id);
  if (!inst) throw new SpillwayError('InvalidInstanceID.NotFound', `instance ${id} does not exist`);
  if (inst.state !== 'stopped') {
    if (inst.state !== 'stopping') await env.cloud.stopInstances([id]);
    await waitInstances(env, [id], 'stopped', signal);
  }
}

async function startInstance(env: MachineEnv, id: string, signal: AbortSignal): Promise<void> {
  const inst = await describeOne(env, id);
  if (!inst) throw new SpillwayError('InvalidInstanceID.NotFound', `instance ${id} does not exist`);
  if (inst.state !== 'running') {
    if (inst.state === 'stopping') await waitInstances(env, [id], 'stopped', signal);
    if (inst.state !== 'pending') await env.cloud.startInstances([id]);
    await waitInstances(env, [id], 'running', signal);
  }
}

async function terminate(env: MachineEnv, ids: string[]): Promise<void> {
  const live = (await env.cloud.describeInstances({ ids })).filter((i) => i.state !== 'terminated' && i.state !== 'shutting-down');
  if (live.length > 0) await env.cloud.terminateInstances(live.map((i) => i.id));
}

/** Replace the guest's configuration with `original`, in place (updateGuest hands us the live object). */
function restoreGuest(g: GuestConfig, original: GuestConfig): void {
  const copy = structuredClone(original);
  for (const key of Object.keys(copy) as Array<keyof GuestConfig>) (g as unknown as Record<string, unknown>)[key] = copy[key];
}

function platformFor(direction: TransferInput['direction']): PlatformProfile {
  return direction === 'O2C' || direction === 'C2C' ? PLATFORMS.ec2 : PLATFORMS.onprem;
}

const cloudTarget = (direction: TransferInput['direction']): boolean => direction === 'O2C' || direction === 'C2C';
const cloudSource = (direction: TransferInput['direction']): boolean => direction === 'C2O' || direction === 'C2C';

/** Power off and detach a VM from its host, remembering where it ran (FIG 7 step 703). Safe to repeat. */
async function deactivateVm(env: MachineEnv, vmId: string): Promise<{ originHostId: string | null; wasRunning: boolean }> {
  const vm = env.hypervisor.vm(vmId);
  const originHostId = vm.hostId;
  const wasRunning = vm.power === 'running';
  if (vm.power !== 'stopped') await env.hypervisor.powerOff(vmId);
  if (env.hypervisor.vm(vmId).hostId !== null) await env.hypervisor.deactivate(vmId);
  return { originHostId, wasRunning };
}

/** Put a VM back on a host and power it on if it was running. Safe to repeat. */
async function reactivateVm(env: MachineEnv, vmId: string, hostId: string | null | undefined, powerOn: boolean): Promise<void> {
  const vm = env.hypervisor.vm(vmId);
  const host = vm.hostId ?? hostId ?? env.hypervisor.hosts().find((h) => !h.failed)?.id;
  if (!host) throw new SpillwayError('E_NO_HOST', `no healthy host to reactivate ${vmId} on`);
  if (vm.hostId === null) await env.hypervisor.reactivate(vmId, host);
  if (powerOn && env.hypervisor.vm(vmId).power !== 'running') await env.hypervisor.powerOn(vmId, host);
}

async function mountAll(env: MachineEnv, vmId: string, diskIds: readonly string[], owner: string): Promise<DiskExport[]> {
  const out: DiskExport[] = [];
  for (const diskId of diskIds) {
    const { exportName } = await env.proxy.mountDisk({ vmId, diskId, owner });
    out.push({ diskId, exportName, policy: 'on-prem' });
  }
  return out;
}

async function unmountAll(env: MachineEnv, vmId: string, exports: readonly DiskExport[] | undefined, owner: string): Promise<void> {
  for (const e of exports ?? []) await env.proxy.unmountDisk({ vmId, diskId: e.diskId, owner });
}

async function adaptGuest(env: MachineEnv, vmId: string, name: string, done: string[] | undefined, change: (g: GuestConfig) => void) {
  await env.hypervisor.updateGuest(vmId, change);
  return { adaptations: [...(done ?? []).filter((a) => a !== name), name] };
}

/** The on-prem host with the most spare CPU that has room, other than the one the VM left. */
function bestHost(env: MachineEnv, vm: VmInfo, leaving: string | null | undefined): string {
  const hosts = env.hypervisor.hosts()
    .filter((h) => !h.failed && h.id !== (vm.hostId ?? leaving) && h.ramMiB - h.ramAllocatedMiB >= vm.ramMiB)
    .sort((a, b) => (b.cpuCores - b.cpuDemand) - (a.cpuCores - a.cpuDemand) || a.id.localeCompare(b.id));
  if (!hosts[0]) throw new SpillwayError('E_NO_FIT', `no on-prem host has ${vm.ramMiB} MiB free for ${vm.id}`);
  return hosts[0].id;
}

async function chooseCloudType(env: MachineEnv, analysis: GuestAnalysis, names: string[] | undefined, iops: number | undefined) {
  const types = await env.cloud.describeInstanceTypes(names);
  return chooseInstanceType(types, { vcpus: analysis.vcpus, ramMiB: analysis.ramMiB, iops: iops ?? 0, licences: analysis.licences }).name;
}

function need<T>(value: T | undefined | null, what: string): T {
  if (value === undefined || value === null) throw new SpillwayError('E_STEP_ORDER', `${what} is not known yet: an earlier step did not record it`);
  return value;
}

// --- transfer (FIG 7) ------------------------------------------------------

export function transferActors(env: MachineEnv) {
  type I = TransferInput;
  type D = TransferData;
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
      const snap = await hv.snapshot(input.vmId, token, { memory: input.kind !== 'stateless' });
      return { snapshotId: snap.id, originalGuest: structuredClone(snap.guest) };
    }),
    mount: act<I, D>(async ({ input, id }) => ({ exports: await mountAll(env, input.vmId, hv.vm(input.vmId).diskIds, id) })),
    classify: act<I, D>(async ({ input, data }) => {
      const persistence = classifyPersistence(hv.vm(input.vmId), input.persistence);
      return { persistence, exports: need(data.exports, 'exports').map((e) => ({ ...e, policy: persistence[e.diskId] ?? 'on-prem' })) };
    }),
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
    rollback: act<I, D>(async ({ input, data, id }, signal) => {
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
    }),
  };
}

// --- reverse (FIG 16) ------------------------------------------------------

export function reverseActors(env: MachineEnv) {
  type I = ReverseInput;
  type D = ReverseData;
  const hv = env.hypervisor;
  return {
    deactivateRemote: act<I, D>(async ({ input, data }, signal) => {
      const remoteGuest = data.remoteGuest ?? structuredClone(hv.vm(input.vmId).guest);
      if (input.instanceId) await stopInstance(env, input.instanceId, signal);
      else if (hv.vm(input.vmId).power !== 'stopped') await hv.powerOff(input.vmId);
      return { remoteStopped: true, remoteGuest };
    }),
    flushWrites: act<I, D>(async ({ input }) => {
      const { flushedBytes, pendingBytes } = await env.proxy.flushWriteBehind({ vmId: input.vmId });
      if (pendingBytes > 0) throw new SpillwayError('E_BUSY', `${pendingBytes} bytes of writes are still pending after the flush`);
      return { flushedBytes };
    }),
    snapshotLocal: act<I, D>(async ({ input, token }) => ({ localSnapshotId: (await hv.snapshot(input.vmId, token)).id })),
    restoreConfig: act<I, D>(async ({ input }) => {
      await hv.updateGuest(input.vmId, (g) => restoreGuest(g, input.originalGuest));
      return { configRestored: true };
    }),
    recreateCloudOnlyDisks: act<I, D>(async ({ input }) => {
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
    remount: act<I, D>(async ({ input }) => {
      await env.proxy.closeTarget({ vmId: input.vmId });
      await unmountAll(env, input.vmId, input.exports, input.leaseOwner);
      return { remounted: true };
    }),
    reactivate: act<I, D>(async ({ input }) => {
      await reactivateVm(env, input.vmId, input.targetHostId, input.powerOn);
      return { reactivated: true };
    }),
    releaseRemote: act<I, D>(async ({ input }) => {
      if (input.instanceId) await terminate(env, [input.instanceId]);
      await hv.deleteSnapshot(input.preMoveSnapshotId);
      return { remoteReleased: true };
    }),
    rollback: act<I, D>(async ({ input, data }, signal) => {
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

// --- clone (FIG 12/14) -----------------------------------------------------

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

// --- cut-over (FIG 15) -----------------------------------------------------

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
      if (r.dirtyBytes > 0) throw new SpillwayError('E_TRANSIENT', `${r.dirtyBytes} bytes still dirty after the final copy`);
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

// --- migration (FIG 17) ----------------------------------------------------

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
      if (!inst) throw new SpillwayError('E_INCOMPATIBLE', `instance ${input.instanceId} does not exist`);
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

// --- proxy resize (§4.4) ---------------------------------------------------

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

// --- containers (FIG 25/26/27) ---------------------------------------------

type ImageData = { analysis?: GuestAnalysis; stats?: ContainerizeData['stats']; template?: string; manifest?: ContainerManifest; exports?: DiskExport[]; userDataSources?: string[]; imageId?: string };

/** The FIG 25 image-building steps, for the VM `vmOf(input)`. */
function containerizeStepActors<I, D extends ImageData>(env: MachineEnv, vmOf: (input: I) => string) {
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

/** Every machine with its actors provided from `env`: what a controller starts through the runtime. */
export function wireMachines(env: MachineEnv) {
  return {
    transfer: transferMachine.provide({ actors: transferActors(env) }),
    reverse: reverseMachine.provide({ actors: reverseActors(env) }),
    clone: cloneMachine.provide({ actors: cloneActors(env) }),
    cutover: cutoverMachine.provide({ actors: cutoverActors(env) }),
    migration: migrationMachine.provide({ actors: migrationActors(env) }),
    proxyResize: proxyResizeMachine.provide({ actors: proxyResizeActors(env) }),
    containerize: containerizeMachine.provide({ actors: containerizeActorsFor(env) }),
    containerTransfer: containerTransferMachine.provide({ actors: containerTransferActors(env) }),
  };
}

export type WiredMachines = ReturnType<typeof wireMachines>;
