/**
 * The vocabulary and defaults of `policies.burst` that the controllers also use: the scenario
 * format declares them (it checks names and fills defaults), the controllers import them.
 */

export type StrategyName = 'fifo' | 'lifo' | 'predictable' | 'threshold' | 'weekly';
export const STRATEGY_NAMES: readonly StrategyName[] = ['fifo', 'lifo', 'predictable', 'threshold', 'weekly'];

export interface SelectionPolicy {
  /** Weight per strategy; strategies with no weight do not vote. */
  weights: Partial<Record<StrategyName, number>>;
  /** CPU utilisation (demand / vCPUs) above which the threshold strategy votes to burst. */
  cpuAbove: number;
  /** Hours ahead the weekly prediction looks. */
  horizonHours: number;
  /** How many standard deviations above its weekly mean a VM must be predicted to count as hot. */
  hotSigma: number;
}

export const DEFAULT_SELECTION: SelectionPolicy = {
  weights: { weekly: 3, threshold: 2, predictable: 1, lifo: 0.5 },
  cpuAbove: 0.7,
  horizonHours: 8,
  hotSigma: 1,
};

export type Factor = 'storageLatency' | 'emptiness' | 'similarWorkloads' | 'migrationRoom' | 'storageCost'
  | 'compliance' | 'compatibility' | 'simplicity' | 'ha';
export const FACTORS: readonly Factor[] = ['storageLatency', 'emptiness', 'similarWorkloads', 'migrationRoom', 'storageCost', 'compliance', 'compatibility', 'simplicity', 'ha'];

export type FactorWeights = Partial<Record<Factor, number>>;

export const DEFAULT_TARGET_WEIGHTS: FactorWeights = {
  storageLatency: 3, emptiness: 1, similarWorkloads: 1, migrationRoom: 1, storageCost: 2,
  compliance: 1, compatibility: 2, simplicity: 1, ha: 1,
};

export interface CostRates {
  /** Amortized on-prem cost of one physical core for one hour (hardware, power, space). */
  onpremUsdPerCoreHour: number;
  /** Cloud block storage per GiB-month (cache and migration volumes). */
  cloudStorageUsdPerGiBMonth: number;
  /** WAN egress per GiB, cloud → on-prem (write-back) . */
  egressUsdPerGiB: number;
}

export const DEFAULT_RATES: CostRates = { onpremUsdPerCoreHour: 0.035, cloudStorageUsdPerGiBMonth: 0.08, egressUsdPerGiB: 0.09 };
