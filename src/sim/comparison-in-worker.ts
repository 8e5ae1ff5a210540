import { Worker } from 'node:worker_threads';
import { SpillwayError } from '../errors.js';
import type { Report } from '../report/report.js';
import type { ComparisonJob, ComparisonOutcome } from './comparison-worker.js';
import { runComparisonHere, type ComparisonRunner } from './simulation.js';

/**
 * A comparison run (the no-burst baseline) on a worker thread, so it uses
 * another core while the main run goes: on quarter-end it is ~2.5 s that no
 * longer come after the main run. A run is a pure function of scenario and
 * seed, so its figures are those of the same run in this thread. If the
 * worker itself cannot run (it failed to start or died), the run happens
 * here instead; a run that fails inside the worker fails here too.
 */
export const runComparisonInWorker: ComparisonRunner = (scenario, seed, untilUs) =>
  new Promise<Report>((resolve, reject) => {
    let settled = false;
    const job: ComparisonJob = { scenario, seed, untilUs };
    const worker = new Worker(new URL('./comparison-worker-entry.mjs', import.meta.url), { workerData: job });
    const fallBack = (): void => {
      if (settled) return;
      settled = true;
      runComparisonHere(scenario, seed, untilUs).then(resolve, reject);
    };
    worker.once('message', (outcome: ComparisonOutcome) => {
      settled = true;
      void worker.terminate();
      if ('reportJson' in outcome) resolve(JSON.parse(outcome.reportJson) as Report);
      else reject(new SpillwayError(outcome.error.code, `comparison run: ${outcome.error.message}`));
    });
    worker.once('error', fallBack);
    worker.once('exit', fallBack);
  });
