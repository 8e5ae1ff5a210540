import { execFile } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { buildApi } from '../src/api/app.js';
import { SimBackend } from '../src/api/sim-backend.js';
import type { SimAction } from '../src/api/sim-flows.js';
import { parseScenario } from '../src/sim/scenario-file.js';
import { ScenarioSimulation } from '../src/sim/simulation.js';
import type { RecordedAction } from '../src/world/action-inbox.js';
import { liveHubTimers } from '../src/world/live-api-server.js';
import { yieldingPacer } from '../src/world/live-pacer.js';
import { apiScenario, auth, simApi, stepUntil, TOKEN } from './helpers/api-fixture.js';

const execFileP = promisify(execFile);

function sim(duration: string): ScenarioSimulation {
  return new ScenarioSimulation(parseScenario(apiScenario(duration), 'api-mini.yaml'), { noBaseline: true });
}

class NullSink extends EventEmitter {
  bytes = 0;
  write(chunk: string): boolean { this.bytes += chunk.length; return true; }
  end(): void { this.emit('close'); }
  get writableLength(): number { return 0; }
}

describe('determinism with the management API on', () => {
  it('gives the same trace hash as without when nobody acts, however often the routes are read', async () => {
    const bare = (await sim('3h').runToEnd()).traceHash;
    const s = sim('3h');
    const backend = new SimBackend(s);
    const api = await buildApi({ backend, token: TOKEN, timers: liveHubTimers });
    const stream = new NullSink();
    api.hub.attach(stream, null, 0);
    let reads = 0;
    let finished = false;
    // Let the run hand the loop a turn every 2 ms, so reads land between its events.
    s.world.pacer = yieldingPacer(2);
    const run = s.runToEnd().finally(() => { finished = true; });
    while (!finished) {
      for (const url of ['/vms', '/flows', '/proxies', '/metrics', '/cloud', '/wan', '/cost', '/health']) await api.app.inject({ method: 'GET', url, headers: auth });
      reads++;
      // inject answers within microtasks: give the run's turns a chance (a real client waits on a socket).
      await new Promise((r) => setImmediate(r));
    }
    expect((await run).traceHash).toBe(bare);
    expect(reads).toBeGreaterThan(1);
    expect(stream.bytes).toBeGreaterThan(0);
    backend.close();
    await api.close();
  }, 180_000);

  it('records each action with its virtual time and slot; the recorded actions put back give the same trace hash', async () => {
    const lines: string[] = [];
    const fx = await simApi({ duration: '3h', onTrace: (l) => lines.push(l) });
    await fx.sim.step(17 * 60e6 + 123);
    const started = await stepUntil(fx.sim, fx.backend.actions.start({ kind: 'transfer', vm: 'web-2' }));
    await fx.sim.step(fx.sim.world.nowUs + 40 * 60e6);
    // Too late: the transfer is done. The refusal is part of the run too.
    await expect(stepUntil(fx.sim, fx.backend.actions.rollback(started.id))).rejects.toMatchObject({ code: 'E_FLOW_FINISHED' });
    const back = await stepUntil(fx.sim, fx.backend.actions.start({ kind: 'reverse', vm: 'web-2' }));
    const report = await fx.sim.runToEnd();
    await fx.close();
    const actions = lines.filter((l) => l.includes('"type":"api.action"'));
    expect(actions).toHaveLength(3);
    expect(JSON.parse(actions[0]!)).toEqual({
      t: started.atUs, src: 'api', type: 'api.action', data: { n: 1, op: 'start', seq: started.seq, request: { kind: 'transfer', vm: 'web-2' } },
    });
    expect(started.atUs).toBe(17 * 60e6 + 124);
    expect(lines.some((l) => l.includes('"type":"api.refused"') && l.includes('E_FLOW_FINISHED'))).toBe(true);
    expect(back.machine).toBe('reverse');

    const recorded: Array<RecordedAction<SimAction>> = actions.map((l) => {
      const e = JSON.parse(l);
      return { t: e.t, seq: e.data.seq, action: e.data.op === 'start' ? { op: 'start', request: e.data.request } : { op: 'rollback', id: e.data.id } };
    });
    const replay = sim('3h');
    const replayBackend = new SimBackend(replay, { recorded });
    expect((await replay.runToEnd()).traceHash).toBe(report.traceHash);
    expect(replayBackend.actions.inbox.replayLeft).toBe(0);

    // The CLI does the same from the trace file.
    const dir = mkdtempSync(join(tmpdir(), 'spillway-actions-'));
    writeFileSync(join(dir, 'trace.jsonl'), lines.join('\n') + '\n');
    writeFileSync(join(dir, 'api-mini.yaml'), apiScenario('3h'));
    const { stdout } = await execFileP('node', ['bin/spillway.js', 'run', join(dir, 'api-mini.yaml'), '--actions', join(dir, 'trace.jsonl'), '--json'],
      { cwd: join(import.meta.dirname, '..'), maxBuffer: 64 << 20 });
    expect(JSON.parse(stdout).traceHash).toBe(report.traceHash);
  }, 240_000);
});
