import { SpillwayError } from '../errors.js';
import { apiRequest, openEventStream, type ApiEndpoint } from './live-http-client.js';
import { hashTraceLines } from './trace.js';
import type { Trace, TraceData, TraceEvent } from './types.js';

/**
 * A run going on somewhere else, seen through its management API: its trace
 * arrives over SSE (resumed with Last-Event-ID after a break) and its clock
 * from /health. It has the shape the TUI's LiveSource drives (world.trace,
 * world.nowUs, endUs, done, step), so `spillway tui --attach URL` shows a
 * remote run with the same model, panels and keys as a local one. `step`
 * cannot make a remote run go faster: it only lets what arrived show.
 */
class ReceivedTrace implements Trace {
  private readonly subscribers = new Set<(event: TraceEvent, line: string) => void>();
  private readonly lines: string[] = [];
  private n = 0;

  emit(): void {
    throw new SpillwayError('E_READ_ONLY', 'an attached run\'s trace is read-only');
  }

  hash(): string {
    return hashTraceLines(this.lines);
  }

  get count(): number {
    return this.n;
  }

  subscribe(cb: (event: TraceEvent, line: string) => void): () => void {
    this.subscribers.add(cb);
    return () => this.subscribers.delete(cb);
  }

  receive(line: string): TraceEvent {
    const raw = JSON.parse(line) as { t: number; src: string; type: string; data: TraceData };
    const event: TraceEvent = { t: raw.t, src: raw.src, type: raw.type, data: raw.data ?? {} };
    this.n++;
    this.lines.push(line);
    for (const cb of this.subscribers) cb(event, line);
    return event;
  }
}

export interface RemoteRunInfo {
  name: string;
  seed: number | null;
  endUs: number | null;
}

const POLL_MS = 1000;
const RETRY_MS = 1000;

export class RemoteRun {
  readonly world: { nowUs: number; seed: number; trace: ReceivedTrace };
  endUs: number;
  private remoteDone = false;
  private streamEnded = false;
  private lastId: number | null = null;
  private stream: { close(): void } | null = null;
  private poll: NodeJS.Timeout | null = null;
  private closed = false;
  /** Why the stream stopped for good (refused, dropped), for the caller to show. */
  problem: string | null = null;

  private constructor(private readonly ep: ApiEndpoint, readonly info: RemoteRunInfo) {
    this.world = { nowUs: 0, seed: info.seed ?? 0, trace: new ReceivedTrace() };
    this.endUs = info.endUs ?? Infinity;
  }

  /** Check the API answers and the token is accepted, then follow the run from its first kept event. */
  static async attach(ep: ApiEndpoint): Promise<RemoteRun> {
    const health = await apiRequest(ep, 'GET', '/health');
    if (health.status !== 200) throw new SpillwayError('E_API_REFUSED', `GET /health: ${health.status}`);
    const h = health.body as { name: string; seed: number | null; endUs: number | null; nowUs: number; done: boolean };
    const auth = await apiRequest(ep, 'GET', '/flows');
    if (auth.status === 401) throw new SpillwayError('E_UNAUTHORIZED', `the API at ${ep.url} refused the token (401)`);
    const run = new RemoteRun(ep, { name: h.name, seed: h.seed, endUs: h.endUs });
    run.onHealth(h);
    run.connect();
    run.poll = setInterval(() => { void run.refresh(); }, POLL_MS);
    return run;
  }

  get done(): boolean {
    return this.remoteDone && this.streamEnded;
  }

  step(): Promise<void> {
    return Promise.resolve();
  }

  close(): void {
    this.closed = true;
    if (this.poll) clearInterval(this.poll);
    this.stream?.close();
  }

  private onHealth(h: { nowUs: number; done: boolean; endUs: number | null }): void {
    if (h.nowUs > this.world.nowUs) this.world.nowUs = h.nowUs;
    if (h.endUs !== null) this.endUs = h.endUs;
    if (h.done) this.remoteDone = true;
  }

  private async refresh(): Promise<void> {
    try {
      const r = await apiRequest(this.ep, 'GET', '/health', undefined, POLL_MS * 5);
      if (r.status === 200) this.onHealth(r.body as { nowUs: number; done: boolean; endUs: number | null });
    } catch {
      // The server is gone (the run ended and it stopped): what arrived stays on screen.
      this.remoteDone = true;
      this.streamEnded = true;
      if (this.poll) clearInterval(this.poll);
    }
  }

  private connect(): void {
    if (this.closed) return;
    this.stream = openEventStream(this.ep, '', this.lastId, {
      onEvent: (id, type, data) => {
        if (type === 'closed') { this.remoteDone = true; this.streamEnded = true; return; }
        if (type === 'dropped' || type === 'gap') { this.problem = `${type}: ${data}`; return; }
        if (id === null) return;
        this.lastId = id;
        const e = this.world.trace.receive(data);
        if (e.t > this.world.nowUs) this.world.nowUs = e.t;
      },
      onEnd: (err) => {
        if (this.closed || this.streamEnded) return;
        if (err && /E_API_REFUSED/.test(String((err as { code?: string }).code))) { this.problem = err.message; this.streamEnded = true; return; }
        setTimeout(() => this.connect(), RETRY_MS);
      },
    });
  }
}
