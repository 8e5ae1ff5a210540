import { appendFileSync, writeFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import type { EC2Client } from '@aws-sdk/client-ec2';

/**
 * Record/replay of EC2 wire traffic. A recording holds what the SDK sent
 * (the form parameters) and what EC2 answered (status and XML body), so a
 * replay serves the same bytes back to the same adapter. Never recorded:
 * headers (they carry the SigV4 signature, the access key id and any session
 * token), user data (it carries provisioning secrets), and account ids (masked
 * to 000000000000).
 */

export interface WireRecord {
  action: string;
  /** Form parameters in the order the SDK sent them, minus Action and Version. */
  params: Record<string, string>;
  status: number;
  body: string;
}

export interface FixtureHeader {
  fixture: 'spillway-ec2-wire';
  version: 1;
  /** Where the traffic came from: `aws` (live) or `emulator`. */
  source: string;
  region: string;
  note?: string;
}

const ACCOUNT_ID = /\b\d{12}\b/g;
export const MASKED_ACCOUNT_ID = '000000000000';

export function redactParams(body: string): { action: string; params: Record<string, string> } {
  const form = new URLSearchParams(body);
  let action = '';
  const params: Record<string, string> = {};
  for (const [key, value] of form) {
    if (key === 'Action') action = value;
    else if (key === 'Version') continue;
    else if (key === 'UserData') params[key] = `<redacted ${value.length} base64 chars>`;
    else params[key] = value.replace(ACCOUNT_ID, MASKED_ACCOUNT_ID);
  }
  return { action, params };
}

export function redactBody(xml: string): string {
  return xml.replace(ACCOUNT_ID, MASKED_ACCOUNT_ID).replace(/<userData>[\s\S]*?<\/userData>/g, '<userData/>');
}

/**
 * Copy each request/response pair off the wire. The middleware sits inside
 * the SDK's deserializer, so it sees the raw response and hands the
 * deserializer an identical fresh stream.
 */
export function attachRecorder(client: EC2Client, sink: (entry: WireRecord) => void): void {
  client.middlewareStack.add(
    (next) => async (args) => {
      const request = args.request as { body?: unknown };
      const result = await next(args);
      const response = result.response as { statusCode?: number; body?: unknown };
      const raw = await readBody(response.body);
      response.body = Readable.from([raw]);
      const { action, params } = redactParams(typeof request.body === 'string' ? request.body : '');
      sink({ action, params, status: response.statusCode ?? 0, body: redactBody(raw.toString('utf8')) });
      return result;
    },
    { step: 'deserialize', priority: 'low', name: 'spillwayWireRecorder' },
  );
}

async function readBody(body: unknown): Promise<Buffer> {
  if (body === undefined || body === null) return Buffer.alloc(0);
  if (typeof body === 'string') return Buffer.from(body);
  if (body instanceof Uint8Array) return Buffer.from(body);
  const chunks: Buffer[] = [];
  for await (const chunk of body as AsyncIterable<Uint8Array | string>) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk));
  return Buffer.concat(chunks);
}

/** A JSONL fixture file: one header line, then one line per call. */
export function fileRecorder(path: string, header: FixtureHeader): (entry: WireRecord) => void {
  writeFileSync(path, JSON.stringify(header) + '\n');
  return (entry) => appendFileSync(path, JSON.stringify(entry) + '\n');
}

export function parseFixture(text: string, where = 'fixture'): { header: FixtureHeader; records: WireRecord[] } {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  if (lines.length === 0) throw new Error(`${where}: empty recording`);
  const header = JSON.parse(lines[0]!) as FixtureHeader;
  if (header.fixture !== 'spillway-ec2-wire' || header.version !== 1) {
    throw new Error(`${where}: line 1: expected a spillway-ec2-wire v1 header, got ${lines[0]}`);
  }
  const records = lines.slice(1).map((line, i) => {
    const r = JSON.parse(line) as WireRecord;
    if (typeof r.action !== 'string' || typeof r.status !== 'number' || typeof r.body !== 'string' || typeof r.params !== 'object') {
      throw new Error(`${where}: line ${i + 2}: expected {action, params, status, body}`);
    }
    return r;
  });
  return { header, records };
}
