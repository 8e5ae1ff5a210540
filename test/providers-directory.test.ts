import { describe, expect, it } from 'vitest';
import { EmulatedDirectory, fingerprintOf } from '../src/providers/emulated/directory.js';
import { EmulatedHypervisor } from '../src/providers/emulated/hypervisor/hypervisor.js';
import { SimWorld } from '../src/world/sim-world.js';
import type { TraceEvent } from '../src/world/types.js';
import { sampleGuest } from './machines-doubles.js';

/** Run the world until `p` settles; returns its value or its error. */
async function settle<T>(world: SimWorld, p: Promise<T>): Promise<{ value?: T; error?: { code?: string; retryable?: boolean; message: string } }> {
  const out = p.then((value) => ({ value }), (error: { code?: string; retryable?: boolean; message: string }) => ({ error }));
  await world.run({ maxEvents: 10_000 });
  return out;
}

function setup(latencies = {}) {
  const world = new SimWorld(5);
  const events: TraceEvent[] = [];
  world.trace.subscribe((e) => events.push(e));
  const dir = new EmulatedDirectory(world, { domains: ['corp.example', 'lab.example'], latencies, jitterFraction: 0 });
  return { world, dir, events };
}

describe('emulated directory', () => {
  it('joins a machine in modeled time, pins its id, and traces the join', async () => {
    const { world, dir, events } = setup({ joinUs: 3_000_000 });
    const r = await settle(world, dir.join({ machineName: 'WEB-C1', machineId: 'abc123', domain: 'corp.example' }));
    expect(r.error).toBeUndefined();
    expect(world.nowUs).toBe(3_000_000);
    expect(dir.account('corp.example', 'web-c1')).toMatchObject({ machineName: 'WEB-C1', machineId: 'abc123', fingerprint: fingerprintOf('abc123'), joinedAtUs: 3_000_000 });
    expect(events.filter((e) => e.type === 'directory.join').map((e) => e.data)).toEqual([{ machine: 'WEB-C1', ok: true, already: false }]);
  });

  it('joining again with the same name and id is a no-op (a re-run step); names compare case-insensitively', async () => {
    const { world, dir, events } = setup();
    await settle(world, dir.join({ machineName: 'db1', machineId: 'id-1', domain: 'corp.example' }));
    const again = await settle(world, dir.join({ machineName: 'DB1', machineId: 'id-1', domain: 'CORP.example' }));
    expect(again.error).toBeUndefined();
    expect(dir.accounts('corp.example')).toHaveLength(1);
    expect(events.filter((e) => e.type === 'directory.join').at(-1)!.data).toMatchObject({ already: true });
  });

  it('refuses a taken name with another id and a taken id under another name, without changing the accounts', async () => {
    const { world, dir, events } = setup();
    await settle(world, dir.join({ machineName: 'db1', machineId: 'id-1', domain: 'corp.example' }));
    const name = await settle(world, dir.join({ machineName: 'db1', machineId: 'id-2', domain: 'corp.example' }));
    expect(name.error).toMatchObject({ code: 'E_DIR_NAME_TAKEN', retryable: false });
    const id = await settle(world, dir.join({ machineName: 'db2', machineId: 'id-1', domain: 'corp.example' }));
    expect(id.error).toMatchObject({ code: 'E_DIR_ID_TAKEN', retryable: false });
    expect(id.error!.message).toContain('db1');
    expect(dir.accounts('corp.example').map((a) => [a.machineName, a.machineId])).toEqual([['db1', 'id-1']]);
    // Another domain is another namespace.
    expect((await settle(world, dir.join({ machineName: 'db1', machineId: 'id-2', domain: 'lab.example' }))).error).toBeUndefined();
    expect(events.filter((e) => e.type === 'directory.join' && e.data.ok === false).map((e) => e.data.code)).toEqual(['E_DIR_NAME_TAKEN', 'E_DIR_ID_TAKEN']);
  });

  it('leave removes the account (the name is free again); leaving an unknown machine is a no-op', async () => {
    const { world, dir } = setup();
    await settle(world, dir.join({ machineName: 'db1', machineId: 'id-1', domain: 'corp.example' }));
    expect((await settle(world, dir.leave({ machineName: 'db1', domain: 'corp.example' }))).error).toBeUndefined();
    expect((await settle(world, dir.leave({ machineName: 'db1', domain: 'corp.example' }))).error).toBeUndefined();
    expect((await settle(world, dir.join({ machineName: 'db1', machineId: 'id-9', domain: 'corp.example' }))).error).toBeUndefined();
  });

  it('authenticates against the pinned fingerprint (seed 001)', async () => {
    const { world, dir } = setup();
    await settle(world, dir.join({ machineName: 'db1', machineId: 'id-1', domain: 'corp.example' }));
    expect((await settle(world, dir.authenticate({ machineName: 'db1', machineId: 'id-1', domain: 'corp.example' }))).value).toBe(true);
    expect((await settle(world, dir.authenticate({ machineName: 'db1', machineId: 'id-2', domain: 'corp.example' }))).value).toBe(false);
    expect((await settle(world, dir.authenticate({ machineName: 'nobody', machineId: 'id-1', domain: 'corp.example' }))).value).toBe(false);
  });

  it('refuses bad input by field and unknown domains', async () => {
    const { world, dir } = setup();
    expect((await settle(world, dir.join({ machineName: 'bad name', machineId: 'x', domain: 'corp.example' }))).error).toMatchObject({ code: 'E_DIR_BAD_NAME' });
    expect((await settle(world, dir.join({ machineName: 'ok', machineId: '', domain: 'corp.example' }))).error).toMatchObject({ code: 'E_DIR_BAD_ID' });
    const nd = await settle(world, dir.join({ machineName: 'ok', machineId: 'x', domain: 'other.example' }));
    expect(nd.error).toMatchObject({ code: 'E_DIR_NO_DOMAIN' });
    expect(nd.error!.message).toContain('corp.example');
    expect(() => new EmulatedDirectory(world, { domains: [] })).toThrow(/at least one domain/);
    expect(() => new EmulatedDirectory(world, { domains: ['a', 'A'] })).toThrow(/listed twice/);
    expect(() => new EmulatedDirectory(world, { domains: ['a'], latencies: { joinUs: -1 } })).toThrow(/latencies.joinUs/);
  });

  it('an outage fails calls with a retryable code until it ends', async () => {
    const { world, dir } = setup({ joinUs: 1_000_000 });
    dir.outage(5_000_000);
    const during = await settle(world, dir.join({ machineName: 'db1', machineId: 'id-1', domain: 'corp.example' }));
    expect(during.error).toMatchObject({ code: 'E_DIR_UNAVAILABLE', retryable: true });
    world.clock.schedule(5_000_000, () => undefined);
    await world.run({ untilUs: 5_000_000 });
    expect((await settle(world, dir.join({ machineName: 'db1', machineId: 'id-1', domain: 'corp.example' }))).error).toBeUndefined();
  });

  it('enrols the domain-joined VMs of a hypervisor; jittered latencies are seeded', async () => {
    const world = new SimWorld(9);
    const hv = new EmulatedHypervisor(world, { hosts: [{ id: 'h1', cpuCores: 8, ramMiB: 65536 }] });
    const off = sampleGuest('b');
    off.identity.domainJoined = false;
    for (const [id, guest] of [['a', sampleGuest('a')], ['b', off]] as const) {
      hv.addVm({ id, name: id, vcpus: 1, ramMiB: 1024, workload: 'w', batch: false, guest, dirtyRateBytesPerS: 0, disks: [] });
    }
    const dir = new EmulatedDirectory(world, { domains: ['corp.example'] });
    expect(dir.enrolFrom(hv)).toBe(1);
    expect(dir.accounts('corp.example').map((a) => a.machineName)).toEqual(['a']);
    const times: number[] = [];
    for (const seed of [3, 3, 4]) {
      const w = new SimWorld(seed);
      const d = new EmulatedDirectory(w, { domains: ['corp.example'] });
      await settle(w, d.join({ machineName: 'x', machineId: 'y', domain: 'corp.example' }));
      times.push(w.nowUs);
    }
    expect(times[0]).toBe(times[1]);
    expect(times[0]).not.toBe(times[2]);
    for (const t of times) expect(t).toBeGreaterThanOrEqual(1_800_000);
  });
});
