import { InputError } from '../../errors.js';
import type { ImageInfo } from '../../ports/cloud.js';
import type { Ec2Cloud, LaunchSettings } from './ec2-cloud.js';

/**
 * What a live run checks with EC2 before it launches anything: the staging
 * AMI (found by its tag, or named, and able to boot), the region's zones, and
 * the operator's subnets and security groups. Each failure names the flag or
 * tag to fix; nothing here launches or changes anything.
 */

export const STAGING_ROLE_TAG = { 'spillway:role': 'staging' } as const;

export interface LaunchRequest {
  /** `--image`: the staging AMI; absent: the one image of this account tagged spillway:role=staging. */
  imageId?: string;
  /** `--subnet` (repeatable, one per zone). */
  subnetIds?: string[];
  /** `--security-group` (repeatable). */
  securityGroupIds?: string[];
  /** `--instance-profile`: a name or an ARN. */
  instanceProfile?: string;
}

export interface LaunchTarget {
  image: ImageInfo;
  /** The zones launches may go to: the subnets' zones, else the region's. */
  zones: string[];
  launch: LaunchSettings;
}

export async function prepareLaunch(cloud: Ec2Cloud, request: LaunchRequest): Promise<LaunchTarget> {
  const image = await findStagingImage(cloud, request.imageId);
  const launch: LaunchSettings = {
    ...(request.securityGroupIds?.length ? { securityGroupIds: request.securityGroupIds } : {}),
    ...(request.instanceProfile ? { instanceProfile: request.instanceProfile } : {}),
  };
  if (request.subnetIds?.length) {
    const subnets = await cloud.describeSubnets(request.subnetIds);
    const byZone: Record<string, string> = {};
    for (const n of subnets) {
      if (byZone[n.zone]) throw new InputError('E_BAD_ARGUMENT', `--subnet: ${byZone[n.zone]} and ${n.id} are both in ${n.zone}; give one subnet per zone`);
      byZone[n.zone] = n.id;
    }
    const vpcs = [...new Set(subnets.map((n) => n.vpcId))];
    if (vpcs.length > 1) throw new InputError('E_BAD_ARGUMENT', `--subnet: the subnets are in different VPCs (${vpcs.join(', ')}); security groups belong to one VPC`);
    return { image, zones: Object.keys(byZone).sort(), launch: { ...launch, subnetByZone: byZone } };
  }
  const zones = await cloud.describeAvailabilityZones();
  if (zones.length === 0) throw new InputError('E_NO_ZONES', 'EC2 lists no available zone in this region');
  return { image, zones, launch };
}

/**
 * The staging AMI: the one named, or the one image of this account tagged
 * spillway:role=staging. Several tagged images are refused rather than one
 * picked: which one a run boots must not depend on listing order.
 */
export async function findStagingImage(cloud: Ec2Cloud, imageId?: string): Promise<ImageInfo> {
  const found = imageId ? await cloud.describeImages({ ids: [imageId] }) : await cloud.describeImages({ tags: { ...STAGING_ROLE_TAG } });
  if (found.length === 0) {
    throw new InputError('E_NO_STAGING_IMAGE', imageId
      ? `--image: ${imageId} is not visible to this account in this region`
      : 'no image of this account is tagged spillway:role=staging in this region: build and register one (docs/cloud.md), tag it, or pass --image');
  }
  if (found.length > 1) {
    throw new InputError('E_STAGING_IMAGE_AMBIGUOUS', `${found.length} images are tagged spillway:role=staging (${found.map((i) => `${i.id} ${i.name}`).join(', ')}): pass --image to pick one, or untag the others`);
  }
  const image = found[0]!;
  checkStagingImage(image);
  return image;
}

export function checkStagingImage(image: ImageInfo): void {
  const problems: string[] = [];
  if (image.state !== undefined && image.state !== 'available') problems.push(`its state is ${image.state}, not available`);
  if (image.virtualizationType !== undefined && image.virtualizationType !== 'hvm') problems.push(`it is ${image.virtualizationType}; current instance types boot hvm only`);
  if (image.rootDeviceType !== undefined && image.rootDeviceType !== 'ebs') problems.push(`its root device is ${image.rootDeviceType}; it must be ebs to stop and start`);
  if (image.architecture === undefined) problems.push('EC2 does not say its architecture, so no instance type can be matched to it');
  if (problems.length) throw new InputError('E_STAGING_IMAGE_UNUSABLE', `staging image ${image.id} (${image.name}) cannot be used: ${problems.join('; ')}`);
}
