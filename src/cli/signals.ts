import type { CommandIo } from './command.js';

/** A command stopped by a signal exits as shells report it: 128 + the signal's number. */
export function exitForSignal(sig: NodeJS.Signals): number {
  return sig === 'SIGINT' ? 130 : 143;
}

/**
 * Run `work`; the first SIGINT or SIGTERM meanwhile calls `stop` (after
 * which `work` must end soon on its own, so what it wrote is flushed and
 * its clients are told), a second one exits at once. Resolves with what
 * `work` returned and the signal that stopped it, if any.
 */
export async function stoppable<T>(
  work: () => Promise<T>, stop: (sig: NodeJS.Signals) => void, io: CommandIo, what: string,
): Promise<{ result: T; signal: NodeJS.Signals | null }> {
  let signal: NodeJS.Signals | null = null;
  const on = (sig: NodeJS.Signals): void => {
    if (signal !== null) {
      io.err(`${sig}: exiting at once; the trace and report are not written`);
      process.exit(exitForSignal(sig));
    }
    signal = sig;
    io.err(`${sig}: stopping ${what} after the current event (signal again to exit at once)`);
    stop(sig);
  };
  process.on('SIGINT', on);
  process.on('SIGTERM', on);
  try {
    return { result: await work(), signal };
  } finally {
    process.off('SIGINT', on);
    process.off('SIGTERM', on);
  }
}
