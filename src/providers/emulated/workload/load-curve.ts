import { US_PER_H } from '../../../util/units.js';
import type { DailyPoint } from './spec.js';

const DAY_US = 24 * US_PER_H;

/**
 * A 24-hour profile, piecewise linear between its points and wrapping from
 * the last point of one day to the first point of the next, so the curve has
 * no jump at midnight.
 */
export class DailyCurve {
  private readonly hours: number[];
  private readonly factors: number[];

  constructor(points: readonly DailyPoint[]) {
    const sorted = [...points].sort((a, b) => a.hour - b.hour);
    this.hours = sorted.map((p) => p.hour);
    this.factors = sorted.map((p) => p.factor);
  }

  /** The factor at virtual time `tUs` (day 0 starts at midnight). */
  at(tUs: number): number {
    const n = this.hours.length;
    if (n === 0) return 1;
    if (n === 1) return this.factors[0]!;
    const hour = ((tUs % DAY_US) + DAY_US) % DAY_US / US_PER_H;
    // Find the segment [i, i+1) containing `hour`, treating the list as circular.
    let i = n - 1;
    for (let k = 0; k < n; k++) {
      if (this.hours[k]! > hour) { i = k - 1; break; }
    }
    const j = (i + 1 + n) % n;
    const i0 = (i + n) % n;
    const h0 = this.hours[i0]! - (i < 0 ? 24 : 0);
    const h1 = this.hours[j]! + (j <= i0 && i >= 0 ? 24 : 0);
    const span = h1 - h0;
    const f0 = this.factors[i0]!;
    const f1 = this.factors[j]!;
    return span <= 0 ? f0 : f0 + ((hour - h0) / span) * (f1 - f0);
  }

  /** The average factor over a day (for reports and scenario sizing). */
  mean(stepsPerHour = 12): number {
    let sum = 0;
    const steps = 24 * stepsPerHour;
    for (let s = 0; s < steps; s++) sum += this.at((s * US_PER_H) / stepsPerHour);
    return sum / steps;
  }
}
