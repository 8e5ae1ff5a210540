import type { Scenario } from '../scenario/schema.js';
import { cleanupCommand, describePlan, executeCleanup, planCleanup } from '../providers/aws/cleanup.js';
import { prepareLaunch } from '../providers/aws/launch-setup.js';
import { openLiveCloud, type OpenCloudOptions } from '../providers/open-cloud.js';
import { secretBytes } from '../world/live-random.js';
import { LiveWorld } from '../world/live-world.js';
import type { CommandIo } from './command.js';

/**
 * The live-cloud ends of `spillway run --cloud aws`: before the run, check
 * with EC2 what the run will launch from and into (the staging AMI by tag,
 * the region's zones or the given subnets, security groups); after it, clean
 * up everything tagged with the run id, and say exactly what is left and how
 * to remove it.
 */

export interface LiveFlags {
  region: string;
  profile?: string;
  image?: string;
  subnets?: string[];
  securityGroups?: string[];
  instanceProfile?: string;
  recordFile?: string;
}

export interface LiveRun {
  runId: string;
  /** The scenario with the cloud the run really uses: region, zones and the checked staging image. */
  scenario: Scenario;
  cloudOptions: OpenCloudOptions;
}

export async function prepareLiveRun(scenario: Scenario, seed: number, flags: LiveFlags, say: (line: string) => void): Promise<LiveRun> {
  const runId = `spillway-${seed}-${secretBytes(4).toString('hex')}`;
  const base: OpenCloudOptions = { cloud: 'aws', region: flags.region, ...(flags.profile ? { profile: flags.profile } : {}) };
  say(`live cloud: AWS EC2 in ${flags.region}, run id ${runId}; paced to real time, not reproducible by seed`);
  // Fail before the run rather than hours into it: credentials, region, image and network are checked now.
  const probe = openLiveCloud(new LiveWorld(seed, () => {}), { ...scenario.cloud, region: flags.region }, runId, base);
  let target;
  try {
    target = await prepareLaunch(probe, {
      ...(flags.image ? { imageId: flags.image } : {}),
      ...(flags.subnets?.length ? { subnetIds: flags.subnets } : {}),
      ...(flags.securityGroups?.length ? { securityGroupIds: flags.securityGroups } : {}),
      ...(flags.instanceProfile ? { instanceProfile: flags.instanceProfile } : {}),
    });
  } finally {
    probe.dispose();
  }
  const { image, zones } = target;
  say(`staging image ${image.id} (${image.name}, ${image.architecture}${image.bootMode ? `, ${image.bootMode}` : ''}); zones ${zones.join(', ')}${target.launch.subnetByZone ? ' (from --subnet)' : ''}`);
  say(`clean up with: ${cleanupCommand(runId, flags.region)}`);
  return {
    runId,
    scenario: { ...scenario, cloud: { ...scenario.cloud, region: flags.region, zones, images: [{ id: image.id, name: image.name, tags: image.tags }] } },
    cloudOptions: {
      ...base, stagingImage: image, launch: target.launch,
      ...(flags.recordFile ? { recordFile: flags.recordFile } : {}),
    },
  };
}

/** Remove what the run left; true when nothing tagged with its id is left. */
export async function cleanUpLiveRun(run: LiveRun, io: CommandIo): Promise<boolean> {
  const world = new LiveWorld();
  const region = run.scenario.cloud.region;
  const cloud = openLiveCloud(world, run.scenario.cloud, run.runId, { ...run.cloudOptions, recordFile: undefined });
  try {
    const plan = await planCleanup(cloud, run.runId);
    const steps = describePlan(plan);
    if (steps.length === 0) {
      io.err(`cleanup: nothing tagged spillway:run=${run.runId} is left in ${region}`);
      return true;
    }
    io.err(`cleanup: ${steps.length} step(s) for spillway:run=${run.runId}:`);
    for (const line of steps) io.err(`  ${line}`);
    const result = await executeCleanup(cloud, plan, { clock: world.clock, rng: world.rng('cloud/cleanup'), onStep: (line) => io.err(`  ${line}`) });
    for (const f of result.failed) io.err(`cleanup: ${f.action} ${f.id} refused: ${f.code}`);
    if (result.leftover.length === 0) {
      io.err(`cleanup: nothing tagged spillway:run=${run.runId} is left in ${region}`);
      return true;
    }
    io.err(`cleanup: still present: ${result.leftover.join(', ')}`);
    io.err(`remove them with: ${cleanupCommand(run.runId, region)}`);
    return false;
  } catch (err) {
    io.err(`cleanup failed (${err instanceof Error ? err.message : String(err)}); remove what is left with: ${cleanupCommand(run.runId, region)}`);
    return false;
  } finally {
    cloud.dispose();
  }
}

/**
 * While a live run goes, Ctrl-C (SIGINT) or SIGTERM cleans up its run id
 * before the process exits: 130 or 143 when nothing is left, 3 when something
 * is (the message names it and the command that removes it). A launch that
 * lands while the cleanup runs is caught by its last look. Returns the
 * function that removes the handlers.
 */
export function cleanUpOnSignal(run: LiveRun, io: CommandIo, exit: (code: number) => void = (code) => process.exit(code)): () => void {
  let started = false;
  const handler = (signal: NodeJS.Signals): void => {
    if (started) return;
    started = true;
    io.err(`${signal}: stopping the live run; cleaning up spillway:run=${run.runId} first`);
    void cleanUpLiveRun(run, io).then((clean) => exit(clean ? (signal === 'SIGINT' ? 130 : 143) : 3));
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}

/** The run's work; if it throws, what it launched is cleaned up before the error goes on. */
export async function cleaningUpOnFailure<T>(run: LiveRun | null, io: CommandIo, work: () => Promise<T>): Promise<T> {
  if (!run) return work();
  try {
    return await work();
  } catch (err) {
    io.err(`the live run failed (${err instanceof Error ? err.message : String(err)}); cleaning up spillway:run=${run.runId}`);
    await cleanUpLiveRun(run, io);
    throw err;
  }
}
