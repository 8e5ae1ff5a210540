import type { Pacer } from './sim-world.js';
import { wallMs } from './live-world.js';

/** Longest single wait, so stop requests and newly queued events are noticed promptly. */
const MAX_WAIT_MS = 250;

/**
 * Paces a simulation to the wall clock: virtual time `t` may be reached only
 * `t / speed` after the pacer started. Used when a run talks to a live cloud,
 * where an instance takes real minutes to boot whatever the scenario says.
 */
export function realTimePacer(speed = 1, startMs = wallMs()): Pacer {
  const elapsedUs = (): number => (wallMs() - startMs) * 1000 * speed;
  return {
    reached: (dueUs) => elapsedUs() >= dueUs,
    waitUntil: (dueUs) => new Promise((resolve) => {
      const waitMs = Math.min(MAX_WAIT_MS, Math.max(0, (dueUs - elapsedUs()) / 1000 / speed));
      setTimeout(resolve, waitMs);
    }),
  };
}
