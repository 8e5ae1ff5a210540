import { readFileSync, rmSync, mkdtempSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { nbdUri, run, toolsAvailable } from './interop-tools.js';
import { Procs, randomImage, stop, until } from './helpers/serve-procs.js';

/**
 * What a hostile or broken peer can cost a real `spillway serve` process:
 * memory and connection slots on the link before authentication, and on the
 * NBD side before the handshake and while a client does not read its replies.
 * Each bound is checked against the process's peak resident memory (VmHWM).
 */
const MiB = 1024 * 1024;
const dir = mkdtempSync(join(tmpdir(), 'spillway-bounds-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const procs = new Procs(dir);
afterEach(() => procs.killAll());

const key = join(dir, 'pair.key');
writeFileSync(key, `${'3c'.repeat(32)}\n`, { mode: 0o600 });

/** Peak resident memory of a process so far, MiB. */
function peakMiB(pid: number): number {
  return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
}

function hostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i), port: Number(address.slice(i + 1)) };
}

/** Connect, announce one frame of `announced` bytes, send up to `sendBytes` of it; resolves with what the server took before it hung up (or all of it). */
function oversizeFrame(address: string, announced: number, sendBytes: number): Promise<{ sent: number; closedByServer: boolean }> {
  return new Promise((resolve) => {
    const s = connect(hostPort(address));
    let sent = 0;
    let closed = false;
    const chunk = Buffer.alloc(MiB, 0x5a);
    const done = (): void => { s.destroy(); resolve({ sent, closedByServer: closed }); };
    s.on('error', () => { closed = true; done(); });
    s.on('close', () => { closed = true; done(); });
    s.on('connect', () => {
      const head = Buffer.alloc(4);
      head.writeUInt32BE(announced);
      s.write(head);
      const more = (): void => {
        while (sent < sendBytes && !closed) {
          sent += chunk.length;
          if (!s.write(chunk)) { s.once('drain', more); return; }
        }
        if (sent >= sendBytes) setTimeout(done, 500);
      };
      more();
    });
  });
}

/** `n` connections that connect and say nothing; counts the ones the server closes. */
function idleConnections(open: () => Socket, n: number): { sockets: Socket[]; closed: () => number } {
  let closed = 0;
  const sockets: Socket[] = [];
  for (let i = 0; i < n; i++) {
    const s = open();
    s.on('error', () => undefined);
    s.on('close', () => { closed++; });
    s.resume(); // read (and drop) what the server says, so its close is seen
    sockets.push(s);
  }
  return { sockets, closed: () => closed };
}

describe('serve onprem: the link before authentication', () => {
  it('a peer that has not proved the pairing key cannot make on-prem buffer a big frame, and a flood of idle peers leaves room for the real one', async () => {
    if (!toolsAvailable(['qemu-io'], 'link bounds')) return;
    const img = randomImage(dir, 'auth.img', 8 * MiB);
    const onprem = await procs.ready(['serve', 'onprem', '--disk', img.path, '--listen', '127.0.0.1:0', '--pair-key', key]);
    const link = /onprem link listening on (\S+)/.exec(onprem.out())![1]!;
    const pid = onprem.child.pid!;
    const before = peakMiB(pid);
    // Four peers each announce a 127 MiB frame and send 32 MiB of it: 128 MiB buffered before the fix.
    const peers = await Promise.all([0, 1, 2, 3].map(() => oversizeFrame(link, 127 * MiB, 32 * MiB)));
    expect(peakMiB(pid) - before, 'on-prem peak memory growth, MiB').toBeLessThan(48);
    for (const p of peers) expect(p.closedByServer).toBe(true);
    await until('the drop to be logged', () => /dropped unauthenticated link peer .*before authenticating; the limit is 16384/.test(onprem.err()));

    // 200 peers that connect and never speak: all but the newest 64 are dropped, and a real cloud proxy still gets in.
    const idle = idleConnections(() => connect(hostPort(link)), 200);
    await until('on-prem to drop the oldest idle peers', () => idle.closed() >= 200 - 64);
    await until('the flood to be logged', () => /dropped \d+ unauthenticated link connection\(s\): more than 64 were in the handshake at once/.test(onprem.err()));
    const sock = join(dir, 'auth.sock');
    const cloud = await procs.ready(['serve', 'cloud', '--onprem', link, '--disk', 'auth', '--pair-key', key,
      '--nbd', `unix:${sock}`, '--cache-dir', join(dir, 'auth-cache'), '--cache-size', '16M']);
    const got = join(dir, 'auth.out');
    await run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', nbdUri(sock, 'auth'), got]);
    expect(readFileSync(got).equals(img.data)).toBe(true);
    for (const s of idle.sockets) s.destroy();
    expect(await stop(cloud), cloud.err()).toBe(0);
    expect(await stop(onprem), onprem.err()).toBe(0);
  });
});

/** A raw NBD client: fixed newstyle handshake with EXPORT_NAME, then the transmission phase on the socket. */
async function nbdOpen(sock: string, exportName: string): Promise<Socket> {
  const s = connect(sock);
  let buf = Buffer.alloc(0);
  const need = (n: number): Promise<void> => new Promise((resolve, reject) => {
    const check = (): void => {
      if (buf.length < n) return;
      s.off('data', onData);
      buf = buf.subarray(n);
      resolve();
    };
    const onData = (d: Buffer): void => { buf = Buffer.concat([buf, d]); check(); };
    s.on('data', onData);
    s.once('error', reject);
    check();
  });
  await need(18);
  const flags = Buffer.alloc(4);
  flags.writeUInt32BE(3); // FIXED_NEWSTYLE | NO_ZEROES
  const name = Buffer.from(exportName);
  const opt = Buffer.alloc(16);
  opt.writeBigUInt64BE(0x49484156454f5054n, 0);
  opt.writeUInt32BE(1, 8); // EXPORT_NAME
  opt.writeUInt32BE(name.length, 12);
  s.write(Buffer.concat([flags, opt, name]));
  await need(10); // size and transmission flags
  return s;
}

/**
 * Send up to `max` 1-byte READs and never read a reply. Resolves with how many
 * went out and whether the server stopped taking them (no drain for 5 s).
 */
async function readsNeverAnswered(s: Socket, max: number): Promise<{ sent: number; blocked: boolean }> {
  s.pause();
  const batch = Buffer.alloc(28 * 1000);
  for (let i = 0; i < 1000; i++) {
    const r = batch.subarray(i * 28);
    r.writeUInt32BE(0x25609513, 0);
    r.writeBigUInt64BE(BigInt(i), 8);
    r.writeUInt32BE(1, 24);
  }
  let sent = 0;
  while (sent < max) {
    sent += 1000;
    if (s.write(batch)) continue;
    const drained = await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), 5000);
      s.once('drain', () => { clearTimeout(t); resolve(true); });
    });
    if (!drained) return { sent, blocked: true };
  }
  return { sent, blocked: false };
}

describe('serve cloud: NBD connections', () => {
  it('closes connections that never choose an export, and the oldest of them when the cap is reached, so real clients get in', async () => {
    if (!toolsAvailable(['qemu-io'], 'nbd connection bounds')) return;
    const img = randomImage(dir, 'half.img', 4 * MiB);
    const sock = join(dir, 'half.sock');
    const pair = await procs.ready(['serve', 'pair', '--disk', img.path, '--pair-key', key, '--nbd', `unix:${sock}`,
      '--cache-dir', join(dir, 'half-cache'), '--cache-size', '16M', '--nbd-handshake-timeout', '3s']);
    const idle = idleConnections(() => connect(sock), 100);
    await until('the cap to close the oldest half-open connections', () => idle.closed() >= 100 - 32);
    // 32 half-open connections hold every slot: a real client still gets one.
    const out = await run('qemu-io', ['-r', '-f', 'raw', nbdUri(sock, 'half'), '-c', 'read -v 1M 16']);
    expect(out).toContain(img.data.subarray(MiB, MiB + 4).toString('hex').replace(/(..)/g, '$1 ').trim());
    await until('the handshake timeout to close the rest', () => idle.closed() === 100);
    await until('both to be logged', () => /closed the oldest still in the handshake/.test(pair.err()) && /no export chosen within 3s/.test(pair.err()));
    expect(await stop(pair), pair.err()).toBe(0);
  });

  it('stops reading requests from a client that does not read its replies (memory stays bounded)', async () => {
    const img = randomImage(dir, 'deaf.img', 4 * MiB);
    const sock = join(dir, 'deaf.sock');
    const pair = await procs.ready(['serve', 'pair', '--disk', img.path, '--pair-key', key, '--nbd', `unix:${sock}`,
      '--cache-dir', join(dir, 'deaf-cache'), '--cache-size', '16M']);
    const pid = pair.child.pid!;
    const s = await nbdOpen(sock, 'deaf');
    const before = peakMiB(pid);
    // 17-byte replies: 400,000 of them held ~160 MiB (and 4 M, the old bound, ~1.6 GB).
    const flood = await readsNeverAnswered(s, 400_000);
    expect(flood.blocked, `the server took all ${flood.sent} requests`).toBe(true);
    expect(peakMiB(pid) - before, 'peak memory growth, MiB').toBeLessThan(150);
    s.destroy();
    expect(await stop(pair), pair.err()).toBe(0);
  });
});
