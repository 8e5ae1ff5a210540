import { parentPort, workerData } from 'node:worker_threads';
import { errorCode } from '../errors.js';
import type { Scenario } from '../scenario/schema.js';
import { runComparisonHere } from './simulation.js';

/** What the main thread sends: one comparison run. */
export interface ComparisonJob {
  scenario: Scenario;
  seed: number;
  untilUs: number;
}

/** What comes back: the report as JSON (it is plain data), or why the run failed. */
export type ComparisonOutcome = { reportJson: string } | { error: { code: string; message: string } };

const port = parentPort;
if (!port) throw new Error('src/sim/comparison-worker.ts runs only as a worker thread');
const job = workerData as ComparisonJob;
runComparisonHere(job.scenario, job.seed, job.untilUs).then(
  (report) => port.postMessage({ reportJson: JSON.stringify(report) } satisfies ComparisonOutcome),
  (err: unknown) => port.postMessage({
    error: { code: errorCode(err) ?? 'E_COMPARISON_RUN', message: err instanceof Error ? err.message : String(err) },
  } satisfies ComparisonOutcome),
);
