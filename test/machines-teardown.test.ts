import { describe, expect, it } from 'vitest';
import { fromPromise } from 'xstate';
import { cloneMachine, type CloneOutput } from '../src/machines/clone.js';
import { cloneDropMachine, type CloneDropInput } from '../src/machines/clone-drop.js';
import type { FlowConfig } from '../src/machines/flow.js';
import { retireMachine, type RetireInput } from '../src/machines/retire.js';
import { transferMachine } from '../src/machines/transfer.js';
import { cloneActors } from '../src/machines/actors/clone.js';
import { cloneDropActors } from '../src/machines/actors/clone-drop.js';
import { retireActors } from '../src/machines/actors/retire.js';
import { transferActors } from '../src/machines/actors/transfer.js';
import { config, harness, S, type Harness } from './helpers/machine-harness.js';

/** A step that never answers: only its timeout ends it. */
const hangs = fromPromise(() => new Promise<never>(() => undefined));

/** Clone `web` once (cloud-only writes, domain joined by the double's adaptation) and return what the clone machine produced. */
async function cloned(h: Harness, persistence: 'cloud-only' | 'on-prem' = 'cloud-only'): Promise<CloneOutput> {
  h.env.hypervisor.addVm('web', 'h1');
  const id = 'web-clone-1';
  const run = h.rt.start({ machine: cloneMachine.provide({ actors: cloneActors(h.env) }), id, src: 'vm/web-c1' }, {
    id, config: config(),
    clone: { sourceVmId: 'web', cloneIndex: 1, stagingImageId: 'ami-staging', persistence, siblingReads: false, siblingSources: [] },
  });
  await h.world.run();
  const out = await run.done;
  expect(out.outcome).toBe('ok');
  return out;
}

function dropInput(out: CloneOutput, persistence: 'cloud-only' | 'on-prem' = 'cloud-only'): CloneDropInput {
  return {
    cloneVmId: 'web-c1', cloneId: 'web-clone-1', instanceId: out.data.instanceId ?? null, persistence,
    exports: out.data.exports ?? [], siblingSources: [], identity: out.data.identity ?? null, domain: out.data.guest?.network.domain ?? null,
  };
}

async function drop(h: Harness, input: CloneDropInput, actors: Record<string, unknown> = cloneDropActors(h.env), cfg: FlowConfig = config()) {
  const id = 'web-clone-1-drop';
  const run = h.rt.start({ machine: cloneDropMachine.provide({ actors: actors as never }), id, src: 'vm/web-c1' }, { id, config: cfg, drop: input });
  await h.world.run();
  return run.done;
}

describe('clone-drop (the end of a scale-out)', () => {
  it('closes the target, terminates the instance, drops the clone disks and leaves the domain, in that order', async () => {
    const h = harness();
    const out = await cloned(h, 'on-prem');
    expect(h.env.directory.members.size).toBe(1);
    const done = await drop(h, dropInput(out, 'on-prem'));
    expect(done.outcome).toBe('ok');
    expect(h.states('cloneDrop')).toEqual(['flushWrites', 'closeTarget', 'terminate', 'dropDisks', 'leaveDomain', 'dropped']);
    expect(h.env.proxy.vms.get('web-c1')?.target).toBeUndefined();
    expect(h.env.cloud.live()).toEqual([]);
    expect(h.env.proxy.clones.size).toBe(0);
    expect(h.env.directory.members.size).toBe(0);
    // The template was never touched.
    expect(h.env.hypervisor.vm('web')).toMatchObject({ power: 'running', hostId: 'h1' });
  });

  it('a terminate that fails rolls back: the target opens again on the same instance, and the clone can serve', async () => {
    const h = harness();
    const out = await cloned(h);
    h.env.faults.inject('cloud.terminateInstances', 'UnauthorizedOperation');
    const done = await drop(h, dropInput(out));
    expect(done).toMatchObject({ outcome: 'rolled-back', failure: { step: 'terminate', code: 'UnauthorizedOperation' } });
    expect(h.states('cloneDrop').slice(-2)).toEqual(['rollingBack', 'rolledBack']);
    expect(h.env.proxy.vms.get('web-c1')?.target?.instanceId).toBe(out.data.instanceId);
    expect(h.env.cloud.live().map((i) => i.id)).toEqual([out.data.instanceId]);
    expect(h.env.proxy.clones.size).toBe(1);
    expect(h.env.directory.members.size).toBe(1);
  });

  it('a step past the terminate that fails cannot go back: the drop ends failed and names what is left behind', async () => {
    const h = harness();
    const out = await cloned(h);
    h.env.faults.inject('proxy.dropClone', 'E_EXPORT_BUSY');
    const done = await drop(h, dropInput(out));
    expect(done.outcome).toBe('failed');
    expect(done.data).toMatchObject({ targetClosed: true, terminated: true });
    const rollback = h.events.filter((e) => e.type === 'machine.error' && e.data.state === 'rollback').map((e) => String(e.data.message));
    expect(rollback[0]).toMatch(/cannot serve again; left behind: its copy-on-write exports, its machine account/);
    expect(h.env.cloud.live()).toEqual([]);
  });

  it('a step that never answers times out after its configured time, retries, and rolls back once attempts are spent', async () => {
    const h = harness();
    const out = await cloned(h);
    const actors = { ...cloneDropActors(h.env), terminate: hangs };
    const cfg = config({ timeoutsUs: { terminate: 45 * S }, retry: { maxAttempts: 2, backoffBaseUs: 2 * S, backoffMaxUs: 2 * S, backoffFactor: 1 } });
    const done = await drop(h, dropInput(out), actors, cfg);
    expect(done).toMatchObject({ outcome: 'rolled-back', failure: { step: 'terminate', code: 'E_TIMEOUT' } });
    expect(h.states('cloneDrop').filter((s) => s.startsWith('terminate'))).toEqual(['terminate', 'terminate.backoff', 'terminate']);
    const entered = h.events.find((e) => e.type === 'machine.state' && e.data.machine === 'cloneDrop' && e.data.state === 'terminate')!;
    const rolling = h.events.find((e) => e.type === 'machine.state' && e.data.machine === 'cloneDrop' && e.data.state === 'rollingBack')!;
    expect(rolling.t - entered.t).toBe(45 * S + 2 * S + 45 * S);
    expect(h.env.proxy.vms.get('web-c1')?.target).toBeDefined();
  });
});

/** Transfer `app` out (stateless O2C: leases held by the transfer, a pre-move snapshot) and return the retire input. */
async function transferred(h: Harness): Promise<RetireInput> {
  h.env.hypervisor.addVm('app', 'h1');
  const id = 'app-transfer';
  const run = h.rt.start({ machine: transferMachine.provide({ actors: transferActors(h.env) }), id, src: 'vm/app' }, {
    id, config: config(), transfer: { vmId: 'app', kind: 'stateless', direction: 'O2C', stagingImageId: 'ami-staging', zone: 'us-east-1a', homeHostId: 'h1' },
  });
  await h.world.run();
  const out = await run.done;
  expect(out.outcome).toBe('ok');
  return { vmId: 'app', exports: out.data.exports ?? [], leaseOwner: id, snapshotId: out.data.snapshotId ?? null };
}

async function retire(h: Harness, input: RetireInput, actors: Record<string, unknown> = retireActors(h.env), cfg: FlowConfig = config()) {
  const id = 'app-retire';
  const run = h.rt.start({ machine: retireMachine.provide({ actors: actors as never }), id, src: 'vm/app' }, { id, config: cfg, retire: input });
  await h.world.run();
  return run.done;
}

describe('retire (the on-prem copy of a migrated VM)', () => {
  it('releases the leases, deletes the pre-move snapshot and checks the VM is off, deactivated and unleased', async () => {
    const h = harness();
    const input = await transferred(h);
    expect(h.env.hypervisor.leases.size).toBe(3);
    expect(h.env.hypervisor.snapshots.size).toBe(1);
    const done = await retire(h, input);
    expect(done.outcome).toBe('ok');
    expect(h.states('retire')).toEqual(['releaseDisks', 'deleteSnapshot', 'verify', 'retired']);
    expect(h.env.hypervisor.leases.size).toBe(0);
    expect(h.env.hypervisor.snapshots.size).toBe(0);
  });

  it('a VM that is back on a host is not retired: verify fails and the rollback takes the leases back', async () => {
    const h = harness();
    const input = await transferred(h);
    const back = h.env.hypervisor.reactivate('app', 'h1');
    await h.world.run();
    await back;
    const done = await retire(h, input);
    expect(done).toMatchObject({ outcome: 'rolled-back', failure: { step: 'verify', code: 'E_NOT_RETIRED' } });
    expect(done.failure!.message).toMatch(/still registered on h1/);
    expect([...h.env.hypervisor.leases.values()]).toEqual(['app-transfer', 'app-transfer', 'app-transfer']);
  });

  it('a release that never answers times out, and the rollback leaves the leases where they were', async () => {
    const h = harness();
    const input = await transferred(h);
    const actors = { ...retireActors(h.env), releaseDisks: hangs };
    const done = await retire(h, input, actors, config({ timeoutsUs: { releaseDisks: 30 * S }, retry: { maxAttempts: 1, backoffBaseUs: S, backoffMaxUs: S, backoffFactor: 1 } }));
    expect(done).toMatchObject({ outcome: 'rolled-back', failure: { step: 'releaseDisks', code: 'E_TIMEOUT' } });
    expect(h.env.hypervisor.leases.size).toBe(3);
    expect(h.env.hypervisor.snapshots.size).toBe(1);
  });
});
