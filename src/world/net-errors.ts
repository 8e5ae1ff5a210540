import { SpillwayError } from '../errors.js';

/**
 * A connect or listen that failed, as both networks (live sockets and the simulated one) report
 * it: a spillway code, with the kernel's errno (ECONNREFUSED, EADDRINUSE…) kept in details and
 * in the cause, so callers branch on one code whichever network they run on.
 */
export function connectError(address: string, why: string, errno: string | undefined, cause?: unknown): SpillwayError {
  return new SpillwayError('E_CONNECT', `cannot connect to ${address}: ${why}`, { cause, details: { address, errno } });
}

export function listenError(address: string, why: string, errno: string | undefined, cause?: unknown): SpillwayError {
  return new SpillwayError('E_LISTEN', `cannot listen on ${address}: ${why}`, { cause, details: { address, errno } });
}
