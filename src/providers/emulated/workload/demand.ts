import type { Rng } from '../../../world/types.js';
import { DailyCurve } from './load-curve.js';
import type { WorkloadSpec } from './spec.js';

/**
 * Turns a workload's load curve into CPU demand (vCPU-equivalents) for one
 * VM at one control tick. Demand is held constant between ticks, which is
 * what lets the hypervisor integrate batch progress exactly.
 */
export class VmDemand {
  private readonly curve: DailyCurve | null;
  private spikeUntilUs = -1;

  constructor(readonly vcpus: number, readonly spec: WorkloadSpec, private readonly rng: Rng) {
    this.curve = spec.kind === 'batch' ? null : new DailyCurve(spec.daily);
  }

  /**
   * @param factor product of the timeline's load events active for this VM
   * @param tierScale for web tiers: tier size / running members, so the
   *   survivors absorb the load of members that are down (scale-out)
   */
  at(nowUs: number, tickUs: number, factor: number, tierScale = 1): number {
    const spec = this.spec;
    const noise = spec.noise > 0 ? Math.max(0, this.rng.normal(1, spec.noise)) : 1;
    if (spec.kind === 'batch') return Math.min(this.vcpus, spec.idle * this.vcpus * noise);
    let level = spec.base * this.curve!.at(nowUs) * factor * tierScale * noise;
    if (spec.spikes) {
      const s = spec.spikes;
      if (nowUs >= this.spikeUntilUs && this.rng.chance(1 - Math.exp(-s.perHour * (tickUs / 3.6e9)))) {
        this.spikeUntilUs = nowUs + Math.max(tickUs, Math.round(this.rng.exp(s.meanDurationUs)));
      }
      if (nowUs < this.spikeUntilUs) level *= s.factor;
    }
    return Math.min(this.vcpus, level * this.vcpus);
  }
}
