import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Ec2Cloud } from '../src/providers/aws/ec2-cloud.js';
import { parseCloudConfig } from '../src/scenario/cloud.js';
import { EmulatedEc2Cloud } from '../src/providers/emulated/ec2/emulated-cloud.js';
import { openCloud } from '../src/providers/open-cloud.js';
import { SimWorld } from '../src/world/sim-world.js';
import { expectCloudError } from './cloud-helpers.js';

describe('openCloud: one switch between emulated and live EC2', () => {
  const saved: Record<string, string | undefined> = {};
  const KEYS = ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_SHARED_CREDENTIALS_FILE', 'AWS_CONFIG_FILE', 'AWS_EC2_METADATA_DISABLED', 'AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_CONTAINER_CREDENTIALS_FULL_URI', 'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI'];
  beforeEach(() => {
    for (const k of KEYS) saved[k] = process.env[k];
    for (const k of KEYS) delete process.env[k];
    // No credentials anywhere, and no instance metadata service to ask.
    process.env.AWS_SHARED_CREDENTIALS_FILE = '/nonexistent/spillway-credentials';
    process.env.AWS_CONFIG_FILE = '/nonexistent/spillway-config';
    process.env.AWS_EC2_METADATA_DISABLED = 'true';
  });
  afterEach(() => {
    for (const k of KEYS) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  });

  it('emulated: the scenario provider gives the msw-backed adapter', async () => {
    const world = new SimWorld(1);
    const cloud = await openCloud(world, parseCloudConfig({}), 'r1');
    expect(cloud).toBeInstanceOf(EmulatedEc2Cloud);
    cloud.dispose();
  });

  it('--cloud aws: the live adapter, default credential chain; with no credentials a call fails clearly and names none', async () => {
    const world = new SimWorld(1);
    const cloud = await openCloud(world, parseCloudConfig({}), 'r1', { cloud: 'aws', region: 'eu-west-1', profile: 'spillway-test' });
    expect(cloud).toBeInstanceOf(Ec2Cloud);
    expect(cloud).not.toBeInstanceOf(EmulatedEc2Cloud);
    let err: unknown;
    void expectCloudError(cloud.describeInstances(), 'E_CLOUD_CREDENTIALS').then((e) => { err = e; }, (e: unknown) => { err = e; });
    await world.run();
    cloud.dispose();
    expect((err as Error).message).toMatch(/no AWS credentials/);
    expect((err as { retryable: boolean }).retryable).toBe(false);
  });
});
