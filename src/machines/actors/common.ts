import { fromPromise } from 'xstate';
import { SpillwayError } from '../../errors.js';
import type { CloudInstance, InstanceState, Tags } from '../../ports/cloud.js';
import type { GuestConfig } from '../../ports/hypervisor.js';
import type { DiskExport } from '../../ports/proxy-control.js';
import { chooseInstanceType, type GuestAnalysis } from '../adapt.js';
import type { MachineEnv } from '../env.js';
import type { StepInput } from '../flow.js';

/**
 * What every lifecycle's actors share: the promise-actor wrapper, waits on
 * the cloud's instance and volume states (bounded by the step's timeout,
 * which aborts them), idempotent power and placement moves on the
 * hypervisor, disk mounts through the proxy, and guest adaptation.
 *
 * Every actor is written to be re-run: after a controller restart the step
 * that was in flight runs again with the same input and token, so each one
 * checks what is already done (a VM already deactivated, a volume already
 * attached) and passes the token to the cloud as its idempotency key.
 */

export type Step<TIn, TData> = (input: StepInput<TIn, TData>, signal: AbortSignal) => Promise<Partial<TData>>;

export function act<TIn, TData>(fn: Step<TIn, TData>) {
  return fromPromise<Partial<TData>, StepInput<TIn, TData>>(({ input, signal }) => fn(input, signal));
}

/** Every step of a lifecycle as its promise actor, under the same names. */
export function actorsOf<I, D, K extends string>(steps: Record<K, Step<I, D>>): Record<K, ReturnType<typeof act<I, D>>> {
  return Object.fromEntries(Object.entries<Step<I, D>>(steps).map(([name, fn]) => [name, act(fn)])) as Record<K, ReturnType<typeof act<I, D>>>;
}

const DEFAULT_POLL_US = 2_000_000;

export function tagsFor(env: MachineEnv, id: string, extra: Tags = {}): Tags {
  return { 'spillway:run': env.cloud.runId, 'spillway:flow': id, ...extra };
}

export async function describeOne(env: MachineEnv, id: string): Promise<CloudInstance | undefined> {
  return (await env.cloud.describeInstances({ ids: [id] }))[0];
}

/** Poll until every instance is in `state`; the step's timeout bounds the wait (and aborts it). */
export async function waitInstances(env: MachineEnv, ids: string[], state: InstanceState, signal: AbortSignal): Promise<void> {
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

/** Poll until every instance is shutting down, terminated or gone; the step's timeout bounds the wait. */
export async function waitLeaving(env: MachineEnv, ids: string[], signal: AbortSignal): Promise<void> {
  const every = env.pollEveryUs ?? DEFAULT_POLL_US;
  for (;;) {
    if (signal.aborted) throw new SpillwayError('E_ABORTED', `stopped waiting for ${ids.join(',')} to go away`);
    const found = await env.cloud.describeInstances({ ids });
    if (found.every((i) => i.state === 'shutting-down' || i.state === 'terminated')) return;
    await env.world.clock.sleepUs(every);
  }
}

export async function waitVolumes(env: MachineEnv, ids: string[], signal: AbortSignal): Promise<void> {
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

export async function stopInstance(env: MachineEnv, id: string, signal: AbortSignal): Promise<void> {
  const inst = await describeOne(env, id);
  if (!inst) throw new SpillwayError('InvalidInstanceID.NotFound', `instance ${id} does not exist`);
  if (inst.state !== 'stopped') {
    if (inst.state !== 'stopping') await env.cloud.stopInstances([id]);
    await waitInstances(env, [id], 'stopped', signal);
  }
}

export async function startInstance(env: MachineEnv, id: string, signal: AbortSignal): Promise<void> {
  const inst = await describeOne(env, id);
  if (!inst) throw new SpillwayError('InvalidInstanceID.NotFound', `instance ${id} does not exist`);
  if (inst.state !== 'running') {
    if (inst.state === 'stopping') await waitInstances(env, [id], 'stopped', signal);
    if (inst.state !== 'pending') await env.cloud.startInstances([id]);
    await waitInstances(env, [id], 'running', signal);
  }
}

export async function terminate(env: MachineEnv, ids: string[]): Promise<void> {
  const live = (await env.cloud.describeInstances({ ids })).filter((i) => i.state !== 'terminated' && i.state !== 'shutting-down');
  if (live.length > 0) await env.cloud.terminateInstances(live.map((i) => i.id));
}

/** Replace the guest's configuration with `original`, in place (updateGuest hands us the live object). */
export function restoreGuest(g: GuestConfig, original: GuestConfig): void {
  const copy = structuredClone(original);
  for (const key of Object.keys(copy) as Array<keyof GuestConfig>) (g as unknown as Record<string, unknown>)[key] = copy[key];
}

/** Power off and detach a VM from its host, remembering where it ran (FIG 7 step 703). Safe to repeat. */
export async function deactivateVm(env: MachineEnv, vmId: string): Promise<{ originHostId: string | null; wasRunning: boolean }> {
  const vm = env.hypervisor.vm(vmId);
  const originHostId = vm.hostId;
  const wasRunning = vm.power === 'running';
  if (vm.power !== 'stopped') await env.hypervisor.powerOff(vmId);
  if (env.hypervisor.vm(vmId).hostId !== null) await env.hypervisor.deactivate(vmId);
  return { originHostId, wasRunning };
}

/** Put a VM back on a host and power it on if it was running. Safe to repeat. */
export async function reactivateVm(env: MachineEnv, vmId: string, hostId: string | null | undefined, powerOn: boolean): Promise<void> {
  const vm = env.hypervisor.vm(vmId);
  const host = vm.hostId ?? hostId ?? env.hypervisor.hosts().find((h) => !h.failed)?.id;
  if (!host) throw new SpillwayError('E_NO_HOST', `no healthy host to reactivate ${vmId} on`);
  if (vm.hostId === null) await env.hypervisor.reactivate(vmId, host);
  if (powerOn && env.hypervisor.vm(vmId).power !== 'running') await env.hypervisor.powerOn(vmId, host);
}

export async function mountAll(env: MachineEnv, vmId: string, diskIds: readonly string[], owner: string): Promise<DiskExport[]> {
  const out: DiskExport[] = [];
  for (const diskId of diskIds) {
    const { exportName } = await env.proxy.mountDisk({ vmId, diskId, owner });
    out.push({ diskId, exportName, policy: 'on-prem' });
  }
  return out;
}

export async function unmountAll(env: MachineEnv, vmId: string, exports: readonly DiskExport[] | undefined, owner: string): Promise<void> {
  for (const e of exports ?? []) await env.proxy.unmountDisk({ vmId, diskId: e.diskId, owner });
}

export async function adaptGuest(env: MachineEnv, vmId: string, name: string, done: string[] | undefined, change: (g: GuestConfig) => void) {
  await env.hypervisor.updateGuest(vmId, change);
  return { adaptations: [...(done ?? []).filter((a) => a !== name), name] };
}

export async function chooseCloudType(env: MachineEnv, analysis: GuestAnalysis, names: string[] | undefined, iops: number | undefined) {
  const types = await env.cloud.describeInstanceTypes(names);
  return chooseInstanceType(types, { vcpus: analysis.vcpus, ramMiB: analysis.ramMiB, iops: iops ?? 0, licences: analysis.licences }).name;
}

export function need<T>(value: T | undefined | null, what: string): T {
  if (value === undefined || value === null) throw new SpillwayError('E_STEP_ORDER', `${what} is not known yet: an earlier step did not record it`);
  return value;
}
