import type { Clock, Rng } from '../../world/types.js';
import { CloudError, type Cloud, type CloudInstance, type CloudSnapshot, type CloudVolume } from '../../ports/cloud.js';
import { withRetry } from './retry.js';

/**
 * Tear down everything one run created, found by its `spillway:run` tag:
 * terminate instances, detach and delete volumes, delete snapshots. The plan
 * is computed (and shown) before anything is touched; execution retries on
 * the World clock and verifies that nothing tagged is left.
 */

export const RUN_TAG_KEY = 'spillway:run';

export interface CleanupPlan {
  runId: string;
  instances: CloudInstance[];
  volumes: CloudVolume[];
  snapshots: CloudSnapshot[];
}

export interface CleanupResult {
  terminated: string[];
  detached: string[];
  deletedVolumes: string[];
  deletedSnapshots: string[];
  /** Ids still present after the deadline (empty on success). */
  leftover: string[];
}

const LIVE_INSTANCE_STATES = ['pending', 'running', 'stopping', 'stopped', 'shutting-down'] as const;

export async function planCleanup(cloud: Cloud, runId: string): Promise<CleanupPlan> {
  const tags = { [RUN_TAG_KEY]: runId };
  const [instances, volumes, snapshots] = [
    await cloud.describeInstances({ tags, states: [...LIVE_INSTANCE_STATES] }),
    (await cloud.describeVolumes({ tags })).filter((v) => v.state !== 'deleted' && v.state !== 'deleting'),
    await cloud.describeSnapshots({ tags }),
  ];
  return { runId, instances, volumes, snapshots };
}

export function describePlan(plan: CleanupPlan): string[] {
  const lines: string[] = [];
  for (const i of plan.instances) lines.push(`terminate instance ${i.id} (${i.type}, ${i.state}, ${i.zone})`);
  for (const v of plan.volumes) {
    if (v.attachedTo) lines.push(`detach volume ${v.id} from ${v.attachedTo}`);
    lines.push(`delete volume ${v.id} (${v.sizeGiB} GiB ${v.type}, ${v.state})`);
  }
  for (const s of plan.snapshots) lines.push(`delete snapshot ${s.id} (of ${s.volumeId}, ${s.state})`);
  return lines;
}

export interface CleanupOptions {
  clock: Clock;
  rng: Rng;
  /** How often to look again while waiting for state changes. */
  pollUs?: number;
  /** Give up waiting after this long (then report leftovers). */
  timeoutUs?: number;
  onStep?: (line: string) => void;
}

export async function executeCleanup(cloud: Cloud, plan: CleanupPlan, options: CleanupOptions): Promise<CleanupResult> {
  const { clock, rng, pollUs = 5_000_000, timeoutUs = 15 * 60_000_000, onStep = () => undefined } = options;
  const deadlineUs = clock.nowUs() + timeoutUs;
  const retry = <T>(op: () => Promise<T>): Promise<T> => withRetry(clock, rng, op, { deadlineUs });
  const result: CleanupResult = { terminated: [], detached: [], deletedVolumes: [], deletedSnapshots: [], leftover: [] };

  const instanceIds = plan.instances.map((i) => i.id);
  for (let i = 0; i < instanceIds.length; i += 50) {
    const batch = instanceIds.slice(i, i + 50);
    await retry(() => cloud.terminateInstances(batch));
    result.terminated.push(...batch);
    onStep(`terminating ${batch.join(', ')}`);
  }
  // A volume attached to an instance that is not ours must be detached; ours detach on termination.
  for (const v of plan.volumes) {
    if (v.attachedTo && !instanceIds.includes(v.attachedTo) && v.state === 'in-use') {
      await retry(() => cloud.detachVolume(v.id));
      result.detached.push(v.id);
      onStep(`detaching ${v.id}`);
    }
  }
  if (instanceIds.length) {
    await waitFor(clock, pollUs, deadlineUs, async () => {
      const left = await retry(() => cloud.describeInstances({ ids: instanceIds }));
      return left.every((i) => i.state === 'terminated');
    });
  }
  const pendingVolumes = new Set(plan.volumes.map((v) => v.id));
  await waitFor(clock, pollUs, deadlineUs, async () => {
    for (const id of [...pendingVolumes]) {
      let state: string;
      try {
        const [v] = await retry(() => cloud.describeVolumes({ ids: [id] }));
        state = v?.state ?? 'deleted';
      } catch (err) {
        if (err instanceof CloudError && err.code === 'InvalidVolume.NotFound') state = 'deleted';
        else throw err;
      }
      if (state === 'deleted') { pendingVolumes.delete(id); continue; }
      if (state !== 'available') continue;
      await retry(() => cloud.deleteVolume(id));
      result.deletedVolumes.push(id);
      pendingVolumes.delete(id);
      onStep(`deleting ${id}`);
    }
    return pendingVolumes.size === 0;
  });
  for (const s of plan.snapshots) {
    await retry(() => cloud.deleteSnapshot(s.id));
    result.deletedSnapshots.push(s.id);
    onStep(`deleting ${s.id}`);
  }
  // Verify with a fresh look: nothing tagged may remain.
  const after = await waitForEmpty(cloud, plan.runId, clock, pollUs, deadlineUs, retry);
  result.leftover = [...after.instances.map((i) => i.id), ...after.volumes.map((v) => v.id), ...after.snapshots.map((s) => s.id)];
  return result;
}

async function waitForEmpty(cloud: Cloud, runId: string, clock: Clock, pollUs: number, deadlineUs: number, retry: <T>(op: () => Promise<T>) => Promise<T>): Promise<CleanupPlan> {
  let plan = await retry(() => planCleanup(cloud, runId));
  while (plan.instances.length + plan.volumes.length + plan.snapshots.length > 0 && clock.nowUs() + pollUs <= deadlineUs) {
    await clock.sleepUs(pollUs);
    plan = await retry(() => planCleanup(cloud, runId));
  }
  return plan;
}

/** Poll until `done`; false when the deadline came first (the leftovers are then reported, not thrown). */
async function waitFor(clock: Clock, pollUs: number, deadlineUs: number, done: () => Promise<boolean>): Promise<boolean> {
  while (!(await done())) {
    if (clock.nowUs() + pollUs > deadlineUs) return false;
    await clock.sleepUs(pollUs);
  }
  return true;
}
