import { invariant } from '../src/errors.js';
import type { TraceEvent } from '../src/world/types.js';
import type { ModelState } from './model-state.js';
import { TuiModel } from './model.js';

/**
 * A trace with model checkpoints every `every` events, so seeking to any
 * instant replays at most `every` events on top of a saved state instead of
 * the whole trace. It grows by `append` (a live run records as it goes).
 */
export class TraceIndex {
  readonly every: number;
  private readonly list: TraceEvent[] = [];
  /** checkpoints[k] is the model state after the first k*every events. */
  private readonly checkpoints: ModelState[] = [];
  /** The model after every event so far (a live run shows this one). */
  readonly latest = new TuiModel();

  constructor(events: readonly TraceEvent[] = [], every = 256) {
    invariant(Number.isInteger(every) && every > 0, `checkpoint interval must be a positive integer, got ${every}`);
    this.every = every;
    this.checkpoints.push(this.latest.save());
    for (const e of events) this.append(e);
  }

  get events(): readonly TraceEvent[] {
    return this.list;
  }

  append(e: TraceEvent): void {
    this.list.push(e);
    this.latest.apply(e);
    if (this.list.length % this.every === 0) this.checkpoints.push(this.latest.save());
  }

  get startUs(): number {
    return this.events[0]?.t ?? 0;
  }

  get endUs(): number {
    return this.events.at(-1)?.t ?? 0;
  }

  get checkpointCount(): number {
    return this.checkpoints.length;
  }

  /** How many events happen at or before `timeUs` (binary search). */
  countAt(timeUs: number): number {
    let lo = 0;
    let hi = this.events.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.events[mid]!.t <= timeUs) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** A fresh model that has applied exactly the first `count` events. */
  modelAt(count: number): TuiModel {
    const n = Math.max(0, Math.min(this.events.length, Math.floor(count)));
    const k = Math.floor(n / this.every);
    const model = TuiModel.restore(this.checkpoints[k]!);
    for (let i = k * this.every; i < n; i++) model.apply(this.events[i]!);
    return model;
  }
}
