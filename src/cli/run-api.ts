import { readFileSync } from 'node:fs';
import { SimBackend } from '../api/sim-backend.js';
import type { SimAction } from '../api/sim-flows.js';
import { InputError } from '../errors.js';
import type { ScenarioSimulation } from '../sim/simulation.js';
import type { RecordedAction } from '../world/action-inbox.js';
import { realTimePacer, yieldingPacer } from '../world/live-pacer.js';
import { startApi, type ApiFlags } from './api-flags.js';
import type { CommandIo } from './command.js';

export function parsePace(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value.replace(/x$/i, ''));
  if (!Number.isFinite(n) || n <= 0 || n > 1e7) {
    throw new InputError('E_BAD_ARGUMENT', `--pace: expected virtual seconds per real second, a number above 0 and at most 10000000 (e.g. 60), got "${value}"`);
  }
  return n;
}

/** The operator actions an earlier run recorded (its `api.action` trace lines), to put back in a replay. */
export function readRecordedActions(path: string): Array<RecordedAction<SimAction>> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new InputError('E_BAD_ARGUMENT', `--actions: cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  const out: Array<RecordedAction<SimAction>> = [];
  text.split('\n').forEach((line, i) => {
    if (!line.includes('"api.action"')) return;
    let e: { t: number; type: string; data: { op?: string; seq?: number; request?: unknown; id?: string } };
    try {
      e = JSON.parse(line);
    } catch (err) {
      throw new InputError('E_BAD_ARGUMENT', `--actions: ${path}:${i + 1} is not a JSON trace line`, { cause: err });
    }
    if (e.type !== 'api.action') return;
    const { op, seq } = e.data;
    if (typeof seq !== 'number' || (op !== 'start' && op !== 'rollback')) throw new InputError('E_BAD_ARGUMENT', `--actions: ${path}:${i + 1}: an api.action line needs op (start or rollback) and seq`);
    const action: SimAction = op === 'start' ? { op, request: e.data.request as never } : { op, id: String(e.data.id) };
    out.push({ t: e.t, seq, action });
  });
  return out;
}

/**
 * What `spillway run` adds for the API: the pace, the backend over the
 * simulation (which also puts back --actions), and the server. Returns what
 * to close when the run ends.
 */
export async function startRunApi(
  sim: ScenarioSimulation, io: CommandIo,
  options: { api: ApiFlags | null; pace: number | undefined; recorded: Array<RecordedAction<SimAction>> | undefined },
): Promise<{ close(): Promise<void>; replayLeft(): number } | null> {
  if (!options.api && options.pace === undefined && !options.recorded) return null;
  const pacer = options.pace !== undefined ? realTimePacer(options.pace) : options.api ? yieldingPacer() : undefined;
  if (pacer && !sim.world.pacer) sim.world.pacer = pacer;
  const backend = new SimBackend(sim, {
    ...(pacer?.virtualNowUs ? { virtualNowUs: () => pacer.virtualNowUs!() } : {}),
    ...(options.recorded ? { recorded: options.recorded } : {}),
  });
  const server = options.api ? await startApi(options.api, backend) : null;
  for (const line of server?.lines ?? []) io.err(line);
  return {
    replayLeft: () => backend.actions.inbox.replayLeft,
    async close() {
      backend.close();
      await server?.close();
    },
  };
}
