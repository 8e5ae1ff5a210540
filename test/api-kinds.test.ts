import { afterEach, describe, expect, it } from 'vitest';
import { auth, simApi, stepUntil, type SimApi } from './helpers/api-fixture.js';

/**
 * Every flow kind of POST /flows on a simulation, each driven to its end
 * through the lifecycle machines: what the operator sees in /flows, /vms and
 * /proxies afterwards, and the 409s that keep flows from colliding.
 */
let fx: SimApi | null = null;
afterEach(async () => {
  await fx?.close();
  fx = null;
});

interface Flow { id: string; status: string; outcome: string | null; state: string; vm: string | null; failure: string | null }

const get = (url: string) => fx!.api.app.inject({ method: 'GET', url, headers: auth });

async function start(body: object): Promise<{ status: number; json: { id: string; code?: string; message?: string } }> {
  const r = await stepUntil(fx!.sim, fx!.api.app.inject({ method: 'POST', url: '/flows', headers: auth, payload: body }));
  return { status: r.statusCode, json: r.json() };
}

/** Let the run go until the flow is no longer running. */
async function finished(id: string): Promise<Flow> {
  for (;;) {
    const f = (await get(`/flows/${id}`)).json() as Flow;
    if (f.status !== 'running' || fx!.sim.done) return f;
    await fx!.sim.step(fx!.sim.world.nowUs + 30e6);
  }
}

async function run(body: object): Promise<Flow> {
  const r = await start(body);
  expect(r.status, JSON.stringify(r.json)).toBe(201);
  return finished(r.json.id);
}

describe('POST /flows: every kind through the lifecycle machines', () => {
  it('clones a VM and cuts over to the clone; moves a VM on-prem to another host; refuses a standby that is not a clone of the VM', async () => {
    fx = await simApi({ duration: '12h' });
    const clone = await run({ kind: 'clone', vm: 'web-1' });
    expect(clone).toMatchObject({ outcome: 'ok', vm: 'web-1-c1' });
    const standby = (await get('/vms/web-1-c1')).json();
    expect(standby).toMatchObject({ where: 'cloud', machine: 'clone' });
    expect(standby.instance).toMatch(/^i-/);
    const notMine = await start({ kind: 'cutover', vm: 'web-2', target: 'web-1-c1' });
    expect(notMine.status).toBe(409);
    expect(notMine.json.code).toBe('E_NO_STANDBY');
    const cut = await run({ kind: 'cutover', vm: 'web-1', target: 'web-1-c1' });
    expect(cut.failure).toBeNull();
    expect(cut).toMatchObject({ outcome: 'ok' });
    expect((await get('/vms/web-1')).json()).toMatchObject({ where: 'cloud', instance: standby.instance });
    const before = (await get('/vms/web-2')).json().host as string;
    const o2o = await run({ kind: 'transfer', vm: 'web-2', to: 'onprem' });
    expect(o2o).toMatchObject({ outcome: 'ok' });
    const after = (await get('/vms/web-2')).json();
    expect(after).toMatchObject({ where: 'onprem', power: 'running' });
    expect(after.host).not.toBe(before);
  }, 300_000);

  it('resizes the cache of a VM moved to the cloud, migrates it for good, and refuses what no longer applies', async () => {
    fx = await simApi({ duration: '1d' });
    const notMoved = await start({ kind: 'resize', vm: 'db-1', cacheBytes: 64 * 1048576 });
    expect(notMoved.status).toBe(409);
    expect(notMoved.json.code).toBe('E_NOT_IN_CLOUD');
    expect((await start({ kind: 'reverse', vm: 'db-1' })).json.code).toBe('E_NOT_IN_CLOUD');
    expect(await run({ kind: 'transfer', vm: 'db-1' })).toMatchObject({ outcome: 'ok' });
    const resized = await run({ kind: 'resize', vm: 'db-1', cacheBytes: 64 * 1048576 });
    expect(resized).toMatchObject({ outcome: 'ok', state: 'resized' });
    const proxies = (await get('/proxies')).json().proxies as Array<{ vm: string; cache: { capacityBytes: number } }>;
    expect(proxies.find((p) => p.vm === 'db-1')!.cache.capacityBytes).toBe(64 * 1048576);
    // The cut-over waits for the operator's go: the API gives it by policies.migrate.cutover (default: once synced).
    const migrated = await run({ kind: 'migrate', vm: 'db-1' });
    expect(migrated.failure).toBeNull();
    expect(migrated).toMatchObject({ outcome: 'ok', state: 'migrated' });
    expect((await start({ kind: 'migrate', vm: 'db-1' })).json.code).toBe('E_MIGRATED');
    expect((await start({ kind: 'reverse', vm: 'db-1' })).json.code).toBe('E_MIGRATED');
  }, 300_000);

  it('containerize runs its machine and rolls back at selectTemplate: the simulated platform has no templates', async () => {
    fx = await simApi();
    const c = await run({ kind: 'containerize', vm: 'web-2' });
    expect(c).toMatchObject({ outcome: 'rolled-back', state: 'rolledBack' });
    expect(c.failure).toMatch(/^E_NO_TEMPLATE at containerize\.selectTemplate/);
    expect((await get('/vms/web-2')).json()).toMatchObject({ where: 'onprem', power: 'running' });
  }, 120_000);
});
