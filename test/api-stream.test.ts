import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EventHub, parseFilter, type HubTimers, type SseSink } from '../src/api/events.js';
import { TraceRecorder } from '../src/world/trace.js';
import { apiRequest, openEventStream, type ApiEndpoint } from '../src/world/live-http-client.js';
import { apiScenario, TOKEN, tokenFile } from './helpers/api-fixture.js';

/** A socket we control: it "holds" what was written until the test drains it. */
class FakeSink extends EventEmitter implements SseSink {
  text = '';
  held = 0;
  ended = false;
  constructor(private readonly stuck = false) { super(); }
  write(chunk: string): boolean {
    this.text += chunk;
    if (this.stuck) this.held += chunk.length;
    return !this.stuck;
  }
  end(): void { this.ended = true; this.emit('close'); }
  get writableLength(): number { return this.held; }
  ids(): number[] { return [...this.text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1])); }
  drain(): void { this.held = 0; this.emit('drain'); }
}

/** Flush at once when asked; no keep-alive. */
const now: HubTimers = { defer: (fn) => queueMicrotask(fn), every: () => ({ stop: () => undefined }) };
const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

function recorder(): { trace: TraceRecorder; emit(n: number, src?: string, type?: string): void } {
  let t = 0;
  const trace = new TraceRecorder(() => t);
  return { trace, emit: (n, src = 'vm/a', type = 'vm.io') => { for (let i = 0; i < n; i++) { t += 1; trace.emit(src, type, { i }); } } };
}

describe('EventHub (the SSE fan-out)', () => {
  it('numbers events by trace position, resumes after an id, and filters by VM and type', async () => {
    const r = recorder();
    r.emit(3);
    const hub = new EventHub(r.trace, now, { historyEvents: 100 });
    r.emit(5, 'vm/b', 'machine.state');
    r.emit(2, 'proxy/cloud/a', 'proxy.stats');
    const all = new FakeSink();
    hub.attach(all, null, 0);
    expect(all.ids()).toEqual([3, 4, 5, 6, 7, 8, 9]);
    expect(all.text).toContain('retry: 1000');
    expect(all.text).toContain('id: 3\nevent: machine.state\ndata: {"t":4,"src":"vm/b","type":"machine.state","data":{"i":0}}\n\n');
    const resumed = new FakeSink();
    hub.attach(resumed, null, 6);
    expect(resumed.ids()).toEqual([6, 7, 8, 9]);
    const onlyA = new FakeSink();
    hub.attach(onlyA, parseFilter('a', undefined), 0);
    expect(onlyA.ids()).toEqual([8, 9]);
    const machines = new FakeSink();
    hub.attach(machines, parseFilter(undefined, 'machine.*,vm.placed'), null);
    r.emit(1, 'vm/c', 'vm.placed');
    r.emit(1, 'vm/c', 'host.load');
    await settle();
    expect(machines.ids()).toEqual([10]);
    expect(all.ids().at(-1)).toBe(11);
    hub.close();
    expect(all.text).toContain('event: closed\ndata: {"reason":"server stopping","next":12}');
    expect(all.ended).toBe(true);
  });

  it('tells a client asking for what the ring no longer holds, then serves from the oldest kept', () => {
    const r = recorder();
    const hub = new EventHub(r.trace, now, { historyEvents: 10 });
    r.emit(25);
    const late = new FakeSink();
    hub.attach(late, null, 3);
    expect(late.text).toContain('event: gap\ndata: {"from":3,"oldest":15}');
    expect(late.ids()).toEqual([15, 16, 17, 18, 19, 20, 21, 22, 23, 24]);
  });

  it('waits for a client that is behind but draining, drops one the ring overtakes, and never holds more than its buffer', async () => {
    const r = recorder();
    const hub = new EventHub(r.trace, now, { historyEvents: 200, clientBufferBytes: 2000 });
    const slow = new FakeSink(true);
    const good = new FakeSink();
    hub.attach(slow, null, null);
    hub.attach(good, null, null);
    r.emit(100);
    await settle();
    // Stuck: it got one batch and waits for 'drain' with nothing more queued for it.
    const first = slow.held;
    expect(first).toBeGreaterThan(2000);
    r.emit(50);
    await settle();
    expect(slow.held).toBe(first);
    slow.drain();
    expect(slow.ids().at(-1)).toBe(149);
    // Stuck again, and now the ring (200) runs past its cursor.
    r.emit(400);
    await settle();
    expect(hub.dropped).toBe(1);
    expect(slow.ended).toBe(true);
    expect(slow.text).toMatch(/event: dropped\ndata: \{"reason":"slow client: the events it had not read were overwritten","lastEventId":149,"oldest":\d+\}\n\n$/);
    expect(hub.clientCount).toBe(1);
    expect(good.ids()).toHaveLength(550);
    hub.close();
  });
});

describe('GET /events of a running spillway run --api (real HTTP on loopback)', () => {
  let proc: ChildProcess | null = null;
  afterEach(() => {
    if (proc && proc.exitCode === null) proc.kill('SIGTERM');
  });

  it('streams every trace line with id = position, resumes after Last-Event-ID, filters, and closes at the end', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'spillway-sse-'));
    const scenario = join(dir, 's.yaml');
    writeFileSync(scenario, apiScenario('6h'));
    const trace = join(dir, 'trace.jsonl');
    const token = tokenFile();
    proc = spawn('node', ['bin/spillway.js', 'run', scenario, '--pace', '1800', '--api', '127.0.0.1:0', '--api-token-file', token, '--trace', trace],
      { cwd: join(import.meta.dirname, '..'), stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    const url = await new Promise<string>((resolve, reject) => {
      proc!.stderr!.on('data', (c: Buffer) => { err += c.toString(); const m = /api listening on (\S+)/.exec(err); if (m) resolve(m[1]!); });
      proc!.on('exit', (code) => reject(new Error(`exited ${code}: ${err}`)));
    });
    const ep: ApiEndpoint = { url, token: TOKEN };
    const follow = (query: string, last: number | null) => {
      const seen: Array<{ id: number | null; type: string; data: string }> = [];
      let stop!: () => void;
      const ended = new Promise<void>((r) => { stop = r; });
      const s = openEventStream(ep, query, last, { onEvent: (id, type, data) => seen.push({ id, type, data }), onEnd: () => stop() });
      return { seen, ended, close: () => s.close() };
    };
    const all = follow('', null);
    const filtered = follow('?type=vm.*&vm=web-1', null);
    // Read part of the stream, drop the connection, and resume from the last id seen.
    const first = follow('', null);
    while (first.seen.filter((e) => e.id !== null).length < 20) await new Promise((r) => setTimeout(r, 20));
    first.close();
    const lastSeen = first.seen.filter((e) => e.id !== null).at(-1)!.id!;
    const resumed = follow('', lastSeen);
    const health = await apiRequest(ep, 'GET', '/health');
    expect(health.status).toBe(200);
    await Promise.all([all.ended, resumed.ended, filtered.ended]);
    if (proc.exitCode === null) await new Promise((r) => proc!.on('exit', r));
    const lines = readFileSync(trace, 'utf8').trim().split('\n');
    const events = all.seen.filter((e) => e.id !== null);
    expect(events.map((e) => e.id)).toEqual([...lines.keys()]);
    expect(events.map((e) => e.data)).toEqual(lines);
    expect(all.seen.at(-1)!.type).toBe('closed');
    const tail = resumed.seen.filter((e) => e.id !== null);
    expect(tail[0]!.id).toBe(lastSeen + 1);
    expect(tail.map((e) => e.data)).toEqual(lines.slice(lastSeen + 1));
    const wanted = lines.filter((l) => { const e = JSON.parse(l); return e.src === 'vm/web-1' && e.type.startsWith('vm.'); });
    expect(wanted.length).toBeGreaterThan(0);
    expect(filtered.seen.filter((e) => e.id !== null).map((e) => e.data)).toEqual(wanted);
  }, 180_000);
});
