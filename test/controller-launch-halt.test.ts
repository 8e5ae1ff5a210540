import { describe, expect, it } from 'vitest';
import { parseScenario } from '../src/sim/scenario-file.js';
import { createSimulation } from '../src/sim/simulation.js';
import type { TraceEvent } from '../src/world/types.js';
import { miniBurstScenario } from './helpers/mini-burst.js';

/**
 * A launch error that no other VM would get past (here: RunInstances is not
 * allowed) stops bursting after the first VM that meets it, instead of
 * failing every VM the same way (issue 16: 24 of 24 VMs failed with
 * InvalidAMIID.NotFound, one after another).
 */
describe('burst controller: a run-fatal launch error', () => {
  it('fails one VM, halts bursting with one decision naming the code, and never calls RunInstances again', async () => {
    const events: TraceEvent[] = [];
    const text = miniBurstScenario({ cloud: 'cloud: { region: us-east-1, unauthorized: [RunInstances] }', duration: '4h' });
    const sim = await createSimulation(parseScenario(text, 'mini-burst.yaml'), { onTrace: (e) => events.push(e) });
    const report = await sim.runToEnd();
    const runs = events.filter((e) => e.type === 'cloud.call' && e.data.api === 'RunInstances');
    const decisions = events.filter((e) => e.type === 'controller.decision').map((e) => e.data);
    const halts = decisions.filter((d) => d.action === 'halt');
    expect(halts).toEqual([expect.objectContaining({ reason: expect.stringContaining('UnauthorizedOperation') })]);
    const haltAt = events.find((e) => e.type === 'controller.decision' && e.data.action === 'halt')!.t;
    expect(events.filter((e) => e.type === 'controller.decision' && e.data.action === 'burst' && e.t > haltAt)).toEqual([]);
    expect(runs.every((e) => e.data.ok === false && e.data.code === 'UnauthorizedOperation')).toBe(true);
    // The VMs whose transfers were already in flight when the first failed may fail too; none after the halt.
    expect(runs.filter((e) => e.t > haltAt)).toEqual([]);
    const burst = report.burst as { vmsBurst: number };
    expect(burst.vmsBurst).toBe(0);
  });
});
