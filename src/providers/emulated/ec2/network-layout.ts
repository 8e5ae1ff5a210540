import { createHash } from 'node:crypto';

/**
 * The emulated account's network: one VPC with one subnet per zone and the
 * VPC's default security group, as a new AWS account's default VPC has. Ids
 * are hashes of the region and zone names, so they are the same in every run
 * and draw nothing from the seed. Instance profiles are accepted by name or
 * ARN without checking (no IAM is modelled).
 */

export interface EmulatedSubnet {
  id: string;
  zone: string;
  cidr: string;
}

export interface EmulatedNetwork {
  vpcId: string;
  subnets: EmulatedSubnet[];
  defaultGroupId: string;
}

/** Where one launch goes: the subnet (so the zone), security groups and instance profile. */
export interface LaunchNetwork {
  subnet: EmulatedSubnet;
  groupIds: string[];
  profileArn: string | undefined;
}

export function hashId(prefix: string, text: string): string {
  return `${prefix}-0${createHash('sha256').update(text).digest('hex').slice(0, 16)}`;
}

export function emulatedNetwork(region: string, zones: readonly string[]): EmulatedNetwork {
  return {
    vpcId: hashId('vpc', region),
    subnets: zones.map((zone, i) => ({ id: hashId('subnet', `${region}/${zone}`), zone, cidr: `172.31.${i * 16}.0/20` })),
    defaultGroupId: hashId('sg', `${region}/default`),
  };
}
