import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readTraceFile } from '../tui/trace-file.js';

/**
 * Drives the real `spillway replay` in a real terminal (tmux): start, pause,
 * open a detail view, quit, and check the terminal is given back (the
 * alternate screen is left and the shell prompt's screen is restored).
 */
const ROOT = join(import.meta.dirname, '..');
const FIXTURE = 'test/fixtures/tui/quarter-end-mini.jsonl';
const SOCKET = `spillway-tui-test-${process.pid}`;

const hasTmux = spawnSync('tmux', ['-V'], { encoding: 'utf8' }).status === 0;
const required = process.env.SPILLWAY_REQUIRE_INTEROP === '1';
if (!hasTmux) {
  const msg = '\n*** tmux is NOT installed: the TUI smoke test (test/tui-tmux.test.ts) cannot run. Install tmux (apt-get install tmux). ***\n';
  process.stderr.write(msg);
}

function tmux(...args: string[]): string {
  for (let attempt = 0; ; attempt++) {
    const r = spawnSync('tmux', ['-L', SOCKET, '-f', '/dev/null', ...args], { encoding: 'utf8', cwd: ROOT });
    if (r.status === 0) return r.stdout;
    // Killing a test's last session makes the tmux server exit in the background;
    // a new-session that races with that exit fails this way and simply needs another go.
    if (attempt < 10 && /server exited unexpectedly/.test(r.stderr)) {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
      continue;
    }
    throw new Error(`tmux ${args.join(' ')} failed: ${r.stderr}`);
  }
}

const capture = (): string => tmux('capture-pane', '-p', '-t', 'tui');
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(what: string, test: (screen: string) => boolean, timeoutMs = 20_000): Promise<string> {
  const until = Date.now() + timeoutMs;
  let screen = '';
  while (Date.now() < until) {
    screen = capture();
    if (test(screen)) return screen;
    await sleep(150);
  }
  throw new Error(`timed out waiting for ${what}; the pane shows:\n${screen}`);
}

describe.skipIf(!hasTmux && !required)('spillway replay in tmux', () => {
  afterAll(() => {
    spawnSync('tmux', ['-L', SOCKET, 'kill-server']);
  });

  it('is available (SPILLWAY_REQUIRE_INTEROP=1 demands it)', () => {
    expect(hasTmux, 'tmux is required when SPILLWAY_REQUIRE_INTEROP=1').toBe(true);
  });

  it('starts, pauses, opens a detail view, quits, and restores the terminal', async () => {
    const shell = `printf 'BEFORE-TUI\\n'; NCURSES_NO_UTF8_ACS=1 TERM=xterm node bin/spillway.js replay ${FIXTURE} --speed 120; echo SPILLWAY_EXIT=$?; exec sleep 600`;
    tmux('new-session', '-d', '-s', 'tui', '-x', '80', '-y', '24', 'sh', '-c', shell);
    let screen = await waitFor('the TUI to start', (s) => s.includes('REPLAY') && s.includes('on-prem hosts'));
    expect(tmux('display-message', '-p', '-t', 'tui', '#{alternate_on}').trim()).toBe('1');
    expect(screen).toMatch(/seed 7/);

    tmux('send-keys', '-t', 'tui', 'Space');
    screen = await waitFor('pause', (s) => /⏸ 120x paused/.test(s));
    const pausedAt = /T\+(\d+:\d\d:\d\d)/.exec(screen)![1];
    await sleep(600);
    expect(capture()).toContain(`T+${pausedAt}`); // paused means paused

    tmux('send-keys', '-t', 'tui', ']', ']', ']', ']', ']', ']'); // seek 30 min in: VMs have burst
    await waitFor('the seek', (s) => /batch-01 cloud/.test(s));
    tmux('send-keys', '-t', 'tui', 'Enter');
    screen = await waitFor('the detail view', (s) => s.includes('VM batch-01 — esc back') && s.includes('machine states'));
    expect(screen).toMatch(/transfer +targetBoot/);

    tmux('send-keys', '-t', 'tui', 'Escape');
    await waitFor('the main view again', (s) => /VMs 8 \(2 in cloud\)/.test(s));
    tmux('send-keys', '-t', 'tui', 'q');
    screen = await waitFor('the exit', (s) => s.includes('SPILLWAY_EXIT='));
    expect(screen).toMatch(/SPILLWAY_EXIT=0/);
    expect(tmux('display-message', '-p', '-t', 'tui', '#{alternate_on}').trim()).toBe('0');
    expect(screen).toContain('BEFORE-TUI'); // the screen from before the TUI is back
    expect(screen).not.toContain('on-prem hosts');
    tmux('kill-session', '-t', 'tui');
  });

  it('runs a scenario live with spillway tui, then quits cleanly', async () => {
    const tracePath = join(mkdtempSync(join(tmpdir(), 'spillway-tui-')), 'live.jsonl');
    const shell = `NCURSES_NO_UTF8_ACS=1 TERM=xterm node bin/spillway.js tui scenarios/quarter-end.yaml --speed 3600 --seed 5 --trace ${tracePath}; echo SPILLWAY_EXIT=$?; exec sleep 600`;
    tmux('new-session', '-d', '-s', 'tui', '-x', '100', '-y', '30', 'sh', '-c', shell);
    let screen = await waitFor('the live view', (s) => /LIVE │ T\+\d+:\d\d:\d\d\/72:00:00/.test(s) && /esx-06/.test(s));
    expect(screen).toMatch(/seed 5/);
    expect(screen).toMatch(/VMs 82/);
    const first = /T\+(\d+):(\d\d):(\d\d)/.exec(screen)!;
    await sleep(1000);
    screen = capture();
    const later = /T\+(\d+):(\d\d):(\d\d)/.exec(screen)!;
    const secs = (m: RegExpExecArray): number => Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]);
    expect(secs(later)).toBeGreaterThan(secs(first)); // virtual time moves on its own
    tmux('send-keys', '-t', 'tui', 'Space', '[');
    screen = await waitFor('a review of the recorded past', (s) => /LIVE·REVIEW │ T\+/.test(s));
    tmux('send-keys', '-t', 'tui', ']', ']', ']');
    await waitFor('live again', (s) => /LIVE │ T\+/.test(s));
    tmux('send-keys', '-t', 'tui', 'q');
    screen = await waitFor('the exit', (s) => s.includes('SPILLWAY_EXIT='));
    expect(screen).toMatch(/SPILLWAY_EXIT=0/);
    expect(screen).toMatch(/seed 5, stopped at T\+/);
    expect(tmux('display-message', '-p', '-t', 'tui', '#{alternate_on}').trim()).toBe('0');
    tmux('kill-session', '-t', 'tui');
    // What was watched was recorded, and replays.
    const recorded = readTraceFile(tracePath);
    expect(recorded.problem).toBeNull();
    expect(recorded.events[0]).toMatchObject({ type: 'run.start', data: { seed: 5, scenario: 'quarter-end' } });
    expect(recorded.events.length).toBeGreaterThan(100);
    rmSync(dirname(tracePath), { recursive: true, force: true });
  });

  it('restores the terminal when the process is terminated by a signal', async () => {
    const shell = `NCURSES_NO_UTF8_ACS=1 TERM=xterm node bin/spillway.js replay ${FIXTURE}; echo SPILLWAY_EXIT=$?; exec sleep 600`;
    tmux('new-session', '-d', '-s', 'tui', '-x', '80', '-y', '24', 'sh', '-c', shell);
    await waitFor('the TUI to start', (s) => s.includes('REPLAY'));
    const shellPid = tmux('display-message', '-p', '-t', 'tui', '#{pane_pid}').trim();
    const child = spawnSync('pgrep', ['-P', shellPid], { encoding: 'utf8' }).stdout.trim().split('\n')[0]!;
    expect(child).toMatch(/^\d+$/);
    process.kill(Number(child), 'SIGTERM');
    await waitFor('the exit', (s) => s.includes('SPILLWAY_EXIT='));
    expect(tmux('display-message', '-p', '-t', 'tui', '#{alternate_on}').trim()).toBe('0');
    tmux('kill-session', '-t', 'tui');
  });

  it('shows the valid prefix of a truncated trace with a warning naming the line', async () => {
    const shell = `NCURSES_NO_UTF8_ACS=1 TERM=xterm node bin/spillway.js replay test/fixtures/tui/truncated.jsonl; echo SPILLWAY_EXIT=$?; exec sleep 600`;
    tmux('new-session', '-d', '-s', 'tui', '-x', '120', '-y', '30', 'sh', '-c', shell);
    await waitFor('the warning', (s) => /⚠ test\/fixtures\/tui\/truncated\.jsonl:\d+: the file ends in the middle of line \d+/.test(s));
    tmux('send-keys', '-t', 'tui', 'q');
    const screen = await waitFor('the exit', (s) => s.includes('SPILLWAY_EXIT='));
    expect(screen.replace(/\s+/g, ' ')).toMatch(/spillway replay: warning: test\/fixtures\/tui\/truncated\.jsonl:\d+: the file ends in the middle of line \d+ \(truncated\)/);
    expect(screen).toMatch(/SPILLWAY_EXIT=0/);
    tmux('kill-session', '-t', 'tui');
  });
});

describe('spillway replay refuses bad input before opening the screen', () => {
  const run = (...args: string[]) => spawnSync('node', ['bin/spillway.js', 'replay', ...args], { encoding: 'utf8', cwd: ROOT });

  it('names the bad line with --strict', () => {
    const r = run('test/fixtures/tui/bad-line.jsonl', '--strict');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/bad-line\.jsonl:7: not valid JSON/);
  });

  it('names a missing file and a bad --speed', () => {
    expect(run('test/fixtures/tui/nope.jsonl').stderr).toMatch(/nope\.jsonl: no such file/);
    const r = run(FIXTURE, '--speed', 'fast');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--speed: expected virtual seconds per real second/);
  });

  it('says it needs a terminal when stdout is a pipe', () => {
    const r = run(FIXTURE);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/needs an interactive terminal/);
  });
});
