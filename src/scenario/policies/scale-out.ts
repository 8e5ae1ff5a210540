import type { PolicyContext } from './context.js';
import { bool, duration, fail, join, known, num, obj, type Raw, section, str } from '../../util/check.js';

/**
 * `policies.scaleOut`: a web tier that grows by cloning one of its members
 * into the cloud when its demand per member stays high, and shrinks again
 * when it stays low (src/controller/scale-out/scale-out.ts enforces it).
 */
export interface ScaleOutPolicy {
  enabled: boolean;
  /** The web workload whose VMs form the tier. */
  tier: string;
  /** The tier member snapshotted and cloned; null: the tier's first VM. */
  template: string | null;
  /** Grow when the tier's CPU demand per member (fraction of a member's vCPUs) stays above this. */
  trigger: { demandPerMemberAbove: number; sustainedUs: number };
  /** Shrink when the demand per member, were one step of clones gone, would stay below this. */
  release: { demandPerMemberBelow: number; sustainedUs: number };
  maxClones: number;
  clonesPerStep: number;
  /** No step (grow or shrink) within this long of the last one. */
  cooldownUs: number;
  /** Where clone writes persist: web clones are disposable, so cloud-only by default. */
  persistence: 'cloud-only' | 'on-prem';
  /** FIG 14: a clone's proxy reads blocks from its siblings' caches before going over the WAN. */
  siblingReads: boolean;
  instanceType: string;
}

export const DISABLED_SCALE_OUT: ScaleOutPolicy = {
  enabled: false, tier: '', template: null,
  trigger: { demandPerMemberAbove: 0.75, sustainedUs: 10 * 60e6 },
  release: { demandPerMemberBelow: 0.5, sustainedUs: 30 * 60e6 },
  maxClones: 4, clonesPerStep: 2, cooldownUs: 15 * 60e6, persistence: 'cloud-only', siblingReads: true, instanceType: 'auto',
};


export function parseScaleOutPolicy(raw: unknown, path: string, ctx: PolicyContext): ScaleOutPolicy {
  const o: Raw = raw === undefined || raw === null ? {} : obj(raw, path);
  known(o, path, ['enabled', 'tier', 'template', 'trigger', 'release', 'maxClones', 'clonesPerStep', 'cooldown', 'persistence', 'siblingReads', 'instanceType']);
  const enabled = bool(o, 'enabled', path, false);
  const trigPath = join(path, 'trigger');
  const trig = section(o, 'trigger', path);
  known(trig, trigPath, ['demandPerMemberAbove', 'for']);
  const relPath = join(path, 'release');
  const rel = section(o, 'release', path);
  known(rel, relPath, ['demandPerMemberBelow', 'for']);
  const d = DISABLED_SCALE_OUT;
  const trigger = {
    demandPerMemberAbove: num(trig, 'demandPerMemberAbove', trigPath, { default: d.trigger.demandPerMemberAbove, min: 0.05, max: 1 }),
    sustainedUs: duration(trig, 'for', trigPath, d.trigger.sustainedUs),
  };
  const release = {
    demandPerMemberBelow: num(rel, 'demandPerMemberBelow', relPath, { default: d.release.demandPerMemberBelow, min: 0, max: 1 }),
    sustainedUs: duration(rel, 'for', relPath, d.release.sustainedUs),
  };
  if (release.demandPerMemberBelow >= trigger.demandPerMemberAbove) {
    fail(join(relPath, 'demandPerMemberBelow'), `a value below trigger.demandPerMemberAbove (${trigger.demandPerMemberAbove})`, release.demandPerMemberBelow);
  }
  // A tier is needed only when the policy is on; a disabled block may still name one.
  let tier = '';
  if (o.tier !== undefined || enabled) {
    const web = ctx.kinds ? ctx.workloads.filter((w) => ctx.kinds![w] === 'web') : ctx.workloads;
    if (typeof o.tier !== 'string' || !ctx.workloads.includes(o.tier)) fail(join(path, 'tier'), `a web workload name: ${web.join(', ') || '(the scenario has none)'}`, o.tier);
    if (ctx.kinds && ctx.kinds[o.tier] !== 'web') fail(join(path, 'tier'), `a workload of kind web (${o.tier} is ${ctx.kinds[o.tier]}): ${web.join(', ') || '(the scenario has none)'}`, o.tier);
    tier = o.tier;
  }
  const members = (ctx.vms ?? []).filter((v) => v.workload === tier).map((v) => v.name);
  let template: string | null = null;
  if (o.template !== undefined) {
    if (typeof o.template !== 'string' || (ctx.vms && !members.includes(o.template))) {
      fail(join(path, 'template'), `a VM of the ${tier || 'tier'} workload: ${members.join(', ') || '(none)'}`, o.template);
    }
    template = o.template;
  }
  if (enabled && ctx.vms && members.length === 0) fail(join(path, 'tier'), `a web workload that some VM in datacenter.vms runs`, tier);
  const maxClones = num(o, 'maxClones', path, { default: d.maxClones, min: 1, max: 64, integer: true });
  const clonesPerStep = num(o, 'clonesPerStep', path, { default: d.clonesPerStep, min: 1, max: 64, integer: true });
  if (clonesPerStep > maxClones) fail(join(path, 'clonesPerStep'), `at most maxClones (${maxClones})`, clonesPerStep);
  return {
    enabled, tier, template, trigger, release, maxClones, clonesPerStep,
    cooldownUs: duration(o, 'cooldown', path, d.cooldownUs),
    persistence: str(o, 'persistence', path, { default: d.persistence, allowed: ['cloud-only', 'on-prem'] }) as ScaleOutPolicy['persistence'],
    siblingReads: bool(o, 'siblingReads', path, d.siblingReads),
    instanceType: str(o, 'instanceType', path, { default: 'auto', allowed: ['auto', ...ctx.cloud.catalog.map((c) => c.type)] }),
  };
}

/** The scenario's scale-out policy (the disabled default when the block is absent). */
export function scaleOutPolicyOf(policies: Record<string, unknown>): ScaleOutPolicy {
  return (policies.scaleOut as ScaleOutPolicy | undefined) ?? DISABLED_SCALE_OUT;
}
