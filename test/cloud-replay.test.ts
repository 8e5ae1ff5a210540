import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseFixture, type FixtureHeader, type WireRecord } from '../src/providers/aws/recorder.js';
import { createReplayCloud } from '../src/providers/aws/replay.js';
import { CloudError } from '../src/ports/cloud.js';
import { parseCloudConfig } from '../src/scenario/cloud.js';
import { createEmulatedCloud } from '../src/providers/emulated/ec2/emulated-cloud.js';
import { SimWorld } from '../src/world/sim-world.js';
import { STORMY, burstScript } from './cloud-script.js';

/**
 * The committed fixture was recorded from the emulator (this machine has no
 * route to AWS): `SPILLWAY_WRITE_FIXTURES=1 npx vitest run test/cloud-replay.test.ts`
 * rewrites it. A recording made live with `spillway cloud … --record` has the
 * same format and replays through the same adapter.
 */
const FIXTURE = join(import.meta.dirname, 'fixtures', 'ec2-burst.jsonl');
const SEED = 2026;

async function drive<T>(world: SimWorld, body: () => Promise<T>): Promise<T> {
  let outcome: { ok: true; value: T } | { ok: false; error: unknown } | undefined;
  void body().then((value) => { outcome = { ok: true, value }; }, (error: unknown) => { outcome = { ok: false, error }; });
  await world.run();
  if (!outcome) throw new Error('body never finished');
  if (!outcome.ok) throw outcome.error;
  return outcome.value;
}

async function recordFromEmulator(): Promise<{ text: string; result: Record<string, unknown>; hash: string }> {
  const world = new SimWorld(SEED);
  const records: WireRecord[] = [];
  const cloud = createEmulatedCloud(world, parseCloudConfig(STORMY), 'run-fixture', { record: (r) => records.push(r) });
  try {
    const result = await drive(world, () => burstScript(cloud, world));
    const header: FixtureHeader = { fixture: 'spillway-ec2-wire', version: 1, source: 'emulator', region: 'us-east-1', note: 'test/cloud-script.ts burstScript, seed 2026, STORMY cloud' };
    return { text: [header, ...records].map((l) => JSON.stringify(l)).join('\n') + '\n', result, hash: world.trace.hash() };
  } finally {
    cloud.dispose();
  }
}

describe('record and replay', () => {
  it('the committed fixture replays through the same adapter, call for call, with the same trace', async () => {
    const fresh = await recordFromEmulator();
    if (process.env.SPILLWAY_WRITE_FIXTURES === '1') writeFileSync(FIXTURE, fresh.text);
    const text = readFileSync(FIXTURE, 'utf8');
    const { records } = parseFixture(text);
    expect(records.length).toBeGreaterThan(40);
    expect(records.some((r) => r.status >= 400)).toBe(true);

    const world = new SimWorld(SEED);
    const replay = createReplayCloud(world, text, 'run-fixture', { where: FIXTURE });
    try {
      const result = await drive(world, () => burstScript(replay, world));
      expect(replay.remaining).toBe(0);
      expect(result).toEqual(fresh.result);
      expect(world.trace.hash()).toBe(fresh.hash);
    } finally {
      replay.dispose();
    }
    // The emulator still answers what was recorded: a drift here means the emulator changed behaviour.
    expect(fresh.text).toBe(text);
  });

  it('a call the recording does not expect fails loudly, naming what was expected', async () => {
    const text = readFileSync(FIXTURE, 'utf8');
    const world = new SimWorld(SEED);
    const replay = createReplayCloud(world, text, 'run-fixture');
    try {
      const err = await drive(world, () => replay.describeVolumes().then(() => undefined, (e: unknown) => e));
      expect(err).toBeInstanceOf(CloudError);
      expect((err as CloudError).code).toBe('SpillwayReplayMismatch');
      expect((err as CloudError).message).toContain('expected DescribeInstanceTypes');
    } finally {
      replay.dispose();
    }
  });

  it('recordings keep no secrets: no user data, no signatures, account ids masked', () => {
    const text = readFileSync(FIXTURE, 'utf8');
    expect(text).not.toMatch(/AKIA|Signature|Credential=|authorization|not-a-secret/i);
    expect(text).not.toContain('#cloud-config');
    expect(text).toContain('"UserData":"<redacted');
    expect(text).toContain('<ownerId>000000000000</ownerId>');
  });

  it('a malformed fixture is refused with the line that is wrong', () => {
    expect(() => parseFixture('{"fixture":"other"}\n')).toThrow(/line 1/);
    expect(() => parseFixture('{"fixture":"spillway-ec2-wire","version":1,"source":"aws","region":"us-east-1"}\n{"action":1}\n')).toThrow(/line 2/);
  });
});
