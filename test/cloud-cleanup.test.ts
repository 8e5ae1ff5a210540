import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createCloudCommand } from '../src/cli/cloud.js';
import { describePlan, executeCleanup, planCleanup } from '../src/providers/aws/cleanup.js';
import { parseCloudConfig } from '../src/scenario/cloud.js';
import { createEmulatedCloud, type EmulatedEc2Cloud } from '../src/providers/emulated/ec2/emulated-cloud.js';
import { Ec2Cloud } from '../src/providers/aws/ec2-cloud.js';
import { EMULATED_CREDENTIALS } from '../src/providers/emulated/ec2/emulated-cloud.js';
import { SimWorld } from '../src/world/sim-world.js';
import { inSim, until } from './cloud-helpers.js';

const STAGING = 'ami-0a5ba6e0c57a9e001';

/** Run A: 2 instances (one stopped), an attached and a loose volume, a snapshot. Run B: one instance with a volume. */
async function populate(a: EmulatedEc2Cloud, b: Ec2Cloud, world: SimWorld) {
  const insts = await a.runInstances({ clientToken: 'a1', imageId: STAGING, instanceType: 'm6i.large', zone: 'us-east-1a', count: 2 });
  const [bInst] = await b.runInstances({ clientToken: 'b1', imageId: STAGING, instanceType: 'c6i.large', zone: 'us-east-1a', count: 1 });
  const ids = [...insts.map((i) => i.id), bInst!.id];
  await until(world, async () => (await a.describeInstances({ ids })).every((i) => i.state === 'running'));
  await a.stopInstances([insts[1]!.id]);
  const attached = await a.createVolume({ sizeGiB: 50, zone: 'us-east-1a' });
  const loose = await a.createVolume({ sizeGiB: 20, zone: 'us-east-1a' });
  // Run A's volume on run B's instance: cleanup must detach it rather than wait for a termination.
  const crossed = await a.createVolume({ sizeGiB: 5, zone: 'us-east-1a' });
  const bVol = await b.createVolume({ sizeGiB: 30, zone: 'us-east-1a' });
  const vols = [attached.id, loose.id, crossed.id, bVol.id];
  await until(world, async () => (await a.describeVolumes({ ids: vols })).every((v) => v.state === 'available'));
  await a.attachVolume(attached.id, insts[0]!.id, '/dev/sdf');
  await a.attachVolume(crossed.id, bInst!.id, '/dev/sdf');
  await b.attachVolume(bVol.id, bInst!.id, '/dev/sdg');
  await a.createSnapshot(loose.id);
  return { bIds: [bInst!.id, bVol.id] };
}

describe('cleanup of a tagged run', () => {
  it('terminates and deletes everything tagged for the run, leaves nothing behind and does not touch another run', async () => {
    const { result, cloud } = await inSim(31, { consistencyWindowMs: 500 }, async (a, world) => {
      const b = new Ec2Cloud({ world, runId: 'run-b', region: 'us-east-1', endpoint: a.endpoint, credentials: EMULATED_CREDENTIALS, sequential: true });
      const { bIds } = await populate(a, b, world);
      const plan = await planCleanup(a, 'run-test');
      const lines = describePlan(plan);
      const done = await executeCleanup(a, plan, { clock: world.clock, rng: world.rng('test/cleanup'), pollUs: 2_000_000 });
      const after = await planCleanup(a, 'run-test');
      const other = await planCleanup(b, 'run-b');
      b.destroy();
      return { plan, lines, done, after, other, bIds };
    });
    expect(result.plan.instances).toHaveLength(2);
    // Three data volumes and the two instances' root volumes.
    expect(result.plan.volumes).toHaveLength(5);
    expect(result.plan.snapshots).toHaveLength(1);
    expect(result.lines.filter((l) => l.startsWith('terminate'))).toHaveLength(2);
    expect(result.lines.filter((l) => l.startsWith('detach'))).toHaveLength(2);
    expect(result.lines.filter((l) => l.includes('(delete on termination)'))).toHaveLength(2);
    expect(result.done.detached).toHaveLength(1);
    expect(result.done.deletedVolumes).toHaveLength(3);
    expect(result.done.deletedWithInstance).toHaveLength(2);
    expect(result.done.failed).toEqual([]);
    expect(result.done.deletedSnapshots).toHaveLength(1);
    expect(result.done.leftover).toEqual([]);
    expect(result.after).toMatchObject({ instances: [], volumes: [], snapshots: [] });
    expect(result.other.instances).toHaveLength(1);
    // Its data volume and its instance's root volume.
    expect(result.other.volumes).toHaveLength(2);
    // The model agrees: only run B's instance and volume are alive.
    const bRoot = result.other.volumes.find((v) => v.deleteOnTermination)!.id;
    expect(cloud.model.liveResourceIds().sort()).toEqual([...result.bIds, bRoot].sort());
  });
});

describe('spillway cloud (against the emulator)', () => {
  function harness(config: unknown = { consistencyWindowMs: 0 }, confirm?: (q: string) => Promise<boolean>) {
    const world = new SimWorld(41);
    const clouds: EmulatedEc2Cloud[] = [];
    const seed = createEmulatedCloud(world, parseCloudConfig(config), 'run-cli');
    clouds.push(seed);
    const out: string[] = [];
    const err: string[] = [];
    const command = createCloudCommand({
      // Every cloud the command makes talks to the seeded model's endpoint.
      createCloud: (o) => new Ec2Cloud({ ...o, endpoint: seed.endpoint, credentials: EMULATED_CREDENTIALS, sequential: true }),
      world: () => world,
      confirm,
      env: {},
    });
    const io = { out: (t: string) => out.push(t), err: (t: string) => err.push(t), errIsTty: false };
    const run = async (args: string[]): Promise<number> => {
      let code = -1;
      void command.run(args, io).then((c) => { code = c; }, (e: unknown) => { err.push(String(e)); code = 99; });
      await world.run();
      return code;
    };
    return { world, seed, out, err, run, dispose: () => clouds.forEach((c) => c.dispose()) };
  }

  it('cleanup shows the plan, refuses without --yes when there is no terminal, and deletes with --yes', async () => {
    const h = harness();
    try {
      let ids: string[] = [];
      void h.seed.runInstances({ clientToken: 'c', imageId: STAGING, instanceType: 'm6i.large', count: 2 }).then((r) => { ids = r.map((i) => i.id); });
      await h.world.run({ untilUs: 60_000_000 });
      expect(await h.run(['cleanup', '--region', 'us-east-1', '--run', 'run-cli'])).toBe(2);
      expect(h.out.join('\n')).toContain(`terminate instance ${ids[0]}`);
      expect(h.err.join('\n')).toContain('--yes');
      // Two instances and their root volumes.
      expect(h.seed.model.liveResourceIds()).toHaveLength(4);
      h.out.length = 0;
      expect(await h.run(['cleanup', '--region', 'us-east-1', '--run', 'run-cli', '--yes'])).toBe(0);
      const text = h.out.join('\n');
      expect(text.indexOf('Plan:')).toBeLessThan(text.indexOf('terminating'));
      expect(text).toContain('nothing tagged spillway:run=run-cli is left');
      expect(h.seed.model.liveResourceIds()).toEqual([]);
      h.out.length = 0;
      expect(await h.run(['cleanup', '--region', 'us-east-1', '--run', 'run-cli'])).toBe(0);
      expect(h.out.join('\n')).toContain('nothing is tagged');
    } finally {
      h.dispose();
    }
  });

  it('cleanup asks on a terminal and does nothing on "no"', async () => {
    const asked: string[] = [];
    const h = harness({ consistencyWindowMs: 0 }, async (q) => { asked.push(q); return false; });
    try {
      void h.seed.createVolume({ sizeGiB: 1, zone: 'us-east-1a' });
      await h.world.run({ untilUs: 30_000_000 });
      expect(await h.run(['cleanup', '--region', 'us-east-1', '--run', 'run-cli'])).toBe(0);
      expect(asked).toHaveLength(1);
      expect(h.out.join('\n')).toContain('nothing done');
      expect(h.seed.model.liveResourceIds()).toHaveLength(1);
    } finally {
      h.dispose();
    }
  });

  it('check prints a DryRun permission table and records a secret-free fixture', async () => {
    const h = harness({ unauthorized: ['TerminateInstances', 'DeleteVolume'], consistencyWindowMs: 0 });
    const file = join(mkdtempSync(join(tmpdir(), 'spillway-cloud-')), 'check.jsonl');
    try {
      const code = await h.run(['check', '--region', 'us-east-1', '--image', STAGING, '--vcpu-quota', '64', '--record', file]);
      const table = h.out.join('\n');
      expect(code).toBe(3);
      expect(table).toMatch(/RunInstances\s+allowed\s+DryRunOperation/);
      expect(table).toMatch(/TerminateInstances\s+denied\s+UnauthorizedOperation/);
      expect(table).toMatch(/DeleteVolume\s+denied/);
      expect(table).toMatch(/StopInstances\s+inconclusive\s+InvalidInstanceID.NotFound/);
      expect(table).toContain('limit: 64 (configured)');
      h.out.length = 0;
      await h.run(['check', '--region', 'us-east-1']);
      expect(h.out.join('\n')).toContain(`checked with image ${STAGING}`);
      expect(h.out.join('\n')).toMatch(/RunInstances\s+allowed/);
      const recorded = readFileSync(file, 'utf8');
      expect(recorded.split('\n')[0]).toContain('"source":"aws"');
      expect(recorded).toContain('"action":"RunInstances"');
      expect(recorded).not.toMatch(/AKIA|Signature|Credential=|X-Amz|spillway-emulated-ec2-not-a-secret/);
      expect(recorded).not.toMatch(/\b(?!000000000000)\d{12}\b/);
    } finally {
      h.dispose();
    }
  });

  it('rejects bad input naming the flag', async () => {
    const h = harness();
    try {
      const io = { out: () => undefined, err: () => undefined, errIsTty: false };
      const command = createCloudCommand({ createCloud: () => { throw new Error('unused'); }, world: () => h.world, confirm: undefined, env: {} });
      await expect(command.run(['cleanup', '--run', 'x'], io)).rejects.toThrow(/--region: required/);
      await expect(command.run(['cleanup', '--region', 'us-east-1'], io)).rejects.toThrow(/--run: required/);
      await expect(command.run(['cleanup', '--region', 'us-east-1', '--run', 'a b'], io)).rejects.toThrow(/--run: expected/);
      await expect(command.run(['check', '--region', 'mars'], io)).rejects.toThrow(/--region: expected an AWS region/);
      await expect(command.run(['check', '--region', 'us-east-1', '--vcpu-quota', 'lots'], io)).rejects.toThrow(/--vcpu-quota/);
      await expect(command.run(['launch', '--region', 'us-east-1'], io)).rejects.toThrow(/unknown subcommand "launch"/);
    } finally {
      h.dispose();
    }
  });
});
