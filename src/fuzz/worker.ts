import { parentPort } from 'node:worker_threads';
import { runPlan } from './run.js';
import { drawPlan, type PlanOptions } from './schedule.js';

/** A fuzz worker thread: draws and runs the seeds the pool sends, one at a time. */
const port = parentPort;
if (!port) throw new Error('src/fuzz/worker.ts runs only as a worker thread');
port.on('message', (message: { index: number; item: { seed: number; options: PlanOptions } }) => {
  void runPlan(drawPlan(message.item.seed, message.item.options)).then((result) => port.postMessage({ index: message.index, result }));
});
