import { chmodSync } from 'node:fs';
import { Validator } from '@seriousme/openapi-schema-validator';
import { afterEach, describe, expect, it } from 'vitest';
import { readTokenFile } from '../src/api/auth.js';
import { auth, simApi, stepUntil, tokenFile, TOKEN, type SimApi } from './helpers/api-fixture.js';

let fx: SimApi | null = null;
afterEach(async () => {
  await fx?.close();
  fx = null;
});

const get = (url: string, headers: Record<string, string> = auth) => fx!.api.app.inject({ method: 'GET', url, headers });
const post = (url: string, payload?: unknown) => fx!.api.app.inject({ method: 'POST', url, headers: auth, ...(payload === undefined ? {} : { payload: payload as object }) });

describe('management API: read routes (fastify inject)', () => {
  it('answers /health without a token and every other route only with the right one', async () => {
    fx = await simApi();
    const health = await get('/health', {});
    expect(health.statusCode).toBe(200);
    expect(health.json()).toMatchObject({ ok: true, kind: 'simulation', name: 'api-mini', done: false, actions: true });
    for (const url of ['/vms', '/vms/web-1', '/flows', '/proxies', '/wan', '/cloud', '/cost', '/metrics', '/events', '/flows/x']) {
      const none = await get(url, {});
      expect(none.statusCode, url).toBe(401);
      expect(none.json()).toMatchObject({ code: 'E_UNAUTHORIZED' });
      expect(none.headers['www-authenticate']).toContain('Bearer');
      expect((await get(url, { authorization: 'Bearer wrong-token-0123456789' })).statusCode, url).toBe(401);
    }
    expect((await fx.api.app.inject({ method: 'POST', url: '/flows', payload: { kind: 'clone', vm: 'web-1' } })).statusCode).toBe(401);
  });

  it('lists VMs, flows, proxies, WAN, cloud and cost as the run goes', async () => {
    fx = await simApi();
    await fx.sim.step(30 * 60e6);
    const vms = (await get('/vms')).json() as Array<{ name: string; where: string; host: string | null; power: string | null }>;
    expect(vms.map((v) => v.name)).toEqual(['db-1', 'web-1', 'web-2']);
    expect(vms.every((v) => v.where === 'onprem' && v.host !== null && v.power === 'running')).toBe(true);
    const one = await get('/vms/web-2');
    expect(one.statusCode).toBe(200);
    expect(one.json()).toMatchObject({ name: 'web-2', where: 'onprem', boot: { bootUs: null } });
    expect((await get('/flows')).json()).toEqual([]);
    expect((await get('/proxies')).json()).toEqual({ proxies: [], onprem: null });
    expect((await get('/wan')).json()).toMatchObject({ up: true, bytesUp: 0 });
    expect((await get('/cloud')).json()).toEqual({ instances: [], calls: [] });
    expect((await get('/cost')).json()).toMatchObject({ cloudUsd: 0 });
  });

  it('says 404 for an unknown VM or flow and 400 naming the field for bad input', async () => {
    fx = await simApi();
    const missing = await get('/vms/nope');
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toMatchObject({ code: 'E_NO_VM' });
    expect(missing.json().message).toContain('db-1');
    expect((await get('/flows/nope')).statusCode).toBe(404);
    const badName = await get('/vms/bad%20name');
    expect(badName.statusCode).toBe(400);
    expect(badName.json().message).toMatch(/^params\.name: expected/);
    const badKind = await post('/flows', { kind: 'teleport', vm: 'web-1' });
    expect(badKind.statusCode).toBe(400);
    expect(badKind.json().message).toBe('body.kind: expected one of transfer, reverse, clone, cutover, migrate, resize, containerize, got "teleport"');
    const extra = await post('/flows', { kind: 'clone', vm: 'web-1', colour: 'blue' });
    expect(extra.statusCode).toBe(400);
    expect(extra.json().message).toMatch(/^body\.colour: unknown field; allowed: kind, vm, to/);
    const noVm = await post('/flows', { kind: 'clone' });
    expect(noVm.json().message).toBe('body.vm: required');
    const cutover = await post('/flows', { kind: 'cutover', vm: 'web-1' });
    expect(cutover.statusCode).toBe(400);
    expect(cutover.json().message).toContain('body.target: required');
    const small = await post('/flows', { kind: 'resize', vm: 'web-1', cacheBytes: 10 });
    expect(small.json().message).toBe('body.cacheBytes: expected >= 1048576, got 10');
    const unknownVm = await post('/flows', { kind: 'transfer', vm: 'ghost' });
    expect(unknownVm.statusCode).toBe(404);
    expect((await post('/flows/nope/rollback')).statusCode).toBe(404);
    const badFilter = await get('/events?type=Machine.STATE');
    expect(badFilter.statusCode).toBe(400);
    expect(badFilter.json().message).toMatch(/^querystring\.type: expected/);
    expect((await get('/no/such/route')).statusCode).toBe(404);
    const raw = (payload: string, type: string) => fx!.api.app.inject({ method: 'POST', url: '/flows', headers: { ...auth, 'content-type': type }, payload });
    const notJson = await raw('{"kind": ', 'application/json');
    expect(notJson.statusCode).toBe(400);
    expect(notJson.json()).toMatchObject({ code: 'E_BAD_BODY' });
    expect(notJson.json().message).toMatch(/^body: .*JSON/);
    const form = await raw('kind=clone&vm=web-1', 'application/x-www-form-urlencoded');
    expect(form.statusCode).toBe(415);
    expect(form.json()).toEqual({ statusCode: 415, code: 'E_BAD_MEDIA_TYPE', error: 'Unsupported Media Type', message: 'content-type: expected application/json, got "application/x-www-form-urlencoded"' });
    expect((await raw('[]', 'application/json')).json().message).toBe('body: expected object, got []');
  });

  it('publishes an OpenAPI document that validates and names every route', async () => {
    fx = await simApi();
    const res = await get('/openapi.json', {});
    expect(res.statusCode).toBe(200);
    const doc = res.json();
    const result = await new Validator().validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(Object.keys(doc.paths).sort()).toEqual([
      '/cloud', '/cost', '/events', '/flows', '/flows/{id}', '/flows/{id}/rollback', '/health', '/metrics', '/proxies', '/vms', '/vms/{name}', '/wan',
    ]);
    expect(doc.paths['/health'].get.security).toEqual([]);
    expect(doc.components.schemas.FlowRequest.properties.kind.enum).toContain('containerize');
  });

  it('refuses a token file others can read and a short token', () => {
    const open = tokenFile(TOKEN, 0o644);
    expect(() => readTokenFile(open)).toThrow(/readable by others \(mode 644\); allowed: 600/);
    chmodSync(open, 0o640);
    expect(() => readTokenFile(open)).toThrow(/mode 640/);
    chmodSync(open, 0o600);
    expect(readTokenFile(open)).toBe(TOKEN);
    expect(() => readTokenFile(tokenFile('short'))).toThrow(/at least 16 characters/);
  });
});

describe('management API: act routes through the lifecycle machines', () => {
  it('transfers a VM to the cloud, refuses a colliding flow with 409, rolls back on request', async () => {
    fx = await simApi();
    await fx.sim.step(10 * 60e6);
    const first = await stepUntil(fx.sim, post('/flows', { kind: 'transfer', vm: 'web-1', to: 'cloud' }));
    expect(first.statusCode).toBe(201);
    const accepted = first.json();
    expect(accepted).toMatchObject({ id: 'api-1-transfer-web-1', kind: 'transfer', vm: 'web-1', machine: 'transfer' });
    expect(accepted.atUs).toBeGreaterThan(10 * 60e6);
    const again = await stepUntil(fx.sim, post('/flows', { kind: 'transfer', vm: 'web-1' }));
    expect(again.statusCode).toBe(409);
    expect(again.json()).toMatchObject({ code: 'E_FLOW_RUNNING' });
    const rollback = await stepUntil(fx.sim, post(`/flows/${accepted.id}/rollback`));
    expect(rollback.statusCode).toBe(202);
    expect(rollback.json()).toMatchObject({ id: accepted.id });
    while (!fx.sim.done && (await get(`/flows/${accepted.id}`)).json().status === 'running') await fx.sim.step(fx.sim.world.nowUs + 10e6);
    const flow = (await get(`/flows/${accepted.id}`)).json();
    expect(flow).toMatchObject({ status: 'done', outcome: 'rolled-back', origin: 'api' });
    expect(flow.failure).toContain('E_ROLLBACK_REQUESTED');
    const late = await stepUntil(fx.sim, post(`/flows/${accepted.id}/rollback`));
    expect(late.statusCode).toBe(409);
    expect(late.json()).toMatchObject({ code: 'E_FLOW_FINISHED' });
    // Another writer holds a disk of web-2: a transfer would break its lease.
    const disk = fx.sim.hypervisor.vm('web-2').diskIds[0]!;
    const lease = fx.sim.hypervisor.lockDisk(disk, 'another-writer');
    const leased = await stepUntil(fx.sim, post('/flows', { kind: 'transfer', vm: 'web-2' }));
    expect(leased.statusCode).toBe(409);
    expect(leased.json()).toMatchObject({ code: 'E_LEASE_HELD' });
    expect(leased.json().message).toContain(`disk ${disk} of web-2 is leased to another-writer`);
    lease.release();
    expect((await get('/vms/web-1')).json()).toMatchObject({ where: 'onprem', outcome: 'rolled-back' });
  }, 240_000);

  it('moves a VM to the cloud and back: boot figures, proxies, metrics, and no second transfer while it is away', async () => {
    fx = await simApi();
    const started = await stepUntil(fx.sim, post('/flows', { kind: 'transfer', vm: 'db-1' }));
    expect(started.statusCode).toBe(201);
    const id = started.json().id as string;
    while ((await get(`/flows/${id}`)).json().status === 'running') await fx.sim.step(fx.sim.world.nowUs + 10e6);
    expect((await get(`/flows/${id}`)).json()).toMatchObject({ outcome: 'ok', state: 'running' });
    const vm = (await get('/vms/db-1')).json();
    expect(vm).toMatchObject({ where: 'cloud', machine: 'transfer', state: 'running' });
    expect(vm.instance).toMatch(/^i-/);
    expect(vm.boot.bootUs).toBeGreaterThan(0);
    expect(vm.boot.bootUs).toBe(vm.boot.stagingBootUs + vm.boot.targetBootUs);
    const proxies = (await get('/proxies')).json();
    expect(proxies.proxies.length).toBeGreaterThan(0);
    expect(proxies.proxies[0]).toMatchObject({ vm: 'db-1' });
    expect(proxies.proxies[0].bytesBySource.remote + proxies.proxies[0].bytesBySource.pushed).toBeGreaterThan(0);
    expect(proxies.onprem.wireBytesOut).toBeGreaterThan(0);
    const cloud = (await get('/cloud')).json();
    expect(cloud.instances.some((i: { vm: string | null }) => i.vm === 'db-1')).toBe(true);
    expect(cloud.calls.find((c: { api: string }) => c.api === 'RunInstances')?.calls).toBeGreaterThan(0);
    // The disks are leased to the transfer: a second transfer would break the lease.
    const second = await stepUntil(fx.sim, post('/flows', { kind: 'transfer', vm: 'db-1' }));
    expect(second.statusCode).toBe(409);
    expect(second.json().code).toBe('E_NOT_ONPREM');
    const metrics = await get('/metrics');
    expect(metrics.statusCode).toBe(200);
    expect(metrics.headers['content-type']).toContain('text/plain');
    const text = metrics.body;
    expect(text).toMatch(/spillway_read_bytes_total\{proxy="db-1\/[^"]+",vm="db-1",disk="[^"]+",source="remote"\} \d+/);
    expect(text).toMatch(/spillway_nbd_request_duration_seconds_bucket\{[^}]*op="read"[^}]*le="\+Inf"\} [1-9]/);
    expect(text).toMatch(/spillway_flows\{machine="transfer",state="running"\} 1/);
    expect(text).toMatch(/spillway_cloud_api_calls_total\{api="RunInstances"\} [1-9]/);
    expect(text).toMatch(/spillway_link_round_trips_total\{[^}]*\} [1-9]/);
    const back = await stepUntil(fx.sim, post('/flows', { kind: 'reverse', vm: 'db-1' }));
    expect(back.statusCode).toBe(201);
    const rid = back.json().id as string;
    while ((await get(`/flows/${rid}`)).json().status === 'running') await fx.sim.step(fx.sim.world.nowUs + 10e6);
    expect((await get(`/flows/${rid}`)).json()).toMatchObject({ machine: 'reverse', outcome: 'ok' });
    expect((await get('/vms/db-1')).json()).toMatchObject({ where: 'onprem' });
  }, 240_000);
});
