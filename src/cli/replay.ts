import { TuiApp, DEFAULT_SPEED } from '../../tui/app.js';
import { ReplaySource } from '../../tui/replay-source.js';
import { describeProblem, readTraceFile } from '../../tui/trace-file.js';
import { InputError } from '../errors.js';
import { EXIT_OK, parseFlags, requirePositional, type Command } from './command.js';
import { parseSpeed, runInTerminal } from './tui.js';

const usage = `Usage: spillway replay <trace.jsonl> [--speed X] [--strict]

Replay a recorded trace (docs/trace.md) in the terminal UI, with seek.
  --speed X   virtual seconds per real second to start at (default ${DEFAULT_SPEED}; + and - change it)
  --strict    refuse a trace with any bad or truncated line instead of showing its valid prefix

Keys: space pause, +/- speed, ←/→ step, [/] seek, / filter, enter detail, esc back, tab focus, ? help, q quit.
See docs/tui.md.`;

export const replayCommand: Command = {
  name: 'replay',
  summary: 'replay a recorded trace in the terminal',
  usage,
  async run(args, io) {
    const { values, positionals } = parseFlags(args, { speed: { type: 'string' }, strict: { type: 'boolean' } }, usage);
    const path = requirePositional(positionals, 0, 'a trace file (.jsonl)', usage);
    const speed = parseSpeed(values.speed);
    const parsed = readTraceFile(path);
    let warning: string | null = null;
    if (parsed.problem) {
      const text = describeProblem(path, parsed.problem);
      if (values.strict || parsed.events.length === 0) {
        throw new InputError(parsed.problem.truncated ? 'E_TRACE_TRUNCATED' : 'E_TRACE_BAD_LINE', parsed.events.length === 0 ? `${text}; no valid events before it` : text, {
          details: { line: parsed.problem.line },
        });
      }
      warning = `${text} — showing the ${parsed.events.length} events before it`;
    } else if (parsed.events.length === 0) {
      throw new InputError('E_TRACE_EMPTY', `${path}: the trace has no events`);
    }
    const source = new ReplaySource(parsed.events);
    await runInTerminal((screen) => new TuiApp({ screen, source, speed, warning }));
    if (warning) io.err(`spillway replay: warning: ${warning}`);
    return EXIT_OK;
  },
};
