import { randomBytes, randomInt } from 'node:crypto';
import { US_PER_MS } from '../util/units.js';
import { LiveNet } from './live-net.js';
import { RngRegistry } from './rng.js';
import { TraceRecorder } from './trace.js';
import type { Clock, LogLevel, Net, Rng, Timer, TraceData, World } from './types.js';

class LiveClock implements Clock {
  private readonly startNs = process.hrtime.bigint();

  nowUs(): number {
    return Number((process.hrtime.bigint() - this.startNs) / 1000n);
  }
  schedule(delayUs: number, fn: () => void): Timer {
    const handle = setTimeout(fn, Math.max(0, delayUs / US_PER_MS));
    return { cancel: () => clearTimeout(handle) };
  }
  sleepUs(delayUs: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, Math.max(0, delayUs / US_PER_MS)));
  }
  setTimeout(fn: (...args: unknown[]) => void, ms: number): unknown {
    return setTimeout(fn, ms);
  }
  clearTimeout(id: unknown): void {
    clearTimeout(id as NodeJS.Timeout);
  }
}

const LEVELS: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** The real world: wall-clock timers, real sockets, a fresh seed unless one is given. */
export class LiveWorld implements World {
  readonly kind = 'live' as const;
  readonly seed: number;
  readonly clock: Clock = new LiveClock();
  readonly net: Net = new LiveNet();
  readonly trace: TraceRecorder;
  logLevel: LogLevel = 'info';
  private readonly rngs: RngRegistry;

  constructor(seed?: number, private readonly logSink: (line: string) => void = (l) => process.stderr.write(l + '\n')) {
    this.seed = seed ?? randomInt(0, 2 ** 31);
    this.rngs = new RngRegistry(this.seed);
    this.trace = new TraceRecorder(() => this.clock.nowUs());
  }

  rng(label: string): Rng {
    return this.rngs.get(label);
  }

  unpredictable(_label: string, bytes: number): Buffer {
    return randomBytes(bytes);
  }

  log(level: LogLevel, src: string, message: string, data?: TraceData): void {
    if (LEVELS[level] < LEVELS[this.logLevel]) return;
    const stamp = new Date().toISOString();
    this.logSink(`${stamp} ${level.padEnd(5)} ${src}: ${message}${data ? ' ' + JSON.stringify(data) : ''}`);
  }

  external<T>(op: () => Promise<T>): Promise<T> {
    return op();
  }
}

/** Real wall-clock time in milliseconds, for benchmarks and progress displays only. */
export function wallMs(): number {
  return performance.now();
}
