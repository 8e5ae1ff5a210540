import { DescribeInstancesCommand, RunInstancesCommand, StopInstancesCommand, type DescribeInstancesCommandOutput } from '@aws-sdk/client-ec2';
import { describe, expect, it } from 'vitest';
import { Ec2Cloud } from '../src/providers/aws/ec2-cloud.js';
import { parseStagingUserData, stagingUserData } from '../src/providers/aws/user-data.js';
import { EMULATED_CREDENTIALS } from '../src/providers/emulated/ec2/emulated-cloud.js';
import { withRetry } from '../src/providers/aws/retry.js';
import type { EmulatedEc2Cloud } from '../src/providers/emulated/ec2/emulated-cloud.js';
import type { SimWorld } from '../src/world/sim-world.js';
import { expectCloudError, inSim, traceOf, until } from './cloud-helpers.js';

const STAGING = 'ami-0a5ba6e0c57a9e001';
/** No consistency window: these tests are about each call, not about eventual consistency. */
const PLAIN = { consistencyWindowMs: 0 };

async function launch(cloud: EmulatedEc2Cloud, world: SimWorld, opts: { type?: string; zone?: string; count?: number; token?: string } = {}) {
  const insts = await cloud.runInstances({ clientToken: opts.token ?? `t-${world.clock.nowUs()}`, imageId: STAGING, instanceType: opts.type ?? 'm6i.large', count: opts.count ?? 1, ...(opts.zone ? { zone: opts.zone } : {}) });
  const ids = insts.map((i) => i.id);
  await until(world, async () => (await cloud.describeInstances({ ids })).every((i) => i.state === 'running'));
  return ids;
}

describe('emulated EC2 through the real SDK: every call', () => {
  it('DescribeInstanceTypes answers the catalog with prices, and names unknown types', async () => {
    const { result } = await inSim(1, PLAIN, async (cloud) => {
      const all = await cloud.describeInstanceTypes();
      const one = await cloud.describeInstanceTypes(['r6i.large']);
      const bad = await expectCloudError(cloud.describeInstanceTypes(['m6i.huge']), 'InvalidInstanceType');
      return { all, one, bad };
    });
    expect(result.all).toHaveLength(12);
    expect(result.one).toEqual([{
      name: 'r6i.large', vcpus: 2, memoryMiB: 16384, ebsIops: 3600, networkGbit: 12.5, pricePerHourUsd: 0.126,
      architectures: ['x86_64'], virtualizationTypes: ['hvm'], bootModes: ['legacy-bios', 'uefi'],
    }]);
    expect(result.bad.message).toContain('m6i.huge');
    expect(result.bad.retryable).toBe(false);
  });

  it('DescribeInstanceTypes follows NextToken pages (more than 100 types)', async () => {
    const catalog = Array.from({ length: 130 }, (_, i) => ({ type: `m6i.t${i}`, vcpus: 2, memoryGiB: 8, pricePerHour: 0.1 }));
    const { result } = await inSim(1, { catalog }, async (cloud) => cloud.describeInstanceTypes());
    expect(result).toHaveLength(130);
    expect(new Set(result.map((t) => t.name)).size).toBe(130);
  });

  it('DescribeImages finds the staging image by tag and names a missing id', async () => {
    const { result } = await inSim(1, PLAIN, async (cloud) => ({
      staging: await cloud.describeImages({ tags: { 'spillway:role': 'staging' } }),
      none: await cloud.describeImages({ tags: { 'spillway:role': 'other' } }),
      missing: await expectCloudError(cloud.describeImages({ ids: ['ami-0123456789abcdef0'] }), 'InvalidAMIID.NotFound'),
    }));
    expect(result.staging.map((i) => i.id)).toEqual([STAGING]);
    expect(result.none).toEqual([]);
    expect(result.missing.message).toContain('ami-0123456789abcdef0');
  });

  it('RunInstances tags, carries user data, boots pending → running on a seeded delay', async () => {
    const userData = stagingUserData({ proxy: { host: '10.0.9.9', port: 10809, exportName: 'vm-web-03', tls: true }, vm: { id: 'web-03', name: 'web-03' }, provisioning: { hostname: 'web-03' } });
    const { result, cloud } = await inSim(7, PLAIN, async (cloud, world) => {
      const [inst] = await cloud.runInstances({ clientToken: 'boot-1', imageId: STAGING, instanceType: 'm6i.large', count: 1, userData, tags: { vm: 'web-03' } });
      const launchedAt = world.clock.nowUs();
      await until(world, async () => (await cloud.describeInstances({ ids: [inst!.id] }))[0]!.state === 'running', 600_000_000, 2_000_000);
      return { inst: inst!, bootUs: world.clock.nowUs() - launchedAt };
    });
    expect(result.inst.state).toBe('pending');
    expect(result.inst.tags).toEqual({ vm: 'web-03', 'spillway:run': 'run-test' });
    expect(result.inst.zone).toBe('us-east-1a');
    expect(result.bootUs).toBeGreaterThan(5_000_000);
    expect(result.bootUs).toBeLessThan(120_000_000);
    expect(parseStagingUserData(cloud.model.instanceUserData(result.inst.id)!).proxy).toEqual({ host: '10.0.9.9', port: 10809, exportName: 'vm-web-03', tls: true });
  });

  it('RunInstances is idempotent on its ClientToken and refuses the token with other parameters', async () => {
    const { result, cloud } = await inSim(3, PLAIN, async (cloud) => {
      const a = await cloud.runInstances({ clientToken: 'same', imageId: STAGING, instanceType: 'm6i.large', count: 2 });
      const b = await cloud.runInstances({ clientToken: 'same', imageId: STAGING, instanceType: 'm6i.large', count: 2 });
      const err = await expectCloudError(cloud.runInstances({ clientToken: 'same', imageId: STAGING, instanceType: 'c6i.large', count: 2 }), 'IdempotentParameterMismatch');
      return { a: a.map((i) => i.id), b: b.map((i) => i.id), err };
    });
    expect(result.b).toEqual(result.a);
    expect(result.a).toHaveLength(2);
    expect(cloud.model.liveResourceIds().filter((id) => id.startsWith('i-'))).toHaveLength(2);
  });

  it('Stop, ModifyInstanceAttribute (only when stopped), Start, Terminate walk the real state machine', async () => {
    const { result, events } = await inSim(11, PLAIN, async (cloud, world) => {
      const [id] = await launch(cloud, world);
      const state = async () => (await cloud.describeInstances({ ids: [id!] }))[0]!;
      const resizeRunning = await expectCloudError(cloud.modifyInstanceType(id!, 'm6i.xlarge'), 'IncorrectInstanceState');
      await cloud.stopInstances([id!]);
      const afterStop = (await state()).state;
      await until(world, async () => (await state()).state === 'stopped');
      await cloud.modifyInstanceType(id!, 'm6i.xlarge');
      const badType = await expectCloudError(cloud.modifyInstanceType(id!, 'x9.mega'), 'InvalidParameterValue');
      await cloud.startInstances([id!]);
      const afterStart = await state();
      await until(world, async () => (await state()).state === 'running');
      await cloud.terminateInstances([id!]);
      const afterTerminate = (await state()).state;
      await until(world, async () => (await state()).state === 'terminated');
      const startTerminated = await expectCloudError(cloud.startInstances([id!]), 'IncorrectInstanceState');
      return { id: id!, resizeRunning, afterStop, badType, afterStart, afterTerminate, startTerminated };
    });
    expect(result.resizeRunning.retryable).toBe(true);
    expect(result.afterStop).toBe('stopping');
    expect(result.badType.message).toContain('InstanceType');
    expect(result.afterStart.state).toBe('pending');
    expect(result.afterStart.type).toBe('m6i.xlarge');
    expect(result.afterTerminate).toBe('shutting-down');
    const states = traceOf(events, 'cloud.instance').filter((e) => e.id === result.id).map((e) => e.state);
    expect(states).toEqual(['pending', 'running', 'stopping', 'stopped', 'pending', 'running', 'shutting-down', 'terminated']);
  });

  it('volumes: creating → available → in-use → available → deleted, with AWS errors on the way', async () => {
    const { result } = await inSim(5, PLAIN, async (cloud, world) => {
      const [inst] = await launch(cloud, world, { zone: 'us-east-1a' });
      const vol = await cloud.createVolume({ sizeGiB: 100, zone: 'us-east-1a', tags: { role: 'cache' } });
      const early = await expectCloudError(cloud.attachVolume(vol.id, inst!, '/dev/sdf'), 'IncorrectState');
      const volState = async () => (await cloud.describeVolumes({ ids: [vol.id] }))[0]!;
      await until(world, async () => (await volState()).state === 'available');
      const other = await cloud.createVolume({ sizeGiB: 10, zone: 'us-east-1b' });
      await until(world, async () => (await cloud.describeVolumes({ ids: [other.id] }))[0]!.state === 'available');
      const zoneMismatch = await expectCloudError(cloud.attachVolume(other.id, inst!, '/dev/sdg'), 'InvalidVolume.ZoneMismatch');
      const badDevice = await expectCloudError(cloud.attachVolume(vol.id, inst!, '/dev/hda'), 'InvalidParameterValue');
      await cloud.attachVolume(vol.id, inst!, '/dev/sdf');
      const attached = await volState();
      const again = await expectCloudError(cloud.attachVolume(vol.id, inst!, '/dev/sdh'), 'VolumeInUse');
      const deleteInUse = await expectCloudError(cloud.deleteVolume(vol.id), 'VolumeInUse');
      await cloud.detachVolume(vol.id);
      await until(world, async () => (await volState()).state === 'available');
      await cloud.deleteVolume(vol.id);
      await cloud.deleteVolume(other.id);
      await world.clock.sleepUs(10_000_000);
      const gone = await expectCloudError(cloud.describeVolumes({ ids: [vol.id] }), 'InvalidVolume.NotFound');
      const tooBig = await expectCloudError(cloud.createVolume({ sizeGiB: 20_000, zone: 'us-east-1a' }), 'InvalidParameterValue');
      return { vol, early, zoneMismatch, badDevice, attached, again, deleteInUse, gone, tooBig, tagged: await cloud.describeVolumes({ tags: { role: 'cache' } }) };
    });
    expect(result.vol).toMatchObject({ state: 'creating', sizeGiB: 100, type: 'gp3', tags: { role: 'cache', 'spillway:run': 'run-test' } });
    expect(result.attached).toMatchObject({ state: 'in-use', device: '/dev/sdf' });
    expect(result.badDevice.message).toContain('device');
    expect(result.tooBig.message).toContain('Size');
    expect(result.tagged).toEqual([]);
  });

  it('snapshots go pending → completed; CreateTags adds tags and names a bad key', async () => {
    const { result } = await inSim(9, PLAIN, async (cloud, world) => {
      const vol = await cloud.createVolume({ sizeGiB: 8, zone: 'us-east-1a' });
      await until(world, async () => (await cloud.describeVolumes({ ids: [vol.id] }))[0]!.state === 'available');
      const snap = await cloud.createSnapshot(vol.id, { purpose: 'migration' });
      await until(world, async () => (await cloud.describeSnapshots({ ids: [snap.id] }))[0]!.state === 'completed');
      await cloud.createTags([vol.id, snap.id], { stage: 'done' });
      const reserved = await expectCloudError(cloud.createTags([vol.id], { 'aws:owner': 'x' }), 'InvalidParameterValue');
      const missing = await expectCloudError(cloud.createTags(['i-0123456789abcdef0'], { a: 'b' }), 'InvalidInstanceID.NotFound');
      const byTag = await cloud.describeSnapshots({ tags: { stage: 'done' } });
      await cloud.deleteSnapshot(snap.id);
      return { snap, byTag, reserved, missing, after: await cloud.describeSnapshots({ tags: { stage: 'done' } }), vol: (await cloud.describeVolumes({ ids: [vol.id] }))[0]! };
    });
    expect(result.snap.state).toBe('pending');
    expect(result.byTag).toEqual([{ id: result.snap.id, volumeId: result.snap.volumeId, state: 'completed', tags: { purpose: 'migration', 'spillway:run': 'run-test', stage: 'done' } }]);
    expect(result.reserved.message).toContain('Tag.1.Key');
    expect(result.after).toEqual([]);
    expect(result.vol.tags.stage).toBe('done');
  });

  it('DescribeInstances pages with MaxResults/NextToken like AWS', async () => {
    const { result } = await inSim(2, PLAIN, async (cloud) => {
      await cloud.runInstances({ clientToken: 'many', imageId: STAGING, instanceType: 'c6i.large', count: 7 });
      const first = await cloud.send<DescribeInstancesCommandOutput>('DescribeInstances', new DescribeInstancesCommand({ MaxResults: 5 }));
      const second = await cloud.send<DescribeInstancesCommandOutput>('DescribeInstances', new DescribeInstancesCommand({ MaxResults: 5, NextToken: first.NextToken! }));
      return { first, second, all: await cloud.describeInstances() };
    });
    const count = (o: DescribeInstancesCommandOutput) => (o.Reservations ?? []).flatMap((r) => r.Instances ?? []).length;
    expect(count(result.first)).toBe(5);
    expect(count(result.second)).toBe(2);
    expect(result.second.NextToken).toBeUndefined();
    expect(result.all).toHaveLength(7);
  });
});

describe('emulated EC2: every error path', () => {
  const ICE = { faults: [{ at: '0s', until: '1h', error: 'InsufficientInstanceCapacity', type: 'm6i.4xlarge', zone: 'us-east-1a' }], consistencyWindowMs: 0 };

  it('InsufficientInstanceCapacity per type and zone, only inside its window', async () => {
    const { result } = await inSim(4, ICE, async (cloud, world) => {
      const ice = await expectCloudError(launch(cloud, world, { type: 'm6i.4xlarge', zone: 'us-east-1a', token: 'a' }), 'InsufficientInstanceCapacity');
      const otherType = await cloud.runInstances({ clientToken: 'b', imageId: STAGING, instanceType: 'm6i.large', zone: 'us-east-1a', count: 1 });
      const otherZone = await cloud.runInstances({ clientToken: 'c', imageId: STAGING, instanceType: 'm6i.4xlarge', zone: 'us-east-1b', count: 1 });
      const anyZone = await cloud.runInstances({ clientToken: 'd', imageId: STAGING, instanceType: 'm6i.4xlarge', count: 1 });
      await world.clock.sleepUs(3_600_000_000);
      const later = await cloud.runInstances({ clientToken: 'e', imageId: STAGING, instanceType: 'm6i.4xlarge', zone: 'us-east-1a', count: 1 });
      return { ice, otherType, otherZone, anyZone, later };
    });
    expect(result.ice.retryable).toBe(true);
    expect(result.ice.message).toContain('us-east-1b');
    expect(result.ice.details).toMatchObject({ api: 'RunInstances', httpStatus: 500 });
    expect(result.otherType).toHaveLength(1);
    expect(result.otherZone[0]!.zone).toBe('us-east-1b');
    expect(result.anyZone[0]!.zone).toBe('us-east-1b');
    expect(result.later[0]!.zone).toBe('us-east-1a');
  });

  it('RequestLimitExceeded from a token bucket per API that refills on virtual time', async () => {
    const { result } = await inSim(4, { api: { rateLimit: { perSecond: 2, burst: 3 }, latency: { meanMs: 10, sdMs: 0 } } }, async (cloud, world) => {
      for (let i = 0; i < 3; i++) await cloud.describeVolumes();
      const throttled = await expectCloudError(cloud.describeVolumes(), 'RequestLimitExceeded');
      const otherApi = await cloud.describeSnapshots();
      await world.clock.sleepUs(1_000_000);
      const refilled = await cloud.describeVolumes();
      return { throttled, otherApi, refilled };
    });
    expect(result.throttled.retryable).toBe(true);
    expect(result.throttled.details).toMatchObject({ httpStatus: 503 });
    expect(result.otherApi).toEqual([]);
    expect(result.refilled).toEqual([]);
  });

  it('VcpuLimitExceeded against the quota; MinCount/MaxCount launches what fits', async () => {
    const { result } = await inSim(4, { quotas: { vcpus: 8 }, consistencyWindowMs: 0 }, async (cloud) => {
      const partial = await cloud.runInstances({ clientToken: 'p', imageId: STAGING, instanceType: 'm6i.large', count: 6, minCount: 2 });
      const full = await expectCloudError(cloud.runInstances({ clientToken: 'q', imageId: STAGING, instanceType: 'm6i.large', count: 1 }), 'VcpuLimitExceeded');
      return { partial, full, quota: await cloud.vcpuQuota() };
    });
    expect(result.partial).toHaveLength(4);
    expect(result.full.message).toContain('vCPU limit of 8');
    expect(result.full.retryable).toBe(false);
    expect(result.quota).toEqual({ limit: 8, used: 8, limitSource: 'configured' });
  });

  it('the vCPU limit is learned from VcpuLimitExceeded when not configured', async () => {
    const { result } = await inSim(4, { quotas: { vcpus: 4 }, consistencyWindowMs: 0 }, async (emulated, world) => {
      const cloud = new Ec2Cloud({ world, runId: 'r2', region: 'us-east-1', endpoint: emulated.endpoint, credentials: EMULATED_CREDENTIALS, sequential: true });
      const before = await cloud.vcpuQuota();
      await cloud.runInstances({ clientToken: 'x', imageId: STAGING, instanceType: 'c6i.xlarge', count: 1 });
      await expectCloudError(cloud.runInstances({ clientToken: 'y', imageId: STAGING, instanceType: 'c6i.large', count: 1 }), 'VcpuLimitExceeded');
      const after = await cloud.vcpuQuota();
      cloud.destroy();
      return { before, after };
    });
    expect(result.before).toEqual({ limit: Infinity, used: 0, limitSource: 'unknown' });
    expect(result.after).toEqual({ limit: 4, used: 4, limitSource: 'learned' });
  });

  it('InvalidParameterValue names the parameter; MissingParameter names what is missing', async () => {
    const { result } = await inSim(4, PLAIN, async (cloud) => ({
      minMax: await expectCloudError(cloud.runInstances({ clientToken: 'm', imageId: STAGING, instanceType: 'm6i.large', count: 1, minCount: 3 }), 'InvalidParameterValue'),
      zone: await expectCloudError(cloud.runInstances({ clientToken: 'z', imageId: STAGING, instanceType: 'm6i.large', count: 1, zone: 'eu-west-1a' }), 'InvalidParameterValue'),
      type: await expectCloudError(cloud.runInstances({ clientToken: 't', imageId: STAGING, instanceType: 'q9.tiny', count: 1 }), 'InvalidParameterValue'),
      userData: await expectCloudError(cloud.runInstances({ clientToken: 'u', imageId: STAGING, instanceType: 'm6i.large', count: 1, userData: 'x'.repeat(20_000) }), 'InvalidParameterValue'),
      volType: await expectCloudError(cloud.createVolume({ sizeGiB: 10, zone: 'us-east-1a', type: 'fast' }), 'InvalidParameterValue'),
      malformed: await expectCloudError(cloud.describeInstances({ ids: ['web-03'] }), 'InvalidInstanceID.Malformed'),
      missing: await expectCloudError(cloud.send('RunInstances', new RunInstancesCommand({ MinCount: 1, MaxCount: 1 } as never)), 'MissingParameter'),
    }));
    expect(result.minMax.message).toContain('MinCount');
    expect(result.zone.message).toContain('eu-west-1a');
    expect(result.type.message).toContain('InstanceType');
    expect(result.userData.message).toContain('UserData');
    expect(result.volType.message).toContain('VolumeType');
    expect(result.missing.message).toContain('ImageId');
  });

  it('DryRun answers DryRunOperation; unauthorized actions answer UnauthorizedOperation with and without DryRun', async () => {
    const { result, cloud } = await inSim(4, { unauthorized: ['StopInstances'], consistencyWindowMs: 0 }, async (cloud) => ({
      dry: await expectCloudError(cloud.send('RunInstances', new RunInstancesCommand({ DryRun: true, ImageId: STAGING, InstanceType: 'm6i.large', MinCount: 1, MaxCount: 1 })), 'DryRunOperation'),
      dryDenied: await expectCloudError(cloud.send('StopInstances', new StopInstancesCommand({ DryRun: true, InstanceIds: ['i-0123456789abcdef0'] })), 'UnauthorizedOperation'),
      denied: await expectCloudError(cloud.stopInstances(['i-0123456789abcdef0']), 'UnauthorizedOperation'),
    }));
    expect(result.dry.details).toMatchObject({ httpStatus: 412 });
    expect(result.denied.details).toMatchObject({ httpStatus: 403 });
    expect(cloud.model.liveResourceIds()).toEqual([]);
  });

  it('scripted InternalError windows on one API, retried by withRetry on virtual time', async () => {
    const { result, events } = await inSim(4, { faults: [{ at: '0s', until: '3s', error: 'InternalError', api: 'DescribeVolumes' }] }, async (cloud, world) => {
      const first = await expectCloudError(cloud.describeVolumes(), 'InternalError');
      const vols = await withRetry(world.clock, world.rng('test/retry'), () => cloud.describeVolumes(), { baseDelayUs: 500_000, attempts: 20 });
      return { first, vols, nowUs: world.clock.nowUs() };
    });
    expect(result.first.retryable).toBe(true);
    expect(result.vols).toEqual([]);
    expect(result.nowUs).toBeGreaterThanOrEqual(3_000_000);
    expect(traceOf(events, 'cloud.call').filter((e) => e.api === 'DescribeVolumes' && e.ok === false).length).toBeGreaterThanOrEqual(2);
  });
});

describe('secrets stay out of errors and traces', () => {
  it('a CloudError carries no credentials, signature or raw HTTP exchange, even when inspected', async () => {
    const { inspect } = await import('node:util');
    const { result, events } = await inSim(8, PLAIN, async (cloud) => expectCloudError(cloud.describeImages({ ids: ['ami-0123456789abcdef0'] }), 'InvalidAMIID.NotFound'));
    const shown = inspect(result, { depth: 10 }) + JSON.stringify(events);
    expect(shown).not.toMatch(/AKIA|Signature=|Credential=|authorization|spillway-emulated-ec2-not-a-secret/i);
    expect(result.details).toMatchObject({ api: 'DescribeImages', httpStatus: 400 });
    expect((result.details as { requestId: string }).requestId).toMatch(/^[0-9a-f-]{36}$/);
  });
});
