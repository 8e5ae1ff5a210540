import type blessed from 'blessed';
import { DEFAULT_SPEED, type TuiApp } from '../../tui/app.js';
import { LiveSource, type LiveSimulation } from '../../tui/live-source.js';
import { openScreen } from '../../tui/terminal.js';
import { InputError, SpillwayError } from '../errors.js';
import { EXIT_OK, parseFlags, parseSeed, requirePositional, type Command } from './command.js';

const usage = `Usage: spillway tui <scenario.yaml> [--seed N] [--speed X]

Run a scenario's simulation at an adjustable pace and watch it live.
  --seed N    seed for the run (default: the scenario's seed)
  --speed X   virtual seconds per real second to start at (default ${DEFAULT_SPEED}; + and - change it)

Keys: space pause, +/- speed, / filter, enter detail, esc back, tab focus, ? help, q quit.
Stepping and seeking need a recorded trace: spillway replay <trace.jsonl>. See docs/tui.md.`;

export function parseSpeed(value: string | undefined): number {
  if (value === undefined) return DEFAULT_SPEED;
  const n = Number(value.replace(/x$/i, ''));
  if (!Number.isFinite(n) || n <= 0 || n > 1e6) {
    throw new InputError('E_BAD_SPEED', `--speed: expected virtual seconds per real second, a number above 0 and at most 1000000 (e.g. 60 or 0.5), got "${value}"`);
  }
  return n;
}

/**
 * Open the terminal, run the app, and restore the terminal on every way out:
 * quit, an error thrown by the app, or a signal (blessed restores on exit and
 * on SIGINT/SIGTERM itself).
 */
export async function runInTerminal(makeApp: (screen: blessed.Widgets.Screen) => TuiApp): Promise<void> {
  if (!process.stdout.isTTY || !process.stdin.isTTY) {
    throw new InputError('E_NOT_A_TERMINAL', 'the terminal UI needs an interactive terminal on stdin and stdout (it is not a pipe-friendly command)');
  }
  const screen = openScreen();
  try {
    await makeApp(screen).run();
  } finally {
    screen.destroy();
  }
}

/** The runner's contract as the TUI uses it (src/sim/simulation.ts, src/scenario/load.ts). */
interface SimulationModule {
  createSimulation(scenario: unknown, options: { seed?: number }): Promise<LiveSimulation>;
}
interface LoadModule {
  loadScenarioFile(path: string): unknown;
}

/**
 * The scenario runner is built in parallel with the TUI; until it lands, say
 * so plainly instead of failing with a module resolution stack.
 */
async function importRunner(): Promise<{ sim: SimulationModule; load: LoadModule }> {
  const simPath = '../sim/simulation.js';
  const loadPath = '../scenario/load.js';
  try {
    const [sim, load] = await Promise.all([import(simPath) as Promise<SimulationModule>, import(loadPath) as Promise<LoadModule>]);
    if (typeof sim.createSimulation !== 'function' || typeof load.loadScenarioFile !== 'function') throw new Error('missing exports');
    return { sim, load };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || (err instanceof Error && err.message === 'missing exports')) {
      throw new SpillwayError('E_TUI_NO_RUNNER', 'the scenario runner (src/sim/simulation.ts createSimulation, src/scenario/load.ts loadScenarioFile) is not available in this build; `spillway replay <trace.jsonl>` works without it', { cause: err });
    }
    throw err;
  }
}

export const tuiCommand: Command = {
  name: 'tui',
  summary: 'watch a scenario run live in the terminal',
  usage,
  async run(args) {
    const { values, positionals } = parseFlags(args, { seed: { type: 'string' }, speed: { type: 'string' } }, usage);
    const path = requirePositional(positionals, 0, 'a scenario file', usage);
    const seed = parseSeed(values.seed);
    const speed = parseSpeed(values.speed);
    const runner = await importRunner();
    const scenario = runner.load.loadScenarioFile(path);
    const sim = await runner.sim.createSimulation(scenario, seed === undefined ? {} : { seed });
    const name = (scenario as { name?: unknown }).name;
    const source = new LiveSource(sim, { scenario: typeof name === 'string' ? name : path });
    const { TuiApp } = await import('../../tui/app.js');
    await runInTerminal((screen) => new TuiApp({ screen, source, speed }));
    return EXIT_OK;
  },
};
