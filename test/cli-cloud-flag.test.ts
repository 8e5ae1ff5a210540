import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
const FIXTURE = 'test/fixtures/live/mini-burst.yaml';

/** Run the CLI with no AWS credentials anywhere and the instance-metadata probe off: nothing may leave the machine. */
function spillway(args: string[]) {
  const home = mkdtempSync(join(tmpdir(), 'spillway-nocreds-'));
  const env: NodeJS.ProcessEnv = { ...process.env, HOME: home, AWS_EC2_METADATA_DISABLED: 'true', AWS_CONFIG_FILE: join(home, 'none'), AWS_SHARED_CREDENTIALS_FILE: join(home, 'none') };
  for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_CONTAINER_CREDENTIALS_FULL_URI', 'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI']) delete env[k];
  return spawnSync(process.execPath, ['bin/spillway.js', 'run', FIXTURE, ...args], { cwd: ROOT, env, encoding: 'utf8', timeout: 120_000 });
}

describe('spillway run --cloud', () => {
  it('refuses an unknown cloud with exit 2, naming the flag and what is allowed', () => {
    const r = spillway(['--cloud', 'gcp']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--cloud: expected "emulated" or "aws", got "gcp"');
  });

  it('checks live AWS credentials before the run starts, and offers no seed replay for a live run', () => {
    const r = spillway(['--cloud', 'aws', '--until', '1h']);
    expect(r.status).toBe(3);
    expect(r.stdout).toMatch(/live cloud: AWS EC2 in us-east-1, run id spillway-1-[0-9a-f]{8}; paced to real time/);
    expect(r.stdout).not.toContain('replay:');
    expect(r.stderr).toContain('[E_CLOUD_CREDENTIALS]');
    expect(r.stderr + r.stdout).not.toMatch(/AKIA|Signature=/);
  });

  it('records the emulated EC2 calls of a burst run as a replayable fixture', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'spillway-record-')), 'calls.jsonl');
    const r = spillway(['--cloud', 'emulated', '--until', '3h', '--record', file]);
    expect(r.stderr).not.toContain('Error');
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const text = JSON.stringify(lines);
    expect(text).toContain('DescribeInstanceTypes');
    expect(text).toContain('RunInstances');
    expect(text).not.toMatch(/AKIA|Signature=|Authorization/);
  });
});
