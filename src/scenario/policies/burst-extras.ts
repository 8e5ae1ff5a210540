import { DEFAULT_RATES, DEFAULT_SELECTION, DEFAULT_TARGET_WEIGHTS, FACTORS, STRATEGY_NAMES } from './burst-defaults.js';
import { duration, join, known, num, obj, type Raw, section } from '../../util/check.js';
import type { BurstPolicy } from '../schema.js';

type Extras = Pick<BurstPolicy, 'selection' | 'bringBack' | 'targets' | 'rates' | 'boot' | 'io' | 'standby'>;


function weights(o: Raw, path: string, names: readonly string[], defaults: Record<string, number | undefined>): Record<string, number> {
  known(o, path, names);
  const out: Record<string, number> = {};
  for (const n of names) {
    const v = o[n] === undefined ? defaults[n] ?? 0 : num(o, n, path, { min: 0 });
    if (v > 0) out[n] = v;
  }
  return out;
}

/** The controller's fields of `policies.burst` (docs/scenarios.md, docs/controller.md). */
export function parseBurstExtras(o: Raw, path: string): Extras {
  const selPath = join(path, 'selection');
  const sel = section(o, 'selection', path);
  known(sel, selPath, ['weights', 'cpuAbove', 'horizon', 'hotSigma']);
  const selW = section(sel, 'weights', selPath);
  const bbPath = join(path, 'bringBack');
  const bb = section(o, 'bringBack', path);
  known(bb, bbPath, ['storageLatencyAbove']);
  const tgPath = join(path, 'targets');
  const tg = section(o, 'targets', path);
  known(tg, tgPath, ['weights']);
  const ratesPath = join(path, 'rates');
  const rates = section(o, 'rates', path);
  known(rates, ratesPath, ['onpremPerCoreHour', 'cloudStoragePerGiBMonth', 'egressPerGiB', 'vcpusPerCore']);
  const bootPath = join(path, 'boot');
  const boot = section(o, 'boot', path);
  known(boot, bootPath, ['depth', 'think']);
  const ioPath = join(path, 'io');
  const io = section(o, 'io', path);
  known(io, ioPath, ['every', 'ops']);
  const sbPath = join(path, 'standby');
  const sb = o.standby === undefined || o.standby === null || o.standby === false ? null : o.standby === true ? {} : obj(o.standby, sbPath);
  if (sb) known(sb, sbPath, ['after']);
  return {
    selection: {
      weights: weights(selW, join(selPath, 'weights'), STRATEGY_NAMES, DEFAULT_SELECTION.weights),
      cpuAbove: num(sel, 'cpuAbove', selPath, { default: DEFAULT_SELECTION.cpuAbove, min: 0, max: 2 }),
      horizonHours: duration(sel, 'horizon', selPath, `${DEFAULT_SELECTION.horizonHours}h`) / 3_600_000_000,
      hotSigma: num(sel, 'hotSigma', selPath, { default: DEFAULT_SELECTION.hotSigma, min: 0 }),
    },
    bringBack: { storageLatencyAboveUs: duration(bb, 'storageLatencyAbove', bbPath, '250ms') },
    targets: { weights: weights(section(tg, 'weights', tgPath), join(tgPath, 'weights'), FACTORS, DEFAULT_TARGET_WEIGHTS) },
    rates: {
      onpremUsdPerCoreHour: num(rates, 'onpremPerCoreHour', ratesPath, { default: DEFAULT_RATES.onpremUsdPerCoreHour, min: 0 }),
      cloudStorageUsdPerGiBMonth: num(rates, 'cloudStoragePerGiBMonth', ratesPath, { default: DEFAULT_RATES.cloudStorageUsdPerGiBMonth, min: 0 }),
      egressUsdPerGiB: num(rates, 'egressPerGiB', ratesPath, { default: DEFAULT_RATES.egressUsdPerGiB, min: 0 }),
      vcpusPerCore: num(rates, 'vcpusPerCore', ratesPath, { default: 1, min: 0.1 }),
    },
    boot: { depth: num(boot, 'depth', bootPath, { default: 4, min: 1, max: 64, integer: true }), thinkUs: duration(boot, 'think', bootPath, '1ms') },
    io: { everyUs: duration(io, 'every', ioPath, '5m'), ops: num(io, 'ops', ioPath, { default: 32, min: 0, max: 4096, integer: true }) },
    // After HA's restart delay: the VMs still down then found no host with room.
    standby: sb ? { afterUs: duration(sb, 'after', sbPath, '10m') } : null,
  };
}

export interface SlaPolicy {
  /** The batch run must finish within this long of its first task's start; null: no SLA. */
  batchWithinUs: number | null;
}

/** `policies.sla`: the deadline the report checks. */
export function parseSlaPolicy(raw: unknown, path: string): SlaPolicy {
  const o: Raw = raw === undefined || raw === null ? {} : obj(raw, path);
  known(o, path, ['batchWithin']);
  return { batchWithinUs: o.batchWithin === undefined ? null : duration(o, 'batchWithin', path) };
}
