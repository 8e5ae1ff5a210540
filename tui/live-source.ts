import { drainMicrotasks } from '../src/world/live-drain.js';
import type { Trace } from '../src/world/types.js';
import { TuiModel } from './model.js';
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

/** A simulation advanced in slices; every trace event it emits feeds the model as it happens. */
export class LiveSource implements Source {
  readonly kind = 'live' as const;
  readonly canSeek = false;
  readonly model = new TuiModel();
  private readonly unsubscribe: () => void;
  private closed = false;

  constructor(
    private readonly sim: LiveSimulation,
    runInfo: { scenario: string | null } = { scenario: null },
    private readonly chunkUs = 15 * 60_000_000,
  ) {
    this.unsubscribe = sim.world.trace.subscribe((event) => this.model.apply(event));
    // Shown until (or unless) the simulation's own run.start arrives.
    this.model.setRunInfo(runInfo.scenario, sim.world.seed);
  }

  get positionUs(): number {
    return this.sim.world.nowUs;
  }

  get endUs(): number | null {
    return Number.isFinite(this.sim.endUs) ? this.sim.endUs : null;
  }

  get done(): boolean {
    return this.sim.done;
  }

  /**
   * Run the simulation `deltaUs` further, in chunks of at most `chunkUs`
   * virtual time with a real event-loop turn between them, so keys and
   * redraws are handled while a long slice computes.
   */
  async advance(deltaUs: number): Promise<void> {
    const until = Math.min(this.sim.endUs, this.sim.world.nowUs + Math.max(0, deltaUs));
    while (!this.sim.done && !this.closed && this.sim.world.nowUs < until) {
      const before = this.sim.world.nowUs;
      await this.sim.step(Math.min(until, before + this.chunkUs));
      this.model.setNow(this.sim.world.nowUs);
      // A world with nothing left to do does not move its clock: stop rather than spin.
      if (this.sim.world.nowUs === before) break;
      if (this.sim.world.nowUs < until) await drainMicrotasks();
    }
  }

  step(): void {}

  seek(): void {}

  close(): void {
    this.closed = true;
    this.unsubscribe();
  }
}
