import { promiseHooks } from 'node:v8';

/**
 * The simulator's only contact with the real event loop. It lives under
 * src/world/live* because it touches real macrotasks; nothing here reads the
 * time or decides anything.
 */
const realSetImmediate = setImmediate;

/** Resolve after every queued microtask (promise reaction) has run. */
export function drainMicrotasks(): Promise<void> {
  return new Promise((resolve) => realSetImmediate(resolve));
}

/**
 * Counts promise creations and settlements while active. The scheduler
 * compares the count before and after an event: if no promise was touched, no
 * promise work can be pending and the (costly) drain is skipped. That keeps
 * purely synchronous events at tens of millions per second.
 */
export class PromiseActivity {
  private n = 0;
  private stop: (() => void) | null = null;

  start(): void {
    if (this.stop) return;
    this.stop = promiseHooks.createHook({
      init: () => { this.n++; },
      settled: () => { this.n++; },
    }) as () => void;
  }

  end(): void {
    this.stop?.();
    this.stop = null;
  }

  get count(): number {
    return this.n;
  }
}
