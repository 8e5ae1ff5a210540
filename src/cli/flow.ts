import { InputError } from '../errors.js';
import { formatDurationUs, parseSizeBytes } from '../util/units.js';
import { apiRequest, type ApiEndpoint, type ApiResponse } from '../world/live-http-client.js';
import { apiClientFlagSpec, apiClientUsage, apiEndpoint, exitForAnswer } from './api-client-flags.js';
import { EXIT_OK, parseFlags, requirePositional, type Command, type CommandIo } from './command.js';

const KINDS = ['transfer', 'clone', 'cutover', 'reverse', 'migrate', 'resize', 'containerize'];

const usage = `Usage:
  spillway flow start KIND VM [options] --api URL --api-token-file F [--json]
  spillway flow list            --api URL --api-token-file F [--json]
  spillway flow show ID         --api URL --api-token-file F [--json]
  spillway flow rollback ID     --api URL --api-token-file F [--json]

Drive lifecycle flows of a run served with spillway run --api (docs/api.md).
Every flow goes through the lifecycle machines and is recorded in the run's trace.

KIND is one of ${KINDS.join(', ')}.
  --to cloud|onprem        transfer: where to (default cloud; onprem moves it to another host)
  --transfer-kind K        transfer: stateless (default), stateful or run-time
  --host H                 transfer --to onprem, reverse: the on-prem host
  --instance-type T        transfer, clone: the cloud instance type (default: best fit)
  --persistence P          clone: cloud-only (default) or on-prem
  --target CLONE           cutover: the standby clone, e.g. web-01-c1
  --disk D --cache-size S  resize: the disk's cloud cache to S (e.g. 2GiB)
  --mode M                 containerize: snapshot (default) or deactivate

  --api URL           the API (what spillway run --api printed; default $SPILLWAY_API)
${apiClientUsage}
  --json              print the server's JSON answer

Exit status: 0 done, 1 refused (409: a running flow or a lease in the way) or failed,
2 bad input (a bad flag, a 400, an unknown VM or flow).`;

const flags = {
  api: { type: 'string' }, json: { type: 'boolean' }, ...apiClientFlagSpec,
  to: { type: 'string' }, 'transfer-kind': { type: 'string' }, host: { type: 'string' }, 'instance-type': { type: 'string' },
  persistence: { type: 'string' }, target: { type: 'string' }, disk: { type: 'string' }, 'cache-size': { type: 'string' }, mode: { type: 'string' },
} as const;

type Values = { [K in keyof typeof flags]?: (typeof flags)[K]['type'] extends 'boolean' ? boolean : string };

function flowRequest(kind: string, vm: string, v: Values): Record<string, unknown> {
  if (!KINDS.includes(kind)) throw new InputError('E_BAD_ARGUMENT', `flow start: KIND must be one of ${KINDS.join(', ')}, got "${kind}"`);
  return {
    kind, vm,
    ...(v.to ? { to: v.to } : {}),
    ...(v['transfer-kind'] ? { transferKind: v['transfer-kind'] } : {}),
    ...(v.host ? { host: v.host } : {}),
    ...(v['instance-type'] ? { instanceType: v['instance-type'] } : {}),
    ...(v.persistence ? { persistence: v.persistence } : {}),
    ...(v.target ? { target: v.target } : {}),
    ...(v.disk ? { disk: v.disk } : {}),
    ...(v['cache-size'] ? { cacheBytes: parseSizeBytes(v['cache-size'], '--cache-size') } : {}),
    ...(v.mode ? { mode: v.mode } : {}),
  };
}

function report(io: CommandIo, r: ApiResponse, json: boolean, text: () => string): number {
  const code = exitForAnswer(r);
  if (json) {
    io.out(JSON.stringify(r.body));
  } else if (code === EXIT_OK) {
    io.out(text());
  } else {
    const b = r.body as { code?: string; message?: string } | null;
    io.err(`spillway flow: ${r.status} ${b?.code ?? ''}: ${b?.message ?? JSON.stringify(r.body)}`);
  }
  return code;
}

interface FlowRow { id: string; machine: string; vm: string | null; state: string; status: string; outcome: string | null; startedUs: number | null; failure: string | null; origin: string }

function flowLine(f: FlowRow): string {
  const started = f.startedUs === null ? '' : ` since T+${formatDurationUs(f.startedUs)}`;
  return `${f.id}  ${f.machine} ${f.vm ?? ''}  ${f.status}${f.outcome ? ` (${f.outcome})` : ''}  ${f.state}${started}  [${f.origin}]${f.failure ? `  ${f.failure}` : ''}`;
}

export const flowCommand: Command = {
  name: 'flow',
  summary: 'start, list and roll back flows of a run served with --api',
  usage,
  async run(args, io) {
    const [verb, ...rest] = args;
    if (verb === undefined) throw new InputError('E_MISSING_ARGUMENT', `flow needs a verb: start, list, show or rollback\n\n${usage}`);
    if (!['start', 'list', 'show', 'rollback'].includes(verb)) throw new InputError('E_BAD_ARGUMENT', `flow: unknown verb "${verb}"; use start, list, show or rollback\n\n${usage}`);
    const { values, positionals } = parseFlags(rest, flags, usage);
    const ep = apiEndpoint(values.api, values);
    try {
      return await runVerb(verb, positionals, values, ep, io);
    } catch (err) {
      if (err instanceof InputError) throw err;
      // The API could not be reached or did not answer: the action failed, the input was fine.
      io.err(`spillway flow: ${(err as Error).message}`);
      return 1;
    }
  },
};

async function runVerb(verb: string, positionals: string[], values: Values, ep: ApiEndpoint, io: CommandIo): Promise<number> {
  const json = values.json ?? false;
  switch (verb) {
    case 'start': {
      const kind = requirePositional(positionals, 0, 'the flow KIND', usage);
      const vm = requirePositional(positionals, 1, 'the VM', usage);
      const r = await apiRequest(ep, 'POST', '/flows', flowRequest(kind, vm, values));
      return report(io, r, json, () => {
        const b = r.body as { id: string; machine: string; state: string; atUs: number };
        return `started ${b.id}: ${b.machine} of ${vm}, state ${b.state} at T+${formatDurationUs(b.atUs)}`;
      });
    }
    case 'list': {
      const r = await apiRequest(ep, 'GET', '/flows');
      return report(io, r, json, () => {
        const rows = r.body as FlowRow[];
        return rows.length === 0 ? 'no flows yet' : rows.map(flowLine).join('\n');
      });
    }
    case 'show': {
      const id = requirePositional(positionals, 0, 'the flow ID', usage);
      const r = await apiRequest(ep, 'GET', `/flows/${encodeURIComponent(id)}`);
      return report(io, r, json, () => flowLine(r.body as FlowRow));
    }
    case 'rollback': {
      const id = requirePositional(positionals, 0, 'the flow ID', usage);
      const r = await apiRequest(ep, 'POST', `/flows/${encodeURIComponent(id)}/rollback`);
      return report(io, r, json, () => {
        const b = r.body as { id: string; state: string; atUs: number };
        return `rollback of ${b.id} asked at T+${formatDurationUs(b.atUs)} (it was in ${b.state})`;
      });
    }
    default:
      throw new InputError('E_BAD_ARGUMENT', `flow: unknown verb "${verb}"`);
  }
}
