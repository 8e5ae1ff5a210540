import {
  AttachVolumeCommand, CreateSnapshotCommand, CreateTagsCommand, CreateVolumeCommand, DeleteSnapshotCommand,
  DeleteVolumeCommand, DescribeImagesCommand, DescribeInstancesCommand, DescribeInstanceTypesCommand,
  DescribeSnapshotsCommand, DescribeVolumesCommand, DetachVolumeCommand, ModifyInstanceAttributeCommand,
  RunInstancesCommand, StartInstancesCommand, StopInstancesCommand, TerminateInstancesCommand, type _InstanceType,
} from '@aws-sdk/client-ec2';
import { CloudError } from '../../ports/cloud.js';
import type { Ec2Cloud } from './ec2-cloud.js';

/**
 * `spillway cloud check`: ask EC2 whether these credentials may make each call
 * spillway makes, without doing anything (DryRun). EC2 answers
 * DryRunOperation when allowed and UnauthorizedOperation when not. Calls on a
 * specific resource need a real one to evaluate resource-level policies; with
 * a well-formed id that names nothing EC2 may answer NotFound first, which is reported as
 * inconclusive rather than guessed.
 */

export type PermissionVerdict = 'allowed' | 'denied' | 'inconclusive';

export interface PermissionResult {
  api: string;
  verdict: PermissionVerdict;
  /** The code EC2 answered with. */
  code: string;
}

/** Well-formed ids that name nothing, for DryRun calls that need one. */
const NAMELESS_IDS = { instance: 'i-0000000000000000f', volume: 'vol-0000000000000000f', snapshot: 'snap-0000000000000000f' } as const;

export async function checkPermissions(cloud: Ec2Cloud, target: { imageId?: string; instanceType: string; zone: string }): Promise<PermissionResult[]> {
  const dry = { DryRun: true } as const;
  const type = target.instanceType as _InstanceType;
  const probes: Array<[string, { readonly input: object }]> = [
    ['DescribeInstanceTypes', new DescribeInstanceTypesCommand({ ...dry, InstanceTypes: [type] })],
    ['DescribeImages', new DescribeImagesCommand({ ...dry, Owners: ['self'] })],
    ['DescribeInstances', new DescribeInstancesCommand({ ...dry })],
    ['DescribeVolumes', new DescribeVolumesCommand({ ...dry })],
    ['DescribeSnapshots', new DescribeSnapshotsCommand({ ...dry, OwnerIds: ['self'] })],
    ['RunInstances', new RunInstancesCommand({
      ...dry, ImageId: target.imageId ?? 'ami-0000000000000000f', InstanceType: type, MinCount: 1, MaxCount: 1,
      Placement: { AvailabilityZone: target.zone },
      TagSpecifications: [{ ResourceType: 'instance', Tags: [{ Key: 'spillway:run', Value: 'permission-check' }] }],
    })],
    ['CreateVolume', new CreateVolumeCommand({
      ...dry, Size: 1, VolumeType: 'gp3', AvailabilityZone: target.zone,
      TagSpecifications: [{ ResourceType: 'volume', Tags: [{ Key: 'spillway:run', Value: 'permission-check' }] }],
    })],
    ['StartInstances', new StartInstancesCommand({ ...dry, InstanceIds: [NAMELESS_IDS.instance] })],
    ['StopInstances', new StopInstancesCommand({ ...dry, InstanceIds: [NAMELESS_IDS.instance] })],
    ['TerminateInstances', new TerminateInstancesCommand({ ...dry, InstanceIds: [NAMELESS_IDS.instance] })],
    ['ModifyInstanceAttribute', new ModifyInstanceAttributeCommand({ ...dry, InstanceId: NAMELESS_IDS.instance, InstanceType: { Value: target.instanceType } })],
    ['AttachVolume', new AttachVolumeCommand({ ...dry, VolumeId: NAMELESS_IDS.volume, InstanceId: NAMELESS_IDS.instance, Device: '/dev/sdf' })],
    ['DetachVolume', new DetachVolumeCommand({ ...dry, VolumeId: NAMELESS_IDS.volume })],
    ['DeleteVolume', new DeleteVolumeCommand({ ...dry, VolumeId: NAMELESS_IDS.volume })],
    ['CreateSnapshot', new CreateSnapshotCommand({ ...dry, VolumeId: NAMELESS_IDS.volume })],
    ['DeleteSnapshot', new DeleteSnapshotCommand({ ...dry, SnapshotId: NAMELESS_IDS.snapshot })],
    ['CreateTags', new CreateTagsCommand({ ...dry, Resources: [NAMELESS_IDS.instance], Tags: [{ Key: 'spillway:check', Value: 'dry-run' }] })],
  ];
  const results: PermissionResult[] = [];
  for (const [api, command] of probes) {
    try {
      await cloud.send(api, command);
      // A DryRun call that succeeds means the service ignored DryRun: report it, do not call it allowed.
      results.push({ api, verdict: 'inconclusive', code: 'NoDryRunAnswer' });
    } catch (err) {
      if (!(err instanceof CloudError)) throw err;
      if (err.code === 'DryRunOperation') results.push({ api, verdict: 'allowed', code: err.code });
      else if (err.code === 'UnauthorizedOperation' || err.code === 'AuthFailure') results.push({ api, verdict: 'denied', code: err.code });
      else if (err.code === 'E_CLOUD_CREDENTIALS' || err.code === 'E_CLOUD_TRANSPORT') throw err;
      else results.push({ api, verdict: 'inconclusive', code: err.code });
    }
  }
  return results;
}

export function formatPermissionTable(results: PermissionResult[]): string {
  const width = Math.max(3, ...results.map((r) => r.api.length));
  const lines = [`${'API'.padEnd(width)}  ${'VERDICT'.padEnd(12)}  EC2 ANSWER`];
  for (const r of results) lines.push(`${r.api.padEnd(width)}  ${r.verdict.padEnd(12)}  ${r.code}`);
  const denied = results.filter((r) => r.verdict === 'denied').length;
  const unclear = results.filter((r) => r.verdict === 'inconclusive').length;
  lines.push('', `${results.length - denied - unclear} allowed, ${denied} denied, ${unclear} inconclusive`);
  return lines.join('\n');
}
