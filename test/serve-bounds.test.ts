import { readFileSync, rmSync, mkdtempSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { nbdUri, run, toolsAvailable } from './interop-tools.js';
import { Procs, randomImage, stop } from './helpers/serve-procs.js';

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
    sockets.push(s);
  }
  return { sockets, closed: () => closed };
}

async function until(what: string, cond: () => boolean, timeoutMs = 30_000): Promise<void> {
  for (let waited = 0; !cond(); waited += 50) {
    if (waited > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
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
