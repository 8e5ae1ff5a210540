import type { Rng } from '../../../world/types.js';

/** The WAN's delay jitter (docs/wan.md): the models and drawing one delay (src/scenario/wan.ts reads `wan.jitter`). */

export type JitterModel =
  | { kind: 'none' }
  /** Normal, clipped to ±3 sd and so that the one-way delay never goes below zero. */
  | { kind: 'normal'; sdUs: number }
  /** Pareto extra delay (heavy tail, never negative) with the given mean, capped at `maxUs`. */
  | { kind: 'pareto'; meanUs: number; shape: number; maxUs: number };

/** One-way delay of one turn: `baseUs` plus a jitter draw from `rng` (no draw without jitter). */
export function jitteredDelayUs(baseUs: number, j: JitterModel, rng: Rng): number {
  if (j.kind === 'none') return baseUs;
  if (j.kind === 'normal') {
    const x = Math.max(-3 * j.sdUs, Math.min(3 * j.sdUs, rng.normal(0, j.sdUs)));
    return Math.max(0, Math.round(baseUs + x));
  }
  // Pareto with scale xm has mean xm·shape/(shape−1); shifting by −xm leaves an extra delay of mean xm/(shape−1).
  const xm = j.meanUs * (j.shape - 1);
  const extra = xm * (Math.pow(1 - rng.next(), -1 / j.shape) - 1);
  return baseUs + Math.round(Math.min(extra, j.maxUs));
}
