import type { BlockDevice } from '../proxy/block-device.js';

/**
 * The application I/O of a VM that runs remotely, as a controller starts and
 * stops it around a move: the simulation's workload model
 * (src/providers/emulated/workload/app-io.ts) issues it against the storage
 * target; a real VM does its own.
 */

/** One acknowledged guest write (kept only when asked to record them). */
export interface AckedWrite {
  offset: number;
  data: Buffer;
}

export interface AppIoSession {
  readonly vmId: string;
  readonly diskId: string;
  /** Bytes written and acknowledged so far. */
  readonly written: number;
  readonly acked: readonly AckedWrite[];
  start(): void;
  /** Stop issuing I/O; resolves when the batch in flight is done. */
  stop(): Promise<void>;
  /** Mean read latency of the last batch (the monitoring's "cloud storage latency"). */
  meanReadLatencyUs(): number;
}

export interface AppIoRequest {
  vmId: string;
  diskId: string;
  /** The storage target's device of that disk. */
  device: BlockDevice;
  /** The random stream the I/O draws from (its label keeps runs reproducible). */
  stream: string;
  recordWrites: boolean;
}
