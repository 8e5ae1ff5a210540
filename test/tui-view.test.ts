import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import type blessed from 'blessed';
import { afterEach, describe, expect, it } from 'vitest';
import type { TraceEvent } from '../src/world/types.js';
import { TuiApp, type RealClock } from '../tui/app.js';
import { ReplaySource } from '../tui/replay-source.js';
import { openScreen, screenText } from '../tui/terminal.js';
import { readTraceFile } from '../tui/trace-file.js';

const trace = readTraceFile(join(import.meta.dirname, 'fixtures', 'tui', 'quarter-end-mini.jsonl'));

/** Real time under the test's control: frames happen when the test says so. */
class ManualClock implements RealClock {
  now = 0;
  ticking = false;
  nowMs(): number {
    return this.now;
  }
  startTicker(): { stop(): void } {
    this.ticking = true;
    return { stop: () => { this.ticking = false; } };
  }
}

interface Harness {
  screen: blessed.Widgets.Screen;
  app: TuiApp;
  clock: ManualClock;
  running: Promise<void>;
  lines(): string[];
  text(): string;
  frames(n: number): Promise<void>;
  type(keys: string): Promise<void>;
  resize(cols: number, rows: number): Promise<void>;
}

const open: blessed.Widgets.Screen[] = [];
afterEach(() => {
  for (const s of open.splice(0)) if (!(s as unknown as { destroyed?: boolean }).destroyed) s.destroy();
});

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function start(cols: number, rows: number, events: readonly TraceEvent[] = trace.events, speed = 3600): Promise<Harness> {
  const input = Object.assign(new PassThrough(), { isTTY: true, setRawMode: () => input });
  const output = Object.assign(new PassThrough(), { isTTY: true, columns: cols, rows });
  output.on('data', () => {});
  const screen = openScreen({ input, output });
  open.push(screen);
  const clock = new ManualClock();
  const app = new TuiApp({ screen, source: new ReplaySource(events), speed, clock });
  const running = app.run();
  const h: Harness = {
    screen, app, clock, running,
    lines: () => screenText(screen),
    text: () => screenText(screen).join('\n'),
    frames: async (n) => {
      for (let i = 0; i < n; i++) {
        clock.now += 100;
        await app.tick(clock.now);
      }
    },
    // Keys go through the real input stream, so blessed's key parsing is part of the test.
    type: async (keys) => {
      input.write(keys);
      await settle();
    },
    resize: async (c, r) => {
      output.columns = c;
      output.rows = r;
      output.emit('resize');
      await settle();
    },
  };
  return h;
}

/** Every bordered row still ends in a border: nothing overflowed its panel. */
function expectIntactFrame(lines: string[], cols: number, rows: number): void {
  expect(lines).toHaveLength(rows);
  for (const [i, line] of lines.entries()) {
    expect([...line].length, `row ${i}`).toBe(cols);
    if (i > 0 && i < rows - 1) expect('┐│┘', `row ${i}: ${line}`).toContain([...line].at(-1));
  }
}

describe('headless render at 80x24', () => {
  it('shows every panel with the right content after some frames', async () => {
    const h = await start(80, 24);
    await h.frames(3); // 3 × 100 ms × 3600 = 18 virtual minutes: the peak, before any burst
    expect(h.text()).toMatch(/h2 +█+ *1[0-9]{2}% +3vm/);
    await h.frames(2);
    const lines = h.lines();
    const text = h.text();
    expectIntactFrame(lines, 80, 24);
    expect(lines[0]).toMatch(/REPLAY │ T\+0:30:00\/2:00:00 │ ▶ 3600x │ seed 7/);
    expect(lines[1]).toMatch(/^┌─ on-prem hosts/);
    expect(text).toMatch(/h2 +█+░+ +\d\d% +1vm/); // two of its VMs now run in the cloud
    expect(text).toMatch(/WAN/);
    expect(text).toMatch(/rtt +\d+ms/);
    expect(text).toMatch(/cache hit +\d+\.\d%/);
    expect(text).toMatch(/cost cloud +\$\d+\.\d\d/);
    expect(text).toMatch(/VMs 8 \(2 in cloud\)/);
    expect(text).toMatch(/batch-01 cloud +transfer:running/);
    expect(text).toMatch(/web-01 +onprem +running +30m00s/);
    expect(text).toMatch(/cloud instances 2\/2/);
    expect(text).toMatch(/i-0a001 +running +batch-01/);
    expect(text).toMatch(/0:29:27 vm\/batch-… transfer → running/);
    expect(lines[23]).toMatch(/^\? help {2}q quit {2}space pause {2}\+\/- speed/);
    h.app.key({ full: 'q' });
    await h.running;
  });

  it('pauses with space, changes speed with + and -, steps and seeks', async () => {
    const h = await start(80, 24);
    await h.frames(2);
    await h.type(' ');
    expect(h.lines()[0]).toMatch(/T\+0:12:00\/2:00:00 │ ⏸ 3600x paused/);
    await h.frames(10);
    expect(h.lines()[0]).toMatch(/T\+0:12:00/);
    await h.type(' ');
    await h.type('+');
    expect(h.lines()[0]).toMatch(/▶ 7200x/);
    expect(h.text()).toMatch(/speed 7200x/);
    await h.type('--');
    expect(h.app.currentSpeed).toBe(1800);
    await h.type(']');
    expect(h.lines()[0]).toMatch(/T\+0:18:00/); // 5% of two hours
    await h.type('[[');
    expect(h.lines()[0]).toMatch(/T\+0:06:00/);
    await h.type('\x1b[D'); // ←: back to the previous instant with an event, paused
    expect(h.app.isPaused).toBe(true);
    expect(h.lines()[0]).toMatch(/T\+0:05:00/); // host.load samples
    await h.type('\x1b[C'); // →
    expect(h.lines()[0]).toMatch(/T\+0:06:10/); // a wan.stats sample
    await h.type('\x1b[C');
    expect(h.lines()[0]).toMatch(/T\+0:08:10/);
    h.app.key({ full: 'q' });
    await h.running;
  });

  it('opens the detail view with enter and leaves it with esc', async () => {
    const h = await start(80, 24);
    await h.frames(10); // one hour
    await h.type('\x1b[B\x1b[B'); // ↓ ↓ selects batch-03
    await h.type('\r');
    const lines = h.lines();
    expectIntactFrame(lines, 80, 24);
    const text = h.text();
    expect(lines[1]).toMatch(/VM batch-03 — esc back/);
    expect(text).toMatch(/batch-03 {2}cloud on i-0a003 \(m5\.2xlarge\) {2}power running/);
    expect(text).toMatch(/machine states \(10\)/);
    expect(text).toMatch(/0:47:33 transfer +targetBoot +10m2\ds/);
    expect(text).toMatch(/blocks streamed {2}fetched \d+/);
    expect(text).toMatch(/E_BOOT_TIMEOUT/);
    h.app.key({ full: 'escape' });
    expect(h.text()).toMatch(/VMs 8 \(3 in cloud\)/);
    h.app.key({ full: 'q' });
    await h.running;
  });

  it('filters with /, shows help with ?, and moves focus with tab', async () => {
    const h = await start(80, 24);
    await h.frames(10);
    await h.type('/web');
    expect(h.lines()[23]).toMatch(/^\/web█/);
    await h.type('\r');
    const text = h.text();
    expect(text).toMatch(/VMs 3\/8/);
    expect(text).not.toMatch(/batch-0\d cloud/);
    expect(h.lines()[23]).toMatch(/^\[\/web\]/);
    await h.type('?');
    expect(h.text()).toMatch(/spillway tui — keys/);
    expect(h.text()).toMatch(/q +quit and restore the terminal/);
    await h.type('x');
    expect(h.text()).not.toMatch(/spillway tui — keys/);
    await h.type('\t');
    expect(h.app.viewState.focus).toBe('log');
    h.app.key({ full: 'q' });
    await h.running;
  });

  it('scrolls the hosts panel when it has focus and the hosts do not fit', async () => {
    const hosts: TraceEvent[] = Array.from({ length: 8 }, (_, i) => ({
      t: 0, src: `host/esx-0${i + 1}`, type: 'host.load', data: { cpuDemand: 10 + i, cpuCapacity: 48, ramUsedMiB: 1, ramMiB: 2, vms: i },
    }));
    const h = await start(80, 24, hosts);
    await h.frames(1);
    expect(h.text()).toMatch(/esx-01/);
    expect(h.text()).toMatch(/\+4 more hosts/);
    expect(h.text()).not.toMatch(/esx-08/);
    await h.type('\t\t'); // focus: VMs → events → hosts
    expect(h.app.viewState.focus).toBe('hosts');
    await h.type('\x1b[B\x1b[B\x1b[B\x1b[B\x1b[B'); // ↓ × 5
    expect(h.text()).toMatch(/esx-08 +█+░+ +35% +7vm/);
    expect(h.text()).not.toMatch(/esx-01/);
    h.app.key({ full: 'q' });
    await h.running;
  });

  it('escapes untrusted names: tags and terminal escapes are shown, not obeyed', async () => {
    const evil: TraceEvent[] = [
      { t: 0, src: 'world', type: 'run.start', data: { scenario: '{red-fg}x', seed: 1, vms: 2, hosts: 0 } },
      { t: 0, src: 'vm/{bold}b{/bold}', type: 'vm.placed', data: { where: 'onprem', host: 'h{1}' } },
      { t: 1, src: 'vm/e\u001b[2Jx', type: 'machine.state', data: { machine: 'm', state: '{/}' } },
    ];
    const h = await start(80, 24, evil);
    await h.frames(1);
    const text = h.text();
    expect(text).toMatch(/\{bold\}b\{\/bold\} onprem/);
    expect(text).toMatch(/e\?\[2Jx/);
    expect(text).toMatch(/m:\{\/\}/);
    expect(text).toMatch(/\{red-fg\}x/);
    h.app.key({ full: 'q' });
    await h.running;
  });
});

describe('headless render at 160x48', () => {
  it('uses the room: charts, an ON column, instance types', async () => {
    const h = await start(160, 48);
    await h.frames(10);
    const lines = h.lines();
    expectIntactFrame(lines, 160, 48);
    const text = h.text();
    expect(lines[0]).toMatch(/REPLAY │ T\+1:00:00\/2:00:00 │ ▶ 3600x │ seed 7 │ cost \$\d+\.\d\d │ quarter-end-mini/);
    expect(text).toMatch(/↑ [\d.]+MB\/s {2}↓ [\d.]+MB\/s {2}rtt [\d.]+ms {2}loss [\d.]+% {2}outages 1/);
    expect(text).toMatch(/[\u2801-\u28ff]/); // the blessed-contrib line chart draws in braille
    expect(text).toMatch(/NAME +WHERE +ON +STATE +IN STATE +READ +WRITE +IOPS/);
    expect(text).toMatch(/batch-03 +cloud +i-0a003 +transfer:running/);
    expect(text).toMatch(/i-0a003 +running +m5\.2xlarge +batch-03/);
    expect(text).toMatch(/cpu █+░* *\d+% +\d+vm/);
    expect(text).toMatch(/ram █+░* *\d+%/);
    await h.type('\x1b[B\x1b[B\r');
    const detail = h.text();
    expect(detail).toMatch(/VM batch-03 — esc back/);
    expect(detail).toMatch(/blocks streamed \(KiB per sample\)/);
    expectIntactFrame(h.lines(), 160, 48);
    h.app.key({ full: 'q' });
    await h.running;
  });
});

describe('resize and exit paths', () => {
  it('redraws on resize, small to large and too small', async () => {
    const h = await start(80, 24);
    await h.frames(5);
    expect(h.text()).not.toMatch(/IOPS/);
    await h.resize(160, 48);
    expectIntactFrame(h.lines(), 160, 48);
    expect(h.text()).toMatch(/IOPS/);
    await h.resize(50, 15);
    expect(h.text().replace(/\s+/g, ' ')).toMatch(/terminal too small: spillway needs at least 60x20, this one is 50x15/);
    await h.resize(80, 24);
    expectIntactFrame(h.lines(), 80, 24);
    h.app.key({ full: 'q' });
    await h.running;
  });

  it('an error while playing ends run() with that error and tears the widgets down', async () => {
    const h = await start(80, 24);
    const source = (h.app as unknown as { options: { source: ReplaySource } }).options.source;
    source.advance = () => Promise.reject(new Error('boom in the source'));
    await h.frames(1);
    await expect(h.running).rejects.toThrow('boom in the source');
    expect(h.screen.children).toHaveLength(0);
  });

  it('q quits from any mode, including the filter prompt via C-c', async () => {
    const h = await start(80, 24);
    await h.type('/abc');
    await h.type('\x03'); // C-c
    await h.running;
    expect(h.clock.ticking).toBe(false);
  });
});
