import { fieldOf, matchFilters, parseFilters } from './filters.js';
import { Ec2ApiError, invalid, type Params, type XmlValue } from './query.js';
import { hashId, type EmulatedSubnet, type LaunchNetwork } from './network-layout.js';
import { EMULATED_OWNER_ID, type Ec2State, type ResponseBody } from './state.js';

/** DescribeAvailabilityZones, DescribeSubnets, DescribeSecurityGroups, and RunInstances' network parameters. */

export class NetworkActions {
  constructor(private readonly s: Ec2State) {}

  describeAvailabilityZones(p: Params): ResponseBody {
    this.s.gate('DescribeAvailabilityZones', p);
    const filters = parseFilters(p, ['zone-name', 'zone-type', 'state', 'region-name']);
    const names = p.strList('ZoneName');
    const zones = this.s.config.zones.filter((z) => (names.length === 0 || names.includes(z)) && matchFilters(filters, (name) => fieldOf(name, {
      'zone-name': [z], 'zone-type': ['availability-zone'], state: ['available'], 'region-name': [this.s.config.region],
    }, new Map())));
    return {
      availabilityZoneInfo: zones.map((z, i) => ({
        zoneState: 'available', regionName: this.s.config.region, zoneName: z, zoneId: `${zoneIdPrefix(this.s.config.region)}-az${i + 1}`, zoneType: 'availability-zone',
        optInStatus: 'opt-in-not-required', groupName: this.s.config.region, networkBorderGroup: this.s.config.region, messageSet: [],
      })),
    };
  }

  describeSubnets(p: Params): ResponseBody {
    const ids = p.strList('SubnetId');
    for (const id of ids) this.subnet(id);
    this.s.gate('DescribeSubnets', p);
    const filters = parseFilters(p, ['subnet-id', 'availability-zone', 'vpc-id', 'state']);
    const net = this.s.network;
    const chosen = net.subnets.filter((n) => (ids.length === 0 || ids.includes(n.id)) && matchFilters(filters, (name) => fieldOf(name, {
      'subnet-id': [n.id], 'availability-zone': [n.zone], 'vpc-id': [net.vpcId], state: ['available'],
    }, new Map())));
    return {
      subnetSet: chosen.map((n) => ({
        subnetId: n.id, state: 'available', vpcId: net.vpcId, cidrBlock: n.cidr, availableIpAddressCount: 4091,
        availabilityZone: n.zone, defaultForAz: true, mapPublicIpOnLaunch: false, ownerId: EMULATED_OWNER_ID,
      })),
    };
  }

  describeSecurityGroups(p: Params): ResponseBody {
    const ids = p.strList('GroupId');
    for (const id of ids) this.group(id);
    this.s.gate('DescribeSecurityGroups', p);
    const net = this.s.network;
    return {
      securityGroupInfo: [{
        ownerId: EMULATED_OWNER_ID, groupName: 'default', groupId: net.defaultGroupId, groupDescription: 'default VPC security group',
        vpcId: net.vpcId, ipPermissions: [], ipPermissionsEgress: [],
      }],
    };
  }

  /** RunInstances' network parameters, checked as EC2 checks them. */
  launchNetwork(p: Params, requestedZone: string | undefined, fallbackZone: () => string): LaunchNetwork {
    const subnetId = p.optStr('SubnetId');
    const subnet = subnetId !== undefined ? this.subnet(subnetId) : undefined;
    if (subnet && requestedZone !== undefined && requestedZone !== subnet.zone) {
      throw invalid('Placement.AvailabilityZone', requestedZone, `Subnet ${subnet.id} is in ${subnet.zone}.`);
    }
    const groupIds = p.strList('SecurityGroupId');
    for (const id of groupIds) this.group(id);
    const profile = p.struct('IamInstanceProfile');
    const profileArn = profile?.optStr('Arn') ?? (profile?.optStr('Name') !== undefined ? `arn:aws:iam::${EMULATED_OWNER_ID}:instance-profile/${profile.str('Name')}` : undefined);
    const zone = subnet?.zone ?? requestedZone ?? fallbackZone();
    return {
      subnet: subnet ?? this.s.network.subnets.find((n) => n.zone === zone)!,
      groupIds: groupIds.length ? groupIds : [this.s.network.defaultGroupId],
      profileArn,
    };
  }

  /** The groupSet and network fields of an instance in DescribeInstances. */
  instanceFields(net: LaunchNetwork): { [key: string]: XmlValue } {
    return {
      subnetId: net.subnet.id,
      vpcId: this.s.network.vpcId,
      groupSet: net.groupIds.map((groupId) => ({ groupId, groupName: groupId === this.s.network.defaultGroupId ? 'default' : groupId })),
      iamInstanceProfile: net.profileArn ? { arn: net.profileArn, id: hashId('AIPA', net.profileArn).slice(0, 21).toUpperCase() } : undefined,
    };
  }

  private subnet(id: string): EmulatedSubnet {
    if (!/^subnet-[0-9a-f]{8,17}$/.test(id)) throw new Ec2ApiError('InvalidSubnetID.Malformed', `Invalid id: "${id}" (expecting "subnet-...")`, 400);
    const found = this.s.network.subnets.find((n) => n.id === id);
    if (!found) throw new Ec2ApiError('InvalidSubnetID.NotFound', `The subnet ID '${id}' does not exist`, 400);
    return found;
  }

  private group(id: string): void {
    if (!/^sg-[0-9a-f]{8,17}$/.test(id)) throw new Ec2ApiError('InvalidGroupId.Malformed', `Invalid id: "${id}" (expecting "sg-...")`, 400);
    if (id !== this.s.network.defaultGroupId) throw new Ec2ApiError('InvalidGroup.NotFound', `The security group '${id}' does not exist in VPC '${this.s.network.vpcId}'`, 400);
  }
}

/** AWS's zone-id prefix for a region, e.g. us-east-1 → use1, eu-west-1 → euw1. */
function zoneIdPrefix(region: string): string {
  const parts = region.split('-');
  return `${parts[0]}${parts.slice(1, -1).map((p) => p[0]).join('')}${parts[parts.length - 1]}`;
}
