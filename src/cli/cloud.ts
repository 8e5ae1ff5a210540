import { createInterface } from 'node:readline/promises';
import { InputError } from '../errors.js';
import { CloudError } from '../ports/cloud.js';
import { Ec2Cloud } from '../providers/aws/ec2-cloud.js';
import { checkPermissions, formatPermissionTable } from '../providers/aws/permissions.js';
import { fileRecorder, type WireRecord } from '../providers/aws/recorder.js';
import { cleanupCommand, describePlan, executeCleanup, planCleanup } from '../providers/aws/cleanup.js';
import { parseDurationUs } from '../util/units.js';
import { LiveWorld } from '../world/live-world.js';
import type { World } from '../world/types.js';
import { EXIT_BAD_INPUT, EXIT_OK, parseFlags, requirePositional, type Command, type CommandIo } from './command.js';

const USAGE = `Usage:
  spillway cloud check   [--region R] [--profile P] [--image AMI] [--type T] [--zone Z] [--vcpu-quota N] [--record FILE]
  spillway cloud cleanup --run ID [--yes] [--region R] [--profile P] [--timeout 15m] [--record FILE]

Live EC2 tools. Credentials come from the AWS SDK's default chain (environment,
~/.aws/credentials and config, SSO, web identity, container or instance role);
--profile picks a profile. Credentials are never printed, logged or recorded.

  check     asks EC2, with DryRun calls that change nothing, whether these
            credentials may make every call spillway makes, and prints a table.
            --image is the staging AMI to test RunInstances with (default:
            the image tagged spillway:role=staging; with none, a nameless
            id, and RunInstances may come back inconclusive).
  cleanup   lists everything tagged spillway:run=ID (instances, volumes,
            snapshots), shows what it will do, and then terminates and deletes
            it; root volumes go with their instance. A resource EC2 refuses is
            reported and the rest still goes. Without --yes it asks on a
            terminal and refuses otherwise.

  --record FILE   write each call's request parameters and response body as a
                  JSONL fixture (no headers, signatures, user data or account ids)
                  that test/ can replay through the same adapter.
  --vcpu-quota N  your "Running On-Demand Standard instances" vCPU quota
                  (Service Quotas code L-1216C47A); EC2 itself cannot report it.

Exit codes: 0 done, 2 bad input or refused, 3 a cloud error.`;

export interface CloudCommandDeps {
  /** Build the adapter (live: the SDK's default endpoint and credential chain). */
  createCloud(options: { world: World; region: string; profile?: string; runId: string; vcpuLimit?: number; record?: (entry: WireRecord) => void }): Ec2Cloud;
  world(): World;
  /** Ask the operator; resolve true to proceed. Undefined when there is no terminal to ask on. */
  confirm: ((question: string) => Promise<boolean>) | undefined;
  env: Record<string, string | undefined>;
}

export function createCloudCommand(deps: CloudCommandDeps): Command {
  return {
    name: 'cloud',
    summary: 'live cloud tools: check permissions, clean up a run',
    usage: USAGE,
    async run(args: string[], io: CommandIo): Promise<number> {
      const { values, positionals } = parseFlags(args, {
        region: { type: 'string' }, profile: { type: 'string' }, image: { type: 'string' }, type: { type: 'string' },
        zone: { type: 'string' }, 'vcpu-quota': { type: 'string' }, record: { type: 'string' }, run: { type: 'string' },
        yes: { type: 'boolean' }, timeout: { type: 'string' },
      }, USAGE);
      const sub = requirePositional(positionals, 0, 'a subcommand: check or cleanup', USAGE);
      const region = values.region ?? deps.env.AWS_REGION ?? deps.env.AWS_DEFAULT_REGION;
      if (!region) throw new InputError('E_BAD_ARGUMENT', `--region: required (or set AWS_REGION)\n\n${USAGE}`);
      if (!/^[a-z]{2}(-[a-z]+)+-\d$/.test(region)) throw new InputError('E_BAD_ARGUMENT', `--region: expected an AWS region such as us-east-1, got "${region}"`);
      const vcpuLimit = values['vcpu-quota'] === undefined ? undefined : parseCount(values['vcpu-quota'], '--vcpu-quota');
      const world = deps.world();
      const base = {
        world, region,
        ...(values.profile ? { profile: values.profile } : {}),
        ...(vcpuLimit !== undefined ? { vcpuLimit } : {}),
        ...(values.record ? { record: fileRecorder(values.record, { fixture: 'spillway-ec2-wire', version: 1, source: 'aws', region }) } : {}),
      } as const;

      if (sub === 'check') {
        for (const flag of ['run', 'yes', 'timeout'] as const) if (values[flag] !== undefined) throw new InputError('E_BAD_ARGUMENT', `--${flag}: only for cloud cleanup\n\n${USAGE}`);
        const cloud = deps.createCloud({ ...base, runId: 'permission-check' });
        try {
          const imageId = values.image ?? (await findStagingImage(cloud));
          io.out(imageId ? `RunInstances is checked with image ${imageId}` : 'no image tagged spillway:role=staging was found (pass --image): RunInstances is checked with an image id that names nothing and may be inconclusive');
          const results = await checkPermissions(cloud, { ...(imageId ? { imageId } : {}), instanceType: values.type ?? 'm6i.large', zone: values.zone ?? `${region}a` });
          io.out(formatPermissionTable(results));
          const quota = await cloud.vcpuQuota();
          io.out(`vCPU (standard families) in use: ${quota.used}; limit: ${quota.limitSource === 'unknown' ? 'unknown (pass --vcpu-quota; see Service Quotas L-1216C47A)' : `${quota.limit} (${quota.limitSource})`}`);
          return results.some((r) => r.verdict === 'denied') ? 3 : EXIT_OK;
        } finally {
          cloud.destroy();
        }
      }
      if (sub === 'cleanup') {
        const runId = values.run;
        if (!runId) throw new InputError('E_MISSING_ARGUMENT', `--run: required: the run id whose resources to delete\n\n${USAGE}`);
        if (!/^[A-Za-z0-9._:-]{1,128}$/.test(runId)) throw new InputError('E_BAD_ARGUMENT', `--run: expected letters, digits and . _ : - (at most 128), got "${runId}"`);
        const timeoutUs = values.timeout === undefined ? 15 * 60_000_000 : parseDurationUs(values.timeout, '--timeout');
        const cloud = deps.createCloud({ ...base, runId });
        try {
          const plan = await planCleanup(cloud, runId);
          const steps = describePlan(plan);
          if (steps.length === 0) {
            io.out(`nothing is tagged spillway:run=${runId} in ${region}`);
            return EXIT_OK;
          }
          io.out(`spillway:run=${runId} in ${region}: ${plan.instances.length} instance(s), ${plan.volumes.length} volume(s), ${plan.snapshots.length} snapshot(s). Plan:`);
          for (const line of steps) io.out(`  ${line}`);
          if (!values.yes) {
            if (!deps.confirm) {
              io.err('refusing to delete anything: stdin is not a terminal; rerun with --yes to confirm');
              return EXIT_BAD_INPUT;
            }
            if (!(await deps.confirm('Proceed? [y/N] '))) {
              io.out('nothing done');
              return EXIT_OK;
            }
          }
          const result = await executeCleanup(cloud, plan, { clock: world.clock, rng: world.rng('cloud/cleanup'), timeoutUs, onStep: (line) => io.out(line) });
          io.out(`terminated ${result.terminated.length}, detached ${result.detached.length}, deleted ${result.deletedVolumes.length} volume(s) (and ${result.deletedWithInstance.length} with their instance) and ${result.deletedSnapshots.length} snapshot(s)`);
          for (const f of result.failed) io.err(`${f.action} ${f.id} refused: ${f.code}: ${f.message}`);
          if (result.leftover.length) {
            io.err(`still present after the deadline: ${result.leftover.join(', ')}; run again: ${cleanupCommand(runId, region)}`);
            return 3;
          }
          io.out(`nothing tagged spillway:run=${runId} is left`);
          return EXIT_OK;
        } finally {
          cloud.destroy();
        }
      }
      throw new InputError('E_BAD_ARGUMENT', `unknown subcommand "${sub}"; expected check or cleanup\n\n${USAGE}`);
    },
  };
}

function parseCount(text: string, flag: string): number {
  if (!/^\d+$/.test(text)) throw new InputError('E_BAD_ARGUMENT', `${flag}: expected a whole number, got "${text}"`);
  return Number(text);
}

/** The staging AMI, found by its tag; undefined when none is visible (or listing images is not allowed). */
async function findStagingImage(cloud: Ec2Cloud): Promise<string | undefined> {
  try {
    return (await cloud.describeImages({ tags: { 'spillway:role': 'staging' } }))[0]?.id;
  } catch (err) {
    if (err instanceof CloudError && (err.code === 'UnauthorizedOperation' || err.code === 'AuthFailure')) return undefined;
    throw err;
  }
}

async function askOnTerminal(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

export const cloudCommand: Command = createCloudCommand({
  createCloud: (o) => new Ec2Cloud(o),
  world: () => new LiveWorld(),
  confirm: process.stdin.isTTY ? askOnTerminal : undefined,
  env: process.env,
});
