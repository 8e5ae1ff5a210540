import { SpillwayError, invariant } from '../errors.js';
import { US_PER_MS } from '../util/units.js';
import { PromiseActivity, drainMicrotasks } from './live-drain.js';
import { RngRegistry, rngBytes } from './rng.js';
import { EventQueue, type ScheduledEvent } from './scheduler.js';
import { SimNet } from './sim-net.js';
import { TraceRecorder } from './trace.js';
import type { Clock, LogLevel, Rng, Timer, TraceData, World } from './types.js';

export interface LogLine {
  t: number;
  level: LogLevel;
  src: string;
  message: string;
  data?: TraceData;
}

export interface RunOptions {
  /** Stop once virtual time would pass this instant (events due later stay queued). */
  untilUs?: number;
  /** Called about every `progressEveryUs` of virtual time. */
  onProgress?: (nowUs: number) => void;
  progressEveryUs?: number;
  /** Stop after this many events (a guard against runaway loops). */
  maxEvents?: number;
}

/**
 * Holds virtual time back to some other clock. A simulation that drives a
 * live cloud (`--cloud aws`) is paced to real time, so timeouts written for
 * real instances mean what they say. Pacing gives up determinism; nothing
 * paces a plain simulation.
 */
export interface Pacer {
  /** Resolve when virtual time may advance to `dueUs`; resolving early is allowed (the loop asks again). */
  waitUntil(dueUs: number): Promise<void>;
  /** True once virtual time `dueUs` has been reached by the pacing clock. */
  reached(dueUs: number): boolean;
  /** The virtual time the pacing clock stands at now, when it has one (operator actions land there). */
  virtualNowUs?(): number;
}

/**
 * Operator input (the management API) enters a simulation here, and only
 * here: before virtual time moves on from `nowUs`, with nothing left due at
 * `nowUs`. What it schedules lands at a point defined by the queue alone
 * (due time and sequence number), so a replay can put it back exactly.
 */
export interface Inbox {
  /** Virtual time is about to move from `nowUs` to at most `limitUs` (> nowUs). True when something was scheduled. */
  boundary(nowUs: number, limitUs: number): boolean;
}

export interface RunResult {
  events: number;
  nowUs: number;
  reason: 'idle' | 'until' | 'stopped' | 'max-events';
}

/** A class rather than a closure per timer: scheduling is the simulator's hottest path. */
class SimTimer implements Timer {
  constructor(private readonly queue: EventQueue, private readonly event: ScheduledEvent) {}
  cancel(): void {
    this.queue.cancel(this.event);
  }
}

class SimClock implements Clock {
  constructor(private readonly world: SimWorld) {}

  nowUs(): number {
    return this.world.nowUs;
  }

  schedule(delayUs: number, fn: () => void): Timer {
    const event = this.world.queue.push(this.world.nowUs + Math.max(0, Math.round(delayUs)), fn);
    return new SimTimer(this.world.queue, event);
  }

  sleepUs(delayUs: number): Promise<void> {
    return new Promise((resolve) => this.schedule(delayUs, resolve));
  }

  setTimeout(fn: (...args: unknown[]) => void, ms: number): unknown {
    return this.world.queue.push(this.world.nowUs + Math.max(0, Math.round(ms * US_PER_MS)), fn as () => void);
  }

  clearTimeout(id: unknown): void {
    if (id) this.world.queue.cancel(id as ScheduledEvent);
  }
}

/**
 * A discrete-event world. Virtual time is an integer count of microseconds
 * and moves only when the scheduler pops the next event. After an event that
 * touched promises, pending promise work is drained before anything else runs,
 * so async code observes the virtual time at which it was woken.
 */
export class SimWorld implements World {
  readonly kind = 'sim' as const;
  readonly queue = new EventQueue();
  readonly clock: Clock = new SimClock(this);
  readonly net: SimNet;
  readonly trace: TraceRecorder;
  readonly logs: LogLine[] = [];
  nowUs = 0;
  eventsRun = 0;
  /** Keep at most this many log lines in memory. */
  logLimit = 10_000;
  logLevel: LogLevel = 'info';
  /** Also print log lines (with virtual time) as they happen. */
  logSink: ((line: LogLine) => void) | undefined;
  /** When set, virtual time never runs ahead of this pacer (see Pacer). */
  pacer: Pacer | undefined;
  /** When set, asked at every advance of virtual time whether operator input is waiting (see Inbox). */
  inbox: Inbox | undefined;

  private readonly rngs: RngRegistry;
  private readonly inflight = new Set<Promise<unknown>>();
  private readonly activity = new PromiseActivity();
  private running = false;
  private stopRequested = false;

  constructor(readonly seed: number) {
    invariant(Number.isInteger(seed) && seed >= 0, `seed must be a non-negative integer, got ${seed}`);
    this.rngs = new RngRegistry(seed);
    this.net = new SimNet(this.clock);
    this.trace = new TraceRecorder(() => this.nowUs);
  }

  rng(label: string): Rng {
    return this.rngs.get(label);
  }

  unpredictable(label: string, bytes: number): Buffer {
    return rngBytes(this.rngs.get(label), bytes);
  }

  log(level: LogLevel, src: string, message: string, data?: TraceData): void {
    if (LEVELS[level] < LEVELS[this.logLevel]) return;
    const line: LogLine = { t: this.nowUs, level, src, message, ...(data ? { data } : {}) };
    if (this.logs.length >= this.logLimit) this.logs.shift();
    this.logs.push(line);
    this.logSink?.(line);
  }

  external<T>(op: () => Promise<T>, latencyUs: number): Promise<T> {
    const settled = op().then(
      (value) => ({ ok: true as const, value }),
      (error: unknown) => ({ ok: false as const, error }),
    );
    this.inflight.add(settled);
    void settled.then(() => this.inflight.delete(settled));
    // The delivery slot (due, seq) is fixed now, at issue, so the order of
    // results never depends on how long the real operation took.
    return new Promise<T>((resolve, reject) => {
      this.clock.schedule(latencyUs, () => {
        void settled.then((r) => (r.ok ? resolve(r.value) : reject(r.error)));
      });
    });
  }

  /** Ask a running `run()` to return after the current event. */
  stop(): void {
    this.stopRequested = true;
  }

  async run(options: RunOptions = {}): Promise<RunResult> {
    if (this.running) throw new SpillwayError('E_SIM_REENTRANT', 'SimWorld.run() is already running');
    this.running = true;
    this.stopRequested = false;
    this.activity.start();
    const { untilUs = Infinity, onProgress, progressEveryUs = 60_000_000, maxEvents = Infinity } = options;
    let nextProgress = this.nowUs + progressEveryUs;
    let events = 0;
    let reason: RunResult['reason'] = 'idle';
    try {
      await this.settle();
      for (;;) {
        if (this.stopRequested) { reason = 'stopped'; break; }
        if (events >= maxEvents) { reason = 'max-events'; break; }
        const due = this.queue.peekDue();
        if (due === undefined) { reason = 'idle'; break; }
        if (this.inbox && due > this.nowUs) {
          const limitUs = Math.min(due, untilUs);
          if (limitUs > this.nowUs && this.inbox.boundary(this.nowUs, limitUs)) continue;
        }
        if (due > untilUs) { this.nowUs = untilUs; reason = 'until'; break; }
        if (this.pacer && due > this.nowUs && !this.pacer.reached(due)) {
          await this.pacer.waitUntil(due);
          continue;
        }
        const event = this.queue.pop()!;
        this.nowUs = event.due;
        const before = this.activity.count;
        event.fn!();
        events++;
        if (this.activity.count !== before || this.inflight.size > 0) await this.settle();
        if (onProgress && this.nowUs >= nextProgress) {
          onProgress(this.nowUs);
          nextProgress = this.nowUs + progressEveryUs;
        }
      }
    } finally {
      this.activity.end();
      this.running = false;
      this.eventsRun += events;
    }
    return { events, nowUs: this.nowUs, reason };
  }

  /** Advance virtual time by `deltaUs`, running everything due on the way. */
  advance(deltaUs: number): Promise<RunResult> {
    return this.run({ untilUs: this.nowUs + deltaUs });
  }

  /** Let promise work and in-flight external operations finish; time does not move. */
  private async settle(): Promise<void> {
    do {
      while (this.inflight.size > 0) await Promise.all(this.inflight);
      await drainMicrotasks();
    } while (this.inflight.size > 0);
  }
}

const LEVELS: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };
