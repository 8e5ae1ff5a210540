import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApi, type ApiApp } from '../api/app.js';
import { readTokenFile } from '../api/auth.js';
import type { ApiBackend } from '../api/backend.js';
import { InputError } from '../errors.js';
import { checkApiAddress, listenApi, liveHubTimers } from '../world/live-api-server.js';
import { secretBytes } from '../world/live-random.js';

/** The --api flags shared by `run` and `serve`, for parseFlags. */
export const apiFlagSpec = {
  api: { type: 'string' },
  'api-token-file': { type: 'string' },
  'api-cert': { type: 'string' },
  'api-key': { type: 'string' },
  'api-public': { type: 'boolean' },
  'api-history': { type: 'string' },
} as const;

export const apiUsage = `Management API (docs/api.md):
  --api ADDR            serve the REST API, /events (SSE) and /metrics on HOST:PORT (loopback only)
  --api-token-file F    bearer token file (mode 600); created with a fresh token if missing
                        (default: a new file in the temp folder, printed at start, removed at exit)
  --api-cert F --api-key F  serve HTTPS with this PEM certificate and key
  --api-public          allow a non-loopback --api address (use with TLS)
  --api-history N       events kept for Last-Event-ID resume (default 100000)`;

export interface ApiToken {
  token: string;
  file: string;
  created: boolean;
  temporary: boolean;
}

export interface ApiFlags {
  at: { host: string; port: number };
  /** null: no --api-token-file; startApi makes a temporary one, removed when the API closes. */
  token: ApiToken | null;
  tls: { cert: string; key: string } | null;
  historyEvents: number | undefined;
}

type ApiValues = { api?: string; 'api-token-file'?: string; 'api-cert'?: string; 'api-key'?: string; 'api-public'?: boolean; 'api-history'?: string };

/** Parse and check the --api flags (the token file is read, or created, now: before any run starts); null when --api was not given. Errors name the flag. */
export function parseApiFlags(values: ApiValues): ApiFlags | null {
  const others = (['api-token-file', 'api-cert', 'api-key', 'api-public', 'api-history'] as const).filter((k) => values[k] !== undefined);
  if (values.api === undefined) {
    if (others.length > 0) throw new InputError('E_BAD_ARGUMENT', `--${others[0]} needs --api ADDR (where the API listens)`);
    return null;
  }
  const at = checkApiAddress(values.api, values['api-public'] ?? false);
  if ((values['api-cert'] === undefined) !== (values['api-key'] === undefined)) {
    throw new InputError('E_BAD_ARGUMENT', '--api-cert and --api-key go together: give both (PEM files) for HTTPS, or neither');
  }
  let historyEvents: number | undefined;
  if (values['api-history'] !== undefined) {
    historyEvents = Number(values['api-history']);
    if (!Number.isInteger(historyEvents) || historyEvents < 1000 || historyEvents > 10_000_000) {
      throw new InputError('E_BAD_ARGUMENT', `--api-history: expected an integer from 1000 to 10000000 events, got "${values['api-history']}"`);
    }
  }
  return {
    at, token: values['api-token-file'] === undefined ? null : token(values['api-token-file']),
    tls: values['api-cert'] ? { cert: values['api-cert'], key: values['api-key']! } : null,
    historyEvents,
  };
}

/** The token: read from its file, or a fresh one written to it (mode 600) when the file does not exist yet; with no file, a temporary one. */
function token(file: string | undefined): ApiToken {
  const path = file ?? join(tmpdir(), `spillway-api-${secretBytes(6).toString('hex')}.token`);
  if (file !== undefined && existsSync(path)) return { token: readTokenFile(path), file: path, created: false, temporary: false };
  const fresh = secretBytes(24).toString('base64url');
  try {
    writeFileSync(path, `${fresh}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    throw new InputError('E_BAD_TOKEN_FILE', `--api-token-file: cannot create ${path}: ${(err as Error).message}`, { cause: err });
  }
  return { token: fresh, file: path, created: true, temporary: file === undefined };
}

function readPem(path: string, flag: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new InputError('E_BAD_ARGUMENT', `${flag}: cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
}

export interface RunningApi {
  api: ApiApp;
  url: string;
  tokenFile: string;
  lines: string[];
  close(): Promise<void>;
}

/** Build the API over `backend` and listen where the flags say. */
export async function startApi(flags: ApiFlags, backend: ApiBackend): Promise<RunningApi> {
  const https = flags.tls ? { cert: readPem(flags.tls.cert, '--api-cert'), key: readPem(flags.tls.key, '--api-key') } : undefined;
  const t = flags.token ?? token(undefined);
  // A token made up for this process alone is of no use after it: no stale secrets in the temp folder.
  const forget = (): void => {
    if (t.temporary) rmSync(t.file, { force: true });
  };
  let api: ApiApp;
  try {
    api = await buildApi({
      backend, token: t.token, timers: liveHubTimers, ...(https ? { https } : {}),
      ...(flags.historyEvents ? { hub: { historyEvents: flags.historyEvents } } : {}),
    });
  } catch (err) {
    forget();
    throw new InputError('E_API_START', `--api: cannot start the API${https ? ' (check --api-cert and --api-key)' : ''}: ${(err as Error).message}`, { cause: err });
  }
  const close = async (): Promise<void> => {
    await api.close();
    forget();
  };
  let url: string;
  try {
    url = await listenApi(api.app, flags.at, https !== undefined);
  } catch (err) {
    await close();
    throw new InputError('E_API_LISTEN', `--api: cannot listen on ${flags.at.host}:${flags.at.port}: ${(err as Error).message}`, { cause: err });
  }
  return {
    api, url, tokenFile: t.file,
    lines: [`api listening on ${url} (token ${t.created ? 'written to' : 'from'} ${t.file}${t.temporary ? ', removed when the API stops' : ''}; OpenAPI at ${url}/openapi.json)`],
    close,
  };
}
