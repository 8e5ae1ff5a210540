import type { World } from '../../world/types.js';
import { registerEndpoint } from '../emulated/ec2/msw.js';
import { EMULATED_CREDENTIALS } from '../emulated/ec2/emulated-cloud.js';
import { errorXml } from '../emulated/ec2/query.js';
import { Ec2Cloud, normalLatencyUs } from './ec2-cloud.js';
import { parseFixture, redactParams, type FixtureHeader, type WireRecord } from './recorder.js';

/**
 * Serve a recording back to the production adapter. Requests must arrive in
 * the recorded order with the recorded parameters (user data compared in its
 * redacted form); a request the recording does not expect is answered with a
 * `SpillwayReplayMismatch` error naming what was expected, so a drifting
 * caller fails loudly instead of reading someone else's answer.
 */
export class ReplayEc2Cloud extends Ec2Cloud {
  private next = 0;

  constructor(readonly header: FixtureHeader, private readonly records: WireRecord[], world: World, runId: string, options: { epochMs?: number } = {}) {
    const { endpoint, release } = registerEndpoint('replay', (body) => this.answer(body));
    super({
      world, runId, region: header.region, endpoint, credentials: EMULATED_CREDENTIALS,
      latencyUs: normalLatencyUs(world, 120_000, 40_000), sequential: true, epochMs: options.epochMs ?? 0,
    });
    this.releaseEndpoint = release;
  }

  private releaseEndpoint: () => void = () => undefined;

  /** Recorded calls not yet asked for. */
  get remaining(): number {
    return this.records.length - this.next;
  }

  dispose(): void {
    this.releaseEndpoint();
    this.destroy();
  }

  private answer(body: string): { status: number; body: string } {
    const got = redactParams(body);
    const expected = this.records[this.next];
    if (!expected) return mismatch(`the recording has no call left, got ${got.action}`);
    if (expected.action !== got.action || JSON.stringify(sorted(expected.params)) !== JSON.stringify(sorted(got.params))) {
      return mismatch(`call ${this.next + 1}: expected ${expected.action} ${JSON.stringify(expected.params)}, got ${got.action} ${JSON.stringify(got.params)}`);
    }
    this.next++;
    return { status: expected.status, body: expected.body };
  }
}

export function createReplayCloud(world: World, fixtureText: string, runId: string, options: { epochMs?: number; where?: string } = {}): ReplayEc2Cloud {
  const { header, records } = parseFixture(fixtureText, options.where);
  return new ReplayEc2Cloud(header, records, world, runId, options);
}

function mismatch(message: string): { status: number; body: string } {
  return { status: 400, body: errorXml('SpillwayReplayMismatch', message, '00000000-0000-4000-a000-000000000000') };
}

function sorted(params: Record<string, string>): Array<[string, string]> {
  return Object.entries(params).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

