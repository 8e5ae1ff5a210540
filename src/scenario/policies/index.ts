import { bool, duration, fail, join, known, list, num, obj, size, str, type Raw } from '../../util/check.js';
import type { BurstPolicy, Policies } from '../schema.js';
import { parseBurstExtras, parseSlaPolicy } from './burst-extras.js';
import type { PolicyContext } from './context.js';
import { parseMigrationWavePolicy } from './migration-wave.js';
import { parseScaleOutPolicy } from './scale-out.js';

export type { PolicyContext } from './context.js';

/** The scenario's `policies:` section: one parser per block, listed below. */

export type PolicyParser = (raw: unknown, path: string, ctx: PolicyContext) => unknown;

/**
 * Every block of `policies:`, in the order they are parsed and listed (this order was the
 * import-time registration order: burst, sla, scaleOut, migrate). A new policy adds a line here.
 */
const POLICY_PARSERS: ReadonlyArray<readonly [string, PolicyParser]> = [
  ['burst', (raw, path, ctx) => parseBurstPolicy(raw, path, ctx)],
  ['sla', (raw, path) => parseSlaPolicy(raw, path)],
  ['scaleOut', (raw, path, ctx) => parseScaleOutPolicy(raw, path, ctx)],
  ['migrate', (raw, path, ctx) => parseMigrationWavePolicy(raw, path, ctx)],
];

export function policyNames(): string[] {
  return POLICY_PARSERS.map(([name]) => name);
}

export function parsePolicies(raw: unknown, path: string, ctx: PolicyContext): Policies {
  const o = raw === undefined || raw === null ? {} : obj(raw, path);
  known(o, path, policyNames());
  const out: Record<string, unknown> = {};
  for (const [name, parser] of POLICY_PARSERS) out[name] = parser(o[name], join(path, name), ctx);
  return out as Policies;
}

const ORDERS = ['batch-first', 'largest-first', 'least-io-first'] as const;

/**
 * `policies.burst`: when to send VMs to the cloud, which ones, onto what, and
 * the proxy settings they run with; src/controller/burst/controller.ts enforces it.
 */
export function parseBurstPolicy(raw: unknown, path: string, ctx: PolicyContext): BurstPolicy {
  const o: Raw = raw === undefined || raw === null ? {} : obj(raw, path);
  known(o, path, ['enabled', 'trigger', 'release', 'workloads', 'order', 'maxVms', 'maxConcurrentTransfers', 'instanceType', 'defaultPersistence', 'cache', 'prefetch', 'writeBack', 'budgetUsdPerHour',
    'selection', 'bringBack', 'targets', 'rates', 'boot', 'io', 'standby']);
  const enabled = bool(o, 'enabled', path, false);
  const trigPath = join(path, 'trigger');
  const trig = o.trigger === undefined ? {} : obj(o.trigger, trigPath);
  known(trig, trigPath, ['hostUtilizationAbove', 'for']);
  const relPath = join(path, 'release');
  const rel = o.release === undefined ? {} : obj(o.release, relPath);
  known(rel, relPath, ['hostUtilizationBelow', 'for']);
  const trigger = { hostUtilizationAbove: num(trig, 'hostUtilizationAbove', trigPath, { default: 0.95, min: 0.1, max: 2 }), sustainedUs: duration(trig, 'for', trigPath, '10m') };
  const release = { hostUtilizationBelow: num(rel, 'hostUtilizationBelow', relPath, { default: 0.75, min: 0, max: 2 }), sustainedUs: duration(rel, 'for', relPath, '30m') };
  if (release.hostUtilizationBelow >= trigger.hostUtilizationAbove) {
    fail(join(relPath, 'hostUtilizationBelow'), `a value below trigger.hostUtilizationAbove (${trigger.hostUtilizationAbove})`, release.hostUtilizationBelow);
  }
  const wlPath = join(path, 'workloads');
  const workloads = o.workloads === undefined ? [] : list(o.workloads, wlPath).map((w, i) => {
    if (typeof w !== 'string' || !ctx.workloads.includes(w)) fail(join(wlPath, i), `a workload name: ${ctx.workloads.join(', ')}`, w);
    return w;
  });
  const types = ['auto', ...ctx.cloud.catalog.map((c) => c.type)];
  const cachePath = join(path, 'cache');
  const cache = o.cache === undefined ? {} : obj(o.cache, cachePath);
  known(cache, cachePath, ['size']);
  const wbPath = join(path, 'writeBack');
  const wb = o.writeBack === undefined ? {} : obj(o.writeBack, wbPath);
  known(wb, wbPath, ['rpo', 'maxBacklog']);
  return {
    enabled,
    trigger,
    release,
    workloads,
    order: str(o, 'order', path, { default: 'batch-first', allowed: ORDERS }) as BurstPolicy['order'],
    maxVms: num(o, 'maxVms', path, { default: 16, min: 0, integer: true }),
    maxConcurrentTransfers: num(o, 'maxConcurrentTransfers', path, { default: 4, min: 1, integer: true }),
    instanceType: str(o, 'instanceType', path, { default: 'auto', allowed: types }),
    defaultPersistence: str(o, 'defaultPersistence', path, { default: 'on-prem', allowed: ['on-prem', 'cloud-only'] }) as BurstPolicy['defaultPersistence'],
    cache: { sizeBytes: size(cache, 'size', cachePath, '8GiB') },
    prefetch: o.prefetch === 'recorded' ? 'recorded' : typeof (o.prefetch ?? true) === 'boolean' ? bool(o, 'prefetch', path, true) : fail(join(path, 'prefetch'), 'true, false or "recorded"', o.prefetch),
    writeBack: { rpoUs: duration(wb, 'rpo', wbPath, '30s'), maxBacklogBytes: size(wb, 'maxBacklog', wbPath, '1GiB') },
    budgetUsdPerHour: o.budgetUsdPerHour === undefined ? null : num(o, 'budgetUsdPerHour', path, { min: 0 }),
    ...parseBurstExtras(o, path),
  };
}

