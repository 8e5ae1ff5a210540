import { describe, expect, it } from 'vitest';
import { fromPromise } from 'xstate';
import { SpillwayError } from '../src/errors.js';
import { cloneMachine } from '../src/machines/clone.js';
import { containerTransferMachine } from '../src/machines/container-transfer.js';
import { containerizeMachine } from '../src/machines/containerize.js';
import { cutoverMachine, NOT_CONVERGING } from '../src/machines/cutover.js';
import { instanceMachine, report } from '../src/machines/instance.js';
import { migrationMachine } from '../src/machines/migration.js';
import { proxyResizeMachine, type ResizeRequest } from '../src/machines/proxy-resize.js';
import { reverseMachine } from '../src/machines/reverse.js';
import { TRANSFER_STEPS, transferMachine, type TransferData, type TransferInput } from '../src/machines/transfer.js';
import { cloneActors } from '../src/machines/actors/clone.js';
import { containerTransferActors } from '../src/machines/actors/container-transfer.js';
import { containerizeActorsFor } from '../src/machines/actors/containerize.js';
import { cutoverActors } from '../src/machines/actors/cutover.js';
import { migrationActors } from '../src/machines/actors/migration.js';
import { proxyResizeActors } from '../src/machines/actors/proxy-resize.js';
import { reverseActors } from '../src/machines/actors/reverse.js';
import { transferActors } from '../src/machines/actors/transfer.js';
import { config, harness, S, type Harness } from './helpers/machine-harness.js';

const o2c = (vmId: string, kind: TransferInput['kind'] = 'stateless'): TransferInput => ({
  vmId, kind, direction: 'O2C', stagingImageId: 'ami-staging', zone: 'us-east-1a', homeHostId: 'h1',
});

async function runTransfer(h: Harness, input: TransferInput, id = `${input.vmId}-transfer`) {
  const running = h.rt.start({ machine: transferMachine.provide({ actors: transferActors(h.env) }), id, src: `vm/${input.vmId}` }, { id, transfer: input, config: config() });
  await h.world.run();
  return running.done;
}

async function seedDisk(h: Harness, diskId: string): Promise<Buffer> {
  const dev = h.env.hypervisor.openDisk(diskId);
  const content = Buffer.alloc(64 * 1024);
  for (let i = 0; i < content.length; i++) content[i] = (i * 31 + diskId.length) & 0xff;
  await dev.write(0, content);
  return dev.read(0, 1 << 20);
}

describe('transfer then reverse (O2C, SimWorld, test doubles)', () => {
  it('adapts the guest for real, and reverse leaves the config equal to the original and the disk = original + acknowledged writes', async () => {
    const h = harness();
    const hv = h.env.hypervisor;
    hv.addVm('web', 'h1');
    const original = structuredClone(hv.vm('web').guest);
    const dataBefore = await seedDisk(h, 'web-d1');
    const swapBefore = await seedDisk(h, 'web-d2');

    const out = await runTransfer(h, o2c('web'));
    expect(out.outcome).toBe('ok');
    expect(h.states('transfer')).toEqual([
      'deactivate', 'snapshot', 'mount', 'classify', 'adapt.analyse', 'adapt.disableDevices', 'adapt.installDrivers',
      'adapt.remapMounts', 'adapt.rewriteNetwork', 'adapt.enableMonitoring', 'adapt.prioritizeBlocks', 'adapt.chooseServer',
      'provision', 'startCacheFill', 'loadStagingImage', 'stageBoot', 'targetBoot', 'running',
    ]);

    // Every adaptation changed the guest through updateGuest.
    const adapted = hv.vm('web').guest;
    expect(adapted.devices.filter((d) => d.kind === 'pvscsi' || d.kind === 'vmxnet3' || d.kind === 'guest-tools').every((d) => !d.enabled)).toBe(true);
    expect(adapted.drivers).toEqual(expect.arrayContaining(['nvme', 'ena', 'nbd']));
    expect(adapted.mounts.map((m) => m.device)).toEqual(['nbd:exp-web-d0p1', 'nbd:exp-web-d1p1', 'local:exp-web-d2p1']);
    expect(adapted.bootDevice).toBe('nbd:exp-web-d0');
    expect(adapted.network).toMatchObject({ dhcp: true, ipAddress: '', dns: ['169.254.169.253'] });
    expect(adapted.monitoringAgent.target).toBe('cloud');
    expect(out.data.persistence).toEqual({ 'web-d0': 'on-prem', 'web-d1': 'on-prem', 'web-d2': 'cloud-only' });
    expect(out.data.serverType).toBe('m5.xlarge');
    expect([...hv.leases.values()]).toEqual(['web-transfer', 'web-transfer', 'web-transfer']);
    expect(hv.vm('web').hostId).toBeNull();

    // The guest writes while running in the cloud; write-behind acknowledges them.
    const w1 = Buffer.alloc(8192, 0xab);
    const w2 = Buffer.alloc(4096, 0xcd);
    h.env.proxy.guestWrite('web', 'web-d1', 4096, w1);
    h.env.proxy.guestWrite('web', 'web-d1', 1 << 19, w2);
    h.env.proxy.guestWrite('web', 'web-d2', 0, Buffer.alloc(4096, 0xee));

    const data = out.data as TransferData;
    const rid = 'web-reverse';
    const rev = h.rt.start({ machine: reverseMachine.provide({ actors: reverseActors(h.env) }), id: rid, src: 'vm/web' }, {
      id: rid,
      reverse: {
        vmId: 'web', preMoveSnapshotId: data.snapshotId!, originalGuest: data.originalGuest!, instanceId: data.instanceId!,
        targetHostId: 'h1', exports: data.exports!, persistence: data.persistence!, leaseOwner: 'web-transfer', powerOn: true,
      },
      config: config(),
    });
    await h.world.run();
    const rout = await rev.done;
    expect(rout.outcome).toBe('ok');
    expect(h.states('reverse')).toEqual(['deactivateRemote', 'flushWrites', 'snapshotLocal', 'restoreConfig', 'recreateCloudOnlyDisks', 'remount', 'reactivate', 'releaseRemote', 'restored']);

    expect(hv.vm('web').guest).toEqual(original);
    const expected = Buffer.from(dataBefore);
    w1.copy(expected, 4096);
    w2.copy(expected, 1 << 19);
    expect((await hv.openDisk('web-d1').read(0, 1 << 20)).equals(expected)).toBe(true);
    // The cloud-only swap disk never came back on-prem.
    expect((await hv.openDisk('web-d2').read(0, 1 << 20)).equals(swapBefore)).toBe(true);
    expect(hv.leases.size).toBe(0);
    expect(h.env.cloud.live()).toEqual([]);
    expect(hv.vm('web')).toMatchObject({ hostId: 'h1', power: 'running' });
    expect(rout.data.flushedBytes).toBe(8192 + 4096);
  });

  it('is deterministic: the same seed gives the same trace hash', async () => {
    const hashes: string[] = [];
    for (let i = 0; i < 2; i++) {
      const h = harness(42);
      h.env.hypervisor.addVm('web', 'h1');
      h.env.faults.inject('cloud.runInstances', 'InsufficientInstanceCapacity', { retryable: true });
      await runTransfer(h, o2c('web', 'stateful'));
      hashes.push(h.world.trace.hash());
    }
    expect(hashes[0]).toBe(hashes[1]);
  });

  it('runs O2O onto another on-prem host and stateful transfers capture and restore memory', async () => {
    const h = harness();
    h.env.hypervisor.addVm('db', 'h1');
    const out = await runTransfer(h, { vmId: 'db', kind: 'stateful', direction: 'O2O', homeHostId: 'h1' });
    expect(out.outcome).toBe('ok');
    expect(h.states('transfer')[0]).toBe('captureState');
    expect(h.states('transfer').slice(-2)).toEqual(['restoreState', 'running']);
    expect(out.data.targetHostId).toBe('h2');
    expect(h.env.hypervisor.vm('db')).toMatchObject({ hostId: 'h2', power: 'running' });
    expect(h.env.hypervisor.restoredMemory).toEqual(['db:8589934592']);
    // On-prem target: drivers for the on-prem platform only; devices stay enabled.
    expect(h.env.hypervisor.vm('db').guest.devices.every((d) => d.enabled)).toBe(true);
    expect(h.env.cloud.live()).toEqual([]);
  });
});

describe('transfer rollback', () => {
  const steps = TRANSFER_STEPS.map((s) => s.split('.').pop()!);
  it.each(steps)('rolls back to a clean state after a failure at %s', async (failAt) => {
    const h = harness();
    const hv = h.env.hypervisor;
    hv.addVm('app', 'h1');
    const original = structuredClone(hv.vm('app').guest);
    const actors = transferActors(h.env) as Record<string, unknown>;
    actors[failAt] = fromPromise(async () => {
      throw new SpillwayError('E_BOOM', `injected failure at ${failAt}`);
    });
    const id = 'app-transfer';
    const running = h.rt.start({ machine: transferMachine.provide({ actors: actors as never }), id, src: 'vm/app' }, { id, transfer: o2c('app', 'stateful'), config: config() });
    await h.world.run();
    const out = await running.done;
    expect(out.outcome).toBe('rolled-back');
    expect(out.failure).toMatchObject({ code: 'E_BOOM', retryable: false });
    expect(h.states('transfer').slice(-2)).toEqual(['rollingBack', 'rolledBack']);
    // Clean: config, placement and power as before; no leases, no cloud instances, no proxy target, no snapshot left.
    expect(hv.vm('app').guest).toEqual(original);
    expect(hv.vm('app')).toMatchObject({ hostId: 'h1', power: 'running' });
    expect(hv.leases.size).toBe(0);
    expect(h.env.cloud.live()).toEqual([]);
    expect(h.env.proxy.vms.get('app')?.target).toBeUndefined();
    expect(hv.snapshots.size).toBe(0);
    expect(h.events.some((e) => e.type === 'machine.done' && e.data.outcome === 'rolled-back')).toBe(true);
  });

  it('rolls back on an operator ROLLBACK mid-flow, and a rollback that keeps failing ends failed', async () => {
    const h = harness();
    h.env.hypervisor.addVm('app', 'h1');
    const id = 'app-transfer';
    const running = h.rt.start({ machine: transferMachine.provide({ actors: transferActors(h.env) }), id, src: 'vm/app' }, { id, transfer: o2c('app'), config: config() });
    await h.world.run({ untilUs: 500_000 });
    running.send({ type: 'ROLLBACK', reason: 'operator changed their mind' });
    await h.world.run();
    expect((await running.done)).toMatchObject({ outcome: 'rolled-back', failure: { code: 'E_ROLLBACK_REQUESTED' } });

    const h2 = harness();
    h2.env.hypervisor.addVm('app', 'h1');
    h2.env.faults.inject('cloud.runInstances', 'Unsupported');
    h2.env.faults.inject('proxy.unmountDisk', 'InternalError', { times: 10, retryable: true });
    const r2 = h2.rt.start({ machine: transferMachine.provide({ actors: transferActors(h2.env) }), id, src: 'vm/app' }, { id, transfer: o2c('app'), config: config() });
    await h2.world.run();
    const out2 = await r2.done;
    expect(out2.outcome).toBe('failed');
    expect(h2.states('transfer').filter((s) => s === 'rollingBack.backoff')).toHaveLength(3);
  });
});

describe('retries and restarts on virtual time', () => {
  it('retries a retryable provider error with exponential backoff on the World clock', async () => {
    const h = harness();
    h.env.hypervisor.addVm('web', 'h1');
    h.env.faults.inject('cloud.runInstances', 'InsufficientInstanceCapacity', { times: 2, retryable: true });
    const out = await runTransfer(h, o2c('web'));
    expect(out.outcome).toBe('ok');
    const provision = h.events.filter((e) => e.type === 'machine.state' && String(e.data.state).startsWith('provision'));
    expect(provision.map((e) => e.data.state)).toEqual(['provision', 'provision.backoff', 'provision', 'provision.backoff', 'provision']);
    const waits = [provision[2]!.t - provision[1]!.t, provision[4]!.t - provision[3]!.t];
    expect(waits).toEqual([2 * S, 4 * S]);
    expect(h.events.filter((e) => e.type === 'machine.error').map((e) => e.data.code)).toEqual(['InsufficientInstanceCapacity', 'InsufficientInstanceCapacity']);
  });

  it('times out a step that never answers, from the configured timeout', async () => {
    const h = harness();
    h.env.hypervisor.addVm('web', 'h1');
    const actors = transferActors(h.env) as Record<string, unknown>;
    let calls = 0;
    actors.stageBoot = fromPromise(async () => {
      calls++;
      if (calls === 1) await new Promise(() => undefined);
      return { stagingBootBytes: 1 };
    });
    const id = 'web-transfer';
    const running = h.rt.start({ machine: transferMachine.provide({ actors: actors as never }), id, src: 'vm/web' }, { id, transfer: o2c('web'), config: config() });
    await h.world.run();
    expect((await running.done).outcome).toBe('ok');
    const entered = h.events.find((e) => e.type === 'machine.state' && e.data.state === 'stageBoot')!;
    const timeout = h.events.find((e) => e.type === 'machine.error' && e.data.code === 'E_TIMEOUT')!;
    expect(timeout.t - entered.t).toBe(60 * S);
  });

  it('resumes after a controller restart: the deadline is re-armed from context and provider calls stay idempotent', async () => {
    const h = harness();
    h.env.hypervisor.addVm('web', 'h1');
    const id = 'web-transfer';
    let hang = false;
    const build = () => {
      const actors = transferActors(h.env) as Record<string, unknown>;
      const real = (actors.targetBoot as ReturnType<typeof fromPromise>);
      actors.targetBoot = fromPromise(async (args: { input: never; signal: AbortSignal }) => {
        if (hang) await new Promise(() => undefined);
        return (real as unknown as { config: (a: unknown) => Promise<unknown> }).config(args);
      });
      return transferMachine.provide({ actors: actors as never });
    };
    const spec = { machine: build(), id, src: 'vm/web' };
    const first = h.rt.start(spec, { id, transfer: o2c('web'), config: config() });
    // Run until the VM is in targetBoot, then the controller dies.
    while (first.state !== 'targetBoot') await h.world.run({ untilUs: h.world.nowUs + 1_000_000 });
    const enteredAt = h.events.find((e) => e.data.state === 'targetBoot')!.t;
    await h.world.run({ untilUs: h.world.nowUs + 10 * S });
    const crashedAt = h.world.nowUs;
    first.crash();
    const instancesBefore = h.env.cloud.instances.size;

    // The restarted controller's boot watcher hangs: only the re-armed deadline can move the flow on.
    hang = true;
    const second = h.rt.restore({ ...spec, machine: build() });
    expect(second.state).toBe('targetBoot');
    await h.world.run({ untilUs: enteredAt + 120 * S - 1 });
    expect(second.state).toBe('targetBoot');
    hang = false;
    await h.world.run();
    const out = await second.done;
    expect(out.outcome).toBe('ok');
    const timeout = h.events.find((e) => e.type === 'machine.error' && e.data.code === 'E_TIMEOUT')!;
    expect(timeout.t).toBe(enteredAt + 120 * S);
    expect(h.events.find((e) => e.type === 'machine.restored')?.data).toMatchObject({ state: 'targetBoot', timerDueInUs: enteredAt + 120 * S - crashedAt });
    expect(h.env.cloud.instances.size).toBe(instancesBefore);
  });

  it('a restart while runInstances is in flight does not create a second instance (client token)', async () => {
    const h = harness();
    h.env.hypervisor.addVm('web', 'h1');
    const id = 'web-transfer';
    const spec = { machine: transferMachine.provide({ actors: transferActors(h.env) }), id, src: 'vm/web' };
    const first = h.rt.start(spec, { id, transfer: o2c('web'), config: config() });
    while (!h.env.cloud.calls.includes('runInstances')) await h.world.run({ untilUs: h.world.nowUs + 10_000 });
    expect(first.state).toBe('provision');
    first.crash();
    await h.world.run({ untilUs: h.world.nowUs + S });
    const second = h.rt.restore(spec);
    await h.world.run();
    expect((await second.done).outcome).toBe('ok');
    expect(h.env.cloud.calls.filter((c) => c === 'runInstances')).toHaveLength(2);
    expect(h.env.cloud.instances.size).toBe(1);
  });
});

describe('clone (FIG 12/14)', () => {
  it('scales out to 10 clones from one snapshot: the source keeps running, identities are unique, siblings feed reads', async () => {
    const h = harness();
    const hv = h.env.hypervisor;
    hv.addVm('web', 'h1');
    const original = structuredClone(hv.vm('web').guest);
    const snap = await (async () => {
      const p = hv.snapshot('web', 'scale-out');
      await h.world.run();
      return p;
    })();
    const runs = [];
    for (let i = 1; i <= 10; i++) {
      const id = `web-clone-${i}`;
      runs.push(h.rt.start({ machine: cloneMachine.provide({ actors: cloneActors(h.env) }), id, src: `vm/web-c${i}` }, {
        id, config: config(),
        clone: {
          sourceVmId: 'web', cloneIndex: i, stagingImageId: 'ami-staging', persistence: 'cloud-only', siblingReads: true,
          siblingSources: Array.from({ length: i - 1 }, (_, k) => `target/web-c${k + 1}`), snapshotId: snap.id,
        },
      }));
    }
    await h.world.run();
    const outs = await Promise.all(runs.map((r) => r.done));
    expect(outs.map((o) => o.outcome)).toEqual(Array(10).fill('ok'));
    const names = outs.map((o) => o.data.identity!.machineName);
    const ids = outs.map((o) => o.data.identity!.machineId);
    expect(new Set(names).size).toBe(10);
    expect(new Set(ids).size).toBe(10);
    expect(h.env.directory.members.size).toBe(10);
    expect(outs.every((o) => o.data.guest!.identity.domainJoined === false && o.data.guest!.network.hostname === o.data.identity!.machineName)).toBe(true);
    expect(hv.vm('web')).toMatchObject({ power: 'running', hostId: 'h1' });
    expect(hv.vm('web').guest).toEqual(original);
    expect(hv.leases.size).toBe(0);
    expect(h.env.cloud.live()).toHaveLength(10);
    expect(h.env.proxy.openedTargets.find((t) => t.vmId === 'web-c10')!.siblingSources).toHaveLength(9);
    expect(h.states('clone')).toContain('adapt.regenerateIdentity');
  });

  it('rolls a failed clone back: the instance, the cloned disks and the directory entry go away', async () => {
    const h = harness();
    h.env.hypervisor.addVm('web', 'h1');
    h.env.faults.inject('proxy.awaitBoot.target', 'E_BOOT_FAILED');
    const id = 'web-clone-1';
    const run = h.rt.start({ machine: cloneMachine.provide({ actors: cloneActors(h.env) }), id, src: 'vm/web-c1' }, {
      id, config: config(),
      clone: { sourceVmId: 'web', cloneIndex: 1, stagingImageId: 'ami-staging', persistence: 'on-prem', siblingReads: false, siblingSources: [] },
    });
    await h.world.run();
    expect((await run.done).outcome).toBe('rolled-back');
    expect(h.env.cloud.live()).toEqual([]);
    expect(h.env.proxy.clones.size).toBe(0);
    expect(h.env.hypervisor.snapshots.size).toBe(0);
  });
});

describe('cut-over (FIG 15)', () => {
  async function runCutover(dirtyRateBytesPerS: number) {
    const h = harness();
    h.env.hypervisor.addVm('db', 'h1', { memoryBytes: 8 * 1024 ** 3, dirtyRateBytesPerS });
    const [standby] = await (async () => {
      const p = h.env.cloud.runInstances({ clientToken: 'standby', imageId: 'ami-staging', instanceType: 'r5.xlarge', count: 1 });
      await h.world.run();
      return p;
    })();
    const id = 'db-cutover';
    const run = h.rt.start({ machine: cutoverMachine.provide({ actors: cutoverActors(h.env) }), id, src: 'vm/db' }, {
      id, config: config({ defaultTimeoutUs: 300 * S }),
      cutover: { sourceVmId: 'db', targetId: standby!.id, maxRounds: 30, switchBudgetUs: 500_000, stallRatio: 0.9, stallRounds: 3 },
    });
    await h.world.run();
    return { h, out: await run.done, standby: standby! };
  }

  it('converges under a hot dirty rate below the link rate, then switches briefly', async () => {
    const { h, out, standby } = await runCutover(50 * 1024 ** 2);
    expect(out.outcome).toBe('ok');
    const rounds = out.data.history!;
    // Each round leaves less to send: dirty rate / link rate = 0.4.
    for (let i = 1; i < rounds.length; i++) expect(rounds[i]!.dirtyBytes).toBeLessThan(rounds[i - 1]!.dirtyBytes);
    expect(out.data.predictedSwitchUs!).toBeLessThanOrEqual(500_000);
    expect(out.data.rounds).toBeGreaterThanOrEqual(4);
    expect(h.states('cutover').slice(-5)).toEqual(['switchover.pauseSource', 'switchover.finalCopy', 'switchover.activateTarget', 'switchover.retireSource', 'cutOver']);
    expect(h.env.hypervisor.vm('db').hostId).toBeNull();
    expect(h.env.cloud.instances.get(standby.id)!.state).toBe('running');
    console.log(`cut-over converged after ${out.data.rounds} rounds; final copy ${out.data.finalCopyBytes} bytes, predicted pause ${out.data.predictedSwitchUs}us`);
  });

  it('fails with NOT_CONVERGING when the dirty rate outruns the link, and the source keeps running', async () => {
    const { h, out, standby } = await runCutover(200 * 1024 ** 2);
    expect(out.outcome).toBe('rolled-back');
    expect(out.failure).toMatchObject({ code: NOT_CONVERGING, step: 'mirror' });
    expect(out.failure!.message).toMatch(/did not converge after 3 rounds/);
    expect(out.data.stalls).toBe(3);
    expect(h.events.some((e) => e.type === 'machine.error' && e.data.code === NOT_CONVERGING)).toBe(true);
    expect(h.env.hypervisor.vm('db')).toMatchObject({ power: 'running', hostId: 'h1' });
    expect(h.env.cloud.instances.get(standby.id)!.state).toBe('terminated');
  });
});

describe('migration (FIG 17)', () => {
  it('is interrupted (pause and controller restart) and resumes from the proxy log with shortening intervals', async () => {
    const h = harness();
    h.env.hypervisor.addVm('web', 'h1');
    const [inst] = await (async () => {
      const p = h.env.cloud.runInstances({ clientToken: 'web-burst', imageId: 'ami-staging', instanceType: 'm5.xlarge', count: 1 });
      await h.world.run();
      return p;
    })();
    const id = 'web-migration';
    const spec = { machine: migrationMachine.provide({ actors: migrationActors(h.env) }), id, src: 'vm/web' };
    const input = {
      id, config: config(),
      migration: {
        vmId: 'web', instanceId: inst!.id, zone: 'us-east-1a', diskIds: ['web-d0', 'web-d1'], volumeType: 'gp3',
        syncChunkBytes: 64 * 1024 ** 2, initialIntervalUs: 60 * S, minIntervalUs: 5 * S, intervalFactor: 0.5,
      },
    };
    const first = h.rt.start(spec, input);
    const progress = () => h.env.proxy.vms.get('web')?.migration?.syncedBytes ?? 0;
    while (progress() < 192 * 1024 ** 2) await h.world.run({ untilUs: h.world.nowUs + S });
    first.send({ type: 'PAUSE' });
    await h.world.run({ untilUs: h.world.nowUs + 300 * S });
    expect(first.state).toBe('paused');
    const pausedAt = progress();
    expect(pausedAt).toBe(192 * 1024 ** 2);

    // The controller restarts while paused; the pause deadline survives.
    first.crash();
    const second = h.rt.restore(spec);
    expect(second.state).toBe('paused');
    second.send({ type: 'RESUME' });
    // Writes keep landing while migrating; they are re-synced.
    h.env.proxy.vms.get('web')!.target = { instanceId: inst!.id, disks: [{ diskId: 'web-d1', exportName: 'exp-web-d1', policy: 'on-prem' }], siblingSources: [] };
    h.env.proxy.guestWrite('web', 'web-d1', 0, Buffer.alloc(4096, 1));
    while (second.state !== 'awaitWindow') await h.world.run({ untilUs: h.world.nowUs + S });
    expect(progress()).toBe(512 * 1024 ** 2);
    second.send({ type: 'MAINTENANCE_WINDOW' });
    await h.world.run();
    const out = await second.done;
    expect(out.outcome).toBe('ok');
    expect(h.states('migration').slice(-5)).toEqual(['cutover.stopInstance', 'cutover.attachVolumes', 'cutover.reboot', 'cutover.detachProxies', 'migrated']);
    const vols = [...h.env.cloud.volumes.values()];
    expect(vols.map((v) => v.attachedTo)).toEqual([inst!.id, inst!.id]);
    expect(h.env.cloud.instances.get(inst!.id)!.state).toBe('running');
    expect(h.env.proxy.vms.get('web')!.migration).toBeUndefined();
    // Intervals between rounds shrink: 30s, 15s, 7.5s, then the 5s floor.
    const waits = h.events.filter((e) => e.type === 'machine.state' && e.data.machine === 'migration' && e.data.state === 'syncWait').length;
    expect(waits).toBeGreaterThanOrEqual(6);
    expect(out.data.waitUs).toBe(5 * S);
    expect(out.data.pauses).toBe(1);
  });
});

describe('proxy resize (§4.4)', () => {
  async function resize(h: Harness, request: ResizeRequest, instanceId: string) {
    const id = `resize-${h.world.nowUs}`;
    const run = h.rt.start({ machine: proxyResizeMachine.provide({ actors: proxyResizeActors(h.env) }), id, src: 'proxy/cloud' }, {
      id, config: config(), resize: { proxyId: 'cloud-proxy', instanceId, request },
    });
    await h.world.run();
    return run.done;
  }

  it('grows and shrinks the cache online, scales up and scales out under load', async () => {
    const h = harness();
    h.env.hypervisor.addVm('web', 'h1');
    const [proxyInst] = await (async () => {
      const p = h.env.cloud.runInstances({ clientToken: 'proxy', imageId: 'ami-proxy', instanceType: 'm5.large', count: 1 });
      await h.world.run();
      return p;
    })();
    // Load: a VM streams through the proxy and keeps writing.
    const opened = h.env.proxy.openTarget({ vmId: 'web', instanceId: 'i-x', disks: [{ diskId: 'web-d1', exportName: 'exp-web-d1', policy: 'on-prem' }], siblingSources: [] });
    await h.world.run();
    await opened;
    let writes = 0;
    const load = (): void => {
      h.env.proxy.guestWrite('web', 'web-d1', (writes++ % 256) * 4096, Buffer.alloc(4096, writes & 0xff));
      if (writes < 2000) h.world.clock.schedule(100_000, load);
    };
    load();

    const grow = await resize(h, { kind: 'cache', capacityBytes: 20 * 1024 ** 3 }, proxyInst!.id);
    expect(grow).toMatchObject({ outcome: 'ok', data: { previousCapacityBytes: 10 * 1024 ** 3, capacityBytes: 20 * 1024 ** 3 } });
    const shrink = await resize(h, { kind: 'cache', capacityBytes: 4 * 1024 ** 3 }, proxyInst!.id);
    expect(shrink.data).toMatchObject({ capacityBytes: 4 * 1024 ** 3, usedBytes: 4 * 1024 ** 3 });

    const up = await resize(h, { kind: 'scaleUp', instanceType: 'm5.2xlarge' }, proxyInst!.id);
    expect(up.outcome).toBe('ok');
    expect(h.env.cloud.instances.get(proxyInst!.id)).toMatchObject({ type: 'm5.2xlarge', state: 'running' });
    expect(h.env.proxy.drained.size).toBe(0);

    const out = await resize(h, { kind: 'scaleOut', count: 3, instanceType: 'm5.large', imageId: 'ami-proxy' }, proxyInst!.id);
    expect(out.outcome).toBe('ok');
    expect(h.env.proxy.peers.get('cloud-proxy')).toHaveLength(3);
    expect(writes).toBeGreaterThan(100);
    expect(h.states('proxyResize')).toEqual(expect.arrayContaining(['cache.resizeCache', 'scaleUp.modifyType', 'scaleOut.joinPeers', 'resized']));
  });

  it('rolls a failed scale-up back to the old type, running and resumed', async () => {
    const h = harness();
    const [proxyInst] = await (async () => {
      const p = h.env.cloud.runInstances({ clientToken: 'proxy', imageId: 'ami-proxy', instanceType: 'm5.large', count: 1 });
      await h.world.run();
      return p;
    })();
    h.env.faults.inject('cloud.startInstances', 'InsufficientInstanceCapacity', { times: 1, retryable: false });
    const out = await resize(h, { kind: 'scaleUp', instanceType: 'm5.2xlarge' }, proxyInst!.id);
    expect(out.outcome).toBe('rolled-back');
    expect(h.env.cloud.instances.get(proxyInst!.id)).toMatchObject({ type: 'm5.large', state: 'running' });
    expect(h.env.proxy.drained.size).toBe(0);
  });
});

describe('containers (FIG 25/26/27)', () => {
  it('containerizes a VM (FIG 25) and rolls back cleanly when the build fails', async () => {
    const h = harness();
    h.env.hypervisor.addVm('app', 'h1');
    const id = 'app-containerize';
    const run = h.rt.start({ machine: containerizeMachine.provide({ actors: containerizeActorsFor(h.env) }), id, src: 'vm/app' }, {
      id, config: config(), containerize: { vmId: 'app', mode: 'snapshot' },
    });
    await h.world.run();
    const out = await run.done;
    expect(out.outcome).toBe('ok');
    expect(out.data.manifest).toMatchObject({ template: 'linux/ubuntu:22.04', vcpus: 2, ramMiB: 3000, network: { hostname: 'app', ipAddress: '10.0.0.7' } });
    expect(out.data.manifest!.mounts.map((m) => m.mountPoint)).toEqual(['/data', 'swap']);
    expect(h.env.containers.images.has(out.data.imageId!)).toBe(true);
    expect(h.env.hypervisor.vm('app').power).toBe('running');

    const h2 = harness();
    h2.env.hypervisor.addVm('app', 'h1');
    h2.env.faults.inject('containers.buildImage', 'E_TEMPLATE_BROKEN');
    const run2 = h2.rt.start({ machine: containerizeMachine.provide({ actors: containerizeActorsFor(h2.env) }), id, src: 'vm/app' }, {
      id, config: config(), containerize: { vmId: 'app', mode: 'deactivate' },
    });
    await h2.world.run();
    expect((await run2.done).outcome).toBe('rolled-back');
    expect(h2.env.hypervisor.vm('app')).toMatchObject({ power: 'running', hostId: 'h1' });
  });

  it('moves a VM (FIG 26) and a container (FIG 27) onto the framework with the best idle ratio', async () => {
    const h = harness();
    h.env.hypervisor.addVm('app', 'h1');
    h.env.containers.frameworkList.push(
      { id: 'fw-a', hostId: 'i-a', kind: 'system', idleContainers: 2, busyContainers: 8, freeVcpus: 16, freeRamMiB: 65536 },
      { id: 'fw-b', hostId: 'i-b', kind: 'system', idleContainers: 6, busyContainers: 2, freeVcpus: 16, freeRamMiB: 65536 },
      { id: 'fw-c', hostId: 'i-c', kind: 'system', idleContainers: 9, busyContainers: 1, freeVcpus: 1, freeRamMiB: 1024 },
    );
    const vmRun = h.rt.start({ machine: containerTransferMachine.provide({ actors: containerTransferActors(h.env) }), id: 'app-ct', src: 'vm/app' }, {
      id: 'app-ct', config: config(), transfer: { kind: 'vm', vmId: 'app', site: 'remote' },
    });
    h.env.hypervisor.addVm('ctrhost', 'h2');
    h.env.hypervisor.diskMap.set('ctr-d0', { ...h.env.hypervisor.diskMap.get('ctrhost-d0')!, id: 'ctr-d0' });
    const ctrRun = h.rt.start({ machine: containerTransferMachine.provide({ actors: containerTransferActors(h.env) }), id: 'ctr-ct', src: 'vm/ctr-1' }, {
      id: 'ctr-ct', config: config(), transfer: { kind: 'container', containerId: 'ctr-1', diskIds: ['ctr-d0'], site: 'remote' },
    });
    await h.world.run();
    const [vmOut, ctrOut] = await Promise.all([vmRun.done, ctrRun.done]);
    expect(vmOut.outcome).toBe('ok');
    expect(vmOut.data.frameworkId).toBe('fw-b');
    expect(h.states('containerTransfer')).toEqual(expect.arrayContaining(['containerize.buildImage', 'loadImage', 'running']));
    expect(ctrOut.outcome).toBe('ok');
    expect(ctrOut.data.frameworkId).toBe('fw-b');
    expect(ctrOut.data.manifest!.mounts[0]!.source).toBe('nbd:exp-ctr-d0');
    expect(ctrOut.data.manifest!.network).toMatchObject({ ipAddress: '10.1.0.9', dns: ['169.254.169.253'] });
    expect(h.env.containers.running.size).toBe(2);
  });
});

describe('instance (goal-state reporting, seed 001)', () => {
  it('reports the current state relative to the goal, and an in-between state that outlives its timeout fails', async () => {
    const h = harness();
    const id = 'web-instance';
    const run = h.rt.start({ machine: instanceMachine, id, src: 'vm/web' }, {
      id, goal: 'onprem', instance: { vmId: 'web', initial: 'onprem' }, config: config({ timeoutsUs: { deactivated: 300 * S, decoupled: 300 * S, migrating: 86_400 * S } }),
    });
    const rep = () => report(run.snapshot as never);
    expect(rep()).toMatchObject({ current: 'onpremRunning', relation: 'at-goal' });
    run.send({ type: 'SET_GOAL', goal: 'cloud' });
    expect(rep().relation).toBe('diverged');
    run.send({ type: 'DEACTIVATED' });
    expect(rep().relation).toBe('converging');
    run.send({ type: 'DECOUPLED' });
    run.send({ type: 'STREAMING' });
    expect(rep()).toMatchObject({ current: 'cloudStreaming', relation: 'at-goal' });
    // A reverse: the goal goes home, the VM is returning, a rollback puts it back streaming.
    run.send({ type: 'SET_GOAL', goal: 'onprem' });
    run.send({ type: 'RETURNING' });
    expect(rep()).toMatchObject({ current: 'returning', relation: 'converging' });
    run.send({ type: 'STREAMING' });
    run.send({ type: 'SET_GOAL', goal: 'cloud' });
    expect(rep()).toMatchObject({ current: 'cloudStreaming', relation: 'at-goal' });
    run.send({ type: 'REACTIVATED' });
    run.send({ type: 'DEACTIVATED' });
    await h.world.run({ untilUs: h.world.nowUs + 301 * S });
    expect(rep()).toMatchObject({ current: 'failed', relation: 'failed' });
    // A new goal in the same state is a line of its own.
    expect(h.events.filter((e) => e.type === 'machine.state').map((e) => [e.data.state, e.data.goal])).toEqual([
      ['onpremRunning', 'onprem'], ['onpremRunning', 'cloud'], ['deactivated', 'cloud'], ['decoupled', 'cloud'], ['cloudStreaming', 'cloud'],
      ['cloudStreaming', 'onprem'], ['returning', 'onprem'], ['cloudStreaming', 'onprem'], ['cloudStreaming', 'cloud'],
      ['onpremRunning', 'cloud'], ['deactivated', 'cloud'], ['failed', 'cloud'],
    ]);
  });
});
