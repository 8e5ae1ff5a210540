import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { serveLoopbackEc2, type LoopbackEc2 } from './helpers/loopback-ec2.js';

/**
 * `spillway run --cloud aws` as an operator runs it, against the emulated EC2
 * on a real HTTP server on 127.0.0.1 (AWS_ENDPOINT_URL_EC2): the SDK's own
 * credential chain and endpoint resolution, real time, another process. The
 * live path checks the image and zones before the run, launches into the
 * region it was given, and ends by cleaning up its run id.
 */
const ROOT = join(import.meta.dirname, '..');
const FIXTURE = 'test/fixtures/live/live-trial.yaml';

type Ran = { status: number | null; stdout: string; stderr: string };

function spillway(endpoint: string, args: string[], whileRunning?: (child: ChildProcess) => void): Promise<Ran> {
  const home = mkdtempSync(join(tmpdir(), 'spillway-loopback-'));
  const env: NodeJS.ProcessEnv = {
    ...process.env, HOME: home, AWS_EC2_METADATA_DISABLED: 'true', AWS_CONFIG_FILE: join(home, 'none'), AWS_SHARED_CREDENTIALS_FILE: join(home, 'none'),
    // Not secrets: the loopback EC2 checks no signature.
    AWS_ACCESS_KEY_ID: 'AKIASPILLWAYLOOPBACK', AWS_SECRET_ACCESS_KEY: 'loopback-not-a-secret', AWS_ENDPOINT_URL_EC2: endpoint,
  };
  for (const k of ['AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_ENDPOINT_URL', 'AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_CONTAINER_CREDENTIALS_FULL_URI', 'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI']) delete env[k];
  // Asynchronous: the loopback EC2 answers from this process's event loop.
  const child = spawn(process.execPath, ['bin/spillway.js', 'run', FIXTURE, '--cloud', 'aws', ...args], { cwd: ROOT, env });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => { stdout += c.toString('utf8'); });
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString('utf8'); });
  whileRunning?.(child);
  return new Promise((resolve) => child.on('close', (status) => resolve({ status, stdout, stderr })));
}

const REGION = { region: 'eu-west-1', zones: ['eu-west-1a', 'eu-west-1b'], consistencyWindowMs: 0 };
let ec2: LoopbackEc2 | undefined;
afterEach(async () => {
  await ec2?.close();
  ec2 = undefined;
});

describe('spillway run --cloud aws against a loopback EC2', () => {
  it('a --until trial launches into the given region from the tagged staging image, then cleans up and leaves nothing', async () => {
    ec2 = await serveLoopbackEc2({ ...REGION, boot: { meanS: 2, sdS: 0 } });
    const r = await spillway(ec2.endpoint, ['--region', 'eu-west-1', '--until', '60s']);
    expect(r.stdout).toMatch(/live cloud: AWS EC2 in eu-west-1, run id spillway-1-[0-9a-f]{8}/);
    expect(r.stdout).toContain('staging image ami-0a5ba6e0c57a9e001 (spillway-staging-2026.11, x86_64); zones eu-west-1a, eu-west-1b');
    const launches = ec2.actions.filter((a) => a === 'RunInstances').length;
    expect(launches).toBeGreaterThan(0);
    expect(r.stderr).toMatch(/terminate instance i-[0-9a-f]{17} \([a-z0-9.]+, \w+, eu-west-1[ab]\)/);
    expect(r.stderr).toMatch(/cleanup: nothing tagged spillway:run=spillway-1-[0-9a-f]{8} is left in eu-west-1/);
    expect(ec2.model.liveResourceIds()).toEqual([]);
    // A trial cut short is judged on what it did so far: here the batch is not finished.
    expect(r.status).toBe(1);
    expect(r.stdout + r.stderr).not.toContain('replay:');
  }, 240_000);

  it('Ctrl-C during a live run cleans up what it launched before it exits', async () => {
    ec2 = await serveLoopbackEc2({ ...REGION, boot: { meanS: 2, sdS: 0 } });
    const loopback = ec2;
    const r = await spillway(loopback.endpoint, ['--region', 'eu-west-1', '--until', '10m'], (child) => {
      const poll = setInterval(() => {
        if (!loopback.actions.includes('RunInstances')) return;
        clearInterval(poll);
        child.kill('SIGINT');
      }, 200);
      child.on('close', () => clearInterval(poll));
    });
    expect(r.stderr).toMatch(/SIGINT: stopping the live run; cleaning up spillway:run=spillway-1-[0-9a-f]{8} first/);
    expect(r.stderr).toMatch(/terminate instance i-[0-9a-f]{17}/);
    expect(r.stderr).toMatch(/cleanup: nothing tagged spillway:run=spillway-1-[0-9a-f]{8} is left in eu-west-1/);
    expect(r.status).toBe(130);
    expect(loopback.model.liveResourceIds()).toEqual([]);
  }, 240_000);

  it('refuses to start without a staging image, before anything is launched, and says what to do', async () => {
    ec2 = await serveLoopbackEc2({ ...REGION, images: [{ id: 'ami-0c5ba6e0c57a9e003', name: 'other', tags: {} }] });
    const r = await spillway(ec2.endpoint, ['--region', 'eu-west-1']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('no image of this account is tagged spillway:role=staging in this region');
    expect(r.stderr).toContain('--image');
    expect(ec2.actions).not.toContain('RunInstances');
  }, 60_000);

  it('refuses a --subnet that does not exist, naming it, before anything is launched', async () => {
    ec2 = await serveLoopbackEc2(REGION);
    const r = await spillway(ec2.endpoint, ['--region', 'eu-west-1', '--subnet', 'subnet-0123456789abcdef0']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('InvalidSubnetID.NotFound');
    expect(ec2.actions).not.toContain('RunInstances');
  }, 60_000);
});
