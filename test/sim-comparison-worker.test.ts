import { describe, expect, it } from 'vitest';
import { parseScenario } from '../src/sim/scenario-file.js';
import { runComparisonInWorker } from '../src/sim/comparison-in-worker.js';
import { createSimulation, runComparisonHere, type ComparisonRunner } from '../src/sim/simulation.js';
import { miniBurstScenario } from './helpers/mini-burst.js';

const SCENARIO = miniBurstScenario({ duration: '6h', io: '{ every: 10m, ops: 4 }' });

async function runWith(runComparison: ComparisonRunner | undefined) {
  const calls: number[] = [];
  const counted: ComparisonRunner | undefined = runComparison && ((scenario, seed, untilUs) => {
    calls.push(seed);
    // The comparison run has bursting off and no expectations of its own.
    expect(scenario.policies.burst.enabled).toBe(false);
    expect(scenario.expect).toEqual([]);
    return runComparison(scenario, seed, untilUs);
  });
  const sim = await createSimulation(parseScenario(SCENARIO, 'mini-burst.yaml'), counted ? { runComparison: counted } : {});
  const report = await sim.runToEnd();
  return { report, calls };
}

describe('comparison (baseline) runs', () => {
  it('on a worker thread give the figures of the same run in this thread, and leave the main run as it was', async () => {
    const here = await runWith(undefined);
    const worker = await runWith(runComparisonInWorker);
    const burst = (r: typeof here.report) => r.burst as { baseline: unknown; batch: { completionHours: number } };
    expect(worker.calls).toEqual([here.report.seed]);
    expect(burst(here.report).baseline).toEqual(burst(worker.report).baseline);
    expect((burst(here.report).baseline as { batchCompletionHours: number }).batchCompletionHours).toBeGreaterThan(burst(here.report).batch.completionHours);
    expect(worker.report.traceHash).toBe(here.report.traceHash);
  }, 300_000);

  it('a runner given starts the comparison with the main run, once', async () => {
    let started = 0;
    const runner: ComparisonRunner = (scenario, seed, untilUs) => { started++; return runComparisonHere(scenario, seed, untilUs); };
    const sim = await createSimulation(parseScenario(SCENARIO, 'mini-burst.yaml'), { runComparison: runner });
    await sim.step(1);
    expect(started).toBe(1);
    await sim.runToEnd();
    expect(started).toBe(1);
  }, 300_000);
});
