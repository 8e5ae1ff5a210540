import type { Clock, Rng } from '../../world/types.js';
import { CloudError, type Cloud, type CloudInstance, type CloudSnapshot, type CloudVolume } from '../../ports/cloud.js';
import { isRetryable, withRetry } from './retry.js';

/**
 * Tear down everything one run created, found by its `spillway:run` tag:
 * terminate instances, detach and delete volumes, delete snapshots. The plan
 * is computed (and shown) before anything is touched, and execution does what
 * the plan says, resource by resource: one that fails or will not change
 * state is reported and the others still go. Root volumes (delete on
 * termination) go with their instance and are only checked for. A last look
 * by tag reports anything left.
 */

export const RUN_TAG_KEY = 'spillway:run';

export interface CleanupPlan {
  runId: string;
  instances: CloudInstance[];
  volumes: CloudVolume[];
  snapshots: CloudSnapshot[];
}

export interface CleanupFailure {
  id: string;
  action: 'terminate' | 'detach' | 'delete';
  code: string;
  message: string;
}

export interface CleanupResult {
  terminated: string[];
  detached: string[];
  deletedVolumes: string[];
  /** Root volumes that went away with their instance. */
  deletedWithInstance: string[];
  deletedSnapshots: string[];
  /** Calls EC2 refused (after retries); the rest of the plan went ahead. */
  failed: CleanupFailure[];
  /** Ids still present after the deadline (empty on success). */
  leftover: string[];
}

const LIVE_INSTANCE_STATES = ['pending', 'running', 'stopping', 'stopped', 'shutting-down'] as const;
const NOT_FOUND = new Set(['InvalidInstanceID.NotFound', 'InvalidVolume.NotFound', 'InvalidSnapshot.NotFound']);

export async function planCleanup(cloud: Cloud, runId: string): Promise<CleanupPlan> {
  const tags = { [RUN_TAG_KEY]: runId };
  const [instances, volumes, snapshots] = [
    await cloud.describeInstances({ tags, states: [...LIVE_INSTANCE_STATES] }),
    (await cloud.describeVolumes({ tags })).filter((v) => v.state !== 'deleted' && v.state !== 'deleting'),
    await cloud.describeSnapshots({ tags }),
  ];
  return { runId, instances, volumes, snapshots };
}

/** A volume that EC2 deletes itself when the planned instance it is attached to terminates. */
function goesWithInstance(v: CloudVolume, instanceIds: ReadonlySet<string>): boolean {
  return v.deleteOnTermination === true && v.attachedTo !== undefined && instanceIds.has(v.attachedTo);
}

export function describePlan(plan: CleanupPlan): string[] {
  const lines: string[] = [];
  const ours = new Set(plan.instances.map((i) => i.id));
  for (const i of plan.instances) lines.push(`terminate instance ${i.id} (${i.type}, ${i.state}, ${i.zone})`);
  for (const v of plan.volumes) {
    if (goesWithInstance(v, ours)) {
      lines.push(`volume ${v.id} (${v.sizeGiB} GiB ${v.type}) goes with instance ${v.attachedTo} (delete on termination)`);
      continue;
    }
    if (v.attachedTo) lines.push(`detach volume ${v.id} from ${v.attachedTo}`);
    lines.push(`delete volume ${v.id} (${v.sizeGiB} GiB ${v.type}, ${v.state})`);
  }
  for (const s of plan.snapshots) lines.push(`delete snapshot ${s.id} (of ${s.volumeId}, ${s.state})`);
  return lines;
}

/** The command that removes what a run left. */
export function cleanupCommand(runId: string, region: string): string {
  return `npx spillway cloud cleanup --run ${runId} --region ${region} --yes`;
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
  // NotFound is an answer here (the resource is gone), never a reason to wait and ask again.
  const retry = <T>(op: () => Promise<T>): Promise<T> =>
    withRetry(clock, rng, op, { deadlineUs, retryable: (e) => isRetryable(e) && !(e instanceof CloudError && NOT_FOUND.has(e.code)) });
  const result: CleanupResult = { terminated: [], detached: [], deletedVolumes: [], deletedWithInstance: [], deletedSnapshots: [], failed: [], leftover: [] };
  /** One resource's call; a refusal is recorded and the plan goes on. */
  const attempt = async (id: string, action: CleanupFailure['action'], op: () => Promise<void>): Promise<boolean> => {
    try {
      await retry(op);
      return true;
    } catch (err) {
      if (err instanceof CloudError && NOT_FOUND.has(err.code)) return true;
      result.failed.push({ id, action, code: err instanceof CloudError ? err.code : 'E_UNKNOWN', message: err instanceof Error ? err.message : String(err) });
      onStep(`could not ${action} ${id}: ${err instanceof Error ? err.message : String(err)}`);
      return false;
    }
  };

  const instanceIds = plan.instances.map((i) => i.id);
  for (let i = 0; i < instanceIds.length; i += 50) {
    const batch = instanceIds.slice(i, i + 50);
    const batchDone = await retry(() => cloud.terminateInstances(batch)).then(() => true, () => false);
    if (batchDone) {
      result.terminated.push(...batch);
      onStep(`terminating ${batch.join(', ')}`);
      continue;
    }
    // EC2 refuses the whole call for one bad id: one instance it will not terminate must not keep the others running.
    for (const id of batch) {
      if (await attempt(id, 'terminate', () => cloud.terminateInstances([id]))) {
        result.terminated.push(id);
        onStep(`terminating ${id}`);
      }
    }
  }
  const terminating = new Set(result.terminated);
  // A volume attached to an instance that is not ours must be detached; ours detach on termination.
  for (const v of plan.volumes) {
    if (v.attachedTo && !instanceIds.includes(v.attachedTo) && v.state === 'in-use') {
      if (await attempt(v.id, 'detach', () => cloud.detachVolume(v.id))) {
        result.detached.push(v.id);
        onStep(`detaching ${v.id}`);
      }
    }
  }
  const tags = { [RUN_TAG_KEY]: plan.runId };
  if (terminating.size) {
    await waitFor(clock, pollUs, deadlineUs, async () => {
      const alive = await retry(() => cloud.describeInstances({ tags, states: [...LIVE_INSTANCE_STATES] }));
      return !alive.some((i) => terminating.has(i.id));
    });
  }
  const withInstance = new Set(plan.volumes.filter((v) => goesWithInstance(v, terminating)).map((v) => v.id));
  const pending = new Set(plan.volumes.map((v) => v.id));
  await waitFor(clock, pollUs, deadlineUs, async () => {
    const now = new Map((await retry(() => cloud.describeVolumes({ tags }))).map((v) => [v.id, v]));
    for (const id of [...pending]) {
      const v = now.get(id);
      if (!v || v.state === 'deleted' || v.state === 'deleting') {
        pending.delete(id);
        if (withInstance.has(id)) result.deletedWithInstance.push(id);
        continue;
      }
      if (withInstance.has(id) || v.state !== 'available') continue;
      pending.delete(id);
      if (await attempt(id, 'delete', () => cloud.deleteVolume(id))) {
        result.deletedVolumes.push(id);
        onStep(`deleting ${id}`);
      }
    }
    return pending.size === 0;
  });
  for (const s of plan.snapshots) {
    if (await attempt(s.id, 'delete', () => cloud.deleteSnapshot(s.id))) {
      result.deletedSnapshots.push(s.id);
      onStep(`deleting ${s.id}`);
    }
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
