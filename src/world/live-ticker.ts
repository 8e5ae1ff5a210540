import { wallMs } from './live-world.js';

/**
 * Real-time pacing for interactive views (the TUI): a repeating wall-clock
 * tick. It lives under src/world/live* because it reads the real clock; a
 * simulation never depends on it, it only decides how often a viewer asks
 * the simulation to advance.
 */
export interface Ticker {
  stop(): void;
}

/** Call `onTick(nowMs)` every `intervalMs` of real time until stopped. */
export function startTicker(intervalMs: number, onTick: (nowMs: number) => void): Ticker {
  const handle = setInterval(() => onTick(wallMs()), Math.max(1, intervalMs));
  return { stop: () => clearInterval(handle) };
}

export { wallMs };
