import type { Report } from '../report.js';

/** The plain sentence of what bursting bought, for the text report of a burst run. */
export function burstSummaryLines(r: Report): string[] {
  const b = r.burst as { enabled: boolean; vmsBurst: number; timeToCloud: { p50Seconds: number | null; p95Seconds: number | null };
    cost: { cloudUsd: number; onpremUsd: number }; baseline: { batchCompletionHours: number | null }; batch: { completionHours: number | null };
    wan: { bytes: number; bytesPerGuestByte: number | null }; writeBack: { unshippedBytes: number; shippedBytes: number }; sla: { batchWithinHours: number | null; met: boolean | null; baselineMet: boolean | null } } | undefined;
  if (!b || !b.enabled) return [];
  const h = (x: number | null): string => (x === null ? 'not by the end of the run' : `${x.toFixed(1)} h`);
  const cost = `$${b.cost.cloudUsd.toFixed(2)} of cloud (the same work on-prem: $${b.cost.onpremUsd.toFixed(2)}, had the cores existed)`;
  // A run cut short (--until) or one where batch never finished gets a sentence that says so, not "finished in unfinished".
  const headline = b.batch.completionHours === null
    ? `Bursting: batch not finished by the end of the run (without bursting: ${h(b.baseline.batchCompletionHours)}); ${cost} so far`
    : `Bursting: batch finished in ${h(b.batch.completionHours)} instead of ${h(b.baseline.batchCompletionHours)}, at ${cost}`;
  const out = [headline];
  out.push(`  ${b.vmsBurst} VMs burst; decision to running p50 ${b.timeToCloud.p50Seconds ?? '—'} s, p95 ${b.timeToCloud.p95Seconds ?? '—'} s; ` +
    `WAN ${(b.wan.bytes / 2 ** 20).toFixed(0)} MiB (${b.wan.bytesPerGuestByte ?? '—'} per guest byte)`);
  out.push(`  writes shipped home ${(b.writeBack.shippedBytes / 2 ** 20).toFixed(1)} MiB; acknowledged in the cloud but not yet applied on-prem at the end: ` +
    `${b.writeBack.unshippedBytes === 0 ? 'none' : `${(b.writeBack.unshippedBytes / 2 ** 20).toFixed(1)} MiB`}`);
  if (b.sla.batchWithinHours !== null) out.push(`  SLA (batch within ${b.sla.batchWithinHours} h): ${b.sla.met ? 'met' : 'MISSED'}; without bursting: ${b.sla.baselineMet ? 'met' : 'missed'}`);
  return out;
}
