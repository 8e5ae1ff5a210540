import { z } from 'zod';
import { fail, join } from '../../util/check.js';
import { bool, duration, int, mapping, num, oneOf, refuseExpected, section, text } from '../fields.js';
import type { PolicyContext } from './context.js';

/**
 * `policies.scaleOut`: a web tier that grows by cloning one of its members into the cloud
 * when its demand per member stays high, and shrinks again when it stays low
 * (src/controller/scale-out/scale-out.ts enforces it).
 */

export const scaleOutSchema = mapping({
  enabled: bool().default(false).meta({ description: 'run the scale-out controller (needs wan:)' }),
  tier: text().optional().meta({ description: 'the web workload whose VMs form the tier (required when enabled)' }),
  template: text().optional().meta({ description: "the member snapshotted once and cloned (default: the tier's first VM)" }),
  trigger: section({
    demandPerMemberAbove: num({ min: 0.05, max: 1 }).default(0.75).meta({ description: "tier CPU demand per member (fraction of its vCPUs) that starts a step…" }),
    for: duration().prefault('10m').meta({ description: '…sustained this long' }),
  }),
  release: section({
    demandPerMemberBelow: num({ min: 0, max: 1 }).default(0.5).meta({ description: 'drop the newest step when the demand per member without it would be below this…' }),
    for: duration().prefault('30m').meta({ description: '…for this long' }),
  }),
  maxClones: int({ min: 1, max: 64 }).default(4).meta({ description: 'clones starting or serving at once' }),
  clonesPerStep: int({ min: 1, max: 64 }).default(2).meta({ description: 'clones added (or dropped) per step, at most maxClones' }),
  cooldown: duration().prefault('15m').meta({ description: 'no step within this long of the last one' }),
  persistence: oneOf(['cloud-only', 'on-prem']).default('cloud-only').meta({ description: 'where clone writes persist' }),
  siblingReads: bool().default(true).meta({ description: "a clone's proxy reads its siblings' caches before the WAN (FIG 14)" }),
  instanceType: text().default('auto').meta({ description: '"auto" or a type of cloud.catalog' }),
}).prefault({} as never).transform((o, ctx) => {
  if (o.release.demandPerMemberBelow >= o.trigger.demandPerMemberAbove) {
    return refuseExpected(ctx, o.release.demandPerMemberBelow, `a value below trigger.demandPerMemberAbove (${o.trigger.demandPerMemberAbove})`, ['release', 'demandPerMemberBelow']);
  }
  if (o.clonesPerStep > o.maxClones) return refuseExpected(ctx, o.clonesPerStep, `at most maxClones (${o.maxClones})`, ['clonesPerStep']);
  return {
    enabled: o.enabled,
    /** '' when the block names no tier (only allowed while disabled). */
    tier: o.tier ?? '',
    template: o.template ?? null,
    trigger: { demandPerMemberAbove: o.trigger.demandPerMemberAbove, sustainedUs: o.trigger.for },
    release: { demandPerMemberBelow: o.release.demandPerMemberBelow, sustainedUs: o.release.for },
    maxClones: o.maxClones, clonesPerStep: o.clonesPerStep, cooldownUs: o.cooldown, persistence: o.persistence,
    siblingReads: o.siblingReads, instanceType: o.instanceType,
  };
});

export type ScaleOutPolicy = z.output<typeof scaleOutSchema>;

/** The policy a scenario without a `scaleOut:` block has: every default, disabled. */
export const DISABLED_SCALE_OUT: ScaleOutPolicy = scaleOutSchema.parse(undefined);

/** The tier, its template and the instance type name things the rest of the scenario has. */
export function checkScaleOut(p: ScaleOutPolicy, path: string, ctx: PolicyContext): void {
  // A tier is needed only when the policy is on; a disabled block may still name one.
  if (p.tier !== '' || p.enabled) {
    const web = ctx.kinds ? ctx.workloads.filter((w) => ctx.kinds![w] === 'web') : ctx.workloads;
    const tier = p.tier === '' ? undefined : p.tier;
    if (tier === undefined || !ctx.workloads.includes(tier)) fail(join(path, 'tier'), `a web workload name: ${web.join(', ') || '(the scenario has none)'}`, tier);
    if (ctx.kinds && ctx.kinds[tier] !== 'web') fail(join(path, 'tier'), `a workload of kind web (${tier} is ${ctx.kinds[tier]}): ${web.join(', ') || '(the scenario has none)'}`, tier);
  }
  const members = (ctx.vms ?? []).filter((v) => v.workload === p.tier).map((v) => v.name);
  if (p.template !== null && ctx.vms && !members.includes(p.template)) {
    fail(join(path, 'template'), `a VM of the ${p.tier || 'tier'} workload: ${members.join(', ') || '(none)'}`, p.template);
  }
  if (p.enabled && ctx.vms && members.length === 0) fail(join(path, 'tier'), 'a web workload that some VM in datacenter.vms runs', p.tier);
  const types = ['auto', ...ctx.cloud.catalog.map((c) => c.type)];
  if (!types.includes(p.instanceType)) fail(join(path, 'instanceType'), `one of ${types.join(', ')}`, p.instanceType);
}

/** The scenario's scale-out policy (the disabled default when the block is absent). */
export function scaleOutPolicyOf(policies: { scaleOut?: ScaleOutPolicy }): ScaleOutPolicy {
  return policies.scaleOut ?? DISABLED_SCALE_OUT;
}
