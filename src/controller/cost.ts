/**
 * The cost model (seed §7.0): on-prem capacity is oversubscribed and paid
 * for whether used or not; cloud capacity is rented per instance-hour whether
 * its cores are busy or not, plus storage and WAN egress.
 */
export interface CostRates {
  /** Amortized on-prem cost of one physical core for one hour (hardware, power, space). */
  onpremUsdPerCoreHour: number;
  /** Cloud block storage per GiB-month (cache and migration volumes). */
  cloudStorageUsdPerGiBMonth: number;
  /** WAN egress per GiB, cloud → on-prem (write-back) . */
  egressUsdPerGiB: number;
}

export const DEFAULT_RATES: CostRates = { onpremUsdPerCoreHour: 0.035, cloudStorageUsdPerGiBMonth: 0.08, egressUsdPerGiB: 0.09 };

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
