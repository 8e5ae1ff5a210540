import type { World } from '../../world/types.js';
import type { BlockDevice } from '../block-device.js';

/** One export served by an NbdServer. */
export interface NbdExport {
  /** The name clients ask for; the first export is also the default ("" name). */
  name: string;
  device: BlockDevice;
  description?: string;
  /** Refuse writes with EPERM and advertise READ_ONLY. */
  readOnly?: boolean;
  /**
   * Advertise CAN_MULTI_CONN. Safe when every connection reaches the same
   * device object (one cache, one flush) — true for every export here, so the
   * default is on; turn it off for a device whose flush is per-connection.
   */
  multiConn?: boolean;
}

export interface NbdServerOptions {
  exports: NbdExport[];
  /** Largest READ/WRITE payload accepted; larger requests get EINVAL (default 32 MiB). */
  maxPayloadBytes?: number;
  /** Requests in flight per connection before the server stops reading (default 256). */
  maxInFlight?: number;
  /** READ/WRITE bytes in flight per connection before the server stops reading (default 64 MiB). */
  maxInFlightBytes?: number;
  /** Trace/log source name (default "proxy/nbd"). */
  src?: string;
  /** A connection that has not picked an export (GO / EXPORT_NAME) within this long is closed (default 10 s). */
  handshakeTimeoutUs?: number;
  /**
   * Connections at once (default 32). A new one past that closes the oldest
   * still in the handshake; when every connection is past it, the new one is
   * refused.
   */
  maxConnections?: number;
}

export interface NbdServerStats {
  connections: number;
  activeConnections: number;
  requests: number;
  errors: number;
  bytesRead: number;
  bytesWritten: number;
  protocolViolations: number;
  /** Connections closed for not finishing the handshake in time. */
  handshakeTimeouts: number;
  /** Connections closed or refused because maxConnections were open. */
  connectionsDropped: number;
}

export const DEFAULT_MAX_PAYLOAD_BYTES = 32 * 1024 * 1024;
export const DEFAULT_MAX_IN_FLIGHT = 256;
export const DEFAULT_MAX_IN_FLIGHT_BYTES = 64 * 1024 * 1024;
export const DEFAULT_HANDSHAKE_TIMEOUT_US = 10_000_000;
export const DEFAULT_MAX_CONNECTIONS = 32;

export interface ResolvedServerOptions {
  exports: NbdExport[];
  maxPayloadBytes: number;
  maxInFlight: number;
  maxInFlightBytes: number;
  src: string;
  handshakeTimeoutUs: number;
  maxConnections: number;
}

/** What a connection needs from the server that accepted it (NbdServer implements it). */
export interface ConnectionHost {
  readonly world: World;
  readonly options: ResolvedServerOptions;
  readonly stats: NbdServerStats;
  readonly isShuttingDown: boolean;
  findExport(name: string): NbdExport | undefined;
  /** A connection was closed for not finishing the handshake in time. */
  handshakeTimedOut(client: string): void;
}
