import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.js';
import { nbdUri, run, toolsAvailable } from './interop-tools.js';
import { Procs, randomImage, stop, type Proc } from './helpers/serve-procs.js';

const MiB = 1024 * 1024;
const REPO = join(import.meta.dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'spillway-serve-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => { out.push(t); }, err: (t: string) => { err.push(t); }, errIsTty: false }, out, err };
}

const procs = new Procs(dir);
afterEach(() => procs.killAll());
const spillway = (args: string[], ready?: RegExp): Promise<Proc> => procs.ready(args, ready);
const image = (name: string, bytes: number) => randomImage(dir, name, bytes);

describe('spillway keygen', () => {
  it('writes 64 hex characters with mode 0600 and refuses to overwrite without --force', async () => {
    const file = join(dir, 'k1.key');
    const a = capture();
    expect(await main(['keygen', file], a.io)).toBe(0);
    const key = readFileSync(file, 'utf8');
    expect(key).toMatch(/^[0-9a-f]{64}\n$/);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const b = capture();
    expect(await main(['keygen', file], b.io)).toBe(2);
    expect(b.err.join('\n')).toMatch(/already exists.*--force/);
    expect(readFileSync(file, 'utf8')).toBe(key);
    expect(await main(['keygen', file, '--force'], capture().io)).toBe(0);
    expect(readFileSync(file, 'utf8')).not.toBe(key);
    const c = capture();
    expect(await main(['keygen'], c.io)).toBe(2);
    expect(c.err.join('\n')).toMatch(/missing FILE/);
  });
});

describe('spillway serve: bad input is named', () => {
  it('rejects a bad pair key, a missing flag, a bad address, an unknown side and bad sizes with exit code 2', async () => {
    const bad = join(dir, 'bad.key');
    writeFileSync(bad, 'not a key\n');
    const img = image('small.img', MiB).path;
    const good = join(dir, 'good.key');
    writeFileSync(good, `${'ab'.repeat(32)}\n`);
    const cases: Array<[string[], RegExp]> = [
      [['serve', 'onprem', '--disk', img, '--listen', '127.0.0.1:0', '--pair-key', bad], /--pair-key .*64 hex characters/],
      [['serve', 'onprem', '--disk', img, '--listen', '127.0.0.1:0', '--pair-key', join(dir, 'missing.key')], /--pair-key: cannot read/],
      [['serve', 'onprem', '--disk', img, '--pair-key', bad], /--listen is required/],
      [['serve', 'onprem', '--disk', img, '--listen', 'nowhere', '--pair-key', bad], /--listen: "nowhere" is not an address/],
      [['serve', 'sideways'], /unknown side "sideways"/],
      [['serve', 'cloud', '--onprem', '127.0.0.1:1', '--pair-key', good, '--nbd', 'unix:/tmp/x.sock', '--cache-dir', dir, '--cache-size', 'lots'], /--cache-size: expected a size/],
      [['serve', 'cloud', '--onprem', '127.0.0.1:1', '--pair-key', good, '--nbd', 'unix:/tmp/x.sock', '--cache-dir', dir, '--cache-size', '1GiB', '--persistence', 'maybe'], /--persistence: expected on-prem or cloud-only/],
      [['serve', 'pair', '--disk', img, '--pair-key', good, '--nbd', 'unix:/tmp/x.sock', '--cache-dir', dir, '--cache-size', '1GiB', '--wan-mbit', 'fast'], /--wan-mbit: expected a positive number/],
    ];
    for (const [args, message] of cases) {
      const c = capture();
      expect(await main(args, c.io), args.join(' ')).toBe(2);
      expect(c.err.join('\n'), args.join(' ')).toMatch(message);
    }
  });
});

describe('spillway serve pair with real clients', () => {
  it('serves the on-prem image through the cloud proxy: nbdinfo, qemu-img compare, and qemu-io writes that land on-prem after FLUSH and shipping', async () => {
    if (!toolsAvailable(['nbdinfo', 'qemu-img', 'qemu-io'], 'serve pair interop')) return;
    const key = join(dir, 'pair.key');
    await main(['keygen', key, '--force'], capture().io);
    const { path: img, data } = image('vm1.img', 16 * MiB);
    const sock = join(dir, 'pair.sock');
    const p = await spillway(['serve', 'pair', '--disk', img, '--pair-key', key, '--nbd', `unix:${sock}`, '--cache-dir', join(dir, 'cache1'), '--cache-size', '64MiB', '--rpo', '1s']);
    expect(p.out()).toMatch(/onprem link listening on 127\.0\.0\.1:\d+/);
    expect(p.out()).toMatch(new RegExp(`nbd serving on unix:${sock} export vm1`));
    const uri = nbdUri(sock, 'vm1');
    const info = JSON.parse(await run('nbdinfo', ['--json', uri])) as { exports: Array<Record<string, unknown>> };
    expect(info.exports[0]).toMatchObject({ 'export-name': 'vm1', 'export-size': 16 * MiB, can_flush: true, can_multi_conn: true });
    expect(await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', img, uri])).toMatch(/Images are identical/);
    await run('qemu-io', ['-f', 'raw', uri, '-c', 'write -P 0x3c 2M 128k', '-c', 'write -z 5M 64k', '-c', 'flush']);
    await run('qemu-io', ['-f', 'raw', uri, '-c', 'read -P 0x3c 2M 128k', '-c', 'read -P 0 5M 64k']);
    expect(await stop(p)).toBe(0);
    expect(p.err()).toMatch(/stopped cleanly/);
    const expected = Buffer.from(data);
    expected.fill(0x3c, 2 * MiB, 2 * MiB + 128 * 1024);
    expected.fill(0, 5 * MiB, 5 * MiB + 64 * 1024);
    expect(readFileSync(img).equals(expected)).toBe(true);
    const expectedPath = join(dir, 'vm1-expected.img');
    writeFileSync(expectedPath, expected);
    expect(await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', expectedPath, img])).toMatch(/Images are identical/);
  });

  it('streams the first session\'s read order (FIG 22) to a second, cold cloud proxy of the same disk', async () => {
    if (!toolsAvailable(['nbdcopy', 'qemu-io'], 'profile streaming through serve')) return;
    const key = join(dir, 'profile.key');
    await main(['keygen', key, '--force'], capture().io);
    const { path: img } = image('golden.img', 32 * MiB);
    const onprem = await spillway(['serve', 'onprem', '--disk', img, '--listen', '127.0.0.1:0', '--pair-key', key]);
    const link = /onprem link listening on (\S+)/.exec(onprem.out())![1]!;
    expect(onprem.out()).toMatch(/onprem disk golden: /);
    const cloud = (name: string) => spillway(['serve', 'cloud', '--onprem', link, '--disk', 'golden', '--pair-key', key, '--name', name,
      '--nbd', `unix:${join(dir, `${name}.sock`)}`, '--cache-dir', join(dir, name), '--cache-size', '64MiB']);
    const first = await cloud('vm-a');
    // The first VM "boots": reads a few scattered regions.
    await run('qemu-io', ['-f', 'raw', '-r', nbdUri(join(dir, 'vm-a.sock'), 'golden'),
      '-c', 'read 8M 256k', '-c', 'read 1M 128k', '-c', 'read 20M 512k', '-c', 'read 3M 64k']);
    expect(await stop(first)).toBe(0);
    expect(first.err()).toMatch(/profile blocks 0/);
    const second = await cloud('vm-b');
    // Give the stream a moment, then stop: the stats line tells what arrived unasked.
    await new Promise((r) => setTimeout(r, 1500));
    expect(await stop(second)).toBe(0);
    const stats = /profile blocks (\d+), pushes received (\d+) \((\d+) bytes\)/.exec(second.err());
    expect(stats, second.err()).not.toBeNull();
    expect(Number(stats![1])).toBeGreaterThanOrEqual((256 + 128 + 512 + 64) / 4);
    expect(Number(stats![3])).toBeGreaterThanOrEqual((256 + 128 + 512 + 64) * 1024);
    expect(await stop(onprem)).toBe(0);
  });
});
