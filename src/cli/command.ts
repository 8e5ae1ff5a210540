import { parseArgs, type ParseArgsConfig } from 'node:util';
import { InputError } from '../errors.js';

/** Exit codes are part of the CLI contract (README). */
export const EXIT_OK = 0;
export const EXIT_EXPECTATION_FAILED = 1;
export const EXIT_BAD_INPUT = 2;

export interface CommandIo {
  out: (text: string) => void;
  err: (text: string) => void;
  /** True when stderr is a terminal (progress lines may redraw in place). */
  errIsTty: boolean;
}

export interface Command {
  name: string;
  summary: string;
  /** Full help text shown by `spillway <name> --help`. */
  usage: string;
  run(args: string[], io: CommandIo): Promise<number>;
}

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * parseArgs with errors that name the flag and say what is allowed, so every
 * command rejects bad input the same way.
 */
export function parseFlags<O extends Options>(args: string[], options: O, usage: string, allowPositionals = true) {
  try {
    return parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals, strict: true });
  } catch (err) {
    const message = err instanceof Error ? err.message.replace(/^TypeError \[[A-Z_]+\]: /, '') : String(err);
    throw new InputError('E_BAD_ARGUMENT', `${message}\n\n${usage}`, { cause: err });
  }
}

export function requirePositional(positionals: string[], index: number, what: string, usage: string): string {
  const value = positionals[index];
  if (value === undefined) throw new InputError('E_MISSING_ARGUMENT', `missing ${what}\n\n${usage}`);
  return value;
}

export function parseSeed(value: string | undefined, field = '--seed'): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) > 2 ** 32 - 1) {
    throw new InputError('E_BAD_ARGUMENT', `${field}: expected an integer from 0 to 4294967295, got "${value}"`);
  }
  return Number(value);
}

/** An integer flag within [min, max], or undefined when not given. */
export function parseCount(value: string | undefined, flag: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new InputError('E_BAD_ARGUMENT', `${flag}: expected an integer from ${min} to ${max}, got "${value}"`);
  return n;
}
