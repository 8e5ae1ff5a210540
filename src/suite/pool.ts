import { runInWorkers } from '../util/worker-pool.js';
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
 * Runs the suite's items on `jobs` worker threads and returns the results in
 * plan order (completion order varies with the machine; the table and JUnit
 * file must not).
 */
export function runPool(items: readonly SuiteItem[], options: PoolOptions): Promise<SuiteResult[]> {
  return runInWorkers<SuiteItem, SuiteResult>(new URL('./worker-entry.mjs', import.meta.url), items, {
    jobs: options.jobs,
    crashed: (item, message) => crashed(item, `suite ${message}`),
    onResult: (result, _item, done, total) => options.onResult?.(result, done, total),
    onProgress: (progress, item) => {
      const p = progress as { pct: number; wallMs: number };
      options.onProgress?.(item, p.pct, p.wallMs);
    },
  });
}

function crashed(item: SuiteItem, message: string): SuiteResult {
  return { item, status: 'error', expectations: [], traceHash: null, wallMs: 0, simulatedHours: null, error: { code: 'E_SUITE_WORKER', message } };
}
