import { z } from 'zod';
import { WAN_DEFAULTS, type JitterModel, type WanConfig, type WanOutage } from '../providers/emulated/wan/wan-link.js';
import { formatDurationUs } from '../util/units.js';
import { bool, duration, int, list, mapping, num, rate, refuse, refuseExpected, shown, size } from './fields.js';
import { parseSection } from './issues.js';

/**
 * `wan:` — the emulated WAN link (docs/wan.md), e.g.
 * `{ rtt: 40ms, bandwidth: 100Mbit, upBandwidth: 20Mbit, jitter: { sd: 2ms }, loss: 0.001, outages: [{ at: 5h, for: 2m, reset: true }] }`.
 * The link model takes the result as `WanConfig` (src/providers/emulated/wan/wan-link.ts).
 */

const DISTS = '"normal" (with sd) or "pareto" (with mean, shape, max)';

const jitterMapping = mapping({
  sd: duration().optional().meta({ description: 'normal jitter: standard deviation' }),
  dist: z.enum(['normal', 'pareto'], { error: (iss) => `expected ${DISTS}, got ${shown(iss.input)}` }).optional().meta({ description: DISTS }),
  mean: duration().optional().meta({ description: 'pareto jitter: mean extra delay' }),
  shape: num({ min: 1.01, max: 100 }).default(2.5).meta({ description: 'pareto jitter: tail shape' }),
  max: duration().prefault('1s').meta({ description: 'pareto jitter: cap' }),
}).transform((o, ctx): JitterModel => {
  const dist = o.dist ?? (o.sd !== undefined ? 'normal' : undefined);
  if (dist === 'normal') {
    if (o.sd === undefined) return refuseExpected(ctx, undefined, 'a duration such as "500ms", "30s", "2h" or "1h30m"', ['sd']);
    return o.sd === 0 ? { kind: 'none' } : { kind: 'normal', sdUs: o.sd };
  }
  if (dist === 'pareto') {
    if (o.mean === undefined) return refuseExpected(ctx, undefined, 'a duration such as "500ms", "30s", "2h" or "1h30m"', ['mean']);
    return o.mean === 0 ? { kind: 'none' } : { kind: 'pareto', meanUs: o.mean, shape: o.shape, maxUs: o.max };
  }
  return refuseExpected(ctx, dist, DISTS, ['dist']);
});

/** `jitter: 2ms` is a normal jitter with that standard deviation; 0 or none is no jitter. */
const jitter = z.union([duration(), jitterMapping], {
  error: (iss) => `expected a duration such as "2ms" or a mapping { sd } or { dist: pareto, mean, shape, max }, got ${shown(iss.input)}`,
}).optional().transform((j): JitterModel => {
  if (j === undefined) return { kind: 'none' };
  if (typeof j === 'number') return j === 0 ? { kind: 'none' } : { kind: 'normal', sdUs: j };
  return j;
}).meta({ description: 'one-way delay jitter: a standard deviation ("2ms") or { dist: normal, sd } | { dist: pareto, mean, shape, max }' });

const outage = mapping({
  at: duration({ missing: 'a start time such as "5h"' }).meta({ description: 'when the outage starts' }),
  for: duration({ missing: 'a length such as "2m"', check: (us) => (us <= 0 ? 'a positive duration' : null) }).meta({ description: 'how long it lasts' }),
  reset: bool().default(false).meta({ description: 'reset every open connection when the outage starts' }),
}).transform((o): WanOutage => ({ atUs: o.at, forUs: o.for, reset: o.reset }));

const NAME_ERROR = (iss: { input?: unknown }): string => `expected a name of letters, digits, . / _ -, got ${shown(iss.input)}`;

const positiveRate = (example: string) => rate({ check: (v) => (v > 0 ? null : `a positive rate such as "${example}"`), missing: 'a rate such as "100Mbit" or "1Gbit"' });

export const wanSchema = mapping({
  name: z.string({ error: NAME_ERROR }).regex(/^[\w./-]+$/, { error: NAME_ERROR }).default('wan')
    .meta({ description: 'the link name in traces' }),
  rtt: duration({ missing: 'a round-trip time such as "40ms"' }).meta({ description: 'base round-trip time' }),
  bandwidth: positiveRate('100Mbit').meta({ description: 'bytes per second on-prem → cloud (and back, unless upBandwidth)' }),
  upBandwidth: positiveRate('20Mbit').optional().meta({ description: 'bytes per second cloud → on-prem' }),
  jitter,
  loss: num({ min: 0, max: 0.5 }).default(0).meta({ description: 'probability that one segment transmission is lost' }),
  mss: size({ check: (v) => (v < 64 || v > 65536 ? 'a segment size between 64 and 65536 bytes' : null) }).prefault(WAN_DEFAULTS.mssBytes).meta({ description: 'payload bytes per segment' }),
  headerBytes: int({ min: 0, max: 1024 }).default(WAN_DEFAULTS.headerBytes).meta({ description: 'header bytes each segment adds on the wire' }),
  minRto: duration().prefault('200ms').meta({ description: 'floor of the retransmission timeout' }),
  outages: list(outage).optional().meta({ description: 'scheduled outages that must not overlap (timeline wan-outage events add more)' }),
  sampleEvery: duration({ check: (us) => (us <= 0 ? 'a positive duration' : null) }).prefault('10s')
    .meta({ description: 'how often wan.stats is sampled while the link carries traffic' }),
}).transform((o, ctx): WanConfig => {
  const outages = o.outages ?? [];
  for (let i = 0; i < outages.length; i++) {
    const cur = outages[i]!;
    const prev = outages.slice(0, i).find((p) => cur.atUs < p.atUs + p.forUs && p.atUs < cur.atUs + cur.forUs);
    if (prev) {
      const what = `an outage that does not overlap another (this one, at ${formatDurationUs(cur.atUs)} for ${formatDurationUs(cur.forUs)}, overlaps the one at ${formatDurationUs(prev.atUs)})`;
      return refuse(ctx, cur, `expected ${what}`, ['outages', i]);
    }
  }
  return {
    name: o.name, rttUs: o.rtt, downBytesPerS: o.bandwidth, upBytesPerS: o.upBandwidth ?? o.bandwidth, jitter: o.jitter,
    lossRate: o.loss, mssBytes: o.mss, headerBytes: o.headerBytes, minRtoUs: o.minRto, outages, sampleEveryUs: o.sampleEvery,
  };
});

/** The `wan:` section as the link model takes it (tests and tools that build a link from text). */
export function parseWanConfig(raw: unknown, path = 'wan'): WanConfig {
  return parseSection(wanSchema, raw, path);
}
