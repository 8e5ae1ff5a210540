/**
 * How an oversubscribed host divides its cores (docs/simulation.md).
 *
 * Steady services (database, web, trading) run at high shares: together they
 * get their whole demand when it fits, or the host's capacity split in
 * proportion to demand when it does not. Batch work runs at low shares and
 * gets only what is left, split in proportion to demand. This is the model
 * behind the seed's example: with 10% headroom over the steady load, a batch
 * peak that needs 50% more capacity receives 0.1/0.5 = 1/5 of what it asks
 * for, so a two-week task takes ten weeks.
 */
export interface CpuClaim {
  /** vCPU-equivalents wanted now (never above the VM's vCPUs). */
  demand: number;
  batch: boolean;
}

export interface ShareResult {
  steadyDemand: number;
  batchDemand: number;
  /** Cores handed out; never more than capacity. */
  granted: number;
}

/** Writes each claim's granted cores into `granted[i]`. */
export function shareCpu(capacity: number, claims: readonly CpuClaim[], granted: number[]): ShareResult {
  let steadyDemand = 0;
  let batchDemand = 0;
  for (const c of claims) {
    if (c.batch) batchDemand += c.demand;
    else steadyDemand += c.demand;
  }
  const steadyScale = steadyDemand <= capacity ? 1 : capacity / steadyDemand;
  const leftover = Math.max(0, capacity - steadyDemand);
  const batchScale = batchDemand <= leftover ? 1 : leftover / batchDemand;
  let total = 0;
  for (let i = 0; i < claims.length; i++) {
    const c = claims[i]!;
    const g = c.demand * (c.batch ? batchScale : steadyScale);
    granted[i] = g;
    total += g;
  }
  return { steadyDemand, batchDemand, granted: Math.min(capacity, total) };
}
