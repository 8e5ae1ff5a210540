import type { Report } from '../report.js';

interface Section {
  enabled: boolean;
  workload: string | null;
  template: string | null;
  clonesLaunched: number;
  clonesFailed: number;
  clonesDropped: number;
  clonesLeft: number;
  peakClones: number;
  timeToServe: { p50Seconds: number | null; p95Seconds: number | null };
  reads: { bootSiblingShare: number | null };
  io: { guestBytesRead: number; guestBytesWritten: number; cacheHitRatio: number | null };
  wan: { bytes: number; firstCloneBootBytes: number | null; laterClonesMeanBootBytes: number | null };
  tier: { servedPct: number | null; peakDemandPerMember: number; peakDemandPerMemberWithoutClones: number };
  cost: { cloudUsd: number; instanceHours: number };
  baseline: { tierServedPct: number | null; hoursAnyHostSaturated: number | null };
}

const mib = (b: number | null): string => (b === null ? '—' : `${(b / 2 ** 20).toFixed(1)} MiB`);
const pct = (x: number | null): string => (x === null ? '—' : `${x}%`);

/** The plain sentences of what cloning the web tier bought, for the text report. */
export function scaleOutSummaryLines(r: Report): string[] {
  const s = r.scaleOut as Section | undefined;
  if (!s || !s.enabled) return [];
  const out = [
    `Scale-out: the ${s.workload} tier got ${pct(s.tier.servedPct)} of its CPU demand with up to ${s.peakClones} clones of ${s.template} ` +
    `(without them: ${pct(s.baseline.tierServedPct)}), at $${s.cost.cloudUsd.toFixed(2)} of cloud for ${s.cost.instanceHours.toFixed(1)} instance-hours`,
    `  ${s.clonesLaunched} clones served, ${s.clonesDropped} dropped after the peak, ${s.clonesFailed} failed, ${s.clonesLeft} left at the end; ` +
    `decision to serving p50 ${s.timeToServe.p50Seconds ?? '—'} s, p95 ${s.timeToServe.p95Seconds ?? '—'} s`,
    `  boot over the WAN: first clone ${mib(s.wan.firstCloneBootBytes)}, later clones ${mib(s.wan.laterClonesMeanBootBytes)} each ` +
    `(${s.reads.bootSiblingShare === null ? '—' : `${Math.round(s.reads.bootSiblingShare * 100)}%`} of the blocks they fetched to boot came from sibling clones, FIG 14); WAN ${mib(s.wan.bytes)} in all`,
    `  the clones' guests read ${mib(s.io.guestBytesRead)} and wrote ${mib(s.io.guestBytesWritten)} (boot and application I/O); ` +
    `cache hit ratio ${s.io.cacheHitRatio ?? '—'}`,
    `  tier demand per member peaked at ${s.tier.peakDemandPerMember} of its vCPUs; without the clones it would have been ${s.tier.peakDemandPerMemberWithoutClones}` +
    (s.baseline.hoursAnyHostSaturated === null ? '' : `; some host saturated ${r.totals.saturation.hoursAnyHostSaturated.toFixed(1)} h instead of ${s.baseline.hoursAnyHostSaturated.toFixed(1)} h`),
  ];
  return out;
}
