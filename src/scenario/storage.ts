import { z } from 'zod';
import { DEFAULT_TIER, TIER_PRESETS, type TierConfig } from '../providers/emulated/hypervisor/storage-tier.js';
import { parseRateBytesPerS, parseSizeBytes } from '../util/units.js';
import { parseSection } from './issues.js';
import { duration, mapping, num, oneOf, refuseExpected, text } from './fields.js';

/**
 * `datacenter.storage[]`: a storage tier, a preset name (`nvme`, `ssd`, `hdd`, `archive`) or a
 * mapping `{ name, preset?, readLatency?, writeLatency?, iops?, throughput? }`. A mapping starts
 * from `preset`, else from the preset its `name` names, else from `ssd`, and overrides what it
 * gives. The storage model reads the result (src/providers/emulated/hypervisor/storage-tier.ts).
 */

const PRESETS = Object.keys(TIER_PRESETS) as [string, ...string[]];

/** "2GiB" (per second), "550MB/s", "1Gbit" or a byte count per second. */
const throughput = z.union([z.number(), z.string()]).transform((value, ctx) => {
  try {
    return parseRateBytesPerS(value);
  } catch {
    try {
      const bytes = parseSizeBytes(value);
      if (bytes > 0) return bytes;
    } catch {
      // fall through to the message that says what is allowed
    }
  }
  return refuseExpected(ctx, value, 'a throughput such as "550MB/s", "2GiB" (per second) or "1Gbit"');
}).meta({ 'x-unit': 'rate', description: 'a rate ("550MB/s", "1Gbit") or a size per second ("2GiB")' });

const tierMapping = mapping({
  name: text({ pattern: /^[\w-]+$/ }).meta({ description: 'the tier name images and disks use' }),
  preset: oneOf(PRESETS).optional().meta({ description: 'the preset the tier starts from (default: the one its name names, else ssd)' }),
  readLatency: duration().optional(),
  writeLatency: duration().optional(),
  iops: num({ min: 1, max: 1e9 }).optional().meta({ description: 'I/O operations per second, per disk' }),
  throughput: throughput.optional(),
}).transform((o): TierConfig => {
  const base = TIER_PRESETS[o.preset ?? (TIER_PRESETS[o.name] ? o.name : DEFAULT_TIER)]!;
  return {
    name: o.name,
    readLatencyUs: o.readLatency ?? base.readLatencyUs,
    writeLatencyUs: o.writeLatency ?? base.writeLatencyUs,
    iops: o.iops ?? base.iops,
    throughputBytesPerS: o.throughput ?? base.throughputBytesPerS,
  };
});

export const tierSchema = z.union([oneOf(PRESETS), tierMapping], {
  error: (iss) => `expected a tier preset (${PRESETS.join(', ')}) or a mapping { name, readLatency, writeLatency, iops, throughput }, got ${JSON.stringify(iss.input) ?? 'nothing'}`,
}).transform((t): TierConfig => (typeof t === 'string' ? { ...TIER_PRESETS[t]! } : t));

/** One tier as the storage model takes it, from a scenario's text (a preset name or a mapping). */
export function parseTierSpec(raw: unknown, path = 'tier'): TierConfig {
  return parseSection(tierSchema, raw, path);
}
