import { InputError } from '../../../errors.js';
import { duration, fail, join, known, list, num, obj, optStr, str } from '../../../util/check.js';
import { US_PER_MS } from '../../../util/units.js';

/**
 * The scenario's `cloud:` section: which provider, the instance catalog and
 * prices, quotas, API latency and rate limits, boot times, the eventual
 * consistency window, unauthorized actions and scripted faults. Everything has
 * a default, so `cloud: {}` is a working cloud.
 */

export interface CatalogEntry {
  type: string;
  vcpus: number;
  memoryGiB: number;
  /** Baseline EBS IOPS the type sustains. */
  ebsIops: number;
  networkGbit: number;
  pricePerHour: number;
}

export interface ImageEntry {
  id: string;
  name: string;
  tags: Record<string, string>;
}

/** A window in which calls fail with a given error code. */
export interface CloudFault {
  atUs: number;
  untilUs: number;
  error: string;
  /** Restrict to one API action (RunInstances, …); InsufficientInstanceCapacity defaults to RunInstances and StartInstances. */
  api?: string;
  type?: string;
  zone?: string;
}

export interface CloudConfig {
  provider: 'emulated' | 'aws';
  region: string;
  zones: string[];
  catalog: CatalogEntry[];
  images: ImageEntry[];
  quotas: { vcpus: number };
  api: {
    latency: { meanUs: number; sdUs: number };
    rateLimit: { perSecond: number; burst: number };
  };
  boot: { meanUs: number; sdUs: number };
  consistencyWindowUs: number;
  unauthorized: string[];
  faults: CloudFault[];
}

/**
 * On-demand Linux prices in us-east-1 (USD per hour) for the types a burst
 * most often lands on. EBS IOPS are the types' baseline (not burst) figures.
 */
export const DEFAULT_CATALOG: readonly CatalogEntry[] = [
  { type: 'm6i.large', vcpus: 2, memoryGiB: 8, ebsIops: 3600, networkGbit: 12.5, pricePerHour: 0.096 },
  { type: 'm6i.xlarge', vcpus: 4, memoryGiB: 16, ebsIops: 6000, networkGbit: 12.5, pricePerHour: 0.192 },
  { type: 'm6i.2xlarge', vcpus: 8, memoryGiB: 32, ebsIops: 12000, networkGbit: 12.5, pricePerHour: 0.384 },
  { type: 'm6i.4xlarge', vcpus: 16, memoryGiB: 64, ebsIops: 20000, networkGbit: 12.5, pricePerHour: 0.768 },
  { type: 'm6i.8xlarge', vcpus: 32, memoryGiB: 128, ebsIops: 40000, networkGbit: 12.5, pricePerHour: 1.536 },
  { type: 'c6i.large', vcpus: 2, memoryGiB: 4, ebsIops: 3600, networkGbit: 12.5, pricePerHour: 0.085 },
  { type: 'c6i.xlarge', vcpus: 4, memoryGiB: 8, ebsIops: 6000, networkGbit: 12.5, pricePerHour: 0.17 },
  { type: 'c6i.2xlarge', vcpus: 8, memoryGiB: 16, ebsIops: 12000, networkGbit: 12.5, pricePerHour: 0.34 },
  { type: 'c6i.4xlarge', vcpus: 16, memoryGiB: 32, ebsIops: 20000, networkGbit: 12.5, pricePerHour: 0.68 },
  { type: 'r6i.large', vcpus: 2, memoryGiB: 16, ebsIops: 3600, networkGbit: 12.5, pricePerHour: 0.126 },
  { type: 'r6i.xlarge', vcpus: 4, memoryGiB: 32, ebsIops: 6000, networkGbit: 12.5, pricePerHour: 0.252 },
  { type: 'r6i.2xlarge', vcpus: 8, memoryGiB: 64, ebsIops: 12000, networkGbit: 12.5, pricePerHour: 0.504 },
];

/** The staging image a burst boots from (ARCHITECTURE.md §1). */
export const DEFAULT_IMAGES: readonly ImageEntry[] = [
  { id: 'ami-0a5ba6e0c57a9e001', name: 'spillway-staging-2026.11', tags: { 'spillway:role': 'staging' } },
];

/** Every EC2 action the emulator serves; `unauthorized` and `faults[].api` must name one of these. */
export const EC2_ACTIONS = [
  'DescribeInstanceTypes', 'DescribeImages', 'RunInstances', 'DescribeInstances', 'StartInstances',
  'StopInstances', 'TerminateInstances', 'ModifyInstanceAttribute', 'CreateVolume', 'AttachVolume',
  'DetachVolume', 'DeleteVolume', 'DescribeVolumes', 'CreateSnapshot', 'DescribeSnapshots', 'DeleteSnapshot',
  'CreateTags',
] as const;

/** Error codes a fault may inject. */
export const FAULT_ERRORS = [
  'InsufficientInstanceCapacity', 'RequestLimitExceeded', 'InternalError', 'Unavailable', 'ServiceUnavailable',
] as const;

const TYPE_PATTERN = /^[a-z][a-z0-9-]*\.[a-z0-9]+$/;

export function defaultCloudConfig(): CloudConfig {
  return parseCloudConfig({});
}

export function parseCloudConfig(raw: unknown, path = 'cloud'): CloudConfig {
  const o = raw === undefined || raw === null ? {} : obj(raw, path);
  known(o, path, ['provider', 'region', 'zones', 'catalog', 'images', 'quotas', 'api', 'boot', 'consistencyWindowMs', 'unauthorized', 'faults']);
  const provider = str(o, 'provider', path, { default: 'emulated', allowed: ['emulated', 'aws'] }) as CloudConfig['provider'];
  const region = str(o, 'region', path, { default: 'us-east-1', pattern: /^[a-z]{2}(-[a-z]+)+-\d$/ });

  const zones = o.zones === undefined ? [`${region}a`, `${region}b`] : strings(o.zones, join(path, 'zones'));
  if (zones.length === 0) fail(join(path, 'zones'), 'at least one availability zone', o.zones);
  zones.forEach((z, i) => {
    if (!z.startsWith(region)) fail(join(join(path, 'zones'), i), `a zone of region ${region} (e.g. ${region}a)`, z);
  });

  const catalog = o.catalog === undefined ? DEFAULT_CATALOG.map((c) => ({ ...c })) : list(o.catalog, join(path, 'catalog')).map((entry, i) => parseCatalogEntry(entry, join(join(path, 'catalog'), i)));
  unique(catalog.map((c) => c.type), join(path, 'catalog'), 'type');

  const images = o.images === undefined ? DEFAULT_IMAGES.map((im) => ({ ...im, tags: { ...im.tags } })) : list(o.images, join(path, 'images')).map((entry, i) => parseImage(entry, join(join(path, 'images'), i)));
  unique(images.map((im) => im.id), join(path, 'images'), 'id');

  const quotasRaw = o.quotas === undefined ? {} : obj(o.quotas, join(path, 'quotas'));
  known(quotasRaw, join(path, 'quotas'), ['vcpus']);
  const quotas = { vcpus: num(quotasRaw, 'vcpus', join(path, 'quotas'), { default: 256, min: 0, integer: true }) };

  const apiPath = join(path, 'api');
  const apiRaw = o.api === undefined ? {} : obj(o.api, apiPath);
  known(apiRaw, apiPath, ['latency', 'rateLimit']);
  const latPath = join(apiPath, 'latency');
  const latRaw = apiRaw.latency === undefined ? {} : obj(apiRaw.latency, latPath);
  known(latRaw, latPath, ['meanMs', 'sdMs']);
  const rlPath = join(apiPath, 'rateLimit');
  const rlRaw = apiRaw.rateLimit === undefined ? {} : obj(apiRaw.rateLimit, rlPath);
  known(rlRaw, rlPath, ['perSecond', 'burst']);
  const api = {
    latency: {
      meanUs: Math.round(num(latRaw, 'meanMs', latPath, { default: 120, min: 0 }) * US_PER_MS),
      sdUs: Math.round(num(latRaw, 'sdMs', latPath, { default: 40, min: 0 }) * US_PER_MS),
    },
    rateLimit: {
      perSecond: num(rlRaw, 'perSecond', rlPath, { default: 20, min: 0.001 }),
      burst: num(rlRaw, 'burst', rlPath, { default: 50, min: 1, integer: true }),
    },
  };

  const bootPath = join(path, 'boot');
  const bootRaw = o.boot === undefined ? {} : obj(o.boot, bootPath);
  known(bootRaw, bootPath, ['meanS', 'sdS']);
  const boot = {
    meanUs: Math.round(num(bootRaw, 'meanS', bootPath, { default: 45, min: 0 }) * 1_000_000),
    sdUs: Math.round(num(bootRaw, 'sdS', bootPath, { default: 10, min: 0 }) * 1_000_000),
  };

  const consistencyWindowUs = Math.round(num(o, 'consistencyWindowMs', path, { default: 1500, min: 0 }) * US_PER_MS);

  const unauthorized = o.unauthorized === undefined ? [] : strings(o.unauthorized, join(path, 'unauthorized'));
  unauthorized.forEach((a, i) => {
    if (!(EC2_ACTIONS as readonly string[]).includes(a)) fail(join(join(path, 'unauthorized'), i), `an EC2 action: ${EC2_ACTIONS.join(', ')}`, a);
  });

  const faults = o.faults === undefined ? [] : list(o.faults, join(path, 'faults')).map((f, i) => parseFault(f, join(join(path, 'faults'), i), catalog, zones));

  return { provider, region, zones, catalog, images, quotas, api, boot, consistencyWindowUs, unauthorized, faults };
}

function parseCatalogEntry(raw: unknown, path: string): CatalogEntry {
  const o = obj(raw, path);
  known(o, path, ['type', 'vcpus', 'memoryGiB', 'ebsIops', 'networkGbit', 'pricePerHour']);
  return {
    type: str(o, 'type', path, { pattern: TYPE_PATTERN }),
    vcpus: num(o, 'vcpus', path, { min: 1, integer: true }),
    memoryGiB: num(o, 'memoryGiB', path, { min: 0.5 }),
    ebsIops: num(o, 'ebsIops', path, { default: 3600, min: 1, integer: true }),
    networkGbit: num(o, 'networkGbit', path, { default: 12.5, min: 0.1 }),
    pricePerHour: num(o, 'pricePerHour', path, { min: 0 }),
  };
}

function parseImage(raw: unknown, path: string): ImageEntry {
  const o = obj(raw, path);
  known(o, path, ['id', 'name', 'tags']);
  const tagsPath = join(path, 'tags');
  const tagsRaw = o.tags === undefined ? {} : obj(o.tags, tagsPath);
  const tags: Record<string, string> = {};
  for (const key of Object.keys(tagsRaw)) tags[key] = str(tagsRaw, key, tagsPath);
  return { id: str(o, 'id', path, { pattern: /^ami-[0-9a-f]{8,17}$/ }), name: str(o, 'name', path), tags };
}

function parseFault(raw: unknown, path: string, catalog: CatalogEntry[], zones: string[]): CloudFault {
  const o = obj(raw, path);
  known(o, path, ['at', 'until', 'error', 'api', 'type', 'zone']);
  const atUs = duration(o, 'at', path);
  const untilUs = duration(o, 'until', path);
  if (untilUs <= atUs) fail(join(path, 'until'), `a time after at (${o.at})`, o.until);
  const error = str(o, 'error', path, { allowed: FAULT_ERRORS });
  const api = optStr(o, 'api', path, { allowed: EC2_ACTIONS });
  const type = optStr(o, 'type', path, { allowed: catalog.map((c) => c.type) });
  const zone = optStr(o, 'zone', path, { allowed: zones });
  return { atUs, untilUs, error, ...(api ? { api } : {}), ...(type ? { type } : {}), ...(zone ? { zone } : {}) };
}

function strings(value: unknown, path: string): string[] {
  return list(value, path).map((item, i) => {
    if (typeof item !== 'string' || item === '') fail(join(path, i), 'a non-empty string', item);
    return item;
  });
}

function unique(values: string[], path: string, field: string): void {
  const seen = new Set<string>();
  values.forEach((v, i) => {
    if (seen.has(v)) throw new InputError('E_BAD_FIELD', `${join(join(path, i), field)}: "${v}" is listed twice; each ${field} must be unique`, { details: { path: join(join(path, i), field) } });
    seen.add(v);
  });
}

