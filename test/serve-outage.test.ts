import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { nbdUri, run, toolsAvailable } from './interop-tools.js';
import { Procs, kill9, randomImage, stop, until } from './helpers/serve-procs.js';

/**
 * The link goes down under a running `serve cloud` (on-prem killed, then
 * started again on the same address): what a guest and an operator see.
 */
const MiB = 1024 * 1024;
const dir = mkdtempSync(join(tmpdir(), 'spillway-outage-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const procs = new Procs(dir);
afterEach(() => procs.killAll());

const key = join(dir, 'pair.key');
writeFileSync(key, `${'7e'.repeat(32)}\n`, { mode: 0o600 });

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Run a tool to its end, whatever its exit code; a tool still running after `timeoutMs` is killed. */
function attempt(tool: string, args: string[], timeoutMs: number): Promise<{ code: number | string | null; output: string }> {
  return new Promise((resolve) => {
    execFile(tool, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number | string }).code ?? (err as { signal?: string }).signal ?? null) : 0, output: `${stdout}${stderr}` });
    });
  });
}

describe('serve cloud: the link goes down', () => {
  it('a read that needs on-prem fails with EIO after --read-timeout instead of hanging, the outage is logged, and reads and shipping resume when on-prem is back', async () => {
    if (!toolsAvailable(['qemu-io', 'qemu-img'], 'link outage')) return;
    const img = randomImage(dir, 'out.img', 8 * MiB);
    const port = await freePort();
    const link = `127.0.0.1:${port}`;
    const onpremArgs = ['serve', 'onprem', '--disk', img.path, '--listen', link, '--pair-key', key];
    const onprem = await procs.ready(onpremArgs);
    const sock = join(dir, 'out.sock');
    const uri = nbdUri(sock, 'out');
    const cloud = await procs.ready(['serve', 'cloud', '--onprem', link, '--disk', 'out', '--pair-key', key, '--nbd', `unix:${sock}`,
      '--cache-dir', join(dir, 'out-cache'), '--cache-size', '16M', '--rpo', '1h', '--read-timeout', '3s']);
    // A write acknowledged before the outage waits to ship (RPO 1h).
    await run('qemu-io', ['-f', 'raw', uri, '-c', 'write -P 0x77 6M 64k', '-c', 'flush']);

    await kill9(onprem);
    await until('the loss to be logged', () => /link to 127\.0\.0\.1:\d+ lost/.test(cloud.err()));
    expect(cloud.err()).toMatch(/reads fail after 3s\); shipping stalled: 64\.0 KiB of acknowledged writes \(\d+ groups?, oldest [^)]+\) wait in the journal, [\d.]+% full/);

    // A read of blocks the cache does not hold: an error within the deadline, never a hang.
    const miss = await attempt('qemu-io', ['-f', 'raw', uri, '-c', 'read 4M 64k'], 60_000);
    expect(miss.output).toMatch(/read failed: Input\/output error/);
    expect(cloud.err()).toMatch(/READ got no answer from on-prem within 3s: the link to 127\.0\.0\.1:\d+ is down \(for [^,]+, \d+ reconnect attempts/);
    // What the cloud holds is still served: the acknowledged write.
    const held = await attempt('qemu-io', ['-f', 'raw', uri, '-c', 'read -P 0x77 6M 64k'], 60_000);
    expect(held.output).not.toMatch(/failed|Pattern verification/);

    const again = await procs.ready(onpremArgs);
    await until('the link to come back', () => /link to 127\.0\.0\.1:\d+ is back after/.test(cloud.err()));
    const copy = join(dir, 'out.copy');
    await run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', uri, copy]);
    const expected = Buffer.from(img.data);
    expected.fill(0x77, 6 * MiB, 6 * MiB + 64 * 1024);
    expect(readFileSync(copy).equals(expected)).toBe(true);

    expect(await stop(cloud), cloud.err()).toBe(0);
    expect(await stop(again), again.err()).toBe(0);
    expect(readFileSync(img.path).equals(expected), 'the write shipped to the image').toBe(true);
  });
});
