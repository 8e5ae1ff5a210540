import type { Report } from '../report.js';

interface MigrationFigures {
  enabled: boolean;
  selected: number;
  migrated: number;
  failed: number;
  unfinished: number;
  retired: number;
  durationHours: number | null;
  downtime: { p50Seconds: number | null; p95Seconds: number | null };
  bytes: { disk: number; allocated: number; fetched: number; reSent: number };
  wan: { downBytes: number };
  outage: { count: number; stallSeconds: number; stepErrors: number };
}

/** The text report's lines for a migration wave. */
export function migrationSummaryLines(r: Report): string[] {
  const m = r.migration as MigrationFigures | undefined;
  if (!m || !m.enabled) return [];
  const mib = (b: number): string => (b / 2 ** 20).toFixed(0);
  const out = [`Migration wave: ${m.migrated} of ${m.selected} VMs migrated, ${m.failed} failed${m.unfinished ? `, ${m.unfinished} not finished by the end of the run` : ''}` +
    `${m.durationHours !== null ? ` in ${m.durationHours.toFixed(2)} h` : ''}; on-prem VMs retired: ${m.retired}`];
  out.push(`  disks ${mib(m.bytes.disk)} MiB, allocated ${mib(m.bytes.allocated)} MiB, fetched ${mib(m.bytes.fetched)} MiB, re-sent ${m.bytes.reSent === 0 ? 'none' : `${mib(m.bytes.reSent)} MiB`}; ` +
    `WAN down ${mib(m.wan.downBytes)} MiB; cut-over downtime p50 ${m.downtime.p50Seconds ?? '—'} s, p95 ${m.downtime.p95Seconds ?? '—'} s`);
  if (m.outage.count > 0) out.push(`  WAN outages: ${m.outage.count}; they stalled the sync ${m.outage.stallSeconds} s in all; machine step errors retried: ${m.outage.stepErrors}`);
  return out;
}

