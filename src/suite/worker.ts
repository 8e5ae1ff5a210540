import { parentPort } from 'node:worker_threads';
import type { SuiteItem } from './plan.js';
import { runSuiteItem } from './run-item.js';

/**
 * A suite worker thread: runs the items the pool sends, one at a time, and
 * posts each result back. Each run has its own SimWorld, so runs in one
 * thread do not share state (the trace hash is the same as in a fresh process).
 */
const port = parentPort;
if (!port) throw new Error('src/suite/worker.ts runs only as a worker thread');
port.on('message', ({ index, item }: { index: number; item: SuiteItem }) => {
  void runSuiteItem(item, (pct, wallMs) => port.postMessage({ index, progress: { pct, wallMs } }))
    .then((result) => port.postMessage({ index, result }));
});
