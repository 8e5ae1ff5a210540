import type { Pacer } from './sim-world.js';
import { wallMs } from './live-world.js';

/** Longest single wait, so stop requests and newly queued events are noticed promptly. */
const MAX_WAIT_MS = 250;
/** Longest stretch of events without a turn of the real event loop. */
const MAX_BUSY_MS = 20;

/**
 * Paces a simulation to the wall clock: virtual time `t` may be reached only
 * `t / speed` after the pacer started. Used when a run talks to a live cloud,
 * where an instance takes real minutes to boot whatever the scenario says,
 * and by `spillway run --pace X` so an operator can watch and act.
 */
export function realTimePacer(speed = 1, startMs = wallMs()): Pacer {
  const elapsedUs = (): number => (wallMs() - startMs) * 1000 * speed;
  // A run that is behind its pace never has to wait; it still hands the loop a
  // turn every MAX_BUSY_MS, or a server in the process (the API) starves.
  let turnMs = wallMs();
  return {
    reached: (dueUs) => elapsedUs() >= dueUs && wallMs() - turnMs < MAX_BUSY_MS,
    virtualNowUs: elapsedUs,
    waitUntil: (dueUs) => new Promise((resolve) => {
      const waitMs = Math.min(MAX_WAIT_MS, Math.max(0, (dueUs - elapsedUs()) / 1000 / speed));
      setTimeout(() => {
        turnMs = wallMs();
        resolve();
      }, waitMs);
    }),
  };
}

const realSetImmediate = setImmediate;

/**
 * Not a pace: lets a simulation run as fast as it can, but hands the real
 * event loop a turn at least every `sliceMs` of wall time, so a server in the
 * same process (the management API) answers while a long stretch of
 * synchronous events runs. Virtual time is untouched.
 */
export function yieldingPacer(sliceMs = MAX_BUSY_MS): Pacer {
  let sinceMs = wallMs();
  return {
    reached: () => wallMs() - sinceMs < sliceMs,
    waitUntil: () => new Promise((resolve) => realSetImmediate(() => {
      sinceMs = wallMs();
      resolve();
    })),
  };
}
