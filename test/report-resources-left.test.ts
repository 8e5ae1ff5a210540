import { describe, expect, it } from 'vitest';
import { reportMetricPaths } from '../src/report/expectations.js';
import { renderReport } from '../src/report/text/render.js';
import { parseScenario } from '../src/sim/scenario-file.js';
import { createSimulation } from '../src/sim/simulation.js';
import { miniBurstScenario } from './helpers/mini-burst.js';

interface Left {
  inspected: boolean;
  runId: string;
  instances: number;
  volumes: number;
  usdPerHour: number;
  vmsInCloud: string[];
  list: Array<{ id: string; kind: string; what: string }>;
}

async function runUntil(until: string | null) {
  const scenario = parseScenario(miniBurstScenario({ duration: '6h', io: '{ every: 10m, ops: 4 }' }), 'mini-burst.yaml');
  const sim = await createSimulation(scenario, until ? { untilUs: Number.parseInt(until, 10) * 3_600_000_000 } : {});
  const report = await sim.runToEnd();
  return { report, left: report.resourcesLeft as Left };
}

describe('report: resources left in the cloud at the end of a run', () => {
  it('a run stopped mid-burst lists every instance and volume it left, whose VM, and the cost per hour', async () => {
    const { report, left } = await runUntil('2');
    expect(left.inspected).toBe(true);
    expect(left.instances).toBeGreaterThan(0);
    expect(left.vmsInCloud.length).toBe(left.instances);
    for (const vm of left.vmsInCloud) expect(vm).toMatch(/^job-\d$/);
    expect(left.volumes).toBeGreaterThanOrEqual(left.instances);
    expect(left.usdPerHour).toBeGreaterThan(0);
    expect(left.list.filter((i) => i.kind === 'instance').map((i) => i.id)).toHaveLength(left.instances);
    const text = renderReport(report);
    expect(text).toContain(`Left in the cloud at the end: ${left.instances} instance(s), ${left.volumes} volume(s)`);
    expect(text).toContain(`spillway cloud cleanup --run ${left.runId}`);
  }, 300_000);

  it('a run that brought every VM home leaves nothing and says nothing; the counts are expectation metrics', async () => {
    const { report, left } = await runUntil(null);
    expect(left).toMatchObject({ inspected: true, instances: 0, volumes: 0, usdPerHour: 0, vmsInCloud: [], list: [] });
    expect(renderReport(report)).not.toContain('Left in the cloud');
    const paths = reportMetricPaths(parseScenario(miniBurstScenario(), 'mini-burst.yaml'));
    for (const p of ['resourcesLeft.instances', 'resourcesLeft.volumes', 'resourcesLeft.snapshots', 'resourcesLeft.usdPerHour']) expect(paths).toContain(p);
  }, 300_000);
});
