import { z } from 'zod';
import { fail, join } from '../../util/check.js';
import { formatDurationUs } from '../../util/units.js';
import { bool, duration, int, list, mapping, num, oneOf, refuseExpected, section, shown, size, text } from '../fields.js';
import { globToRegExp } from '../names.js';
import type { PolicyContext } from './context.js';

/**
 * `policies.migrate`: a permanent migration wave (FIG 17/18). The selected VMs move to the
 * cloud for good, `waveSize` at a time: each is transferred (it runs in the cloud through the
 * proxies), its disks are copied into cloud volumes by copy-on-read plus a resumable
 * background sync, and it is cut over when the cut-over rule allows
 * (src/controller/migration-wave/migration-wave.ts).
 */

/** EBS volume types a migrated disk may land on. */
export const VOLUME_TYPES = ['gp3', 'gp2', 'io1', 'io2', 'standard'] as const;
const DAY_US = 24 * 3_600_000_000;

const glob = text().meta({ description: 'a VM name or glob (e.g. "app-*")' });

export const migrationWaveSchema = mapping({
  enabled: bool().default(false).meta({ description: 'run the migration wave (needs wan:)' }),
  vms: z.union([glob, list(glob)], { error: (iss) => `expected a VM name or glob (e.g. "app-*") or a list of them, got ${shown(iss.input)}` })
    .default(['*']).meta({ description: 'VM names or globs to migrate; each must match some VM' }),
  workloads: list(text()).default([]).meta({ description: 'only VMs of these workloads (default: any)' }),
  start: duration().prefault('0s').meta({ description: 'when the wave begins' }),
  waveSize: int({ min: 1, max: 64 }).default(8).meta({ description: 'migrations in flight at once' }),
  syncChunk: size({ check: (v) => (v < 1024 * 1024 ? 'a size of at least 1MiB' : null) }).prefault(64 * 1024 ** 2)
    .meta({ description: "bytes one VM's background sync moves per round (its share of the WAN)" }),
  syncInterval: section({
    initial: duration({ check: (us) => (us <= 0 ? 'a positive duration' : null) }).prefault('10s').meta({ description: 'pause before the first round…' }),
    min: duration().prefault('1s').meta({ description: '…down to this (no longer than initial)' }),
    factor: num({ min: 0.01, max: 1 }).default(0.5).meta({ description: '…times this each round' }),
  }),
  volumeType: oneOf(VOLUME_TYPES).default('gp3').meta({ description: 'EBS type of the volumes' }),
  instanceType: text().default('auto').meta({ description: '"auto" or a type of cloud.catalog' }),
  cutover: section({
    when: oneOf(['synced', 'window']).default('synced').meta({ description: 'cut over as soon as synced, or only in the maintenance window' }),
    window: mapping({
      start: duration({ check: (us) => (us >= DAY_US ? 'a time after midnight below 24h' : null) }).meta({ description: 'the daily window opens this long after midnight…' }),
      length: duration({ check: (us) => (us <= 0 || us > DAY_US ? 'a positive duration of at most 24h' : null) }).meta({ description: '…and stays open this long' }),
    }).optional(),
  }),
  retry: section({
    attempts: int({ min: 1, max: 100 }).default(8).meta({ description: 'tries per machine step' }),
    backoff: duration().prefault('5s').meta({ description: 'first wait before a retry, doubled each time…' }),
    backoffMax: duration().prefault('1m').meta({ description: '…up to this' }),
  }),
  stepTimeout: duration({ check: (us) => (us < 10_000_000 ? 'a duration of at least 10s' : null) }).prefault('15m')
    .meta({ description: 'a step waiting longer fails and is retried' }),
}).prefault({} as never).transform((o, ctx) => {
  const iv = o.syncInterval;
  if (iv.min <= 0 || iv.min > iv.initial) return refuseExpected(ctx, formatDurationUs(iv.min), `a positive duration no longer than initial (${formatDurationUs(iv.initial)})`, ['syncInterval', 'min']);
  if (o.cutover.when === 'window' && o.cutover.window === undefined) {
    return refuseExpected(ctx, undefined, 'a window { start, length } (time after midnight, length) when cutover.when is window', ['cutover', 'window']);
  }
  if (o.retry.backoffMax < o.retry.backoff) return refuseExpected(ctx, formatDurationUs(o.retry.backoffMax), `a duration no shorter than backoff (${formatDurationUs(o.retry.backoff)})`, ['retry', 'backoffMax']);
  const window = o.cutover.window ? { startUs: o.cutover.window.start, lengthUs: o.cutover.window.length } : null;
  return {
    enabled: o.enabled,
    /** VM name globs; a VM is selected when it matches one (and its workload is listed, when `workloads` is). */
    vms: typeof o.vms === 'string' ? [o.vms] : o.vms,
    /** Workload names; empty: any workload. */
    workloads: o.workloads,
    startUs: o.start,
    waveSize: o.waveSize,
    syncChunkBytes: o.syncChunk,
    /** Pause between sync rounds: `initialUs`, then × `factor` each round, down to `minUs` (FIG 17 step 1709). */
    syncInterval: { initialUs: iv.initial, minUs: iv.min, factor: iv.factor },
    volumeType: o.volumeType as string,
    instanceType: o.instanceType,
    cutover: { when: o.cutover.when, window },
    retry: { maxAttempts: o.retry.attempts, backoffUs: o.retry.backoff, backoffMaxUs: o.retry.backoffMax },
    stepTimeoutUs: o.stepTimeout,
  };
});

export type MigrationWavePolicy = z.output<typeof migrationWaveSchema>;

/** The policy a scenario without a `migrate:` block has: every default, disabled. */
export const DISABLED_MIGRATION_WAVE: MigrationWavePolicy = migrationWaveSchema.parse(undefined);

/** The globs, workloads and instance type name things the rest of the scenario has. */
export function checkMigrationWave(p: MigrationWavePolicy, path: string, ctx: PolicyContext): void {
  const vmsPath = join(path, 'vms');
  const wlPath = join(path, 'workloads');
  p.workloads.forEach((w, i) => {
    if (!ctx.workloads.includes(w)) fail(join(wlPath, i), `a workload name: ${ctx.workloads.join(', ') || '(the scenario has none)'}`, w);
  });
  if (ctx.vms) {
    const names = ctx.vms.map((v) => v.name);
    p.vms.forEach((g, i) => {
      const re = globToRegExp(g);
      if (!names.some((n) => re.test(n))) fail(join(vmsPath, i), `a glob matching some VM in datacenter.vms (${names.slice(0, 6).join(', ')}${names.length > 6 ? ', …' : ''})`, g);
    });
    if (p.enabled && selectVms(ctx.vms, p.vms, p.workloads).length === 0) {
      fail(p.workloads.length ? wlPath : vmsPath, 'a selection of at least one VM (no VM matches both vms and workloads)', p.workloads.length ? p.workloads : p.vms);
    }
  }
  const types = ['auto', ...ctx.cloud.catalog.map((c) => c.type)];
  if (!types.includes(p.instanceType)) fail(join(path, 'instanceType'), `one of ${types.join(', ')}`, p.instanceType);
}

/** The VMs a wave moves, in data center order. */
export function selectVms<T extends { name: string; workload: string }>(vms: readonly T[], globs: readonly string[], workloads: readonly string[]): T[] {
  const res = globs.map((g) => globToRegExp(g));
  return vms.filter((v) => res.some((re) => re.test(v.name)) && (workloads.length === 0 || workloads.includes(v.workload)));
}

/** The scenario's migration wave policy (the disabled default when the block is absent). */
export function migrationWavePolicyOf(policies: { migrate?: MigrationWavePolicy }): MigrationWavePolicy {
  return policies.migrate ?? DISABLED_MIGRATION_WAVE;
}
