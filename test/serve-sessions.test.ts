import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { nbdUri, run, toolsAvailable } from './interop-tools.js';
import { Procs, kill9, stop } from './helpers/serve-procs.js';

/**
 * Routine events against one image, run the way an operator runs them: a
 * second session, a restart over used state, a fresh cache dir, a second cloud
 * proxy with the default name, a crash. Every acknowledged (flushed) write
 * must reach the image, or the process that would lose it must refuse to
 * start and say what to do.
 */
const MiB = 1024 * 1024;
const dir = mkdtempSync(join(tmpdir(), 'spillway-sessions-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const procs = new Procs(dir);
afterEach(() => procs.killAll());

const key = join(dir, 'pair.key');
writeFileSync(key, `${'5a'.repeat(32)}\n`, { mode: 0o600 });

function freshImage(name: string): string {
  const path = join(dir, name);
  writeFileSync(path, '');
  truncateSync(path, 64 * MiB);
  return path;
}

/** The byte at `mib` MiB of the image. */
function byteAt(path: string, mib: number): number {
  return readFileSync(path)[mib * MiB]!;
}

async function qemuWrite(sock: string, exportName: string, pattern: number, mib: number): Promise<void> {
  await run('qemu-io', ['-f', 'raw', nbdUri(sock, exportName), '-c', `write -P 0x${pattern.toString(16)} ${mib}M 1M`, '-c', 'flush']);
}

const ready = (p: { out(): string }) => p.out();

describe('serve: sessions, restarts and writer identity', () => {
  it('three serve-pair sessions on one image (fresh cache, fresh cache, the second cache again) keep every flushed write', async () => {
    if (!toolsAvailable(['qemu-io'], 'serve sessions')) return;
    const img = freshImage('three.img');
    const sessions: Array<[string, number, number]> = [['c1', 0x11, 1], ['c2', 0x22, 3], ['c2', 0x33, 5]];
    for (const [cache, pattern, mib] of sessions) {
      const sock = join(dir, `three-${cache}-${pattern}.sock`);
      const p = await procs.ready(['serve', 'pair', '--disk', img, '--pair-key', key, '--nbd', `unix:${sock}`, '--cache-dir', join(dir, `three-${cache}`), '--cache-size', '64M']);
      await qemuWrite(sock, 'three', pattern, mib);
      expect(await stop(p), p.err()).toBe(0);
      expect(p.err()).toMatch(/stopped cleanly/);
    }
    for (const [, pattern, mib] of sessions) expect(byteAt(img, mib), `pattern 0x${pattern.toString(16)} at ${mib} MiB`).toBe(pattern);
  });

  it('one on-prem proxy per image and one cloud proxy per cache dir; a typo in --disk serves nothing; a killed holder leaves no lock behind', async () => {
    const img = freshImage('locked.img');
    const onprem = await procs.ready(['serve', 'onprem', '--disk', img, '--listen', '127.0.0.1:0', '--pair-key', key]);
    const second = procs.start(['serve', 'onprem', '--disk', img, '--listen', '127.0.0.1:0', '--pair-key', key]);
    expect(await second.exited).toBe(2);
    expect(second.err()).toMatch(new RegExp(`--disk ${img}: in use by another spillway \\(pid ${onprem.child.pid}`));

    const link = /onprem link listening on (\S+)/.exec(ready(onprem))![1]!;
    const cloud = (sock: string) => ['serve', 'cloud', '--onprem', link, '--disk', 'locked', '--pair-key', key,
      '--nbd', `unix:${join(dir, sock)}`, '--cache-dir', join(dir, 'locked-cache'), '--cache-size', '16M'];
    const first = await procs.ready(cloud('locked-1.sock'));
    const sameDir = procs.start(cloud('locked-2.sock'));
    expect(await sameDir.exited).toBe(2);
    expect(sameDir.err()).toMatch(/--cache-dir .*locked-cache: in use by another spillway/);
    await kill9(first);
    await kill9(onprem);
    // The holders are gone: their locks are stale and taken over.
    const onpremAgain = await procs.ready(['serve', 'onprem', '--disk', img, '--listen', '127.0.0.1:0', '--pair-key', key]);
    expect(await stop(onpremAgain)).toBe(0);

    const typo = procs.start(['serve', 'onprem', '--disk', join(dir, 'typo.img'), '--listen', '127.0.0.1:0', '--pair-key', key]);
    expect(await typo.exited).toBe(2);
    expect(typo.err()).toMatch(/typo\.img: no such file \(make a raw image with: qemu-img create/);
    expect(() => readFileSync(join(dir, 'typo.img'))).toThrow(/ENOENT/);
  });

  it('a second cloud proxy of a disk is refused while the first serves, whatever its name; it exits non-zero and says why', async () => {
    if (!toolsAvailable(['qemu-io'], 'serve sessions')) return;
    const img = freshImage('lease.img');
    const onprem = await procs.ready(['serve', 'onprem', '--disk', img, '--listen', '127.0.0.1:0', '--pair-key', key]);
    const link = /onprem link listening on (\S+)/.exec(ready(onprem))![1]!;
    const cloud = (cache: string, sock: string) => ['serve', 'cloud', '--onprem', link, '--disk', 'lease', '--pair-key', key,
      '--nbd', `unix:${join(dir, sock)}`, '--cache-dir', join(dir, cache), '--cache-size', '16M'];
    const first = await procs.ready(cloud('lease-a', 'lease-a.sock'));
    // Both use the default name, cloud-lease: the name is not what holds the lease.
    const second = procs.start(cloud('lease-b', 'lease-b.sock'));
    expect(await second.exited).not.toBe(0);
    expect(second.err()).toMatch(/E_LEASE_HELD/);
    expect(second.err()).toMatch(/stop the cloud proxy that holds it/);
    await qemuWrite(join(dir, 'lease-a.sock'), 'lease', 0x5c, 2);
    expect(await stop(first)).toBe(0);
    expect(await stop(onprem)).toBe(0);
    expect(byteAt(img, 2)).toBe(0x5c);
  });

  it('after a cloud proxy dies with writes unshipped, a fresh cache dir is refused until the old one ships them (or --take-over)', async () => {
    if (!toolsAvailable(['qemu-io'], 'serve sessions')) return;
    const img = freshImage('crash.img');
    const onprem = await procs.ready(['serve', 'onprem', '--disk', img, '--listen', '127.0.0.1:0', '--pair-key', key]);
    const link = /onprem link listening on (\S+)/.exec(ready(onprem))![1]!;
    const cloud = (cache: string, extra: string[] = []) => ['serve', 'cloud', '--onprem', link, '--disk', 'crash', '--pair-key', key,
      '--nbd', `unix:${join(dir, `${cache}.sock`)}`, '--cache-dir', join(dir, cache), '--cache-size', '16M', '--rpo', '1h', ...extra];
    const first = await procs.ready(cloud('crash-a'));
    await qemuWrite(join(dir, 'crash-a.sock'), 'crash', 0x77, 4);
    await kill9(first);
    expect(byteAt(img, 4)).toBe(0); // acknowledged, journaled in crash-a, not shipped (RPO 1 h)

    const fresh = procs.start(cloud('crash-b'));
    expect(await fresh.exited).not.toBe(0);
    expect(fresh.err()).toMatch(/E_WRITER_UNFINISHED/);
    expect(fresh.err()).toMatch(/over its own cache dir/);

    const back = await procs.ready(cloud('crash-a'));
    expect(await stop(back)).toBe(0);
    expect(byteAt(img, 4)).toBe(0x77);

    // Ended cleanly: a fresh cache dir may follow, and its writes land too.
    const next = await procs.ready(cloud('crash-b'));
    await qemuWrite(join(dir, 'crash-b.sock'), 'crash', 0x78, 6);
    await kill9(next);
    const takeOver = await procs.ready(cloud('crash-c', ['--take-over']));
    await qemuWrite(join(dir, 'crash-c.sock'), 'crash', 0x79, 8);
    expect(await stop(takeOver)).toBe(0);
    expect(byteAt(img, 8)).toBe(0x79);
    // crash-b's unshipped write was given up; its cache dir may not resurrect it over what came after.
    const stale = procs.start(cloud('crash-b'));
    expect(await stale.exited).not.toBe(0);
    expect(stale.err()).toMatch(/E_WRITER_SUPERSEDED/);
    expect(byteAt(img, 6)).toBe(0);
    expect(await stop(onprem)).toBe(0);
  });
});
