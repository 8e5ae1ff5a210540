import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { openEventStream } from '../src/world/live-http-client.js';
import { apiScenario, TOKEN, tokenFile } from './helpers/api-fixture.js';

/**
 * The API as an operator uses it: `spillway run --api` in its own process,
 * the `flow` verbs against it, TLS, the loopback rule, and the TUI attached
 * to the running run in a real terminal (tmux).
 */
const ROOT = join(import.meta.dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'spillway-api-cli-'));
const scenario = join(dir, 'api-mini.yaml');
writeFileSync(scenario, apiScenario('12h'));

const procs: ChildProcess[] = [];
afterEach(() => {
  for (const p of procs.splice(0)) if (p.exitCode === null) p.kill('SIGTERM');
});

function cli(args: string[], env: Record<string, string> = {}): { status: number; stdout: string; stderr: string } {
  const r = spawnSync('node', ['bin/spillway.js', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Start `spillway run ... --api` and resolve with the URL it prints. */
function startRun(extra: string[]): Promise<{ url: string; proc: ChildProcess; stderr: () => string }> {
  const proc = spawn('node', ['bin/spillway.js', 'run', scenario, '--api', '127.0.0.1:0', ...extra], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(proc);
  let err = '';
  return new Promise((resolve, reject) => {
    proc.stderr!.setEncoding('utf8');
    proc.stderr!.on('data', (c: string) => {
      err += c;
      const m = /api listening on (https?:\/\/[^ ]+)/.exec(err);
      if (m) resolve({ url: m[1]!, proc, stderr: () => err });
    });
    proc.on('exit', (code) => reject(new Error(`spillway run exited ${code} before listening:\n${err}`)));
  });
}

describe('spillway flow against spillway run --api', () => {
  it('starts, lists and rolls back flows with the documented exit codes', async () => {
    const token = tokenFile();
    const { url } = await startRun(['--pace', '2', '--api-token-file', token]);
    const api = ['--api', url, '--api-token-file', token];
    const started = cli(['flow', 'start', 'transfer', 'web-1', '--to', 'cloud', '--json', ...api]);
    expect(started.status, started.stderr).toBe(0);
    const flow = JSON.parse(started.stdout);
    expect(flow).toMatchObject({ kind: 'transfer', vm: 'web-1', machine: 'transfer' });
    const rolled = cli(['flow', 'rollback', flow.id, ...api]);
    expect(rolled.status, rolled.stderr).toBe(0);
    expect(rolled.stdout).toMatch(new RegExp(`rollback of ${flow.id} asked at T\\+`));
    const other = cli(['flow', 'start', 'transfer', 'web-2', ...api]);
    expect(other.status, other.stderr).toBe(0);
    const again = cli(['flow', 'start', 'clone', 'web-2', ...api]);
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/409 E_FLOW_RUNNING/);
    const bad = cli(['flow', 'start', 'teleport', 'web-1', ...api]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/KIND must be one of transfer, clone/);
    const ghost = cli(['flow', 'start', 'clone', 'ghost', ...api]);
    expect(ghost.status).toBe(2);
    expect(ghost.stderr).toMatch(/404 E_NO_VM: no VM "ghost"/);
    const list = cli(['flow', 'list', '--json', ...api]);
    expect(list.status).toBe(0);
    expect(JSON.parse(list.stdout).map((f: { id: string }) => f.id)).toContain(flow.id);
    const text = cli(['flow', 'list', ...api]);
    expect(text.stdout).toContain(`${flow.id}  transfer web-1`);
    const vms = cli(['api', '/vms', '--json', ...api]);
    expect(vms.status, vms.stderr).toBe(0);
    expect(JSON.parse(vms.stdout).map((v: { name: string }) => v.name)).toEqual(['db-1', 'web-1', 'web-2']);
    const metrics = cli(['api', '/metrics', ...api]);
    expect(metrics.status).toBe(0);
    expect(metrics.stdout).toMatch(/^spillway_flows\{machine="transfer",state="[^"]+"\} 1$/m);
    const noVm = cli(['api', '/vms/ghost', ...api]);
    expect(noVm.status).toBe(2);
    expect(noVm.stderr).toMatch(/GET \/vms\/ghost: 404 .*E_NO_VM/s);
    expect(cli(['api', 'vms', ...api]).stderr).toMatch(/PATH must start with \//);
    const wrongToken = cli(['flow', 'list', '--api', url, '--api-token-file', tokenFile('another-token-abcdefghijkl')]);
    expect(wrongToken.status).toBe(1);
    expect(wrongToken.stderr).toMatch(/401 E_UNAUTHORIZED/);
  }, 180_000);

  it('refuses a non-loopback address without --api-public, an open token file, and one half of TLS', () => {
    const pub = cli(['run', scenario, '--api', '0.0.0.0:0']);
    expect(pub.status).toBe(2);
    expect(pub.stderr).toMatch(/--api: 0\.0\.0\.0 is not a loopback address.*--api-public/);
    const open = cli(['run', scenario, '--api', '127.0.0.1:0', '--api-token-file', tokenFile(undefined, 0o644)]);
    expect(open.status).toBe(2);
    expect(open.stderr).toMatch(/readable by others \(mode 644\); allowed: 600/);
    const half = cli(['run', scenario, '--api', '127.0.0.1:0', '--api-cert', 'x.pem']);
    expect(half.status).toBe(2);
    expect(half.stderr).toMatch(/--api-cert and --api-key go together/);
    const orphan = cli(['run', scenario, '--api-token-file', 'x']);
    expect(orphan.status).toBe(2);
    expect(orphan.stderr).toMatch(/--api-token-file needs --api ADDR/);
  }, 300_000);

  it('serves HTTPS with --api-cert/--api-key, trusted by a client given --api-ca', async () => {
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    const ssl = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { encoding: 'utf8' });
    expect(ssl.status, ssl.stderr).toBe(0);
    const token = tokenFile();
    const { url } = await startRun(['--pace', '60', '--api-token-file', token, '--api-cert', cert, '--api-key', key]);
    expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const ok = cli(['flow', 'list', '--api', url, '--api-token-file', token, '--api-ca', cert, '--json']);
    expect(ok.status, ok.stderr).toBe(0);
    const untrusted = cli(['flow', 'list', '--api', url, '--api-token-file', token]);
    expect(untrusted.status).toBe(1);
    expect(untrusted.stderr).toMatch(/cannot reach the API.*certificate/i);
  }, 120_000);
});

describe('spillway run --api: stopping and failing to serve', () => {
  it('stops on SIGTERM: the stream gets "closed", the trace and the report so far are written, exit 143', async () => {
    const token = tokenFile();
    const trace = join(dir, 'stopped.jsonl');
    const { url, proc, stderr } = await startRun(['--pace', '60', '--api-token-file', token, '--trace', trace, '--json']);
    let out = '';
    proc.stdout!.setEncoding('utf8');
    proc.stdout!.on('data', (c: string) => { out += c; });
    const seen: string[] = [];
    let ended!: () => void;
    const streamEnded = new Promise<void>((r) => { ended = r; });
    const stream = openEventStream({ url, token: TOKEN }, '', null, { onEvent: (_id, type) => seen.push(type), onEnd: () => ended() });
    // `spillway api /events` follows the same stream in its own process until the server closes it.
    const follower = spawn('node', ['bin/spillway.js', 'api', '/events?since=0', '--api', url, '--api-token-file', token], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    procs.push(follower);
    let followed = '';
    follower.stdout!.setEncoding('utf8');
    follower.stdout!.on('data', (c: string) => { followed += c; });
    const followerExit = new Promise<number | null>((r) => follower.on('exit', (code) => r(code)));
    while (seen.length < 5 || followed.split('\n').length < 5) await new Promise((r) => setTimeout(r, 50));
    const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
    proc.kill('SIGTERM');
    expect(await exited).toBe(143);
    await streamEnded;
    stream.close();
    expect(seen.at(-1)).toBe('closed');
    expect(stderr()).toMatch(/SIGTERM: stopping the run after the current event/);
    expect(stderr()).toMatch(/stopped by SIGTERM at T\+\S+ of 12h/);
    const report = JSON.parse(out);
    expect(report).toMatchObject({ passed: null, stoppedBy: 'SIGTERM', expectations: [] });
    const lines = readFileSync(trace, 'utf8').trim().split('\n');
    expect(lines.length).toBeGreaterThanOrEqual(seen.length - 1);
    expect(JSON.parse(lines.at(-1)!).t).toBeLessThan(12 * 3600e6);
    expect(await followerExit).toBe(0);
    expect(followed.trim().split('\n')).toEqual(lines);
  }, 120_000);

  it('exits 2 naming the address when it cannot listen, and leaves no temporary token behind', async () => {
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const port = (busy.address() as { port: number }).port;
    const tmp = mkdtempSync(join(tmpdir(), 'spillway-api-tmp-'));
    try {
      const r = cli(['run', scenario, '--api', `127.0.0.1:${port}`], { TMPDIR: tmp });
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`--api: cannot listen on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`));
      expect(readdirSync(tmp).filter((f) => f.startsWith('spillway-api-'))).toEqual([]);
    } finally {
      busy.close();
    }
  }, 120_000);
});

const hasTmux = spawnSync('tmux', ['-V'], { encoding: 'utf8' }).status === 0;
const SOCKET = `spillway-attach-test-${process.pid}`;

function tmux(...args: string[]): string {
  const r = spawnSync('tmux', ['-L', SOCKET, '-f', '/dev/null', ...args], { encoding: 'utf8', cwd: ROOT });
  if (r.status !== 0) throw new Error(`tmux ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

describe.skipIf(!hasTmux && process.env.SPILLWAY_REQUIRE_INTEROP !== '1')('spillway tui --attach in tmux', () => {
  afterAll(() => {
    spawnSync('tmux', ['-L', SOCKET, 'kill-server']);
  });

  it('shows a running spillway run --api move, with the same panels', async () => {
    const token = tokenFile();
    const { url } = await startRun(['--pace', '300', '--api-token-file', token]);
    const shell = `NCURSES_NO_UTF8_ACS=1 TERM=xterm node bin/spillway.js tui --attach ${url} --api-token-file ${token}; echo SPILLWAY_EXIT=$?; exec sleep 600`;
    tmux('new-session', '-d', '-s', 'attach', '-x', '100', '-y', '30', 'sh', '-c', shell);
    const capture = (): string => tmux('capture-pane', '-p', '-t', 'attach');
    const waitFor = async (what: string, test: (s: string) => boolean): Promise<string> => {
      let s = '';
      for (let i = 0; i < 300; i++) {
        s = capture();
        if (test(s)) return s;
        await new Promise((r) => setTimeout(r, 200));
      }
      throw new Error(`timed out waiting for ${what}; the pane shows:\n${s}`);
    };
    const first = await waitFor('the TUI to show the run', (s) => s.includes('on-prem hosts') && s.includes('api-mini') && /web-1/.test(s));
    const t0 = /T\+(\d+:\d\d:\d\d)/.exec(first)![1]!;
    // A flow started through the API while watching shows up in the attached view.
    const started = cli(['flow', 'start', 'transfer', 'db-1', '--api', url, '--api-token-file', token, '--json']);
    expect(started.status, started.stderr).toBe(0);
    const moved = await waitFor('the run to move and the transfer to show', (s) => {
      const t = /T\+(\d+:\d\d:\d\d)/.exec(s)?.[1];
      return t !== undefined && t !== t0 && /db-1 +cloud/.test(s);
    });
    expect(moved).toContain('on-prem hosts');
    tmux('send-keys', '-t', 'attach', 'q');
    const after = await waitFor('the TUI to quit', (s) => s.includes('SPILLWAY_EXIT='));
    expect(after).toContain('SPILLWAY_EXIT=0');
    expect(after).toMatch(/spillway tui --attach http:\/\/127\.0\.0\.1:\d+: \d+ events seen/);
  }, 180_000);
});
