import { DEFAULT_RATES, type CostRates } from '../scenario/policies/burst-defaults.js';

export { DEFAULT_RATES, type CostRates } from '../scenario/policies/burst-defaults.js';
/**
 * The cost model (seed §7.0): on-prem capacity is oversubscribed and paid
 * for whether used or not; cloud capacity is rented per instance-hour whether
 * its cores are busy or not, plus storage and WAN egress.
 */

const HOURS_PER_MONTH = 730;

export interface CloudUsage {
  instanceHours: Array<{ pricePerHourUsd: number; hours: number }>;
  storageGiBHours: number;
  egressBytes: number;
}

export function cloudCostUsd(usage: CloudUsage, rates: CostRates = DEFAULT_RATES): number {
  const compute = usage.instanceHours.reduce((a, u) => a + u.pricePerHourUsd * u.hours, 0);
  const storage = (usage.storageGiBHours / HOURS_PER_MONTH) * rates.cloudStorageUsdPerGiBMonth;
  const egress = (usage.egressBytes / 1024 ** 3) * rates.egressUsdPerGiB;
  return compute + storage + egress;
}

/**
 * What the same work would cost on-prem if capacity existed: physical cores
 * needed (vCPU demand over the oversubscription ratio) times hours.
 */
export function onpremCostUsd(vcpuHours: number, vcpusPerCore: number, rates: CostRates = DEFAULT_RATES): number {
  return (vcpuHours / Math.max(1, vcpusPerCore)) * rates.onpremUsdPerCoreHour;
}
