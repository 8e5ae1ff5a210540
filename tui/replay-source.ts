import type { TraceEvent } from '../src/world/types.js';
import type { TuiModel } from './model.js';
import { TraceIndex } from './replay-index.js';
import type { Source } from './source.js';

/** Plays a recorded trace forward at any pace and seeks anywhere in it. */
export class ReplaySource implements Source {
  readonly kind = 'replay' as const;
  readonly canSeek = true;
  readonly index: TraceIndex;
  private current: TuiModel;
  private applied = 0;
  private pos: number;

  /** Replays `events`, or an existing (possibly growing) index. */
  constructor(events: readonly TraceEvent[] | TraceIndex, checkpointEvery?: number) {
    this.index = events instanceof TraceIndex ? events : new TraceIndex(events, checkpointEvery);
    this.current = this.index.modelAt(0);
    this.pos = this.index.startUs;
    this.moveTo(this.pos);
  }

  get model(): TuiModel {
    return this.current;
  }

  get positionUs(): number {
    return this.pos;
  }

  get endUs(): number {
    return this.index.endUs;
  }

  /** Events applied so far (the position in the trace, in events). */
  get appliedCount(): number {
    return this.applied;
  }

  get done(): boolean {
    return this.applied >= this.index.events.length && this.pos >= this.index.endUs;
  }

  advance(deltaUs: number): Promise<void> {
    this.moveTo(Math.min(this.index.endUs, this.pos + Math.max(0, deltaUs)));
    return Promise.resolve();
  }

  step(direction: -1 | 1): void {
    const events = this.index.events;
    if (direction > 0) {
      const next = events[this.applied];
      if (next) this.moveTo(next.t);
      return;
    }
    // The latest instant strictly before the current position that has an event.
    const before = this.index.countAt(this.pos - 1);
    this.moveTo(before > 0 ? events[before - 1]!.t : this.index.startUs);
  }

  seek(timeUs: number): void {
    this.moveTo(timeUs);
  }

  close(): void {}

  /** Position the model on `timeUs`: every event at or before it applied, none after. */
  private moveTo(timeUs: number): void {
    const t = Math.max(this.index.startUs, Math.min(this.index.endUs, Math.round(timeUs)));
    const target = this.index.countAt(t);
    if (target >= this.applied && t >= this.pos && target - this.applied <= this.index.every) {
      for (let i = this.applied; i < target; i++) this.current.apply(this.index.events[i]!);
    } else {
      this.current = this.index.modelAt(target);
    }
    this.applied = target;
    this.pos = t;
    this.current.setNow(t);
  }
}
