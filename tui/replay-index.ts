import { invariant } from '../src/errors.js';
import type { TraceEvent } from '../src/world/types.js';
import { TuiModel, type ModelState } from './model.js';

/**
 * A recorded trace with model checkpoints every `every` events, so seeking to
 * any instant replays at most `every` events on top of a saved state instead
 * of the whole trace.
 */
export class TraceIndex {
  readonly events: readonly TraceEvent[];
  readonly every: number;
  /** checkpoints[k] is the model state after the first k*every events. */
  private readonly checkpoints: ModelState[] = [];

  constructor(events: readonly TraceEvent[], every = 256) {
    invariant(Number.isInteger(every) && every > 0, `checkpoint interval must be a positive integer, got ${every}`);
    this.events = events;
    this.every = every;
    const model = new TuiModel();
    this.checkpoints.push(model.save());
    for (let i = 0; i < events.length; i++) {
      model.apply(events[i]!);
      if ((i + 1) % every === 0) this.checkpoints.push(model.save());
    }
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
