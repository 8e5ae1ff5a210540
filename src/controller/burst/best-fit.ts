import type { InstanceTypeInfo } from '../../ports/cloud.js';

/**
 * FIG 7 step 721: the cheapest instance type that meets the VM's vCPU, RAM,
 * IOPS and licence needs. Over-provisioning breaks price ties, so a 4-vCPU
 * VM never lands on a same-priced 8-vCPU type.
 */
export interface FitNeeds {
  vcpus: number;
  memoryMiB: number;
  iops: number;
  /** Licences that constrain the choice, e.g. per-core database licences. */
  licences: readonly string[];
}

/** Licence rules: a per-core licence caps vCPUs; some licences are tied to instance families. */
export type LicenceRules = Record<string, { maxVcpus?: number; families?: readonly string[] }>;

export interface Fit {
  type: InstanceTypeInfo;
  /** Spare capacity: (vcpus/need − 1) + (memory/need − 1). */
  slack: number;
}

export function familyOf(typeName: string): string {
  return typeName.split('.')[0] ?? typeName;
}

export function bestFit(catalog: readonly InstanceTypeInfo[], needs: FitNeeds, rules: LicenceRules = {}): Fit | undefined {
  const fits: Fit[] = [];
  for (const type of catalog) {
    if (type.vcpus < needs.vcpus || type.memoryMiB < needs.memoryMiB || type.ebsIops < needs.iops) continue;
    const allowed = needs.licences.every((licence) => {
      const rule = rules[licence];
      if (!rule) return true;
      if (rule.maxVcpus !== undefined && type.vcpus > rule.maxVcpus) return false;
      if (rule.families && !rule.families.includes(familyOf(type.name))) return false;
      return true;
    });
    if (!allowed) continue;
    fits.push({ type, slack: type.vcpus / Math.max(1, needs.vcpus) - 1 + type.memoryMiB / Math.max(1, needs.memoryMiB) - 1 });
  }
  fits.sort((a, b) => a.type.pricePerHourUsd - b.type.pricePerHourUsd || a.slack - b.slack || a.type.name.localeCompare(b.type.name));
  return fits[0];
}
