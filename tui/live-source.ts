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

  constructor(private readonly sim: LiveSimulation, runInfo: { scenario: string | null } = { scenario: null }) {
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

  async advance(deltaUs: number): Promise<void> {
    if (this.sim.done) return;
    const until = Math.min(this.sim.endUs, this.sim.world.nowUs + Math.max(0, deltaUs));
    await this.sim.step(until);
    this.model.setNow(this.sim.world.nowUs);
  }

  step(): void {}

  seek(): void {}

  close(): void {
    this.unsubscribe();
  }
}
