import { globToRegExp } from '../names.js';
import type { PolicyContext } from './context.js';
import { bool, duration, fail, join, known, list, num, obj, type Raw, section, size, str } from '../../util/check.js';

/**
 * `policies.migrate`: a permanent migration wave (FIG 17/18). The selected
 * VMs move to the cloud for good, `waveSize` at a time: each is transferred
 * (it runs in the cloud through the proxies), its disks are copied into
 * cloud volumes by copy-on-read plus a resumable background sync, and it is
 * cut over when the cut-over rule allows (src/controller/migration-wave/migration-wave.ts).
 */
export interface MigrationWavePolicy {
  enabled: boolean;
  /** VM name globs; a VM is selected when it matches one (and its workload is listed, when `workloads` is). */
  vms: string[];
  /** Workload names; empty: any workload. */
  workloads: string[];
  /** When the wave begins (from the start of the run). */
  startUs: number;
  /** Migrations in flight at once. */
  waveSize: number;
  /** Bytes one VM's background sync moves per round: its share of the WAN. */
  syncChunkBytes: number;
  /** Pause between sync rounds: `initialUs`, then × `factor` each round, down to `minUs` (FIG 17 step 1709). */
  syncInterval: { initialUs: number; minUs: number; factor: number };
  volumeType: string;
  instanceType: string;
  /**
   * `synced`: cut over as soon as a VM is synced. `window`: only inside a
   * daily maintenance window that opens `window.startUs` after midnight
   * (run time) and lasts `window.lengthUs`.
   */
  cutover: { when: 'synced' | 'window'; window: { startUs: number; lengthUs: number } | null };
  /** Machine steps that fail (a WAN flap, a cloud API error) are retried with exponential backoff. */
  retry: { maxAttempts: number; backoffUs: number; backoffMaxUs: number };
  /** A step that waits longer than this fails (and is retried). */
  stepTimeoutUs: number;
}

/** EBS volume types a migrated disk may land on. */
export const VOLUME_TYPES = ['gp3', 'gp2', 'io1', 'io2', 'standard'] as const;
const DAY_US = 24 * 3_600_000_000;

export const DISABLED_MIGRATION_WAVE: MigrationWavePolicy = {
  enabled: false, vms: ['*'], workloads: [], startUs: 0, waveSize: 8, syncChunkBytes: 64 * 1024 ** 2,
  syncInterval: { initialUs: 10_000_000, minUs: 1_000_000, factor: 0.5 },
  volumeType: 'gp3', instanceType: 'auto', cutover: { when: 'synced', window: null },
  retry: { maxAttempts: 8, backoffUs: 5_000_000, backoffMaxUs: 60_000_000 },
  stepTimeoutUs: 900_000_000,
};


export function parseMigrationWavePolicy(raw: unknown, path: string, ctx: PolicyContext): MigrationWavePolicy {
  const o: Raw = raw === undefined || raw === null ? {} : obj(raw, path);
  known(o, path, ['enabled', 'vms', 'workloads', 'start', 'waveSize', 'syncChunk', 'syncInterval', 'volumeType', 'instanceType', 'cutover', 'retry', 'stepTimeout']);
  const d = DISABLED_MIGRATION_WAVE;
  const enabled = bool(o, 'enabled', path, false);

  const vmsPath = join(path, 'vms');
  const globs = o.vms === undefined ? d.vms : (typeof o.vms === 'string' ? [o.vms] : list(o.vms, vmsPath)).map((g, i) => {
    const at = typeof o.vms === 'string' ? vmsPath : join(vmsPath, i);
    if (typeof g !== 'string' || g.length === 0) fail(at, 'a VM name or glob (e.g. "app-*")', g);
    return g;
  });
  const wlPath = join(path, 'workloads');
  const workloads = o.workloads === undefined ? [] : list(o.workloads, wlPath).map((w, i) => {
    if (typeof w !== 'string' || !ctx.workloads.includes(w)) fail(join(wlPath, i), `a workload name: ${ctx.workloads.join(', ') || '(the scenario has none)'}`, w);
    return w;
  });
  if (ctx.vms) {
    const names = ctx.vms.map((v) => v.name);
    globs.forEach((g, i) => {
      const re = globToRegExp(g);
      if (!names.some((n) => re.test(n))) fail(o.vms === undefined || typeof o.vms === 'string' ? vmsPath : join(vmsPath, i), `a glob matching some VM in datacenter.vms (${names.slice(0, 6).join(', ')}${names.length > 6 ? ', …' : ''})`, g);
    });
    if (enabled && selectVms(ctx.vms, globs, workloads).length === 0) {
      fail(workloads.length ? wlPath : vmsPath, 'a selection of at least one VM (no VM matches both vms and workloads)', workloads.length ? workloads : globs);
    }
  }

  const ivPath = join(path, 'syncInterval');
  const iv = section(o, 'syncInterval', path);
  known(iv, ivPath, ['initial', 'min', 'factor']);
  const syncInterval = {
    initialUs: duration(iv, 'initial', ivPath, d.syncInterval.initialUs),
    minUs: duration(iv, 'min', ivPath, d.syncInterval.minUs),
    factor: num(iv, 'factor', ivPath, { default: d.syncInterval.factor, min: 0.01, max: 1 }),
  };
  if (syncInterval.initialUs <= 0) fail(join(ivPath, 'initial'), 'a positive duration', iv.initial);
  if (syncInterval.minUs <= 0 || syncInterval.minUs > syncInterval.initialUs) fail(join(ivPath, 'min'), `a positive duration no longer than initial (${iv.initial ?? '10s'})`, iv.min);

  const coPath = join(path, 'cutover');
  const co = section(o, 'cutover', path);
  known(co, coPath, ['when', 'window']);
  const when = str(co, 'when', coPath, { default: 'synced', allowed: ['synced', 'window'] }) as 'synced' | 'window';
  let window: MigrationWavePolicy['cutover']['window'] = null;
  const winPath = join(coPath, 'window');
  if (co.window !== undefined || when === 'window') {
    if (co.window === undefined) fail(winPath, 'a window { start, length } (time after midnight, length) when cutover.when is window', undefined);
    const w = obj(co.window, winPath);
    known(w, winPath, ['start', 'length']);
    const startUs = duration(w, 'start', winPath);
    const lengthUs = duration(w, 'length', winPath);
    if (startUs >= DAY_US) fail(join(winPath, 'start'), 'a time after midnight below 24h', w.start);
    if (lengthUs <= 0 || lengthUs > DAY_US) fail(join(winPath, 'length'), 'a positive duration of at most 24h', w.length);
    window = { startUs, lengthUs };
  }

  const rPath = join(path, 'retry');
  const r = section(o, 'retry', path);
  known(r, rPath, ['attempts', 'backoff', 'backoffMax']);
  const retry = {
    maxAttempts: num(r, 'attempts', rPath, { default: d.retry.maxAttempts, min: 1, max: 100, integer: true }),
    backoffUs: duration(r, 'backoff', rPath, d.retry.backoffUs),
    backoffMaxUs: duration(r, 'backoffMax', rPath, d.retry.backoffMaxUs),
  };
  if (retry.backoffMaxUs < retry.backoffUs) fail(join(rPath, 'backoffMax'), `a duration no shorter than backoff (${r.backoff ?? '5s'})`, r.backoffMax);

  const syncChunkBytes = size(o, 'syncChunk', path, d.syncChunkBytes);
  if (syncChunkBytes < 1024 * 1024) fail(join(path, 'syncChunk'), 'a size of at least 1MiB', o.syncChunk);
  const stepTimeoutUs = duration(o, 'stepTimeout', path, d.stepTimeoutUs);
  if (stepTimeoutUs < 10_000_000) fail(join(path, 'stepTimeout'), 'a duration of at least 10s', o.stepTimeout);
  return {
    enabled, vms: globs, workloads,
    startUs: duration(o, 'start', path, '0s'),
    waveSize: num(o, 'waveSize', path, { default: d.waveSize, min: 1, max: 64, integer: true }),
    syncChunkBytes, syncInterval,
    volumeType: str(o, 'volumeType', path, { default: d.volumeType, allowed: VOLUME_TYPES }),
    instanceType: str(o, 'instanceType', path, { default: 'auto', allowed: ['auto', ...ctx.cloud.catalog.map((c) => c.type)] }),
    cutover: { when, window }, retry, stepTimeoutUs,
  };
}

/** The VMs a wave moves, in data center order. */
export function selectVms<T extends { name: string; workload: string }>(vms: readonly T[], globs: readonly string[], workloads: readonly string[]): T[] {
  const res = globs.map((g) => globToRegExp(g));
  return vms.filter((v) => res.some((re) => re.test(v.name)) && (workloads.length === 0 || workloads.includes(v.workload)));
}

/** The scenario's migration wave policy (the disabled default when the block is absent). */
export function migrationWavePolicyOf(policies: Record<string, unknown>): MigrationWavePolicy {
  return (policies.migrate as MigrationWavePolicy | undefined) ?? DISABLED_MIGRATION_WAVE;
}
