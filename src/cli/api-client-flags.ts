import { readFileSync } from 'node:fs';
import { readTokenFile } from '../api/auth.js';
import { InputError } from '../errors.js';
import type { ApiEndpoint, ApiResponse } from '../world/live-http-client.js';
import { EXIT_BAD_INPUT, EXIT_OK } from './command.js';

/** The flags of a command that talks to a running API (`flow`, `tui --attach`). */
export const apiClientFlagSpec = {
  'api-token-file': { type: 'string' },
  'api-ca': { type: 'string' },
} as const;

export const apiClientUsage = `  --api-token-file F  the API's token file (mode 600; default $SPILLWAY_API_TOKEN_FILE)
  --api-ca F          PEM certificate to trust for an https URL (a self-signed --api-cert)`;

export function apiEndpoint(url: string | undefined, values: { 'api-token-file'?: string; 'api-ca'?: string }, flag = '--api'): ApiEndpoint {
  const u = url ?? process.env.SPILLWAY_API;
  if (!u) throw new InputError('E_MISSING_ARGUMENT', `${flag} URL is required (e.g. http://127.0.0.1:8080, what spillway run --api printed), or set SPILLWAY_API`);
  let parsed: URL;
  try {
    parsed = new URL(u);
  } catch (err) {
    throw new InputError('E_BAD_ARGUMENT', `${flag}: "${u}" is not a URL; expected http://HOST:PORT or https://HOST:PORT`, { cause: err });
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new InputError('E_BAD_ARGUMENT', `${flag}: expected an http:// or https:// URL, got "${u}"`);
  const tokenFile = values['api-token-file'] ?? process.env.SPILLWAY_API_TOKEN_FILE;
  if (!tokenFile) throw new InputError('E_MISSING_ARGUMENT', '--api-token-file F is required (the token file the server printed), or set SPILLWAY_API_TOKEN_FILE');
  let ca: Buffer | undefined;
  if (values['api-ca']) {
    try {
      ca = readFileSync(values['api-ca']);
    } catch (err) {
      throw new InputError('E_BAD_ARGUMENT', `--api-ca: cannot read ${values['api-ca']}: ${(err as Error).message}`, { cause: err });
    }
  }
  return { url: parsed.origin, token: readTokenFile(tokenFile), ...(ca ? { ca } : {}) };
}

/** A client's exit status for an answer: 0 on 2xx; 2 when the server says the input was bad (400, 404); 1 when it refused or failed. */
export function exitForAnswer(r: ApiResponse): number {
  if (r.status >= 200 && r.status < 300) return EXIT_OK;
  return r.status === 400 || r.status === 404 ? EXIT_BAD_INPUT : 1;
}
