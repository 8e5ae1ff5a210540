import { Worker } from 'node:worker_threads';
import type { SuiteItem } from './plan.js';
import type { SuiteResult } from './result.js';

export interface PoolOptions {
  /** Worker threads to use (at most one per item). */
  jobs: number;
  /** Called as each run finishes, in completion order. */
  onResult?: (result: SuiteResult, done: number, total: number) => void;
  /** Called every few seconds of wall time while a long run goes. */
  onProgress?: (item: SuiteItem, pct: number, wallMs: number) => void;
}

/**
 * Runs items on `jobs` worker threads, handing each idle worker the next item,
 * and returns the results in plan order (completion order varies with the
 * machine; the table and JUnit file must not).
 */
export async function runPool(items: readonly SuiteItem[], options: PoolOptions): Promise<SuiteResult[]> {
  const results = new Map<number, SuiteResult>();
  if (items.length === 0) return [];
  const queue = [...items];
  const jobs = Math.max(1, Math.min(options.jobs, items.length));
  const entry = new URL('./worker-entry.mjs', import.meta.url);
  await Promise.all(Array.from({ length: jobs }, () => new Promise<void>((resolve) => {
    const worker = new Worker(entry);
    let current: SuiteItem | undefined;
    let ended = false;
    const next = (): void => {
      current = queue.shift();
      if (current) worker.postMessage(current);
      else {
        ended = true;
        void worker.terminate().then(() => resolve());
      }
    };
    worker.on('message', (message: SuiteResult | { progress: { index: number; pct: number; wallMs: number } }) => {
      if ('progress' in message) {
        if (current) options.onProgress?.(current, message.progress.pct, message.progress.wallMs);
        return;
      }
      const result = message;
      results.set(result.item.index, result);
      options.onResult?.(result, results.size, items.length);
      next();
    });
    // A worker that dies takes only its current run with it: that run is an error, the others go on.
    const die = (message: string): void => {
      if (ended) return;
      ended = true;
      if (current && !results.has(current.index)) {
        const result = crashed(current, message);
        results.set(current.index, result);
        options.onResult?.(result, results.size, items.length);
      }
      resolve();
    };
    worker.on('error', (err) => die(`suite worker failed: ${err.message}`));
    worker.on('exit', (code) => die(`suite worker exited with code ${code}`));
    next();
  })));
  // Items left in the queue when every worker died.
  return items.map((it) => results.get(it.index) ?? crashed(it, 'not run: every suite worker died'));
}

function crashed(item: SuiteItem, message: string): SuiteResult {
  return { item, status: 'error', expectations: [], traceHash: null, wallMs: 0, simulatedHours: null, error: { code: 'E_SUITE_WORKER', message } };
}
