import { z } from 'zod';
import { DEFAULT_DAILY, DEFAULT_NOISE, type WorkloadSpec } from '../providers/emulated/workload/spec.js';
import { duration, list, mapping, named, num, refuseExpected, size } from './fields.js';

/**
 * `workloads:` — a mapping from workload name to its load model (docs/scenarios.md). The kind
 * decides the fields: a batch job has fixed work; database, web and trading VMs follow a
 * daily curve. The models read the result as `WorkloadSpec` (src/providers/emulated/workload/spec.ts).
 */

const common = (kind: WorkloadSpec['kind']) => ({
  noise: num({ min: 0, max: 1 }).default(DEFAULT_NOISE[kind]).meta({ description: 'sd of the multiplicative noise per tick' }),
  dirtyRate: size().prefault(8 * 1024 * 1024).meta({ description: 'guest memory dirtied per second (cut-over convergence)' }),
});

const daily = list(mapping({
  hour: num({ min: 0, max: 24 }).meta({ description: 'hour of the day' }),
  factor: num({ min: 0, max: 100 }).meta({ description: 'load at that hour, × base' }),
}), { atLeastOne: 'at least one {hour, factor} point' }).meta({ description: '24 h profile, piecewise linear, wraps at midnight' });

const spikes = mapping({
  perHour: num({ min: 0 }).default(1.5).meta({ description: 'spikes per hour (Poisson)' }),
  factor: num({ min: 1, max: 100 }).default(1.8).meta({ description: 'load multiplier during a spike' }),
  meanDuration: duration().prefault('10m').meta({ description: 'mean spike length (exponential)' }),
}).transform((s) => ({ perHour: s.perHour, factor: s.factor, meanDurationUs: s.meanDuration }))
  .meta({ description: 'Poisson spikes multiplying the load (trading has them by default)' });

const batch = mapping({
  kind: z.literal('batch'),
  work: num({ min: 0.001 }).meta({ description: 'vCPU-hours each VM running this workload must complete' }),
  start: duration().prefault(0).meta({ description: 'when the task starts (virtual time since the run began)' }),
  parallelism: num({ min: 0.01, max: 1 }).default(1).meta({ description: "fraction of the VM's vCPUs the task keeps busy" }),
  idle: num({ min: 0, max: 1 }).default(0.02).meta({ description: 'demand (fraction of vCPUs) outside the task' }),
  ...common('batch'),
}).transform((w) => ({
  kind: w.kind, noise: w.noise, dirtyRateBytesPerS: w.dirtyRate,
  workVcpuHours: w.work, startUs: w.start, parallelism: w.parallelism, idle: w.idle,
}));

function steady<K extends 'database' | 'web' | 'trading'>(kind: K) {
  return mapping({
    kind: z.literal(kind),
    base: num({ min: 0, max: 1 }).meta({ description: "average demand as a fraction of the VM's vCPUs" }),
    daily: daily.optional(),
    spikes: kind === 'trading' ? spikes.prefault({}) : spikes.optional(),
    ...common(kind),
  }).transform((w) => ({
    kind: w.kind, noise: w.noise, dirtyRateBytesPerS: w.dirtyRate, base: w.base,
    daily: w.daily ?? DEFAULT_DAILY[w.kind].map((d) => ({ ...d })),
    spikes: w.spikes ?? null,
  }));
}

export const WORKLOAD_KINDS = ['batch', 'database', 'web', 'trading'] as const;

const workload = z.discriminatedUnion('kind', [batch, steady('database'), steady('web'), steady('trading')], {
  error: (iss) => (iss.code === 'invalid_union'
    ? `expected one of ${WORKLOAD_KINDS.join(', ')}, got ${JSON.stringify((iss.input as { kind?: unknown } | undefined)?.kind) ?? 'nothing'}`
    : `expected a mapping (key: value), got ${JSON.stringify(iss.input) ?? 'nothing'}`),
});

export const workloadsSchema = named(workload)
  .transform((all, ctx): Record<string, WorkloadSpec> => {
    const out: Record<string, WorkloadSpec> = {};
    for (const [name, w] of Object.entries(all)) {
      if (!/^[\w-]+$/.test(name)) return refuseExpected(ctx, name, 'a workload name of letters, digits, - and _', [name]);
      out[name] = { name, ...w };
    }
    if (Object.keys(out).length === 0) return refuseExpected(ctx, all, 'at least one workload');
    return out;
  })
  .meta({ description: 'load models, by name; VMs name one in `workload`' });
