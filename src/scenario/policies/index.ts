import { z } from 'zod';
import { bool, duration, int, list, mapping, num, oneOf, refuseExpected, section, shown, size, text } from '../fields.js';
import { fail, join } from '../../util/check.js';
import { burstExtras, burstExtrasShape, slaSchema } from './burst-extras.js';
import type { PolicyContext } from './context.js';
import { checkMigrationWave, migrationWaveSchema } from './migration-wave.js';
import { checkScaleOut, scaleOutSchema } from './scale-out.js';

export type { PolicyContext } from './context.js';

const ORDERS = ['batch-first', 'largest-first', 'least-io-first'] as const;
const PERSISTENCE = ['on-prem', 'cloud-only'] as const;

/**
 * `policies.burst`: when to send VMs to the cloud, which ones, onto what, and the proxy
 * settings they run with; src/controller/burst/controller.ts enforces it.
 */
export const burstSchema = mapping({
  enabled: bool().default(false).meta({ description: 'burst at all (needs wan:)' }),
  trigger: section({
    hostUtilizationAbove: num({ min: 0.1, max: 2 }).default(0.95).meta({ description: 'host demand/capacity that starts a burst…' }),
    for: duration().prefault('10m').meta({ description: '…sustained this long' }),
  }),
  release: section({
    hostUtilizationBelow: num({ min: 0, max: 2 }).default(0.75).meta({ description: 'bring VMs back when demand falls below this (below the trigger)…' }),
    for: duration().prefault('30m').meta({ description: '…for this long' }),
  }),
  workloads: list(text()).default([]).meta({ description: 'workloads that may burst (default: all)' }),
  order: oneOf(ORDERS).default('batch-first').meta({ description: 'which VMs go first' }),
  maxVms: int({ min: 0 }).default(16).meta({ description: 'VMs in the cloud at once' }),
  maxConcurrentTransfers: int({ min: 1 }).default(4).meta({ description: 'transfers in flight at once' }),
  instanceType: text().default('auto').meta({ description: '"auto" or a type of cloud.catalog' }),
  defaultPersistence: oneOf(PERSISTENCE).default('on-prem').meta({ description: 'for disks that do not say' }),
  cache: section({ size: size().prefault('8GiB').meta({ description: 'cloud proxy cache per VM' }) }),
  prefetch: z.union([bool(), z.literal('recorded')], { error: (iss) => `expected true, false or "recorded", got ${shown(iss.input)}` }).default(true)
    .meta({ description: 'stream prioritized blocks in the background; "recorded": only the boot read order earlier VMs of the image recorded' }),
  writeBack: section({
    rpo: duration().prefault('30s').meta({ description: 'write-behind shipping interval' }),
    maxBacklog: size().prefault('1GiB').meta({ description: 'write-behind size threshold' }),
  }),
  budgetUsdPerHour: num({ min: 0 }).optional().meta({ description: 'cloud spend cap' }),
  ...burstExtrasShape,
}).prefault({} as never).transform((o, ctx) => {
  if (o.release.hostUtilizationBelow >= o.trigger.hostUtilizationAbove) {
    return refuseExpected(ctx, o.release.hostUtilizationBelow, `a value below trigger.hostUtilizationAbove (${o.trigger.hostUtilizationAbove})`, ['release', 'hostUtilizationBelow']);
  }
  return {
    enabled: o.enabled,
    trigger: { hostUtilizationAbove: o.trigger.hostUtilizationAbove, sustainedUs: o.trigger.for },
    release: { hostUtilizationBelow: o.release.hostUtilizationBelow, sustainedUs: o.release.for },
    workloads: o.workloads, order: o.order, maxVms: o.maxVms, maxConcurrentTransfers: o.maxConcurrentTransfers,
    instanceType: o.instanceType, defaultPersistence: o.defaultPersistence,
    cache: { sizeBytes: o.cache.size },
    prefetch: o.prefetch,
    writeBack: { rpoUs: o.writeBack.rpo, maxBacklogBytes: o.writeBack.maxBacklog },
    budgetUsdPerHour: o.budgetUsdPerHour ?? null,
    ...burstExtras(o),
  };
});

export type BurstPolicy = z.output<typeof burstSchema>;

/**
 * Every block of `policies:`, in the order they are parsed and listed (burst, sla, scaleOut,
 * migrate). A new policy adds a line here and, for references to the rest of the scenario, a
 * check in checkPolicies.
 */
export const policiesSchema = mapping({
  burst: burstSchema,
  sla: slaSchema,
  scaleOut: scaleOutSchema,
  migrate: migrationWaveSchema,
}).prefault({} as never).meta({ description: 'policy blocks: burst, sla, scaleOut, migrate' });

export type Policies = z.output<typeof policiesSchema>;

export function policyNames(): string[] {
  return Object.keys(policiesSchema.unwrap().shape);
}

/** References from the policies to the rest of the scenario: workloads, VMs, catalog types. */
export function checkPolicies(p: Policies, path: string, ctx: PolicyContext): void {
  const burst = join(path, 'burst');
  p.burst.workloads.forEach((w, i) => {
    if (!ctx.workloads.includes(w)) fail(join(join(burst, 'workloads'), i), `a workload name: ${ctx.workloads.join(', ')}`, w);
  });
  checkInstanceType(p.burst.instanceType, join(burst, 'instanceType'), ctx);
  checkScaleOut(p.scaleOut, join(path, 'scaleOut'), ctx);
  checkMigrationWave(p.migrate, join(path, 'migrate'), ctx);
}

export function checkInstanceType(type: string, path: string, ctx: PolicyContext): void {
  const types = ['auto', ...ctx.cloud.catalog.map((c) => c.type)];
  if (!types.includes(type)) fail(path, `one of ${types.join(', ')}`, type);
}
