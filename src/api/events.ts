import type { Trace, TraceEvent } from '../world/types.js';

/** Real-loop services the hub needs; src/world/live-api-server.ts provides them. */
export interface HubTimers {
  /** Run `fn` once soon, after the current turn (a flush of what was published meanwhile). */
  defer(fn: () => void): void;
  /** Run `fn` every `ms` until stopped (keep-alive comments). */
  every(ms: number, fn: () => void): { stop(): void };
}

/** The writable end of one SSE response (a node ServerResponse satisfies it). */
export interface SseSink {
  write(chunk: string): boolean;
  end(): void;
  readonly writableLength: number;
  once(event: 'drain' | 'close', fn: () => void): unknown;
}

export interface EventFilter {
  vms: ReadonlySet<string> | null;
  types: ReadonlySet<string> | null;
  prefixes: readonly string[];
}

export interface HubOptions {
  /** Events kept for Last-Event-ID resume; a client further behind than this is dropped. */
  historyEvents?: number;
  /** Bytes a client's socket may hold unsent before we wait for it to drain. */
  clientBufferBytes?: number;
  keepAliveMs?: number;
}

interface Entry {
  seq: number;
  type: string;
  vm: string | null;
  /** The SSE frame: id, event type, and the trace line as data. */
  frame: string;
}

interface Client {
  sink: SseSink;
  filter: EventFilter | null;
  cursor: number;
  waitingDrain: boolean;
  closed: boolean;
}

const BATCH = 512;

/** Which VM an event is about: its source (vm/…, proxy/cloud/…) or a `vm` field. */
function vmOf(e: TraceEvent): string | null {
  if (e.src.startsWith('vm/')) return e.src.slice(3);
  if (e.src.startsWith('proxy/cloud/')) return e.src.slice(12).split('/')[0] ?? null;
  return typeof e.data.vm === 'string' ? e.data.vm : null;
}

export function parseFilter(vm: string | undefined, type: string | undefined): EventFilter | null {
  if (vm === undefined && type === undefined) return null;
  const types = type === undefined ? [] : type.split(',');
  return {
    vms: vm === undefined ? null : new Set(vm.split(',')),
    types: type === undefined ? null : new Set(types.filter((t) => !t.endsWith('.*'))),
    prefixes: types.filter((t) => t.endsWith('.*')).map((t) => t.slice(0, -1)),
  };
}

function matches(f: EventFilter | null, e: Entry): boolean {
  if (!f) return true;
  if (f.vms && (e.vm === null || !f.vms.has(e.vm))) return false;
  if (f.types && !(f.types.has(e.type) || f.prefixes.some((p) => e.type.startsWith(p)))) return false;
  return true;
}

/**
 * Fans the trace out to Server-Sent Events clients. The event id is the
 * event's position in the trace (0-based), so `Last-Event-ID: N` resumes at
 * N + 1. The hub keeps the last `historyEvents` events in a ring, shared by
 * all clients; a client holds only a cursor into it and at most
 * `clientBufferBytes` (plus one batch) in its socket. A client so slow that
 * the ring overtakes its cursor is sent a final `dropped` event and closed:
 * memory never grows with a slow client.
 */
export class EventHub {
  private readonly ring: Array<Entry | undefined>;
  private head = 0;
  /** The first id this hub saw (events before it was created are not in its ring). */
  private readonly first: number;
  private readonly clients = new Set<Client>();
  private scheduled = false;
  private sinceFlush = 0;
  private readonly keepAlive: { stop(): void };
  private readonly unsubscribe: () => void;
  readonly capacity: number;
  private readonly bufferBytes: number;
  dropped = 0;

  constructor(trace: Trace, private readonly timers: HubTimers, options: HubOptions = {}) {
    this.capacity = options.historyEvents ?? 100_000;
    this.bufferBytes = options.clientBufferBytes ?? 256 * 1024;
    this.ring = new Array<Entry | undefined>(this.capacity);
    this.head = trace.count;
    this.first = trace.count;
    this.unsubscribe = trace.subscribe((e, line) => this.publish(e, line));
    this.keepAlive = timers.every(options.keepAliveMs ?? 15_000, () => {
      for (const c of this.clients) if (!c.waitingDrain) c.sink.write(': keep-alive\n\n');
    });
  }

  /** The id the next event will get. */
  get next(): number {
    return this.head;
  }

  /** The oldest id still held for resume. */
  get oldest(): number {
    return Math.max(this.first, this.head - this.capacity);
  }

  get clientCount(): number {
    return this.clients.size;
  }

  private publish(e: TraceEvent, line: string): void {
    const seq = this.head++;
    this.ring[seq % this.capacity] = { seq, type: e.type, vm: vmOf(e), frame: `id: ${seq}\nevent: ${e.type}\ndata: ${line}\n\n` };
    if (this.clients.size === 0) return;
    // A run can emit many events without giving the loop a turn: flush before the ring laps a client that keeps up.
    if (++this.sinceFlush >= this.capacity / 2) {
      this.flushAll();
      return;
    }
    if (!this.scheduled) {
      this.scheduled = true;
      this.timers.defer(() => this.flushAll());
    }
  }

  /** Serve one client from event id `from` (null: only what happens from now on). */
  attach(sink: SseSink, filter: EventFilter | null, from: number | null): void {
    const client: Client = { sink, filter, cursor: from ?? this.head, waitingDrain: false, closed: false };
    sink.write(`retry: 1000\n: spillway events; next id ${this.head}, oldest ${this.oldest}\n\n`);
    if (client.cursor > this.head) client.cursor = this.head;
    if (client.cursor < this.oldest) {
      sink.write(`event: gap\ndata: ${JSON.stringify({ from: client.cursor, oldest: this.oldest })}\n\n`);
      client.cursor = this.oldest;
    }
    this.clients.add(client);
    sink.once('close', () => this.detach(client));
    this.flush(client);
  }

  private detach(client: Client): void {
    client.closed = true;
    this.clients.delete(client);
  }

  private flushAll(): void {
    this.scheduled = false;
    this.sinceFlush = 0;
    for (const c of this.clients) this.flush(c);
  }

  private flush(c: Client): void {
    if (c.closed) return;
    if (c.cursor < this.oldest) {
      this.drop(c, 'slow client: the events it had not read were overwritten');
      return;
    }
    if (c.waitingDrain) return;
    while (c.cursor < this.head) {
      if (c.sink.writableLength >= this.bufferBytes) {
        c.waitingDrain = true;
        c.sink.once('drain', () => { c.waitingDrain = false; this.flush(c); });
        return;
      }
      const end = Math.min(this.head, c.cursor + BATCH);
      let chunk = '';
      for (let s = c.cursor; s < end; s++) {
        const e = this.ring[s % this.capacity]!;
        if (matches(c.filter, e)) chunk += e.frame;
      }
      c.cursor = end;
      if (chunk) c.sink.write(chunk);
    }
  }

  private drop(c: Client, reason: string): void {
    this.dropped++;
    c.sink.write(`event: dropped\ndata: ${JSON.stringify({ reason, lastEventId: c.cursor - 1, oldest: this.oldest })}\n\n`);
    this.detach(c);
    c.sink.end();
  }

  /** End every stream (the server is stopping). */
  close(reason = 'server stopping'): void {
    this.keepAlive.stop();
    this.unsubscribe();
    // What was published since the last flush goes out first (a run's last lines come just before it stops).
    this.flushAll();
    for (const c of [...this.clients]) {
      c.sink.write(`event: closed\ndata: ${JSON.stringify({ reason, next: this.head })}\n\n`);
      this.detach(c);
      c.sink.end();
    }
  }
}
