import type { World } from '../../../world/types.js';
import type { CloudConfig } from './config.js';
import { parseTags } from './filters.js';
import { InstanceActions } from './instances.js';
import { NetworkActions } from './network.js';
import { Ec2ApiError, Params, type ParamTree } from './query.js';
import { Ec2State, type ResponseBody } from './state.js';
import { VolumeActions } from './volumes.js';

/** What an emulated account still holds: see Ec2Model.liveResources. */
export interface LiveResources {
  instances: Array<{ id: string; type: string; state: string; owner: string | null; pricePerHour: number | null }>;
  volumes: Array<{ id: string; sizeGiB: number; state: string; attachedTo: string | null }>;
  snapshots: Array<{ id: string }>;
}

/** Whose an instance is, from the tags the machines put on it: a VM, a clone of one, a proxy's peer. */
function ownerOf(tags: Map<string, string>): string | null {
  const vm = tags.get('spillway:vm');
  if (vm) return vm;
  const of = tags.get('spillway:clone-of');
  if (of) return `clone of ${of}`;
  const peer = tags.get('spillway:proxy-peer-of');
  return peer ? `proxy peer of ${peer}` : null;
}

/**
 * A stateful EC2 on the World clock. Every request is applied at the virtual
 * instant it was issued; every state change afterwards (boot, stop, attach,
 * snapshot progress) is a scheduled clock event drawn from the seed, so a
 * seed replays the cloud exactly. The model answers in AWS's own response
 * shapes and error codes; `msw.ts` puts them on the wire. The state and the
 * rules every action shares are in state.ts; the actions in instances.ts and
 * volumes.ts; filters, tags and paging in filters.ts.
 */
export class Ec2Model {
  private readonly s: Ec2State;
  private readonly instances: InstanceActions;
  private readonly volumes: VolumeActions;
  private readonly network: NetworkActions;

  constructor(world: World, readonly config: CloudConfig) {
    this.s = new Ec2State(world, config);
    this.network = new NetworkActions(this.s);
    this.instances = new InstanceActions(this.s, this.network);
    this.volumes = new VolumeActions(this.s);
  }

  newRequestId(): string {
    return this.s.newRequestId();
  }

  /** Apply one request now. Throws Ec2ApiError with AWS's code, message and HTTP status. */
  handle(action: string, tree: ParamTree): ResponseBody {
    const p = new Params(tree);
    this.s.throttle(action);
    if (this.config.unauthorized.includes(action)) {
      throw new Ec2ApiError('UnauthorizedOperation', 'You are not authorized to perform this operation.', 403);
    }
    switch (action) {
      case 'DescribeInstanceTypes': return this.instances.describeInstanceTypes(p);
      case 'DescribeImages': return this.instances.describeImages(p);
      case 'RunInstances': return this.instances.runInstances(p);
      case 'DescribeInstances': return this.instances.describeInstances(p);
      case 'StartInstances': return this.instances.startInstances(p);
      case 'StopInstances': return this.instances.stopInstances(p);
      case 'TerminateInstances': return this.instances.terminateInstances(p);
      case 'ModifyInstanceAttribute': return this.instances.modifyInstanceAttribute(p);
      case 'CreateVolume': return this.volumes.createVolume(p);
      case 'AttachVolume': return this.volumes.attachVolume(p);
      case 'DetachVolume': return this.volumes.detachVolume(p);
      case 'DeleteVolume': return this.volumes.deleteVolume(p);
      case 'DescribeVolumes': return this.volumes.describeVolumes(p);
      case 'CreateSnapshot': return this.volumes.createSnapshot(p);
      case 'DescribeSnapshots': return this.volumes.describeSnapshots(p);
      case 'DeleteSnapshot': return this.volumes.deleteSnapshot(p);
      case 'CreateTags': return this.createTags(p);
      case 'DescribeAvailabilityZones': return this.network.describeAvailabilityZones(p);
      case 'DescribeSubnets': return this.network.describeSubnets(p);
      case 'DescribeSecurityGroups': return this.network.describeSecurityGroups(p);
      default:
        throw new Ec2ApiError('InvalidAction', `The action ${action || '(none)'} is not valid for this web service.`, 400);
    }
  }

  /** Standard-family vCPUs held by pending, running, stopping and shutting-down instances. */
  vcpusInUse(): number {
    return this.s.vcpusInUse();
  }

  /** The user data an instance was launched with, decoded (what the staging image's cloud-init reads). */
  instanceUserData(id: string): string | undefined {
    const data = this.s.instances.get(id)?.userData;
    return data === undefined ? undefined : Buffer.from(data, 'base64').toString('utf8');
  }

  /** Resources still alive (not terminated/deleted), for cleanup checks. */
  liveResourceIds(): string[] {
    const left = this.liveResources();
    return [...left.instances, ...left.volumes, ...left.snapshots].map((r) => r.id);
  }

  /** What is still alive, with what an operator needs to know about each (what it is, whose, what it costs). */
  liveResources(): LiveResources {
    const price = new Map(this.config.catalog.map((c) => [c.type, c.pricePerHour]));
    return {
      instances: [...this.s.instances.values()].filter((i) => i.state !== 'terminated').map((i) => ({
        id: i.id, type: i.type, state: i.state, owner: ownerOf(i.tags), pricePerHour: price.get(i.type) ?? null,
      })),
      volumes: [...this.s.volumes.values()].filter((v) => v.state !== 'deleted').map((v) => ({
        id: v.id, sizeGiB: v.sizeGiB, state: v.state, attachedTo: v.attachment?.instanceId ?? null,
      })),
      snapshots: [...this.s.snapshots.values()].map((sn) => ({ id: sn.id })),
    };
  }

  // ---- tags ---------------------------------------------------------------

  private createTags(p: Params): ResponseBody {
    const ids = p.strList('ResourceId');
    if (ids.length === 0) throw new Ec2ApiError('MissingParameter', 'The request must contain the parameter ResourceId', 400);
    const tags = parseTags(p.structList('Tag'), 'Tag');
    if (tags.size === 0) throw new Ec2ApiError('MissingParameter', 'The request must contain the parameter Tag', 400);
    const targets = ids.map((id) => {
      if (id.startsWith('i-')) return this.s.lookupInstances([id])[0]!.tags;
      if (id.startsWith('vol-')) return this.s.lookupVolume(id).tags;
      if (id.startsWith('snap-')) {
        const snap = this.s.snapshots.get(id);
        if (!snap) throw new Ec2ApiError('InvalidSnapshot.NotFound', `The snapshot '${id}' does not exist.`, 400);
        return snap.tags;
      }
      throw new Ec2ApiError('InvalidID', `The ID '${id}' is not valid`, 400);
    });
    for (const target of targets) {
      const merged = new Set([...target.keys(), ...tags.keys()]);
      if (merged.size > 50) throw new Ec2ApiError('TagLimitExceeded', 'The maximum number of tags per resource (50) would be exceeded.', 400);
    }
    this.s.gate('CreateTags', p);
    for (const target of targets) for (const [k, v] of tags) target.set(k, v);
    return { return: true };
  }
}
