/**
 * One error base class for the whole code base. Every error carries a stable
 * machine-readable `code` (callers branch on it; messages may change) and,
 * when it wraps another failure, that failure as `cause`.
 */
export class SpillwayError extends Error {
  readonly code: string;
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: string, message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = options.details;
  }
}

/** Bad input from a user: a scenario, a flag, a config file. CLI exit code 2. */
export class InputError extends SpillwayError {}

/** A world invariant was broken: a bug, never a user mistake. */
export class InvariantError extends SpillwayError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('E_INVARIANT', message, details ? { details } : {});
  }
}

/** Assert an invariant. Cheap enough for hot paths; the message is built lazily. */
export function invariant(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) throw new InvariantError(typeof message === 'string' ? message : message());
}

export function errorCode(err: unknown): string | undefined {
  if (err instanceof SpillwayError) return err.code;
  if (err && typeof err === 'object' && 'code' in err && typeof (err as { code: unknown }).code === 'string') {
    return (err as { code: string }).code;
  }
  return undefined;
}
