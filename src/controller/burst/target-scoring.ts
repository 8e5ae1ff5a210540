import { FACTORS, DEFAULT_TARGET_WEIGHTS, type Factor, type FactorWeights } from '../../scenario/policies/burst-defaults.js';

export { FACTORS, DEFAULT_TARGET_WEIGHTS, type Factor, type FactorWeights } from '../../scenario/policies/burst-defaults.js';
/**
 * Where to burst (seed §6, factors A–I). Each factor is scored in [0, 1]
 * across the candidate targets and combined with weights from the scenario.
 * Compliance (F) and HA (I) are also hard constraints: a target that breaks
 * them is excluded rather than merely scored low.
 */

export interface CloudTarget {
  id: string;
  /** Measured (or modelled) storage latency through the proxies. */
  storageLatencyUs: number;
  workloadsOnHost: number;
  /** Workload kinds already running there (C: similar workloads). */
  workloadKinds: readonly string[];
  /** Storage that can be added for a full migration (D). */
  expandableGiB: number;
  storageUsdPerGiBMonth: number;
  /** Data classes this target may hold (F): e.g. "public", "pii", "pci". */
  allowedDataClasses: readonly string[];
  /** Transformations the VM's storage needs to run there (G): 0 is best. */
  storageTransformations: number;
  /** 0 (like our on-prem platform) … 1 (unfamiliar) (H). */
  managementComplexity: number;
  supportsHa: boolean;
}

export interface TargetNeeds {
  workloadKind: string;
  diskGiB: number;
  dataClass: string;
  needsHa: boolean;
}


export interface TargetScore {
  targetId: string;
  score: number;
  factors: Record<Factor, number>;
}

/** Lower raw value is better → 1 for the best, 0 for the worst. */
function lowerIsBetter(values: number[]): (v: number) => number {
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  return (v) => (hi === lo ? 1 : (hi - v) / (hi - lo));
}

export function scoreTargets(targets: readonly CloudTarget[], needs: TargetNeeds, weights: FactorWeights = DEFAULT_TARGET_WEIGHTS): TargetScore[] {
  const eligible = targets.filter((t) => t.allowedDataClasses.includes(needs.dataClass) && (!needs.needsHa || t.supportsHa));
  if (eligible.length === 0) return [];
  const latency = lowerIsBetter(eligible.map((t) => t.storageLatencyUs));
  const load = lowerIsBetter(eligible.map((t) => t.workloadsOnHost));
  const cost = lowerIsBetter(eligible.map((t) => t.storageUsdPerGiBMonth));
  const transforms = lowerIsBetter(eligible.map((t) => t.storageTransformations));
  const total = FACTORS.reduce((a, f) => a + (weights[f] ?? 0), 0) || 1;
  return eligible
    .map((t) => {
      const factors: Record<Factor, number> = {
        storageLatency: latency(t.storageLatencyUs),
        emptiness: load(t.workloadsOnHost),
        similarWorkloads: t.workloadKinds.includes(needs.workloadKind) ? 1 : 0,
        migrationRoom: Math.min(1, t.expandableGiB / Math.max(1, needs.diskGiB)),
        storageCost: cost(t.storageUsdPerGiBMonth),
        compliance: 1,
        compatibility: transforms(t.storageTransformations),
        simplicity: 1 - Math.min(1, Math.max(0, t.managementComplexity)),
        ha: t.supportsHa ? 1 : 0,
      };
      const score = FACTORS.reduce((a, f) => a + (weights[f] ?? 0) * factors[f], 0) / total;
      return { targetId: t.id, score, factors };
    })
    .sort((a, b) => b.score - a.score || a.targetId.localeCompare(b.targetId));
}
