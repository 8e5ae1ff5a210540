import { drainMicrotasks } from '../src/world/live-drain.js';
import type { Trace } from '../src/world/types.js';
import type { TuiModel } from './model.js';
import { TraceIndex } from './replay-index.js';
import { ReplaySource } from './replay-source.js';
import type { Source } from './source.js';

/**
 * What the TUI needs of a running simulation (src/sim/simulation.ts's
 * Simulation satisfies it): its trace to subscribe to, its virtual clock, and
 * a way to run it up to an instant.
 */
export interface LiveSimulation {
  readonly world: { readonly nowUs: number; readonly seed: number; readonly trace: Trace };
  readonly endUs: number;
  readonly done: boolean;
  step(untilUs: number): Promise<void>;
}

/**
 * A simulation advanced in slices. Every trace event it emits is recorded in
 * a growing index whose newest model is what the live view shows; stepping or
 * seeking back opens a review of the recorded past (the simulation waits),
 * and playing the review forward to the newest event returns to live.
 */
export class LiveSource implements Source {
  readonly kind = 'live' as const;
  readonly canSeek = true;
  readonly index: TraceIndex;
  private review: ReplaySource | null = null;
  private readonly unsubscribe: () => void;
  private closed = false;

  constructor(
    private readonly sim: LiveSimulation,
    runInfo: { scenario: string | null } = { scenario: null },
    private readonly chunkUs = 15 * 60_000_000,
    checkpointEvery = 256,
  ) {
    this.index = new TraceIndex([], checkpointEvery);
    this.unsubscribe = sim.world.trace.subscribe((event) => this.index.append(event));
    // Shown until (or unless) the simulation's own run.start arrives.
    this.index.latest.setRunInfo(runInfo.scenario, sim.world.seed);
  }

  get model(): TuiModel {
    return this.review ? this.review.model : this.index.latest;
  }

  /** True while showing the recorded past rather than the running simulation. */
  get reviewing(): boolean {
    return this.review !== null;
  }

  get positionUs(): number {
    return this.review ? this.review.positionUs : this.sim.world.nowUs;
  }

  get endUs(): number | null {
    return Number.isFinite(this.sim.endUs) ? this.sim.endUs : null;
  }

  get done(): boolean {
    return this.review === null && this.sim.done;
  }

  /**
   * Live: run the simulation `deltaUs` further, in chunks of at most
   * `chunkUs` virtual time with a real event-loop turn between them, so keys
   * and redraws are handled while a long slice computes. Reviewing: play the
   * recorded past forward, back to live at its end.
   */
  async advance(deltaUs: number): Promise<void> {
    if (this.review) {
      await this.review.advance(deltaUs);
      this.leaveReviewAtEnd();
      return;
    }
    const latest = this.index.latest;
    const until = Math.min(this.sim.endUs, this.sim.world.nowUs + Math.max(0, deltaUs));
    while (!this.sim.done && !this.closed && this.review === null && this.sim.world.nowUs < until) {
      const before = this.sim.world.nowUs;
      await this.sim.step(Math.min(until, before + this.chunkUs));
      latest.setNow(this.sim.world.nowUs);
      // A world with nothing left to do does not move its clock: stop rather than spin.
      if (this.sim.world.nowUs === before) break;
      if (this.sim.world.nowUs < until) await drainMicrotasks();
    }
  }

  step(direction: -1 | 1): void {
    if (this.review) {
      this.review.step(direction);
      this.leaveReviewAtEnd();
    } else if (direction < 0 && this.index.events.length > 0) {
      this.openReview().step(-1);
    }
  }

  seek(timeUs: number): void {
    if (timeUs >= this.sim.world.nowUs) {
      this.review = null;
      return;
    }
    (this.review ?? this.openReview()).seek(timeUs);
    this.leaveReviewAtEnd();
  }

  close(): void {
    this.closed = true;
    this.unsubscribe();
  }

  private openReview(): ReplaySource {
    const review = new ReplaySource(this.index);
    review.seek(this.index.endUs);
    this.review = review;
    return review;
  }

  /** Nothing recorded lies past the newest event: from there on, it is live again. */
  private leaveReviewAtEnd(): void {
    if (this.review && this.review.positionUs >= this.index.endUs && this.review.appliedCount >= this.index.events.length) this.review = null;
  }
}
