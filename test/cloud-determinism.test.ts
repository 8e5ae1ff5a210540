import { describe, expect, it } from 'vitest';
import { inSim, traceOf } from './cloud-helpers.js';
import { STORMY, burstScript } from './cloud-script.js';

async function runOnce(seed: number) {
  const { result, world, events } = await inSim(seed, STORMY, (cloud, w) => burstScript(cloud, w));
  return { result, hash: world.trace.hash(), events };
}

describe('determinism of the emulated cloud', () => {
  it('the same seed gives the same trace hash and the same resources', async () => {
    const a = await runOnce(1234);
    const b = await runOnce(1234);
    expect(b.hash).toBe(a.hash);
    expect(b.result).toEqual(a.result);
    // The run actually met the weather: capacity errors, throttling or consistency misses, then success.
    const codes = new Set(traceOf(a.events, 'cloud.call').filter((c) => c.ok === false).map((c) => c.code));
    expect(codes.has('InsufficientInstanceCapacity')).toBe(true);
    expect(a.result.zone).toBe('us-east-1b');
    expect(traceOf(a.events, 'cloud.instance').map((e) => e.state)).toEqual(['pending', 'running', 'stopping', 'stopped', 'pending', 'running', 'shutting-down', 'terminated']);
  });

  it('a different seed gives a different trace', async () => {
    const a = await runOnce(1234);
    const c = await runOnce(4321);
    expect(c.hash).not.toBe(a.hash);
    expect(c.result.id).not.toBe(a.result.id);
  });

  it('simulations running at the same time in one process do not disturb each other (msw routes by host)', async () => {
    const [a, b, c] = await Promise.all([runOnce(77), runOnce(77), runOnce(78)]);
    expect(b.hash).toBe(a.hash);
    expect(c.hash).not.toBe(a.hash);
    const alone = await runOnce(77);
    expect(alone.hash).toBe(a.hash);
  });
});

describe('two adapters on one emulated model', () => {
  it('requests issued at the same virtual instant reach the model in issue order', async () => {
    const { Ec2Cloud } = await import('../src/providers/aws/ec2-cloud.js');
    const { EMULATED_CREDENTIALS } = await import('../src/providers/emulated/ec2/emulated-cloud.js');
    const once = async () => (await inSim(5, { consistencyWindowMs: 0 }, async (a, world) => {
      const b = new Ec2Cloud({ world, runId: 'run-b', region: 'us-east-1', endpoint: a.endpoint, credentials: EMULATED_CREDENTIALS, sequential: true });
      const launch = (cloud: typeof b, token: string) => cloud.runInstances({ clientToken: token, imageId: 'ami-0a5ba6e0c57a9e001', instanceType: 'm6i.large', count: 1 });
      const [fromA, fromB] = await Promise.all([launch(a, 'a'), launch(b, 'b')]);
      const [fromB2, fromA2] = await Promise.all([launch(b, 'b2'), launch(a, 'a2')]);
      b.destroy();
      return [fromA[0]!.id, fromB[0]!.id, fromB2[0]!.id, fromA2[0]!.id];
    })).result;
    const first = await once();
    expect(await once()).toEqual(first);
    expect(new Set(first).size).toBe(4);
  });
});
