import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SimWorld } from '../src/world/sim-world.js';
import type { TraceEvent } from '../src/world/types.js';
import { LiveSource } from '../tui/live-source.js';
import { TuiModel } from '../tui/model.js';
import { TraceIndex } from '../tui/replay-index.js';
import { ReplaySource } from '../tui/replay-source.js';
import type { Snapshot } from '../tui/snapshot.js';
import { parseTraceText, readTraceFile } from '../tui/trace-file.js';
import { filterLog, filterVms, initialViewState, reduceKey, type ViewState } from '../tui/view-state.js';
import { END_US, buildTrace, scheduleStory } from './fixtures/tui/make-fixtures.js';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'tui');
const MIN = 60_000_000;
const trace = readTraceFile(join(FIXTURES, 'quarter-end-mini.jsonl'));

function modelUpTo(events: readonly TraceEvent[], timeUs: number): TuiModel {
  const m = new TuiModel();
  for (const e of events) if (e.t <= timeUs) m.apply(e);
  m.setNow(timeUs);
  return m;
}

/** Snapshots compared by content: `version` counts work done, not what is shown. */
function content(s: Snapshot): Omit<Snapshot, 'version'> {
  const { version: _v, ...rest } = s;
  return rest;
}

describe('trace files', () => {
  it('parses the recorded fixture completely, in time order', () => {
    expect(trace.problem).toBeNull();
    expect(trace.events).toHaveLength(576);
    expect(trace.events[0]).toMatchObject({ t: 0, src: 'world', type: 'run.start' });
    expect(trace.events.at(-1)).toMatchObject({ t: END_US, type: 'run.end' });
  });

  it('is what the fixture script generates (fixtures are reproducible)', async () => {
    const lines = await buildTrace();
    expect(lines.map((l) => l + '\n').join('')).toBe(readFileSync(join(FIXTURES, 'quarter-end-mini.jsonl'), 'utf8'));
  });

  it('names the first bad line and keeps the valid prefix', () => {
    const bad = readTraceFile(join(FIXTURES, 'bad-line.jsonl'));
    expect(bad.events).toHaveLength(6);
    expect(bad.problem).toMatchObject({ line: 7, truncated: false });
    expect(bad.problem!.message).toMatch(/not valid JSON/);
  });

  it('recognises a file cut short in the middle of a line', () => {
    const text = readFileSync(join(FIXTURES, 'truncated.jsonl'), 'utf8');
    const lastLine = text.split('\n').length;
    const cut = readTraceFile(join(FIXTURES, 'truncated.jsonl'));
    expect(cut.problem).toMatchObject({ line: lastLine, truncated: true });
    expect(cut.problem!.message).toMatch(new RegExp(`ends in the middle of line ${lastLine} \\(truncated\\)`));
    expect(cut.events).toHaveLength(lastLine - 1);
  });

  it('rejects out-of-order times, bad fields and non-objects with the field named', () => {
    const ok = '{"t":5,"src":"world","type":"run.start","data":{}}';
    expect(parseTraceText(`${ok}\n{"t":4,"src":"w","type":"a.b","data":{}}\n`).problem).toMatchObject({ line: 2, message: expect.stringMatching(/"t" goes backwards/) });
    expect(parseTraceText(`${ok}\n\n{"t":6,"type":"a.b","data":{}}\n`).problem).toMatchObject({ line: 3, message: expect.stringMatching(/"src"/) });
    expect(parseTraceText('[1,2]\n').problem).toMatchObject({ line: 1, message: expect.stringMatching(/JSON object/) });
    expect(parseTraceText('{"t":-1,"src":"w","type":"a.b","data":{}}\n').problem!.message).toMatch(/non-negative integer/);
    expect(parseTraceText('{"t":1,"src":"w","type":"A B","data":{}}\n').problem!.message).toMatch(/dotted event name/);
    expect(parseTraceText('{"t":1,"src":"w","type":"a.b","data":[]}\n').problem!.message).toMatch(/"data" must be an object/);
    expect(() => readTraceFile(join(FIXTURES, 'no-such.jsonl'))).toThrow(/no-such\.jsonl: no such file/);
  });
});

describe('TuiModel over the recorded quarter-end trace', () => {
  const end = modelUpTo(trace.events, END_US).snapshot();

  it('knows the run: scenario, seed, end', () => {
    expect(end.clock).toEqual({ nowUs: END_US, seed: 7, scenario: 'quarter-end-mini', ended: true, endReason: 'until' });
    expect(end.eventCount).toBe(576);
  });

  it('shows hosts with capacity and demand, and where every VM runs', () => {
    expect(end.hosts.map((h) => h.id)).toEqual(['h1', 'h2', 'h3']);
    expect(end.hosts.every((h) => h.cpuCapacity === 24 && !h.failed)).toBe(true);
    const byName = Object.fromEntries(end.vms.map((v) => [v.name, v]));
    expect(end.vms.map((v) => v.name)).toEqual(['batch-01', 'batch-02', 'batch-03', 'batch-04', 'db-01', 'web-01', 'web-02', 'web-03']);
    expect(byName['batch-01']).toMatchObject({ where: 'onprem', host: 'h2', machine: 'reverse', state: 'bootOnPrem', outcome: 'ok' });
    expect(byName['batch-02']).toMatchObject({ where: 'cloud', instance: 'i-0a002', instanceType: 'm5.2xlarge', machine: 'transfer', state: 'running' });
    expect(byName['batch-03']).toMatchObject({ where: 'cloud', instance: 'i-0a003', error: null });
    expect(byName['web-01']).toMatchObject({ where: 'onprem', host: 'h1', power: 'running', machine: null });
  });

  it('tracks cloud instances, live ones first, linked to their VMs', () => {
    expect(end.instances.map((i) => [i.id, i.state, i.vm])).toEqual([
      ['i-0a002', 'running', 'batch-02'], ['i-0a003', 'running', 'batch-03'], ['i-0a001', 'terminated', 'batch-01'],
    ]);
  });

  it('aggregates proxies, cost and the WAN', () => {
    expect(end.proxies.byVm.map((p) => p.vm)).toEqual(['batch-02', 'batch-03']);
    expect(end.proxies.hitRatio).toBeGreaterThan(0.5);
    expect(end.proxies.hitRatio).toBeLessThan(1);
    const last = trace.events.filter((e) => e.type === 'cost.tick').at(-1)!;
    expect(end.cost).toMatchObject({ cloudUsd: last.data.cloudUsd, onpremUsd: last.data.onpremUsd });
    expect(end.wan.outages).toBe(1);
    expect(end.wan.outage).toBe(false);
    expect(end.wan.series).toHaveLength(trace.events.filter((e) => e.type === 'wan.stats').length);
  });

  it('logs happenings, not samples', () => {
    expect(end.log.some((e) => e.type === 'host.load' || e.type === 'wan.stats' || e.type === 'proxy.stats')).toBe(false);
    expect(end.log.find((e) => e.type === 'cloud.call')).toMatchObject({ level: 'error', text: expect.stringMatching(/^RunInstances failed: InsufficientInstanceCapacity/) });
    expect(end.log.filter((e) => e.type === 'cloud.call')).toHaveLength(1); // successful calls stay out of the log
    expect(end.log.find((e) => e.type === 'wan.outage')).toMatchObject({ level: 'warn', text: 'WAN outage started (connections reset)' });
  });

  it('mid-outage: the link is down and batch-03 is stuck in targetBoot with time in state growing', () => {
    const s = modelUpTo(trace.events, 53 * MIN).snapshot();
    expect(s.wan.outage).toBe(true);
    expect(s.wan.current).toMatchObject({ up: false, lossPct: 100 });
    const b3 = s.vms.find((v) => v.name === 'batch-03')!;
    expect(b3).toMatchObject({ machine: 'transfer', state: 'targetBoot', where: 'cloud' });
    const entered = trace.events.find((e) => e.src === 'vm/batch-03' && e.data.state === 'targetBoot')!.t;
    expect(b3.stateSinceUs).toBe(entered);
    expect(s.clock.nowUs - b3.stateSinceUs).toBeGreaterThan(5 * MIN);
  });

  it('gives a VM detail: machine states with timestamps, I/O, proxy and blocks streamed', () => {
    const model = modelUpTo(trace.events, END_US);
    const d = model.snapshot('batch-03').detail!;
    expect(d.vm.name).toBe('batch-03');
    expect(d.states.map((s) => `${s.machine}:${s.state}`)).toEqual([
      'instance:provision', 'instance:provision.retry', 'transfer:deactivate', 'transfer:snapshot', 'transfer:mount',
      'transfer:adapt.installDrivers', 'transfer:adapt.network', 'transfer:stageBoot', 'transfer:targetBoot', 'transfer:running',
    ]);
    expect(d.states.every((s, i) => i === 0 || s.t >= d.states[i - 1]!.t)).toBe(true);
    expect(d.io.length).toBeGreaterThan(5);
    expect(d.blocks.length).toBeGreaterThan(5);
    expect(d.blocks.some((b) => b.fetched === 0)).toBe(true); // nothing arrives while the WAN is down
    expect(d.blocksTotal.bytes).toBe(d.blocks.reduce((n, b) => n + b.bytes, 0));
    expect(d.proxy?.vm).toBe('batch-03');
    expect(d.events.map((e) => e.type)).toEqual(expect.arrayContaining(['controller.decision', 'machine.error', 'vm.placed', 'machine.done']));
    expect(model.snapshot('no-such-vm').detail).toBeNull();
  });

  it('hands out frozen snapshots, the same object until something changes', () => {
    const model = modelUpTo(trace.events, 30 * MIN);
    const a = model.snapshot();
    expect(model.snapshot()).toBe(a);
    expect(Object.isFrozen(a) && Object.isFrozen(a.vms) && Object.isFrozen(a.vms[0]) && Object.isFrozen(a.wan.series[0])).toBe(true);
    expect(() => { (a.vms as VmArray).push(a.vms[0]!); }).toThrow(TypeError);
    const before = JSON.stringify(a);
    model.apply({ t: 31 * MIN, src: 'vm/web-01', type: 'machine.state', data: { machine: 'clone', state: 'snapshot' } });
    const b = model.snapshot();
    expect(b).not.toBe(a);
    expect(JSON.stringify(a)).toBe(before); // the old snapshot did not change under the view
    expect(b.vms.find((v) => v.name === 'web-01')!.state).toBe('snapshot');
  });

  it('shows a batch task\'s progress until it is done', () => {
    const m = new TuiModel();
    m.apply({ t: 1, src: 'vm/b1', type: 'vm.progress', data: { done: 8.1, total: 32.4, rate: 2 } });
    expect(m.snapshot().vms[0]!.progress).toEqual({ done: 8.1, total: 32.4, rate: 2 });
    m.apply({ t: 2, src: 'vm/b1', type: 'vm.task.done', data: { task: 'close', startedUs: 0, finishedUs: 2, delayedUs: 0 } });
    expect(m.snapshot().vms[0]!.progress).toBeNull();
    expect(m.snapshot().log.at(-1)!.text).toBe('task close done');
  });

  it('keeps unknown event types visible in the log', () => {
    const m = new TuiModel();
    m.apply({ t: 1, src: 'proxy/cloud/x', type: 'proxy.resize', data: { fromBytes: 1, toBytes: 2 } });
    expect(m.snapshot().log[0]).toMatchObject({ type: 'proxy.resize', text: 'proxy.resize fromBytes=1 toBytes=2' });
  });
});
type VmArray = Snapshot['vms'][number][];

describe('replay index and seek', () => {
  it('seeking anywhere equals applying the trace from the start', () => {
    const source = new ReplaySource(trace.events, 64);
    const times = [0, 1, 25 * MIN, 53 * MIN + 7, 119 * MIN, END_US, 10 * MIN, 96 * MIN, 0, 58 * MIN];
    for (const t of times) {
      source.seek(t);
      expect(source.positionUs).toBe(t);
      expect(content(source.model.snapshot('batch-03')), `at ${t}`).toEqual(content(modelUpTo(trace.events, t).snapshot('batch-03')));
    }
  });

  it('playing forward in slices equals seeking', async () => {
    const source = new ReplaySource(trace.events, 64);
    while (!source.done) await source.advance(97 * 1_000_000);
    expect(content(source.model.snapshot())).toEqual(content(modelUpTo(trace.events, END_US).snapshot()));
  });

  it('steps event instant by event instant, both ways', () => {
    const source = new ReplaySource(trace.events);
    const instants = [...new Set(trace.events.map((e) => e.t))];
    expect(source.positionUs).toBe(instants[0]);
    source.step(1);
    expect(source.positionUs).toBe(instants[1]);
    source.step(1);
    expect(source.positionUs).toBe(instants[2]);
    expect(source.appliedCount).toBe(trace.events.filter((e) => e.t <= instants[2]!).length);
    source.step(-1);
    expect(source.positionUs).toBe(instants[1]);
    source.seek(END_US);
    expect(source.done).toBe(true);
    source.step(1);
    expect(source.positionUs).toBe(END_US);
  });

  it('keeps a checkpoint every N events and rebuilds from the nearest one', () => {
    const index = new TraceIndex(trace.events, 100);
    expect(index.checkpointCount).toBe(Math.floor(576 / 100) + 1);
    expect(index.countAt(-1)).toBe(0);
    expect(index.countAt(END_US)).toBe(576);
    expect(index.modelAt(450).eventCount).toBe(450);
  });

  it('seeks a 100k-event trace quickly', () => {
    // Repeat the fixture back to back, shifted in time, for a long trace.
    const big: TraceEvent[] = [];
    for (let k = 0; big.length < 100_000; k++) for (const e of trace.events) big.push({ ...e, t: e.t + k * (END_US + 1) });
    const built = performance.now();
    const source = new ReplaySource(big, 512);
    const buildMs = performance.now() - built;
    const started = performance.now();
    const seeks = 200;
    for (let i = 0; i < seeks; i++) source.seek(((i * 7919) % seeks) / seeks * source.endUs);
    const perSeekMs = (performance.now() - started) / seeks;
    console.log(`replay index: ${big.length} events indexed in ${buildMs.toFixed(0)} ms; random seek ${perSeekMs.toFixed(2)} ms`);
    expect(perSeekMs).toBeLessThan(50);
  });
});

describe('live source', () => {
  it('feeds the model from a running simulation, slice by slice, as a replay would', async () => {
    const world = new SimWorld(7);
    scheduleStory(world);
    const sim = {
      world,
      endUs: END_US,
      get done() { return world.nowUs >= END_US; },
      async step(untilUs: number) { await world.run({ untilUs }); },
    };
    const source = new LiveSource(sim, { scenario: 'from-file' });
    expect(source.model.snapshot().clock).toMatchObject({ seed: 7, scenario: 'from-file' });
    await source.advance(30 * MIN);
    expect(source.positionUs).toBe(30 * MIN);
    expect(source.model.snapshot().vms.find((v) => v.name === 'batch-01')!.where).toBe('cloud');
    while (!source.done) await source.advance(25 * MIN);
    source.close();
    expect(content(source.model.snapshot())).toEqual(content(modelUpTo(trace.events, END_US).snapshot()));
  });

  it('reviews the recorded past while the simulation waits, then returns to live', async () => {
    const world = new SimWorld(7);
    scheduleStory(world);
    const sim = { world, endUs: END_US, get done() { return world.nowUs >= END_US; }, async step(u: number) { await world.run({ untilUs: u }); } };
    const source = new LiveSource(sim, undefined, 15 * MIN, 64);
    await source.advance(60 * MIN);
    expect(source.reviewing).toBe(false);

    source.seek(30 * MIN);
    expect(source.reviewing).toBe(true);
    expect(source.positionUs).toBe(30 * MIN);
    expect(content(source.model.snapshot())).toEqual(content(modelUpTo(trace.events, 30 * MIN).snapshot()));
    await source.advance(10 * MIN); // plays the review, not the simulation
    expect(world.nowUs).toBe(60 * MIN);
    expect(content(source.model.snapshot())).toEqual(content(modelUpTo(trace.events, 40 * MIN).snapshot()));
    expect(source.done).toBe(false);

    await source.advance(30 * MIN); // reaches the newest recorded event: live again
    expect(source.reviewing).toBe(false);
    expect(source.positionUs).toBe(60 * MIN);
    await source.advance(5 * MIN);
    expect(world.nowUs).toBe(65 * MIN);

    source.step(-1); // back one event instant into the review
    expect(source.reviewing).toBe(true);
    const lastT = trace.events.filter((e) => e.t <= 65 * MIN).at(-1)!.t;
    expect(source.positionUs).toBeLessThan(lastT);
    source.step(1);
    expect(source.reviewing).toBe(false);
    source.seek(10 * MIN);
    source.seek(70 * MIN); // past the present: live
    expect(source.reviewing).toBe(false);
    expect(content(source.model.snapshot())).toEqual(content(modelUpTo(trace.events, 65 * MIN).snapshot()));
  });
});

describe('live source pacing', () => {
  it('advances in chunks with the same result, and stops on an idle world instead of spinning', async () => {
    const world = new SimWorld(7);
    scheduleStory(world);
    const steps: number[] = [];
    const sim = {
      world, endUs: END_US, get done() { return world.nowUs >= END_US; },
      async step(untilUs: number) { steps.push(untilUs); await world.run({ untilUs }); },
    };
    const source = new LiveSource(sim, undefined, 5 * MIN);
    await source.advance(30 * MIN);
    expect(steps).toEqual([5, 10, 15, 20, 25, 30].map((m) => m * MIN));
    expect(content(source.model.snapshot())).toEqual(content(modelUpTo(trace.events, 30 * MIN).snapshot()));

    const idle = new SimWorld(1);
    const calls: number[] = [];
    const stuck = { world: idle, endUs: 10 * MIN, done: false, async step(u: number) { calls.push(u); } };
    await new LiveSource(stuck).advance(10 * MIN);
    expect(calls).toHaveLength(1);
  });
});

describe('live source over the real scenario runner', () => {
  it('shows the quarter-end data center as the simulation runs', async () => {
    const { loadScenarioFile } = await import('../src/sim/scenario-file.js');
    const { createSimulation } = await import('../src/sim/simulation.js');
    const scenario = loadScenarioFile(join(import.meta.dirname, '..', 'scenarios', 'quarter-end.yaml'));
    const sim = await createSimulation(scenario, {});
    const source = new LiveSource(sim, { scenario: scenario.name });
    await source.advance(34 * 60 * MIN); // the batch run starts at 09:00 on the second day
    source.close();
    const snap = source.model.snapshot();
    expect(snap.clock).toMatchObject({ scenario: 'quarter-end', seed: scenario.seed, nowUs: 34 * 60 * MIN });
    expect(snap.hosts.map((h) => h.id)).toEqual(['esx-01', 'esx-02', 'esx-03', 'esx-04', 'esx-05', 'esx-06']);
    expect(snap.hosts.every((h) => h.cpuCapacity === 48 && h.cpuDemand > 0)).toBe(true);
    expect(snap.vms).toHaveLength(scenario.datacenter.vms.length);
    // quarter-end bursts close jobs to the cloud from about 33.2 h: those are the only VMs not on a host.
    expect(snap.vms.every((v) => (v.where === 'onprem' && v.host !== null) || (v.where === 'cloud' && v.name.startsWith('batch-')))).toBe(true);
    expect(snap.vms.filter((v) => v.progress !== null).length).toBeGreaterThan(0); 
  }, 240_000); // 34 simulated hours of the main scenario: a minute alone, more on a busy CI box
});

describe('view state (filter and keys, no terminal)', () => {
  const snap = modelUpTo(trace.events, END_US).snapshot();
  const press = (state: ViewState, ...keys: string[]): { state: ViewState; commands: string[] } => {
    const commands: string[] = [];
    for (const full of keys) {
      const r = reduceKey(state, { full, ch: full.length === 1 ? full : undefined }, snap);
      state = r.state;
      if (r.command) commands.push(r.command);
    }
    return { state, commands };
  };

  it('filters VMs by every term and the log by source and text', () => {
    expect(filterVms(snap.vms, 'cloud').map((v) => v.name)).toEqual(['batch-02', 'batch-03']);
    expect(filterVms(snap.vms, 'BATCH transfer').map((v) => v.name)).toEqual(['batch-02', 'batch-03']);
    expect(filterVms(snap.vms, '')).toBe(snap.vms);
    expect(filterLog(snap.log, 'outage').map((e) => e.type)).toEqual(['wan.outage', 'wan.outage']);
  });

  it('types a filter with /, applies it with enter, cancels with esc', () => {
    const typed = press(initialViewState, '/', 'c', 'l', 'o', 'u', 'd', 'x', 'backspace');
    expect(typed.state).toMatchObject({ editingFilter: true, filterDraft: 'cloud', filter: '' });
    const applied = press(typed.state, 'enter');
    expect(applied.state).toMatchObject({ editingFilter: false, filter: 'cloud', mode: 'main' });
    expect(press(applied.state, '/', 'z', 'escape').state.filter).toBe('cloud');
    expect(press(applied.state, 'escape').state.filter).toBe('');
    expect(typed.commands).toEqual([]); // q typed into the filter would be text, not quit
    expect(press(initialViewState, '/', 'q').state.filterDraft).toBe('q');
  });

  it('moves the selection, opens the detail of the selected VM, and esc leaves it', () => {
    const moved = press(initialViewState, 'down', 'down');
    expect(moved.state.selectedVm).toBe('batch-03');
    const opened = press(moved.state, 'enter');
    expect(opened.state).toMatchObject({ mode: 'detail', detailVm: 'batch-03' });
    expect(press(opened.state, 'escape').state).toMatchObject({ mode: 'main', detailVm: null, selectedVm: 'batch-03' });
    // The selection follows the filter: the first visible row when the selected one is filtered out.
    const filtered = press(initialViewState, '/', 'w', 'e', 'b', 'enter', 'enter');
    expect(filtered.state.detailVm).toBe('web-01');
  });

  it('tab cycles focus; help opens with ? and any key closes it; q and C-c quit', () => {
    expect(press(initialViewState, 'tab').state.focus).toBe('log');
    expect(press(initialViewState, 'tab', 'tab', 'tab', 'tab').state.focus).toBe('vms');
    expect(press(initialViewState, 'S-tab').state.focus).toBe('instances');
    const help = press(initialViewState, '?');
    expect(help.state.mode).toBe('help');
    expect(press(help.state, 'space')).toEqual({ state: expect.objectContaining({ mode: 'main' }), commands: [] });
    expect(press(initialViewState, 'q').commands).toEqual(['quit']);
    expect(press(initialViewState, 'C-c').commands).toEqual(['quit']);
  });

  it('turns pace keys into controller commands', () => {
    expect(press(initialViewState, 'space', '+', '-', 'left', 'right', '[', ']').commands).toEqual([
      'toggle-pause', 'faster', 'slower', 'step-back', 'step-forward', 'seek-back', 'seek-forward',
    ]);
  });

  it('scrolls the event log when it has focus', () => {
    const s = press(initialViewState, 'tab', 'up', 'up', 'up');
    expect(s.state.logScroll).toBe(3);
    expect(press(s.state, 'end').state.logScroll).toBe(0);
  });
});
