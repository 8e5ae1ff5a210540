import { z } from 'zod';
import {
  DEFAULT_CATALOG, DEFAULT_IMAGES, EC2_ACTIONS, FAULT_ERRORS, type CatalogEntry, type CloudConfig, type CloudFault, type ImageEntry,
} from '../providers/emulated/ec2/config.js';
import { US_PER_MS, formatDurationUs } from '../util/units.js';
import { duration, int, list, mapping, named, num, oneOf, refuse, refuseExpected, section, text } from './fields.js';
import { parseSection } from './issues.js';

/**
 * `cloud:` — which provider, the instance catalog and prices, quotas, API latency and rate
 * limits, boot times, the eventual consistency window, unauthorized actions and scripted
 * faults. Everything has a default, so `cloud: {}` is a working cloud. The emulated EC2 takes
 * the result as `CloudConfig` (src/providers/emulated/ec2/config.ts).
 */

const catalogEntry = mapping({
  type: text({ pattern: /^[a-z][a-z0-9-]*\.[a-z0-9]+$/ }).meta({ description: 'instance type name' }),
  vcpus: int({ min: 1 }).meta({ description: 'vCPUs of the type' }),
  memoryGiB: num({ min: 0.5 }).meta({ description: 'memory of the type' }),
  ebsIops: int({ min: 1 }).default(3600).meta({ description: 'baseline EBS IOPS the type sustains' }),
  networkGbit: num({ min: 0.1 }).default(12.5).meta({ description: 'network bandwidth of the type' }),
  pricePerHour: num({ min: 0 }).meta({ description: 'USD per hour, on demand' }),
}).transform((c): CatalogEntry => ({ ...c }));

const image = mapping({
  id: text({ pattern: /^ami-[0-9a-f]{8,17}$/ }).meta({ description: 'AMI id' }),
  name: text().meta({ description: 'AMI name' }),
  tags: named(text()).default({}).meta({ description: 'AMI tags' }),
}).transform((im): ImageEntry => ({ id: im.id, name: im.name, tags: { ...im.tags } }));

const fault = mapping({
  at: duration().meta({ description: 'when calls start failing' }),
  until: duration().meta({ description: 'when they stop (after at)' }),
  error: oneOf(FAULT_ERRORS).meta({ description: 'the error code calls fail with' }),
  api: oneOf(EC2_ACTIONS).optional().meta({ description: 'only this API action (InsufficientInstanceCapacity: RunInstances and StartInstances)' }),
  type: text().optional().meta({ description: 'only this catalog type' }),
  zone: text().optional().meta({ description: 'only this zone' }),
});

const strings = list(text());

const cloudFields = mapping({
  provider: oneOf(['emulated', 'aws']).default('emulated').meta({ description: 'the emulated EC2, or real AWS (spillway run --cloud aws)' }),
  region: text({ pattern: /^[a-z]{2}(-[a-z]+)+-\d$/ }).default('us-east-1').meta({ description: 'the cloud region' }),
  zones: strings.optional().meta({ description: 'availability zones (default: <region>a, <region>b)' }),
  catalog: list(catalogEntry).optional().meta({ description: 'instance types and prices (default: m6i, c6i, r6i sizes at us-east-1 prices)' }),
  images: list(image).optional().meta({ description: 'AMIs (default: the staging image)' }),
  quotas: section({ vcpus: int({ min: 0 }).default(256).meta({ description: 'vCPU quota of the account' }) }),
  api: section({
    latency: section({ meanMs: num({ min: 0 }).default(120).meta({ description: 'API call latency, mean (ms)' }), sdMs: num({ min: 0 }).default(40).meta({ description: 'API call latency, sd (ms)' }) }),
    rateLimit: section({ perSecond: num({ min: 0.001 }).default(20).meta({ description: 'API calls refilled per second' }), burst: int({ min: 1 }).default(50).meta({ description: 'API call bucket size' }) }),
  }),
  boot: section({ meanS: num({ min: 0 }).default(45).meta({ description: 'instance boot time, mean (s)' }), sdS: num({ min: 0 }).default(10).meta({ description: 'instance boot time, sd (s)' }) }),
  consistencyWindowMs: num({ min: 0 }).default(1500).meta({ description: 'how long a change may stay invisible to Describe calls' }),
  unauthorized: strings.default([]).meta({ description: 'EC2 actions that answer UnauthorizedOperation' }),
  faults: list(fault).default([]).meta({ description: 'windows in which calls fail with an error code' }),
});

export const cloudSchema = cloudFields.prefault({} as never).transform((o, ctx): CloudConfig => {
  const zones = o.zones ?? [`${o.region}a`, `${o.region}b`];
  if (zones.length === 0) return refuseExpected(ctx, zones, 'at least one availability zone', ['zones']);
  const badZone = zones.findIndex((z) => !z.startsWith(o.region));
  if (badZone >= 0) return refuseExpected(ctx, zones[badZone], `a zone of region ${o.region} (e.g. ${o.region}a)`, ['zones', badZone]);
  const catalog = o.catalog ?? DEFAULT_CATALOG.map((c) => ({ ...c }));
  const images = o.images ?? DEFAULT_IMAGES.map((im) => ({ ...im, tags: { ...im.tags } }));
  for (const [field, key, values] of [['catalog', 'type', catalog.map((c) => c.type)], ['images', 'id', images.map((im) => im.id)]] as const) {
    const twice = values.findIndex((v, i) => values.indexOf(v) !== i);
    if (twice >= 0) return refuse(ctx, values[twice], `"${values[twice]}" is listed twice; each ${key} must be unique`, [field, twice, key]);
  }
  const badAction = o.unauthorized.findIndex((a) => !(EC2_ACTIONS as readonly string[]).includes(a));
  if (badAction >= 0) return refuseExpected(ctx, o.unauthorized[badAction], `an EC2 action: ${EC2_ACTIONS.join(', ')}`, ['unauthorized', badAction]);
  const faults: CloudFault[] = [];
  for (const [i, f] of o.faults.entries()) {
    const at = ['faults', i];
    if (f.until <= f.at) return refuse(ctx, f.until, `expected a time after at (${formatDurationUs(f.at)}), got ${formatDurationUs(f.until)}`, [...at, 'until']);
    const types = catalog.map((c) => c.type);
    if (f.type !== undefined && !types.includes(f.type)) return refuseExpected(ctx, f.type, `one of ${types.join(', ')}`, [...at, 'type']);
    if (f.zone !== undefined && !zones.includes(f.zone)) return refuseExpected(ctx, f.zone, `one of ${zones.join(', ')}`, [...at, 'zone']);
    faults.push({ atUs: f.at, untilUs: f.until, error: f.error, ...(f.api ? { api: f.api } : {}), ...(f.type ? { type: f.type } : {}), ...(f.zone ? { zone: f.zone } : {}) });
  }
  return {
    provider: o.provider, region: o.region, zones, catalog, images, quotas: { vcpus: o.quotas.vcpus },
    api: {
      latency: { meanUs: Math.round(o.api.latency.meanMs * US_PER_MS), sdUs: Math.round(o.api.latency.sdMs * US_PER_MS) },
      rateLimit: { perSecond: o.api.rateLimit.perSecond, burst: o.api.rateLimit.burst },
    },
    boot: { meanUs: Math.round(o.boot.meanS * 1_000_000), sdUs: Math.round(o.boot.sdS * 1_000_000) },
    consistencyWindowUs: Math.round(o.consistencyWindowMs * US_PER_MS),
    unauthorized: o.unauthorized, faults,
  };
}).meta({ description: 'the cloud: the emulated EC2 (or aws) with its catalog, quotas, API behaviour and faults' });

/** The `cloud:` section as the emulated EC2 takes it (tests and tools build clouds from text). */
export function parseCloudConfig(raw: unknown, path = 'cloud'): CloudConfig {
  return parseSection(cloudSchema, raw, path);
}
