import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { InputError } from '../src/errors.js';
import { DEFAULT_CATALOG } from '../src/providers/emulated/ec2/config.js';
import { parseCloudConfig } from '../src/scenario/cloud.js';

const SCENARIO_SECTION = `
cloud:
  provider: emulated            # or aws
  region: us-east-1
  zones: [us-east-1a, us-east-1b]
  catalog:
    - { type: m6i.large, vcpus: 2, memoryGiB: 8, ebsIops: 10000, networkGbit: 12.5, pricePerHour: 0.096 }
    - { type: m6i.4xlarge, vcpus: 16, memoryGiB: 64, ebsIops: 20000, networkGbit: 12.5, pricePerHour: 0.768 }
  quotas: { vcpus: 256 }
  api: { latency: { meanMs: 120, sdMs: 40 }, rateLimit: { perSecond: 20, burst: 50 } }
  boot: { meanS: 45, sdS: 10 }
  consistencyWindowMs: 1500
  unauthorized: []              # API names that answer UnauthorizedOperation
  faults:
    - { at: 2h, until: 3h, error: InsufficientInstanceCapacity, type: m6i.4xlarge, zone: us-east-1a }
`;

function errorOf(raw: unknown): InputError {
  try {
    parseCloudConfig(raw);
  } catch (err) {
    expect(err).toBeInstanceOf(InputError);
    return err as InputError;
  }
  throw new Error('expected an InputError');
}

describe('parseCloudConfig', () => {
  it('reads the scenario section as documented', () => {
    const config = parseCloudConfig((parse(SCENARIO_SECTION) as { cloud: unknown }).cloud);
    expect(config.catalog).toHaveLength(2);
    expect(config.api).toEqual({ latency: { meanUs: 120_000, sdUs: 40_000 }, rateLimit: { perSecond: 20, burst: 50 } });
    expect(config.boot).toEqual({ meanUs: 45_000_000, sdUs: 10_000_000 });
    expect(config.consistencyWindowUs).toBe(1_500_000);
    expect(config.faults).toEqual([{ atUs: 7_200_000_000, untilUs: 10_800_000_000, error: 'InsufficientInstanceCapacity', type: 'm6i.4xlarge', zone: 'us-east-1a' }]);
  });

  it('fills sensible defaults when the section is omitted', () => {
    const config = parseCloudConfig(undefined);
    expect(config.provider).toBe('emulated');
    expect(config.zones).toEqual(['us-east-1a', 'us-east-1b']);
    expect(config.catalog.map((c) => c.type)).toEqual(DEFAULT_CATALOG.map((c) => c.type));
    expect(config.catalog.find((c) => c.type === 'm6i.large')?.pricePerHour).toBe(0.096);
    expect(config.images[0]?.tags['spillway:role']).toBe('staging');
    expect(config.quotas.vcpus).toBe(256);
    expect(parseCloudConfig({ region: 'eu-west-1' }).zones).toEqual(['eu-west-1a', 'eu-west-1b']);
  });

  it('names the bad field and what is allowed', () => {
    expect(errorOf({ provider: 'gcp' }).message).toMatch(/^cloud\.provider: expected one of emulated, aws/);
    expect(errorOf({ catalog: [{ type: 'm6i.large', vcpus: 2, memoryGiB: 8, pricePerHour: 1 }, { type: 'c6i.large', vcpus: 0, memoryGiB: 4, pricePerHour: 1 }] }).message).toMatch(/^cloud\.catalog\[1\]\.vcpus: expected an integer >= 1/);
    expect(errorOf({ catalog: [{ type: 'm6i.large', vcpus: 2, memoryGiB: 8, pricePerHour: 1 }, { type: 'm6i.large', vcpus: 2, memoryGiB: 8, pricePerHour: 1 }] }).message).toMatch(/cloud\.catalog\[1\]\.type: "m6i.large" is listed twice/);
    expect(errorOf({ zones: ['eu-west-1a'] }).message).toMatch(/^cloud\.zones\[0\]: expected a zone of region us-east-1/);
    expect(errorOf({ unauthorized: ['LaunchRockets'] }).message).toMatch(/^cloud\.unauthorized\[0\]: expected an EC2 action/);
    expect(errorOf({ faults: [{ at: '1h', until: '2h', error: 'InsufficientInstanceCapacity', type: 'x1.huge' }] }).message).toMatch(/^cloud\.faults\[0\]\.type: expected one of m6i.large/);
    expect(errorOf({ faults: [{ at: '2h', until: '1h', error: 'InternalError' }] }).message).toMatch(/^cloud\.faults\[0\]\.until: expected a time after at/);
    expect(errorOf({ faults: [{ at: 'soon', until: '1h', error: 'InternalError' }] }).message).toMatch(/cloud\.faults\[0\]\.at/);
    expect(errorOf({ api: { rateLimit: { burst: 0 } } }).message).toMatch(/^cloud\.api\.rateLimit\.burst: expected an integer >= 1/);
    expect(errorOf({ qoutas: {} }).message).toMatch(/^cloud\.qoutas: unknown field; allowed here: provider, region/);
    expect(errorOf({ boot: { meanS: 'slow' } }).message).toMatch(/^cloud\.boot\.meanS: expected a number/);
  });

  it('uses the path it is given', () => {
    expect(() => parseCloudConfig({ region: 'moon' }, 'scenarios[2].cloud')).toThrow(/^scenarios\[2\]\.cloud\.region:/);
  });
});
