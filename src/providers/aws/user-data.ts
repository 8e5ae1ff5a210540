import { InputError } from '../../errors.js';

/**
 * What a staging instance needs at first boot (ARCHITECTURE.md §1, seed 000's
 * provisioning data): where the cloud proxy's NBD export is and how to trust
 * it, plus the guest's provisioning data. It travels as EC2 user data, in a
 * cloud-init `write_files` document so any cloud-init image picks it up; the
 * staging image reads /etc/spillway/staging.json and mounts the export.
 */
export interface StagingBootParams {
  /** The cloud proxy's NBD export. */
  proxy: { host: string; port: number; exportName: string; tls: boolean; caFingerprintSha256?: string };
  vm: { id: string; name: string };
  /** Provisioning data for the guest (hostname, network, identity): handed over, never interpreted here. */
  provisioning: Record<string, string>;
}

export const STAGING_CONFIG_PATH = '/etc/spillway/staging.json';
/** EC2 refuses user data over 16 KiB (before base64). */
export const USER_DATA_LIMIT_BYTES = 16_384;

export function stagingUserData(params: StagingBootParams): string {
  if (!params.proxy.host) throw new InputError('E_BAD_FIELD', 'proxy.host: expected the cloud proxy address, got nothing');
  if (!Number.isInteger(params.proxy.port) || params.proxy.port < 1 || params.proxy.port > 65_535) {
    throw new InputError('E_BAD_FIELD', `proxy.port: expected a TCP port from 1 to 65535, got ${params.proxy.port}`);
  }
  const payload = Buffer.from(JSON.stringify(params), 'utf8').toString('base64');
  const doc = [
    '#cloud-config',
    'write_files:',
    `  - path: ${STAGING_CONFIG_PATH}`,
    "    permissions: '0600'",
    '    encoding: b64',
    `    content: ${payload}`,
    '',
  ].join('\n');
  if (Buffer.byteLength(doc) > USER_DATA_LIMIT_BYTES) {
    throw new InputError('E_USER_DATA_TOO_LARGE', `staging user data is ${Buffer.byteLength(doc)} bytes; EC2 allows at most ${USER_DATA_LIMIT_BYTES}: trim the provisioning data`);
  }
  return doc;
}

/** The inverse, as the staging image's agent reads it (and tests check it). */
export function parseStagingUserData(doc: string): StagingBootParams {
  const m = /^ {4}content: ([A-Za-z0-9+/=]+)$/m.exec(doc);
  if (!doc.startsWith('#cloud-config\n') || !m) throw new InputError('E_BAD_USER_DATA', 'not a spillway staging cloud-config document');
  return JSON.parse(Buffer.from(m[1]!, 'base64').toString('utf8')) as StagingBootParams;
}
