import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { apiRequest, openEventStream, type ApiEndpoint } from '../src/world/live-http-client.js';
import { TOKEN, tokenFile } from './helpers/api-fixture.js';
import { Procs, randomImage, stop } from './helpers/serve-procs.js';
import { run, toolsAvailable } from './interop-tools.js';

/**
 * /metrics of a live `serve pair` while nbdcopy reads the disk through it:
 * the counters come from the proxies' own stats and must move with the load.
 */
const dir = mkdtempSync(join(tmpdir(), 'spillway-api-serve-'));
const procs = new Procs(dir);
afterEach(() => procs.killAll());
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const MiB = 1024 * 1024;

function value(text: string, re: RegExp): number {
  let sum = 0;
  for (const m of text.matchAll(new RegExp(re.source, 'gm'))) sum += Number(m[1]);
  return sum;
}

describe('serve pair --api under nbdcopy load', () => {
  it('scrapes /metrics with read bytes, NBD latency, link and write-back counters moving; /events carries the daemon trace', async () => {
    if (!toolsAvailable(['nbdcopy', 'qemu-io'], 'metrics of serve pair under nbdcopy')) return;
    const key = join(dir, 'pair.key');
    await run('node', [join(import.meta.dirname, '..', 'bin/spillway.js'), 'keygen', key]);
    const { path: img } = randomImage(dir, 'disk.img', 48 * MiB);
    const sock = join(dir, 'nbd.sock');
    const token = tokenFile();
    const pair = await procs.ready(['serve', 'pair', '--disk', img, '--pair-key', key, '--nbd', `unix:${sock}`,
      '--cache-dir', join(dir, 'cache'), '--cache-size', '64MiB', '--rpo', '1s', '--api', '127.0.0.1:0', '--api-token-file', token]);
    const url = /api listening on (http:\/\/\S+)/.exec(pair.out())![1]!;
    const ep: ApiEndpoint = { url, token: TOKEN };
    const health = await apiRequest(ep, 'GET', '/health');
    expect(health.body).toMatchObject({ ok: true, kind: 'serve', name: 'pair', actions: false });
    const events: string[] = [];
    const stream = openEventStream(ep, '?type=nbd.*', null, { onEvent: (_id, type) => events.push(type), onEnd: () => undefined });

    const scrape = async (): Promise<string> => {
      const r = await apiRequest(ep, 'GET', '/metrics');
      expect(r.status).toBe(200);
      return r.body as string;
    };
    const before = await scrape();
    const remoteBefore = value(before, /^spillway_read_bytes_total\{[^}]*source="(?:remote|pushed)"\} (\d+)/);
    const readsBefore = value(before, /^spillway_nbd_request_duration_seconds_count\{[^}]*op="read"\} (\d+)/);

    const copy = run('nbdcopy', [`nbd+unix:///disk?socket=${sock}`, join(dir, 'copy.img')], 120_000);
    const during = await scrape();
    await copy;
    await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x5a 1M 2M', '-c', 'flush', `nbd+unix:///disk?socket=${sock}`]);
    const after = await scrape();

    expect(value(after, /^spillway_read_bytes_total\{[^}]*source="(?:remote|pushed)"\} (\d+)/)).toBeGreaterThan(remoteBefore);
    expect(value(after, /^spillway_read_bytes_total\{[^}]*\} (\d+)/)).toBeGreaterThan(16 * MiB);
    expect(value(after, /^spillway_nbd_request_duration_seconds_count\{[^}]*op="read"\} (\d+)/)).toBeGreaterThan(readsBefore);
    expect(after).toMatch(/^spillway_nbd_request_duration_seconds_bucket\{proxy="cloud-disk",vm="",disk="disk",op="write",le="\+Inf"\} [1-9]/m);
    expect(value(after, /^spillway_link_bytes_total\{[^}]*direction="in"\} (\d+)/)).toBeGreaterThan(value(before, /^spillway_link_bytes_total\{[^}]*direction="in"\} (\d+)/));
    expect(value(after, /^spillway_link_round_trips_total\{[^}]*\} (\d+)/)).toBeGreaterThan(0);
    expect(value(after, /^spillway_onprem_link_bytes_total\{direction="out"\} (\d+)/)).toBeGreaterThan(40 * MiB);
    expect(value(after, /^spillway_cache_hits_total\{[^}]*\} (\d+)/) + value(after, /^spillway_cache_misses_total\{[^}]*\} (\d+)/)).toBeGreaterThan(0);
    expect(after).toMatch(/^spillway_writeback_backlog_bytes\{proxy="cloud-disk",vm="",disk="disk"\} \d+/m);
    expect(during).toContain('spillway_read_bytes_total');
    // Shipping within the RPO moves the write-back counter.
    let shipped = 0;
    for (let i = 0; i < 100 && shipped < 2 * MiB; i++) {
      await new Promise((r) => setTimeout(r, 200));
      shipped = value(await scrape(), /^spillway_writeback_shipped_bytes_total\{[^}]*\} (\d+)/);
    }
    expect(shipped).toBeGreaterThanOrEqual(2 * MiB);
    const proxies = await apiRequest(ep, 'GET', '/proxies');
    expect(proxies.body).toMatchObject({ proxies: [{ id: 'cloud-disk', disk: 'disk' }], onprem: { connections: expect.any(Number) } });
    const flows = await apiRequest(ep, 'POST', '/flows', { kind: 'transfer', vm: 'x' });
    expect(flows.status).toBe(501);
    expect(events).toContain('nbd.open');
    stream.close();
    expect(await stop(pair)).toBe(0);
  }, 240_000);
});
