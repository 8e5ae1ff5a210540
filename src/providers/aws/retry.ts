import { invariant } from '../../errors.js';
import type { Clock, Rng } from '../../world/types.js';
import { CloudError } from '../../ports/cloud.js';

/**
 * Retry with capped exponential backoff and full jitter (AWS's recommended
 * scheme), waiting on the World clock so a simulation retries in virtual time
 * and a seed replays the same delays. SDK retries are off (`maxAttempts: 1`):
 * this is the only place a provider call is repeated.
 */
export interface RetryOptions {
  /** Total tries, the first one included. */
  attempts?: number;
  baseDelayUs?: number;
  maxDelayUs?: number;
  /** Give up (throwing the last error) rather than sleep past this instant. */
  deadlineUs?: number;
  /** Which failures are worth another try; default: CloudError.retryable. */
  retryable?: (err: unknown) => boolean;
  /** Told before each backoff sleep (tracing, logs). */
  onRetry?: (err: unknown, attempt: number, delayUs: number) => void;
}

export const DEFAULT_RETRY = { attempts: 8, baseDelayUs: 200_000, maxDelayUs: 20_000_000 } as const;

export function isRetryable(err: unknown): boolean {
  return err instanceof CloudError && err.retryable;
}

/** The sleep before retry number `attempt` (1-based): uniform in [0, min(max, base·2^(attempt-1))]. */
export function backoffDelayUs(attempt: number, rng: Rng, baseDelayUs: number = DEFAULT_RETRY.baseDelayUs, maxDelayUs: number = DEFAULT_RETRY.maxDelayUs): number {
  const cap = Math.min(maxDelayUs, baseDelayUs * 2 ** Math.min(attempt - 1, 30));
  return Math.round(rng.range(0, cap));
}

export async function withRetry<T>(clock: Clock, rng: Rng, op: (attempt: number) => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const {
    attempts = DEFAULT_RETRY.attempts, baseDelayUs = DEFAULT_RETRY.baseDelayUs, maxDelayUs = DEFAULT_RETRY.maxDelayUs,
    deadlineUs = Infinity, retryable = isRetryable, onRetry,
  } = options;
  invariant(Number.isInteger(attempts) && attempts >= 1, () => `withRetry: attempts must be an integer >= 1, got ${attempts}`);
  for (let attempt = 1; ; attempt++) {
    try {
      return await op(attempt);
    } catch (err) {
      if (attempt >= attempts || !retryable(err)) throw err;
      const delayUs = backoffDelayUs(attempt, rng, baseDelayUs, maxDelayUs);
      if (clock.nowUs() + delayUs > deadlineUs) throw err;
      onRetry?.(err, attempt, delayUs);
      await clock.sleepUs(delayUs);
    }
  }
}
