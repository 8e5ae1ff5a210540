import { z } from 'zod';
import { bool, duration, int, mapping, num, section, shown } from '../fields.js';
import { DEFAULT_RATES, DEFAULT_SELECTION, DEFAULT_TARGET_WEIGHTS, FACTORS, STRATEGY_NAMES } from './burst-defaults.js';

/**
 * The controller's fields of `policies.burst` (docs/scenarios.md, docs/controller.md): what to
 * burst, where, at what cost, how burst VMs boot and do I/O, and the standby for failed hosts.
 */

/** Weights by name: a name left out takes its default; the result keeps only weights above 0, in list order. */
function weights(names: readonly string[], defaults: Record<string, number | undefined>) {
  const shape = Object.fromEntries(names.map((n) => [n, num({ min: 0 }).optional()]));
  return mapping(shape).prefault({} as never).transform((o) => {
    const out: Record<string, number> = {};
    for (const n of names) {
      const v = (o[n] as number | undefined) ?? defaults[n] ?? 0;
      if (v > 0) out[n] = v;
    }
    return out;
  });
}

const standby = z.union([bool(), mapping({ after: duration().prefault('10m').meta({ description: 'how long after the failure' }) })], {
  error: (iss) => `expected true, false or a mapping { after }, got ${shown(iss.input)}`,
}).optional().transform((s) => (s === undefined || s === false ? null : { afterUs: s === true ? 10 * 60_000_000 : s.after }))
  .meta({ description: "standby for a failed host: VMs HA left down this long after the failure run in the cloud until the host recovers (true: 10m)" });

export const burstExtrasShape = {
  selection: section({
    weights: weights(STRATEGY_NAMES, DEFAULT_SELECTION.weights).meta({ description: 'strategy weights (0: no vote)' }),
    cpuAbove: num({ min: 0, max: 2 }).default(DEFAULT_SELECTION.cpuAbove).meta({ description: 'threshold strategy: demand / vCPUs above this votes to burst' }),
    horizon: duration().prefault(`${DEFAULT_SELECTION.horizonHours}h`).meta({ description: 'weekly prediction look-ahead' }),
    hotSigma: num({ min: 0 }).default(DEFAULT_SELECTION.hotSigma).meta({ description: 'predicted-hot margin in standard deviations' }),
  }),
  bringBack: section({
    storageLatencyAbove: duration().prefault('250ms').meta({ description: 'a burst VM whose last I/O batch read slower than this comes home' }),
  }),
  targets: section({ weights: weights(FACTORS, DEFAULT_TARGET_WEIGHTS).meta({ description: 'zone scoring weights' }) }),
  rates: section({
    onpremPerCoreHour: num({ min: 0 }).default(DEFAULT_RATES.onpremUsdPerCoreHour).meta({ description: 'USD per physical core-hour on-prem' }),
    cloudStoragePerGiBMonth: num({ min: 0 }).default(DEFAULT_RATES.cloudStorageUsdPerGiBMonth).meta({ description: 'cache volume price' }),
    egressPerGiB: num({ min: 0 }).default(DEFAULT_RATES.egressUsdPerGiB).meta({ description: 'write-back egress price' }),
    vcpusPerCore: num({ min: 0.1 }).default(1).meta({ description: 'on-prem oversubscription' }),
  }),
  boot: section({
    depth: int({ min: 1, max: 64 }).default(4).meta({ description: 'boot reads outstanding during the streamed boot' }),
    think: duration().prefault('1ms').meta({ description: 'guest CPU between boot reads' }),
  }),
  io: section({
    every: duration().prefault('5m').meta({ description: 'coarsened application I/O period' }),
    ops: int({ min: 0, max: 4096 }).default(32).meta({ description: 'operations per period (0: none)' }),
  }),
  standby,
};

type ExtrasFile = z.output<z.ZodObject<typeof burstExtrasShape>>;

/** The extras in the form the controllers read. */
export function burstExtras(o: ExtrasFile) {
  return {
    selection: {
      weights: o.selection.weights, cpuAbove: o.selection.cpuAbove,
      horizonHours: o.selection.horizon / 3_600_000_000, hotSigma: o.selection.hotSigma,
    },
    bringBack: { storageLatencyAboveUs: o.bringBack.storageLatencyAbove },
    targets: { weights: o.targets.weights },
    rates: {
      onpremUsdPerCoreHour: o.rates.onpremPerCoreHour, cloudStorageUsdPerGiBMonth: o.rates.cloudStoragePerGiBMonth,
      egressUsdPerGiB: o.rates.egressPerGiB, vcpusPerCore: o.rates.vcpusPerCore,
    },
    boot: { depth: o.boot.depth, thinkUs: o.boot.think },
    io: { everyUs: o.io.every, ops: o.io.ops },
    standby: o.standby,
  };
}

/** `policies.sla`: the deadline the report checks. */
export const slaSchema = mapping({
  batchWithin: duration().optional().meta({ description: 'the batch run must finish within this long of its first start' }),
}).prefault({} as never).transform((o) => ({ batchWithinUs: o.batchWithin ?? null }));

export type SlaPolicy = z.output<typeof slaSchema>;
