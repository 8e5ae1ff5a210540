import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { executeCleanup, planCleanup } from '../src/providers/aws/cleanup.js';
import { Ec2Cloud } from '../src/providers/aws/ec2-cloud.js';
import { findStagingImage, prepareLaunch } from '../src/providers/aws/launch-setup.js';
import { EMULATED_CREDENTIALS, type EmulatedEc2Cloud } from '../src/providers/emulated/ec2/emulated-cloud.js';
import { CloudError } from '../src/ports/cloud.js';
import { InputError } from '../src/errors.js';
import { LiveWorld } from '../src/world/live-world.js';
import type { SimWorld } from '../src/world/sim-world.js';
import { expectCloudError, inSim, traceOf, until } from './cloud-helpers.js';

/** What a live run needs from EC2, against the emulator: the issue-16 list of what broke real runs. */

const STAGING = 'ami-0a5ba6e0c57a9e001';
const PLAIN = { consistencyWindowMs: 0 };

/** Another adapter on the same emulated EC2 (another run, other options). */
function sibling(cloud: EmulatedEc2Cloud, world: SimWorld, options: Partial<ConstructorParameters<typeof Ec2Cloud>[0]> = {}): Ec2Cloud {
  return new Ec2Cloud({ world, runId: 'run-test', region: cloud.model.config.region, endpoint: cloud.endpoint, credentials: EMULATED_CREDENTIALS, sequential: true, ...options });
}

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('EC2 for real accounts', () => {
  it('a transport failure is retryable E_CLOUD_TRANSPORT, classified on the HTTP status, not on $metadata being there', async () => {
    const port = await closedPort();
    const cloud = new Ec2Cloud({ world: new LiveWorld(1, () => {}), runId: 'r', region: 'us-east-1', endpoint: `http://127.0.0.1:${port}`, credentials: EMULATED_CREDENTIALS });
    try {
      const err = await expectCloudError(cloud.describeInstances(), 'E_CLOUD_TRANSPORT');
      expect(err.retryable).toBe(true);
      expect((err.cause as { $metadata?: object }).$metadata).toBeDefined();
    } finally {
      cloud.destroy();
    }
  });

  it('client tokens are scoped to the run: a second run with the same machine tokens gets its own instance', async () => {
    const { result } = await inSim(5, PLAIN, async (cloud, world) => {
      const other = sibling(cloud, world, { runId: 'run-other' });
      const long = sibling(cloud, world, { runId: 'spillway-4294967295-0123abcd' });
      const token = 'burst-batch-23:provision:1';
      const a1 = await cloud.runInstances({ clientToken: token, imageId: STAGING, instanceType: 'm6i.large', count: 1 });
      const a2 = await cloud.runInstances({ clientToken: token, imageId: STAGING, instanceType: 'm6i.large', count: 1 });
      const b = await other.runInstances({ clientToken: token, imageId: STAGING, instanceType: 'm6i.large', count: 1 });
      const longToken = 'burst-a-very-long-vm-name-from-a-real-inventory-0042:provision:17';
      const c = await long.runInstances({ clientToken: longToken, imageId: STAGING, instanceType: 'm6i.large', count: 1 });
      other.destroy();
      long.destroy();
      return { a1: a1[0]!.id, a2: a2[0]!.id, b: b[0]!.id, c: c[0]!.id, scopedLong: long.scopedToken(longToken), scoped: cloud.scopedToken(token) };
    });
    expect(result.a2).toBe(result.a1);
    expect(result.b).not.toBe(result.a1);
    expect(result.scoped).toBe('run-test:burst-batch-23:provision:1');
    expect(result.scopedLong.length).toBeLessThanOrEqual(64);
    expect(result.scopedLong.startsWith('spillway-4294967295-')).toBe(true);
  });

  it('root volumes: tagged, listed, attached with delete-on-termination, and gone with their instance', async () => {
    const { result } = await inSim(6, PLAIN, async (cloud, world) => {
      const [inst] = await cloud.runInstances({ clientToken: 't', imageId: STAGING, instanceType: 'm6i.large', count: 1, tags: { vm: 'web-1' } });
      await until(world, async () => (await cloud.describeInstances({ ids: [inst!.id] }))[0]?.state === 'running');
      const before = await cloud.describeVolumes({ tags: { 'spillway:run': 'run-test' } });
      const detach = await expectCloudError(cloud.detachVolume(before[0]!.id), 'IncorrectState');
      await cloud.terminateInstances([inst!.id]);
      await until(world, async () => (await cloud.describeInstances({ ids: [inst!.id] }))[0]?.state === 'terminated');
      const after = await cloud.describeVolumes({ tags: { 'spillway:run': 'run-test' } });
      const gone = await expectCloudError(cloud.describeVolumes({ ids: [before[0]!.id] }), 'InvalidVolume.NotFound');
      return { inst: inst!, before, after, detach, gone };
    });
    expect(result.before).toHaveLength(1);
    expect(result.before[0]).toMatchObject({ sizeGiB: 8, type: 'gp3', state: 'in-use', attachedTo: result.inst.id, device: '/dev/xvda', deleteOnTermination: true });
    expect(result.before[0]!.tags).toMatchObject({ vm: 'web-1', 'spillway:run': 'run-test' });
    expect(result.detach.message).toContain('root volume');
    expect(result.after).toEqual([]);
  });

  it('cleanup goes past a resource EC2 refuses, deletes the rest of its plan, and never retries a NotFound', async () => {
    const { result, events } = await inSim(7, { consistencyWindowMs: 0, unauthorized: ['DeleteSnapshot'] }, async (cloud, world) => {
      const insts = await cloud.runInstances({ clientToken: 'a', imageId: STAGING, instanceType: 'm6i.large', count: 2 });
      const loose = await cloud.createVolume({ sizeGiB: 4, zone: 'us-east-1a' });
      await until(world, async () => (await cloud.describeVolumes({ ids: [loose.id] }))[0]?.state === 'available');
      const snap = await cloud.createSnapshot(loose.id);
      await until(world, async () => (await cloud.describeInstances({ ids: insts.map((i) => i.id) })).every((i) => i.state === 'running'));
      const plan = await planCleanup(cloud, 'run-test');
      const done = await executeCleanup(cloud, plan, { clock: world.clock, rng: world.rng('test/cleanup'), pollUs: 2_000_000, timeoutUs: 300_000_000 });
      return { plan, done, snap: snap.id, loose: loose.id, live: cloud.model.liveResourceIds() };
    });
    expect(result.plan.volumes).toHaveLength(3);
    expect(result.done.terminated).toHaveLength(2);
    expect(result.done.deletedWithInstance).toHaveLength(2);
    expect(result.done.deletedVolumes).toEqual([result.loose]);
    expect(result.done.failed).toEqual([expect.objectContaining({ id: result.snap, action: 'delete', code: 'UnauthorizedOperation' })]);
    expect(result.done.leftover).toEqual([result.snap]);
    expect(result.live).toEqual([result.snap]);
    const notFound = traceOf(events, 'cloud.call').filter((c) => typeof c.code === 'string' && c.code.endsWith('.NotFound'));
    expect(notFound).toEqual([]);
  });

  it('instance types: only those that boot the staging image and have a known price; a named unpriced type is refused', async () => {
    const catalog = [
      { type: 'm6i.large', vcpus: 2, memoryGiB: 8, pricePerHour: 0.096 },
      { type: 'm6g.large', vcpus: 2, memoryGiB: 8, pricePerHour: 0.077 },
      { type: 'a1.large', vcpus: 2, memoryGiB: 4, pricePerHour: 0.051 },
      { type: 'm4.large', vcpus: 2, memoryGiB: 8, pricePerHour: 0.1 },
      { type: 'c6i.large', vcpus: 2, memoryGiB: 4, pricePerHour: 0.085 },
    ];
    const { result } = await inSim(8, { ...PLAIN, catalog }, async (cloud, world) => {
      const image = (await cloud.describeImages({ ids: [STAGING] }))[0]!;
      // Live, prices come from the catalog the operator gives: here c6i.large has none.
      const live = sibling(cloud, world, { stagingImage: { ...image, bootMode: 'uefi' }, prices: { 'm6i.large': 0.096, 'm6g.large': 0.077, 'a1.large': 0.051, 'm4.large': 0.1 } });
      const offered = (await live.describeInstanceTypes()).map((t) => t.name);
      const unpriced = await expectCloudError(live.describeInstanceTypes(['c6i.large']), 'E_UNPRICED_TYPE');
      const all = (await cloud.describeInstanceTypes()).map((t) => t.name);
      live.destroy();
      return { image, offered, unpriced, all };
    });
    expect(result.image).toMatchObject({ architecture: 'x86_64', virtualizationType: 'hvm', state: 'available', rootDeviceType: 'ebs' });
    expect(result.offered).toEqual(['m6i.large']);
    expect(result.unpriced.message).toContain('c6i.large');
    expect(result.all).toHaveLength(5);
  });

  it('the staging image is found by tag and checked; none or several tagged images are refused with what to do', async () => {
    const images = [
      { id: STAGING, name: 'spillway-staging-1', tags: { 'spillway:role': 'staging' } },
      { id: 'ami-0b5ba6e0c57a9e002', name: 'spillway-staging-2', tags: { 'spillway:role': 'staging' } },
      { id: 'ami-0c5ba6e0c57a9e003', name: 'other', tags: {} },
    ];
    const { result } = await inSim(9, { ...PLAIN, images }, async (cloud) => {
      const ambiguous = await findStagingImage(cloud).catch((e: unknown) => e);
      const named = await findStagingImage(cloud, 'ami-0b5ba6e0c57a9e002');
      return { ambiguous, named };
    });
    expect(result.ambiguous).toBeInstanceOf(InputError);
    expect((result.ambiguous as InputError).code).toBe('E_STAGING_IMAGE_AMBIGUOUS');
    expect((result.ambiguous as InputError).message).toContain('--image');
    expect(result.named.name).toBe('spillway-staging-2');
    const none = await inSim(9, { ...PLAIN, images: [images[2]] }, async (cloud) => findStagingImage(cloud).catch((e: unknown) => e));
    expect((none.result as InputError).code).toBe('E_NO_STAGING_IMAGE');
  });

  it('zones come from the region; --subnet sets the zone of each launch; security groups and instance profile are passed', async () => {
    const config = { ...PLAIN, region: 'eu-west-1', zones: ['eu-west-1a', 'eu-west-1b', 'eu-west-1c'] };
    const { result } = await inSim(10, config, async (cloud, world) => {
      const plain = await prepareLaunch(cloud, {});
      const subnets = (await cloud.model.handle('DescribeSubnets', {}) as { subnetSet: Array<{ subnetId: string; availabilityZone: string }> }).subnetSet;
      const inB = subnets.find((n) => n.availabilityZone === 'eu-west-1b')!.subnetId;
      const group = (cloud.model.handle('DescribeSecurityGroups', {}) as { securityGroupInfo: Array<{ groupId: string }> }).securityGroupInfo[0]!.groupId;
      const target = await prepareLaunch(cloud, { subnetIds: [inB], securityGroupIds: [group], instanceProfile: 'spillway-staging' });
      const launcher = sibling(cloud, world, { stagingImage: target.image, launch: target.launch });
      const [inst] = await launcher.runInstances({ clientToken: 'n', imageId: target.image.id, instanceType: 'm6i.large', zone: 'eu-west-1b', count: 1 });
      const noSubnet = await expectCloudError(launcher.runInstances({ clientToken: 'm', imageId: target.image.id, instanceType: 'm6i.large', zone: 'eu-west-1a', count: 1 }), 'E_NO_SUBNET');
      const badGroup = sibling(cloud, world, { launch: { securityGroupIds: ['sg-0123456789abcdef0'] } });
      const refused = await expectCloudError(badGroup.runInstances({ clientToken: 'g', imageId: target.image.id, instanceType: 'm6i.large', count: 1 }), 'InvalidGroup.NotFound');
      const badSubnet = await prepareLaunch(cloud, { subnetIds: ['subnet-0123456789abcdef0'] }).catch((e: unknown) => e);
      launcher.destroy();
      badGroup.destroy();
      return { plain, target, inst: inst!, noSubnet, refused, badSubnet };
    });
    expect(result.plain.zones).toEqual(['eu-west-1a', 'eu-west-1b', 'eu-west-1c']);
    expect(result.target.zones).toEqual(['eu-west-1b']);
    expect(result.inst.zone).toBe('eu-west-1b');
    expect(result.noSubnet.message).toContain('--subnet');
    expect(result.refused.retryable).toBe(false);
    expect((result.badSubnet as CloudError).code).toBe('InvalidSubnetID.NotFound');
  });
});
