import type { Report } from '../report.js';

interface Section {
  inspected: boolean;
  runId: string | null;
  instances: number;
  volumes: number;
  snapshots: number;
  usdPerHour: number;
  vmsInCloud: string[];
  list: Array<{ id: string; kind: string; what: string }>;
}

/** Nothing is left unsaid about what a run left in the cloud: the count, the cost per hour, each resource. */
export function resourcesLeftLines(r: Report, options: { max?: number } = {}): string[] {
  const s = r.resourcesLeft as Section | undefined;
  if (!s || !s.inspected || s.list.length === 0) return [];
  const max = options.max ?? 12;
  const out = [
    `Left in the cloud at the end: ${s.instances} instance(s), ${s.volumes} volume(s), ${s.snapshots} snapshot(s), ` +
    `$${s.usdPerHour.toFixed(2)}/h while they stay${s.vmsInCloud.length ? `; theirs: ${s.vmsInCloud.join(', ')}` : ''}`,
  ];
  for (const item of s.list.slice(0, max)) out.push(`  ${item.kind.padEnd(8)} ${item.id}  ${item.what}`);
  if (s.list.length > max) out.push(`  … ${s.list.length - max} more (see --json: resourcesLeft.list)`);
  out.push(`  (tagged spillway:run=${s.runId}; in a live account \`spillway cloud cleanup --run ${s.runId}\` removes them)`);
  return out;
}
