import { expect } from 'vitest';
import { CloudError } from '../src/ports/cloud.js';
import { parseCloudConfig } from '../src/scenario/cloud.js';
import { createEmulatedCloud, type EmulatedEc2Cloud } from '../src/providers/emulated/ec2/emulated-cloud.js';
import { SimWorld } from '../src/world/sim-world.js';
import type { TraceEvent } from '../src/world/types.js';

/** Run `body` against an emulated EC2 inside a fresh SimWorld, driving virtual time until idle. */
export async function inSim<T>(seed: number, config: unknown, body: (cloud: EmulatedEc2Cloud, world: SimWorld) => Promise<T>, runId = 'run-test'): Promise<{ result: T; world: SimWorld; cloud: EmulatedEc2Cloud; events: TraceEvent[] }> {
  const world = new SimWorld(seed);
  const events: TraceEvent[] = [];
  world.trace.subscribe((e) => events.push(e));
  const cloud = createEmulatedCloud(world, parseCloudConfig(config), runId);
  let outcome: { ok: true; value: T } | { ok: false; error: unknown } | undefined;
  void body(cloud, world).then((value) => { outcome = { ok: true, value }; }, (error: unknown) => { outcome = { ok: false, error }; });
  try {
    await world.run({ maxEvents: 1_000_000 });
  } finally {
    cloud.dispose();
  }
  if (!outcome) throw new Error('the simulated body never finished (a promise waits on nothing)');
  if (!outcome.ok) throw outcome.error;
  return { result: outcome.value, world, cloud, events };
}

/** Await a call that must fail with a CloudError of this code; returns it for more checks. */
export async function expectCloudError(promise: Promise<unknown>, code: string): Promise<CloudError> {
  try {
    await promise;
  } catch (err) {
    expect(err, `expected CloudError ${code}`).toBeInstanceOf(CloudError);
    expect((err as CloudError).code).toBe(code);
    return err as CloudError;
  }
  throw new Error(`expected CloudError ${code}, but the call succeeded`);
}

/** Poll (on virtual time) until `check` holds; fails the test after `limitUs`. */
export async function until(world: SimWorld, check: () => Promise<boolean>, limitUs = 600_000_000, stepUs = 2_000_000): Promise<void> {
  const deadline = world.clock.nowUs() + limitUs;
  // A retryable cloud error (eventual consistency, throttling) just means "not yet".
  const attempt = (): Promise<boolean> => check().catch((err: unknown) => {
    if (err instanceof CloudError && err.retryable) return false;
    throw err;
  });
  while (!(await attempt())) {
    if (world.clock.nowUs() > deadline) throw new Error('condition not reached in virtual time');
    await world.clock.sleepUs(stepUs);
  }
}

/** The data of every trace event of one type. */
export function traceOf(events: TraceEvent[], type: string): Array<Record<string, unknown>> {
  return events.filter((e) => e.type === type).map((e) => e.data);
}
