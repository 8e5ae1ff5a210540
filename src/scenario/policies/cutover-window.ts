import type { MigrationWavePolicy } from './migration-wave.js';

const DAY_US = 24 * 3_600_000_000;

/**
 * The cut-over rule of `policies.migrate.cutover`: how long a synced
 * migration waits before it may cut over. 0 when the rule is `synced` or the
 * daily window is open now, else until the window next opens.
 */
export function untilCutoverAllowedUs(cutover: MigrationWavePolicy['cutover'], nowUs: number): number {
  const w = cutover.window;
  if (cutover.when === 'synced' || !w) return 0;
  const dayStart = Math.floor(nowUs / DAY_US) * DAY_US;
  for (const open of [dayStart - DAY_US + w.startUs, dayStart + w.startUs, dayStart + DAY_US + w.startUs]) {
    if (nowUs < open) return open - nowUs;
    if (nowUs < open + w.lengthUs) return 0;
  }
  return 0;
}
