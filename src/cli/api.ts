import { InputError } from '../errors.js';
import { apiRequest, openEventStream } from '../world/live-http-client.js';
import { apiClientFlagSpec, apiClientUsage, apiEndpoint, exitForAnswer } from './api-client-flags.js';
import { EXIT_OK, parseFlags, requirePositional, type Command } from './command.js';
import { exitForSignal } from './signals.js';

const usage = `Usage: spillway api PATH [--api URL] [--api-token-file F] [--api-ca F] [--json]

Read the management API of a run or a proxy daemon (docs/api.md) and print the answer.

Start a server first; each prints its URL and token file:
  spillway run SCENARIO --api 127.0.0.1:8080 [--pace 600]    a simulation (reads, events, metrics, flows)
  spillway serve onprem|cloud|pair ... --api 127.0.0.1:9090   proxy daemons (reads, events, metrics)
  (--api-token-file, --api-cert/--api-key, --api-public: see spillway run --help)

PATH is one of:
  /health                 liveness, what is served, virtual time (no token needed)
  /vms  /vms/NAME         where each VM runs, its lifecycle machine and state, boot figures
  /flows  /flows/ID       lifecycle flows (start and roll back with spillway flow)
  /proxies                cache, prefetch, write-back backlog, lag, ETA, bytes by source
  /wan  /cloud  /cost     the WAN, cloud instances and API calls, cost so far
  /metrics                Prometheus text
  /openapi.json           the OpenAPI document of every route
  /events[?vm=A,B&type=machine.*&since=N]
                          follow the event stream from now (since=0: from the oldest kept event):
                          one trace line (JSON) per event until the server closes it or Ctrl-C

  --api URL           the API (default $SPILLWAY_API)
${apiClientUsage}
  --json              print JSON on one line (default: indented)

Exit status: 0 answered, 1 refused or failed (401, 409, 5xx, unreachable), 2 bad input
(a bad flag, a 400, an unknown VM, flow or route).
Watch a run in the terminal: spillway tui --attach URL.`;

export const apiCommand: Command = {
  name: 'api',
  summary: 'read a running --api server: VMs, flows, proxies, metrics, events',
  usage,
  async run(args, io) {
    const { values, positionals } = parseFlags(args, { api: { type: 'string' }, json: { type: 'boolean' }, ...apiClientFlagSpec }, usage);
    const path = requirePositional(positionals, 0, 'the PATH to read (e.g. /vms)', usage);
    if (positionals.length > 1) throw new InputError('E_BAD_ARGUMENT', `api: one PATH, got also "${positionals[1]}"\n\n${usage}`);
    if (!path.startsWith('/')) throw new InputError('E_BAD_ARGUMENT', `api: PATH must start with /, e.g. /vms; got "${path}"`);
    const ep = apiEndpoint(values.api, values);
    if (path === '/events' || path.startsWith('/events?')) return follow(ep, path.slice('/events'.length), io);
    let r;
    try {
      r = await apiRequest(ep, 'GET', path);
    } catch (err) {
      io.err(`spillway api: ${(err as Error).message}`);
      return 1;
    }
    const code = exitForAnswer(r);
    const text = typeof r.body === 'string' ? r.body.trimEnd() : JSON.stringify(r.body, null, values.json ? undefined : 2);
    if (code === EXIT_OK) io.out(text);
    else io.err(`spillway api: GET ${path}: ${r.status} ${text}`);
    return code;
  },
};

/** Print each event's trace line (from now, as a browser's EventSource starts) until the server closes the stream (0), it breaks (1), or a signal stops it. */
function follow(ep: Parameters<typeof openEventStream>[0], query: string, io: Parameters<Command['run']>[1]): Promise<number> {
  return new Promise((resolve) => {
    const stopOn = (sig: NodeJS.Signals): void => {
      stream.close();
      done(exitForSignal(sig));
    };
    const done = (code: number): void => {
      process.off('SIGINT', stopOn);
      process.off('SIGTERM', stopOn);
      resolve(code);
    };
    const stream = openEventStream(ep, query, null, {
      onEvent: (id, type, data) => {
        if (id !== null) io.out(data);
        else if (type === 'dropped' || type === 'gap') io.err(`spillway api: ${type} ${data}`);
      },
      onEnd: (err) => {
        if (err) io.err(`spillway api: ${err.message}`);
        done(err ? 1 : EXIT_OK);
      },
    }, true);
    process.on('SIGINT', stopOn);
    process.on('SIGTERM', stopOn);
  });
}
