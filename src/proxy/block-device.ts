import { SpillwayError } from '../errors.js';

/**
 * What a byte range holds, as NBD's base:allocation context reports it.
 * `hole`: unallocated, reads as zeros. `zero`: allocated, reads as zeros.
 * `data`: allocated, may hold anything.
 */
export type ExtentType = 'data' | 'zero' | 'hole';

export interface Extent {
  offset: number;
  length: number;
  type: ExtentType;
}

export interface WriteOptions {
  /** Force unit access: durable (per the layer's persistence mode) before the promise resolves. */
  fua?: boolean;
}

export interface ZeroOptions extends WriteOptions {
  /** Allocate the range rather than punching a hole. */
  noHole?: boolean;
  /** Fail with E_FAST_ZERO_UNSUPPORTED unless zeroing is cheap (NBD FAST_ZERO). */
  fastZero?: boolean;
}

/**
 * The one interface of the proxy core. Offsets and lengths are bytes; every
 * method checks its range against `size()`. Layers stack on each other the way
 * nbdkit filters do, each passing on what it does not handle.
 */
export interface BlockDevice {
  /** A short name for traces and stats ("secure-cache", "sparse:disk-3"). */
  readonly name: string;
  size(): number;
  read(offset: number, length: number): Promise<Buffer>;
  write(offset: number, data: Uint8Array, options?: WriteOptions): Promise<void>;
  /** Everything acknowledged before the call is durable when it resolves. */
  flush(): Promise<void>;
  /** The range's content becomes unspecified (reads as zeros in every backend here). */
  trim(offset: number, length: number, options?: WriteOptions): Promise<void>;
  writeZeroes(offset: number, length: number, options?: ZeroOptions): Promise<void>;
  /** A hint: bring the range closer (NBD CACHE). Higher priority goes first. */
  prefetch(offset: number, length: number, priority?: number): Promise<void>;
  /** Allocation map of the range, in order, covering it exactly. */
  extents(offset: number, length: number): Promise<Extent[]>;
  close(): Promise<void>;
}

/**
 * Append [start, start + length) to an extent list, merging it into the last
 * extent when that one has the same type and ends where this one starts.
 * Every backend builds its allocation map this way.
 */
export function appendExtent(out: Extent[], start: number, length: number, type: ExtentType): void {
  if (length <= 0) return;
  const last = out[out.length - 1];
  if (last && last.type === type && last.offset + last.length === start) last.length += length;
  else out.push({ offset: start, length, type });
}

/** Errors on the data path. `code` maps onto an NBD errno in the storage target. */
export class BlockError extends SpillwayError {}

export const E_RANGE = 'E_RANGE';
export const E_NOSPC = 'E_NOSPC';
export const E_READONLY = 'E_READONLY';
export const E_IO = 'E_IO';
export const E_INTEGRITY = 'E_INTEGRITY';
export const E_FAST_ZERO_UNSUPPORTED = 'E_FAST_ZERO_UNSUPPORTED';
export const E_CLOSED = 'E_CLOSED';

/** Reject a request that does not lie within [0, size). Writes past the end are ENOSPC as NBD asks. */
export function checkRange(device: { name: string; size(): number }, offset: number, length: number, op: 'read' | 'write' = 'read'): void {
  const size = device.size();
  if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0) {
    throw new BlockError(E_RANGE, `${device.name}: ${op} offset ${offset} length ${length} must be non-negative integers`);
  }
  if (offset + length > size) {
    throw new BlockError(op === 'write' ? E_NOSPC : E_RANGE,
      `${device.name}: ${op} of ${length} bytes at ${offset} runs past the end of the device (${size} bytes)`,
      { details: { offset, length, size } });
  }
}
