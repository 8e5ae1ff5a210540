import { SpillwayError } from '../../errors.js';

/**
 * Stable codes of the proxy link. A code crosses the wire in ERROR frames, so
 * the peer's error arrives here with the same code it was raised with.
 */
export const E_NOT_PAIRED = 'E_NOT_PAIRED';
export const E_BAD_PAIRING_KEY = 'E_BAD_PAIRING_KEY';
export const E_PROTOCOL = 'E_PROTOCOL';
export const E_FRAME_TOO_LARGE = 'E_FRAME_TOO_LARGE';
export const E_TAMPERED = 'E_TAMPERED';
export const E_LINK_CLOSED = 'E_LINK_CLOSED';
export const E_LINK_DOWN = 'E_LINK_DOWN';
export const E_LINK_TIMEOUT = 'E_LINK_TIMEOUT';
export const E_VERSION = 'E_VERSION';
export const E_UNKNOWN_DISK = 'E_UNKNOWN_DISK';
export const E_LEASE_HELD = 'E_LEASE_HELD';
/** A new writer while the last writer session may still hold acknowledged writes on-prem never got. */
export const E_WRITER_UNFINISHED = 'E_WRITER_UNFINISHED';
/** A writer session on-prem no longer holds the disk for (another session came after it). */
export const E_WRITER_SUPERSEDED = 'E_WRITER_SUPERSEDED';
/** The writer knows of groups on-prem says it never applied: on-prem lost state. */
export const E_ONPREM_BEHIND = 'E_ONPREM_BEHIND';

export class LinkError extends SpillwayError {}

/** Codes after which retrying on a fresh connection cannot help. */
export const FATAL_CODES: ReadonlySet<string> = new Set([
  E_NOT_PAIRED, E_VERSION, E_UNKNOWN_DISK, E_LEASE_HELD, E_BAD_PAIRING_KEY, E_WRITER_UNFINISHED, E_WRITER_SUPERSEDED, E_ONPREM_BEHIND,
]);
