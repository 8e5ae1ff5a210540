import type { BenchFigure } from './run.js';
import { parseCloudConfig } from '../src/scenario/cloud.js';
import { createEmulatedCloud } from '../src/providers/emulated/ec2/emulated-cloud.js';
import { withRetry } from '../src/providers/aws/retry.js';
import { SimWorld } from '../src/world/sim-world.js';
import { wallMs } from '../src/world/live-world.js';

export const title = 'emulated EC2 (real SDK through msw, on virtual time)';

async function inSim<T>(seed: number, config: unknown, body: (cloud: ReturnType<typeof createEmulatedCloud>, world: SimWorld) => Promise<T>): Promise<T> {
  const world = new SimWorld(seed);
  const cloud = createEmulatedCloud(world, parseCloudConfig(config), 'bench');
  let value: T | undefined;
  let error: unknown;
  void body(cloud, world).then((v) => { value = v; }, (e: unknown) => { error = e; });
  await world.run();
  cloud.dispose();
  if (error) throw error;
  return value as T;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function run(): Promise<BenchFigure[]> {
  const perCall: number[] = [];
  for (let rep = 0; rep < 3; rep++) {
    const calls = 60;
    const start = wallMs();
    await inSim(rep, { api: { rateLimit: { perSecond: 1000, burst: 1000 } } }, async (cloud) => {
      for (let i = 0; i < calls; i++) await cloud.describeVolumes();
    });
    perCall.push((wallMs() - start) / calls);
  }

  // A 10-instance burst: launch, wait for running through eventual consistency, terminate.
  const fleetWall: number[] = [];
  let toRunningUs = 0;
  let apiCalls = 0;
  for (let rep = 0; rep < 3; rep++) {
    const start = wallMs();
    const r = await inSim(42, {}, async (cloud, world) => {
      const rng = world.rng('bench/retry');
      const insts = await cloud.runInstances({ clientToken: 'fleet', imageId: 'ami-0a5ba6e0c57a9e001', instanceType: 'c6i.xlarge', count: 10 });
      const ids = insts.map((i) => i.id);
      const t0 = world.clock.nowUs();
      let calls = 1;
      for (;;) {
        const now = await withRetry(world.clock, rng, () => { calls++; return cloud.describeInstances({ ids }); });
        if (now.every((i) => i.state === 'running')) break;
        await world.clock.sleepUs(5_000_000);
      }
      const ready = world.clock.nowUs() - t0;
      await cloud.terminateInstances(ids);
      return { ready, calls: calls + 1 };
    });
    fleetWall.push(wallMs() - start);
    toRunningUs = r.ready;
    apiCalls = r.calls;
  }
  return [
    { name: 'one DescribeVolumes, real time (median of 3x60)', value: median(perCall), unit: 'ms', note: 'SDK signing + msw + XML parse; depends on machine load' },
    { name: '10-instance fleet: launch to all running, virtual', value: toRunningUs / 1e6, unit: 's', note: 'seed 42, boot 45±10 s, polled every 5 s' },
    { name: '10-instance fleet: API calls', value: apiCalls, unit: 'calls' },
    { name: '10-instance fleet: real time (median of 3)', value: median(fleetWall), unit: 'ms' },
  ];
}
