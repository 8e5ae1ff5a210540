import { chmod, writeFile } from 'node:fs/promises';
import { InputError, SpillwayError } from '../errors.js';
import { secretBytes } from '../world/live-random.js';
import { EXIT_OK, parseFlags, requirePositional, type Command } from './command.js';

const usage = `Usage: spillway keygen FILE [--force]

Write a new pairing key for the proxy link: 32 random bytes as 64 hex
characters and a newline, file mode 0600. Give the same file to both
proxies (--pair-key FILE). Any file holding 64 hex characters is accepted.

  --force   overwrite FILE if it exists (the old key stops working)`;

export const keygenCommand: Command = {
  name: 'keygen',
  summary: 'write a new pairing key for the proxy link',
  usage,
  async run(args, io) {
    const { values, positionals } = parseFlags(args, { force: { type: 'boolean' } }, usage);
    const file = requirePositional(positionals, 0, 'FILE (where to write the key)', usage);
    if (positionals.length > 1) throw new InputError('E_BAD_ARGUMENT', `keygen takes one FILE, got ${positionals.length}: ${positionals.join(' ')}\n\n${usage}`);
    const key = secretBytes(32).toString('hex');
    try {
      // 'wx' fails if the file exists, so an existing key is never lost by accident.
      await writeFile(file, key + '\n', { mode: 0o600, flag: values.force ? 'w' : 'wx' });
      // The mode given to writeFile applies only when it creates the file.
      if (values.force) await chmod(file, 0o600);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') throw new InputError('E_KEY_EXISTS', `${file} already exists; keep it, or pass --force to replace it (proxies paired with the old key will be refused)`);
      throw new SpillwayError('E_KEY_WRITE', `cannot write ${file}: ${(err as Error).message}`, { cause: err });
    }
    io.out(`wrote pairing key to ${file} (mode 0600); give this file to both proxies with --pair-key`);
    return EXIT_OK;
  },
};
