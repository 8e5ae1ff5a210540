import type { Ec2Cloud } from '../src/providers/aws/ec2-cloud.js';
import { stagingUserData } from '../src/providers/aws/user-data.js';
import { CloudError } from '../src/ports/cloud.js';
import { withRetry } from '../src/providers/aws/retry.js';
import type { World } from '../src/world/types.js';

/**
 * One burst, start to finish, the way a lifecycle machine drives the cloud:
 * find the staging image, launch (retrying capacity errors in another zone),
 * wait for running through eventual consistency, add a cache volume, snapshot
 * it, resize the instance (stop, modify, start), then tear everything down.
 * Used for determinism (trace hashes) and for the recorded replay fixture.
 */
export async function burstScript(cloud: Ec2Cloud, world: World): Promise<Record<string, unknown>> {
  const rng = world.rng('test/burst-retry');
  const retry = <T>(op: () => Promise<T>): Promise<T> => withRetry(world.clock, rng, op, { baseDelayUs: 500_000, attempts: 30 });
  const poll = async (done: () => Promise<boolean>): Promise<void> => {
    while (!(await retry(done))) await world.clock.sleepUs(3_000_000);
  };
  const types = await retry(() => cloud.describeInstanceTypes(['m6i.large', 'm6i.xlarge']));
  const [image] = await retry(() => cloud.describeImages({ tags: { 'spillway:role': 'staging' } }));
  const userData = stagingUserData({ proxy: { host: '10.0.100.5', port: 10809, exportName: 'web-03', tls: true }, vm: { id: 'web-03', name: 'web-03' }, provisioning: { hostname: 'web-03' } });
  let zone = 'us-east-1a';
  const launched = await retry(async () => {
    try {
      return await cloud.runInstances({ clientToken: `burst-web-03-${zone}`, imageId: image!.id, instanceType: 'm6i.large', zone, count: 1, userData, tags: { vm: 'web-03' } });
    } catch (err) {
      if (err instanceof CloudError && err.code === 'InsufficientInstanceCapacity') zone = 'us-east-1b';
      throw err;
    }
  });
  const id = launched[0]!.id;
  const instance = async () => (await cloud.describeInstances({ ids: [id] }))[0]!;
  await poll(async () => (await instance()).state === 'running');
  const vol = await retry(() => cloud.createVolume({ sizeGiB: 64, zone, tags: { role: 'cache' }, clientToken: 'cache-web-03' }));
  await poll(async () => (await cloud.describeVolumes({ ids: [vol.id] }))[0]!.state === 'available');
  await retry(() => cloud.attachVolume(vol.id, id, '/dev/sdf'));
  const snap = await retry(() => cloud.createSnapshot(vol.id, { role: 'cache' }));
  await poll(async () => (await cloud.describeSnapshots({ ids: [snap.id] }))[0]!.state === 'completed');
  await retry(() => cloud.stopInstances([id]));
  await poll(async () => (await instance()).state === 'stopped');
  await retry(() => cloud.modifyInstanceType(id, 'm6i.xlarge'));
  await retry(() => cloud.startInstances([id]));
  await poll(async () => (await instance()).state === 'running');
  const quota = await retry(() => cloud.vcpuQuota());
  await retry(() => cloud.terminateInstances([id]));
  await poll(async () => (await instance()).state === 'terminated');
  await poll(async () => (await cloud.describeVolumes({ ids: [vol.id] }))[0]!.state === 'available');
  await retry(() => cloud.deleteVolume(vol.id));
  await retry(() => cloud.deleteSnapshot(snap.id));
  return { types: types.map((t) => t.name), image: image!.id, id, zone, volume: vol.id, snapshot: snap.id, quotaUsed: quota.used, endUs: world.clock.nowUs() };
}

/** A cloud with weather: capacity trouble in zone a, a tight rate limit, a consistency window. */
export const STORMY = {
  consistencyWindowMs: 2000,
  api: { latency: { meanMs: 120, sdMs: 40 }, rateLimit: { perSecond: 2, burst: 4 } },
  faults: [{ at: '0s', until: '10m', error: 'InsufficientInstanceCapacity', type: 'm6i.large', zone: 'us-east-1a' }],
};
