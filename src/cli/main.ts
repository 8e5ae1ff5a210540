import { createRequire } from 'node:module';
import { isBadInputCode } from '../error-codes.js';
import { InputError, SpillwayError } from '../errors.js';
import { EXIT_BAD_INPUT, type CommandIo } from './command.js';
import { COMMANDS } from './commands.js';

const require = createRequire(import.meta.url);

function topUsage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'spillway — burst VMs into a cloud without copying their disks first',
    '',
    'Usage: spillway <command> [options]      spillway <command> --help',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Start here: spillway run scenarios/quarter-end.yaml',
  ].join('\n');
}

export async function main(argv: string[], io: CommandIo = defaultIo()): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const target = name === 'help' ? rest[0] : undefined;
    if (target) return main([target, '--help'], io);
    io.out(topUsage());
    return name === undefined ? EXIT_BAD_INPUT : 0;
  }
  if (name === '--version' || name === '-V') {
    io.out((require('../../package.json') as { version: string }).version);
    return 0;
  }
  const entry = COMMANDS.find((c) => c.name === name);
  if (!entry) {
    io.err(`spillway: unknown command "${name}"; the commands are: ${COMMANDS.map((c) => c.name).join(', ')}`);
    return EXIT_BAD_INPUT;
  }
  const command = await entry.load();
  if (rest.includes('--help') || rest.includes('-h')) {
    io.out(command.usage);
    return 0;
  }
  try {
    return await command.run(rest, io);
  } catch (err) {
    if (err instanceof InputError) {
      io.err(`spillway ${name}: ${err.message}`);
      return EXIT_BAD_INPUT;
    }
    const code = err instanceof SpillwayError ? ` [${err.code}]` : '';
    io.err(`spillway ${name}: ${err instanceof Error ? err.message : String(err)}${code}`);
    if (process.env.SPILLWAY_DEBUG && err instanceof Error) io.err(err.stack ?? '');
    return err instanceof SpillwayError && isBadInputCode(err.code) ? EXIT_BAD_INPUT : 3;
  }
}

function defaultIo(): CommandIo {
  return {
    out: (t) => process.stdout.write(t.endsWith('\n') ? t : t + '\n'),
    err: (t) => process.stderr.write(t.endsWith('\n') ? t : t + '\n'),
    errIsTty: Boolean(process.stderr.isTTY),
  };
}
