import { describe, expect, it } from 'vitest';
import { parseScenario } from '../src/scenario/load.js';
import { runComparisonInWorker } from '../src/sim/comparison-in-worker.js';
import { createSimulation, runComparisonHere, type ComparisonRunner } from '../src/sim/simulation.js';

/** Two 8-core hosts near capacity; four batch jobs at 1h overload them and burst. */
const SCENARIO = `
name: comparison-mini
duration: 6h
sampleEvery: 5m
tickEvery: 5m
datacenter:
  hosts: [{ id: "h{1..2}", cpuCores: 8, ramGiB: 64 }]
  images: [{ id: img, size: 2GiB, os: { family: linux, distro: rhel, version: "8.9" }, bootProfile: minimal }]
  vms:
    - { name: "app-{1..2}", image: img, vcpus: 8, ramGiB: 8, workload: app }
    - { name: "job-{1..4}", image: img, vcpus: 4, ramGiB: 8, workload: job }
workloads:
  app: { kind: database, base: 0.7 }
  job: { kind: batch, work: 8, start: 1h, parallelism: 1 }
wan: { rtt: 20ms, bandwidth: 1Gbit }
policies:
  burst: { enabled: true, workloads: [job], maxVms: 4, io: { every: 10m, ops: 4 } }
`;

async function runWith(runComparison: ComparisonRunner | undefined) {
  const calls: number[] = [];
  const counted: ComparisonRunner | undefined = runComparison && ((scenario, seed, untilUs) => {
    calls.push(seed);
    // The comparison run has bursting off and no expectations of its own.
    expect(scenario.policies.burst.enabled).toBe(false);
    expect(scenario.expect).toEqual([]);
    return runComparison(scenario, seed, untilUs);
  });
  const sim = await createSimulation(parseScenario(SCENARIO, 'comparison-mini.yaml'), counted ? { runComparison: counted } : {});
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
    const sim = await createSimulation(parseScenario(SCENARIO, 'comparison-mini.yaml'), { runComparison: runner });
    await sim.step(1);
    expect(started).toBe(1);
    await sim.runToEnd();
    expect(started).toBe(1);
  }, 300_000);
});
