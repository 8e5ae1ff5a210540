import type { LiveResources } from '../../providers/emulated/ec2/model.js';
import type { ReportInput } from '../types.js';

/** What the section reads from the running simulation (ScenarioSimulation). */
interface ResourcesSim {
  resourcesLeft(): LiveResources | null;
  cloudRunId(): string;
}

/**
 * `report.resourcesLeft`: what the cloud still holds when the run ends
 * (VMs still bursting, clones, volumes, snapshots) and what it costs per
 * hour while it stays. A run can end with VMs in the cloud on purpose (the
 * peak outlasts the horizon); the operator must still hear about it.
 * `inspected` is false when the cloud cannot be read back synchronously (a
 * live account: the live run's own cleanup lists it instead).
 */
export function buildResourcesLeftSection(input: ReportInput): Record<string, unknown> {
  const sim = (input.sim ?? null) as ResourcesSim | null;
  const left = sim?.resourcesLeft() ?? null;
  const instances = left?.instances ?? [];
  const usdPerHour = instances.reduce((n, i) => n + (i.pricePerHour ?? 0), 0);
  return {
    inspected: sim !== null && left !== null,
    runId: sim?.cloudRunId() ?? null,
    instances: instances.length,
    volumes: left?.volumes.length ?? 0,
    snapshots: left?.snapshots.length ?? 0,
    usdPerHour: Math.round(usdPerHour * 1000) / 1000,
    vmsInCloud: instances.flatMap((i) => (i.owner ? [i.owner] : [])).sort(),
    list: [
      ...instances.map((i) => ({ id: i.id, kind: 'instance', what: `${i.type} ${i.state}${i.owner ? ` (${i.owner})` : ''}` })),
      ...(left?.volumes ?? []).map((v) => ({ id: v.id, kind: 'volume', what: `${v.sizeGiB} GiB ${v.state}${v.attachedTo ? ` on ${v.attachedTo}` : ''}` })),
      ...(left?.snapshots ?? []).map((s) => ({ id: s.id, kind: 'snapshot', what: 'snapshot' })),
    ],
  };
}
