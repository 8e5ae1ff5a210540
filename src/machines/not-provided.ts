import { fromPromise } from 'xstate';
import { SpillwayError } from '../errors.js';
import type { StepInput } from './flow.js';

/**
 * The default implementation of every side-effect actor: machines are pure
 * definitions, and an actor nobody provided fails (not retryable) instead of
 * pretending to have done its work. `wiring.ts` provides the real ones.
 */
export function notProvided<TData>(name: string) {
  return fromPromise<Partial<TData>, StepInput<any, TData>>(async () => {
    throw new SpillwayError('E_NOT_PROVIDED', `actor "${name}" was not provided to the machine (see src/machines/wiring.ts)`);
  });
}
