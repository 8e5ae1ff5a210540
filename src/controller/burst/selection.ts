import { STRATEGY_NAMES, DEFAULT_SELECTION, type StrategyName, type SelectionPolicy } from '../../scenario/policies/burst-defaults.js';

export { STRATEGY_NAMES, DEFAULT_SELECTION, type StrategyName, type SelectionPolicy } from '../../scenario/policies/burst-defaults.js';
/**
 * What to burst (seed §5, FIG 19). Four systems, usable alone or in a
 * weighted combination: FIFO/LIFO, predictable before volatile, policy
 * thresholds (DRS-like), and a static evaluation of last week's load that
 * predicts who will be hot. Pure functions over plain data: the controller
 * gathers the numbers, these decide.
 */

export interface BurstCandidate {
  vmId: string;
  /** When the VM joined the data center (FIFO/LIFO order). */
  addedAtUs: number;
  vcpus: number;
  /** CPU wanted now, in vCPU-equivalents. */
  cpuDemand: number;
  /** Hourly CPU demand over the last week, oldest first (168 values when known). */
  history: readonly number[];
  /** I/O operations per second (the seed's IOUs): low-I/O workloads burst best. */
  iops: number;
  /** False when the VM needs hardware the cloud lacks (passthrough, dongles…). */
  transferable: boolean;
  /** New or experimental projects stay on-prem (§5, second system). */
  experimental?: boolean;
}


export interface ScoredCandidate {
  vmId: string;
  score: number;
  parts: Partial<Record<StrategyName, number>>;
}

const clamp01 = (x: number): number => (x < 0 ? 0 : x > 1 ? 1 : x);

function mean(xs: readonly number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0;
}

function sd(xs: readonly number[]): number {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1));
}

/** Coefficient of variation of the weekly history: 0 for a flat line. */
export function volatility(history: readonly number[]): number {
  const m = mean(history);
  return m > 0 ? sd(history) / m : 0;
}

/**
 * Predicted demand over the next `horizonHours`, from the same hours one week
 * earlier (`hourOfWeek` is where "now" falls in the 168-hour history).
 */
export function predictDemand(history: readonly number[], hourOfWeek: number, horizonHours: number): number {
  if (history.length === 0) return 0;
  let sum = 0;
  for (let h = 0; h < horizonHours; h++) sum += history[(hourOfWeek + h) % history.length]!;
  return sum / horizonHours;
}

/** True when last week says this VM will be hot in the coming hours (FIG 19 blocks 1903–1907). */
export function predictedHot(c: BurstCandidate, hourOfWeek: number, policy: SelectionPolicy): boolean {
  if (c.history.length < 24) return false;
  const predicted = predictDemand(c.history, hourOfWeek, policy.horizonHours);
  return predicted > mean(c.history) + policy.hotSigma * sd(c.history);
}

/** Score every transferable candidate; higher goes to the cloud first. Ties break by vmId for determinism. */
export function scoreCandidates(candidates: readonly BurstCandidate[], policy: SelectionPolicy, hourOfWeek: number): ScoredCandidate[] {
  const eligible = candidates.filter((c) => c.transferable);
  const byAge = [...eligible].sort((a, b) => a.addedAtUs - b.addedAtUs || a.vmId.localeCompare(b.vmId));
  const rank = new Map(byAge.map((c, i) => [c.vmId, byAge.length > 1 ? i / (byAge.length - 1) : 0]));
  const maxIops = Math.max(1, ...eligible.map((c) => c.iops));
  const totalWeight = STRATEGY_NAMES.reduce((a, s) => a + (policy.weights[s] ?? 0), 0) || 1;

  const scored = eligible.map((c) => {
    const parts: Partial<Record<StrategyName, number>> = {};
    const w = policy.weights;
    if (w.fifo) parts.fifo = 1 - rank.get(c.vmId)!;
    if (w.lifo) parts.lifo = rank.get(c.vmId)!;
    if (w.predictable) parts.predictable = c.experimental ? 0 : clamp01(1 - volatility(c.history));
    if (w.threshold) parts.threshold = c.cpuDemand / Math.max(1, c.vcpus) > policy.cpuAbove ? 1 : 0;
    if (w.weekly) {
      // Hot soon and light on storage: the seed's preferred burst candidate (§5, fourth system).
      const hot = predictedHot(c, hourOfWeek, policy) ? 1 : 0;
      parts.weekly = hot * (1 - 0.5 * (c.iops / maxIops));
    }
    const score = STRATEGY_NAMES.reduce((a, s) => a + (w[s] ?? 0) * (parts[s] ?? 0), 0) / totalWeight;
    return { vmId: c.vmId, score, parts };
  });
  return scored.sort((a, b) => b.score - a.score || a.vmId.localeCompare(b.vmId));
}

export type Fig19Path = 'predicted-hot' | 'clearly-highest' | 'last-added' | 'none';

/**
 * FIG 19 as drawn: predicted-hot VMs first (1909); else the one VM whose
 * current usage is clearly highest, if transferable (1915); else the last VM
 * added (1919).
 */
export function fig19Select(candidates: readonly BurstCandidate[], policy: SelectionPolicy, hourOfWeek: number, clearMargin = 1.25): { vmIds: string[]; path: Fig19Path } {
  const hot = candidates.filter((c) => c.transferable && !c.experimental && predictedHot(c, hourOfWeek, policy));
  if (hot.length) return { vmIds: hot.map((c) => c.vmId).sort(), path: 'predicted-hot' };
  const byUse = [...candidates].sort((a, b) => b.cpuDemand - a.cpuDemand || a.vmId.localeCompare(b.vmId));
  const [first, second] = byUse;
  if (first && first.transferable && (!second || first.cpuDemand >= clearMargin * second.cpuDemand)) {
    return { vmIds: [first.vmId], path: 'clearly-highest' };
  }
  const last = candidates.filter((c) => c.transferable).sort((a, b) => b.addedAtUs - a.addedAtUs || a.vmId.localeCompare(b.vmId))[0];
  return last ? { vmIds: [last.vmId], path: 'last-added' } : { vmIds: [], path: 'none' };
}

/** §5 third system, the other direction: cloud VMs whose storage latency passed Y come home. */
export function bringBack(inCloud: ReadonlyArray<{ vmId: string; storageLatencyUs: number }>, latencyAboveUs: number): string[] {
  return inCloud.filter((v) => v.storageLatencyUs > latencyAboveUs).map((v) => v.vmId).sort();
}
