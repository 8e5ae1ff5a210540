import { closeSync, openSync, writeSync } from 'node:fs';
import type blessed from 'blessed';
import { DEFAULT_SPEED, type TuiApp } from '../../tui/app.js';
import { LiveSource } from '../../tui/live-source.js';
import { openScreen } from '../../tui/terminal.js';
import { InputError } from '../errors.js';
import { formatDurationUs } from '../util/units.js';
import { EXIT_OK, parseFlags, parseSeed, requirePositional, type Command, type CommandIo } from './command.js';
import { apiClientFlagSpec, apiClientUsage, apiEndpoint } from './api-client-flags.js';

const usage = `Usage: spillway tui <scenario.yaml> [--seed N] [--speed X] [--trace FILE]
       spillway tui --attach URL --api-token-file F [--api-ca F]

Run a scenario's simulation at an adjustable pace and watch it live.
  --seed N      seed for the run (default: the scenario's seed)
  --speed X     virtual seconds per real second to start at (default ${DEFAULT_SPEED}; + and - change it)
  --trace FILE  also write the JSONL trace of what was watched, for spillway replay
  --attach URL  watch a run served elsewhere with --api (spillway run --api), from its event stream
${apiClientUsage}

Keys: space pause, +/- speed, / filter, enter detail, esc back, tab focus, ? help, q quit.
Stepping and seeking need a recorded trace: spillway replay <trace.jsonl>. See docs/tui.md.`;

export function parseSpeed(value: string | undefined): number {
  if (value === undefined) return DEFAULT_SPEED;
  const n = Number(value.replace(/x$/i, ''));
  if (!Number.isFinite(n) || n <= 0 || n > 1e6) {
    throw new InputError('E_BAD_ARGUMENT', `--speed: expected virtual seconds per real second, a number above 0 and at most 1000000 (e.g. 60 or 0.5), got "${value}"`);
  }
  return n;
}

/**
 * Open the terminal, run the app, and restore the terminal on every way out:
 * quit, an error thrown by the app, or a signal (blessed restores on exit and
 * on SIGINT/SIGTERM itself).
 */
export async function runInTerminal(makeApp: (screen: blessed.Widgets.Screen) => TuiApp): Promise<void> {
  requireTerminal();
  const screen = openScreen();
  try {
    await makeApp(screen).run();
  } finally {
    screen.destroy();
  }
}

export function requireTerminal(): void {
  if (!process.stdout.isTTY || !process.stdin.isTTY) {
    throw new InputError('E_NOT_A_TERMINAL', 'the terminal UI needs an interactive terminal on stdin and stdout (it is not a pipe-friendly command)');
  }
}

function openTrace(path: string): number {
  try {
    return openSync(path, 'w');
  } catch (err) {
    throw new InputError('E_BAD_OUTPUT_FILE', `--trace: cannot write ${path}: ${(err as Error).message}`, { cause: err });
  }
}

export const tuiCommand: Command = {
  name: 'tui',
  summary: 'watch a scenario run live in the terminal',
  usage,
  async run(args, io) {
    const { values, positionals } = parseFlags(args, { seed: { type: 'string' }, speed: { type: 'string' }, trace: { type: 'string' }, attach: { type: 'string' }, ...apiClientFlagSpec }, usage);
    if (values.attach !== undefined) return attach(values.attach, values, io);
    const path = requirePositional(positionals, 0, 'a scenario file', usage);
    const seed = parseSeed(values.seed);
    const speed = parseSpeed(values.speed);
    const [{ loadScenarioFile }, { createSimulation }, { TuiApp }] = await Promise.all([
      import('../sim/scenario-file.js'), import('../sim/simulation.js'), import('../../tui/app.js'),
    ]);
    const scenario = loadScenarioFile(path);
    requireTerminal(); // before --trace creates a file
    const traceFd = values.trace === undefined ? null : openTrace(values.trace);
    let pending: string[] = [];
    const flush = (): void => {
      if (traceFd !== null && pending.length > 0) writeSync(traceFd, pending.join(''));
      pending = [];
    };
    try {
      const sim = await createSimulation(scenario, {
        ...(seed === undefined ? {} : { seed }),
        ...(traceFd === null ? {} : {
          onTrace: (_e: unknown, line: string) => {
            pending.push(line + '\n');
            if (pending.length >= 4096) flush();
          },
        }),
      });
      const source = new LiveSource(sim, { scenario: scenario.name });
      await runInTerminal((screen) => new TuiApp({ screen, source, speed }));
      io.out(`spillway tui ${path}: seed ${sim.world.seed}, stopped at T+${formatDurationUs(sim.world.nowUs)} of ${formatDurationUs(sim.endUs)}`);
      if (values.trace !== undefined) io.out(`trace written to ${values.trace} (${sim.world.trace.count} events); replay it: spillway replay ${values.trace}`);
    } finally {
      flush();
      if (traceFd !== null) closeSync(traceFd);
    }
    return EXIT_OK;
  },
};

/** `--attach URL`: the same app and model, fed from a remote run's event stream instead of a local simulation. */
async function attach(url: string, values: { speed?: string; 'api-token-file'?: string; 'api-ca'?: string }, io: CommandIo): Promise<number> {
  const ep = apiEndpoint(url, values, '--attach');
  const speed = parseSpeed(values.speed);
  requireTerminal();
  const [{ TuiApp }, { RemoteRun }] = await Promise.all([import('../../tui/app.js'), import('../world/live-remote-run.js')]);
  const run = await RemoteRun.attach(ep);
  const source = new LiveSource(run, { scenario: run.info.name });
  try {
    await runInTerminal((screen) => new TuiApp({ screen, source, speed }));
  } finally {
    run.close();
  }
  io.out(`spillway tui --attach ${ep.url}: ${run.world.trace.count} events seen, to T+${formatDurationUs(run.world.nowUs)}${run.problem ? `; ${run.problem}` : ''}`);
  return EXIT_OK;
}
