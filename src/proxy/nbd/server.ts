import { InputError } from '../../errors.js';
import { formatDurationUs } from '../../util/units.js';
import { LogGate } from '../../util/log-gate.js';
import type { Listener, Transport, World } from '../../world/types.js';
import { NbdConnection } from './connection.js';
import { DEFAULT_HANDSHAKE_TIMEOUT_US, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_IN_FLIGHT_BYTES, DEFAULT_MAX_PAYLOAD_BYTES, type ConnectionHost, type NbdExport, type NbdServerOptions, type NbdServerStats, type ResolvedServerOptions } from './host.js';

export { DEFAULT_HANDSHAKE_TIMEOUT_US, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_IN_FLIGHT_BYTES, DEFAULT_MAX_PAYLOAD_BYTES, type NbdExport, type NbdServerOptions, type NbdServerStats } from './host.js';


/**
 * An NBD server (fixed newstyle) over the World's net, so the same code serves
 * a simulated guest on virtual time and qemu over a real unix socket.
 */
export class NbdServer implements ConnectionHost {
  readonly options: ResolvedServerOptions;
  readonly stats: NbdServerStats = {
    connections: 0, activeConnections: 0, requests: 0, errors: 0, bytesRead: 0, bytesWritten: 0, protocolViolations: 0, handshakeTimeouts: 0, connectionsDropped: 0,
  };
  private readonly connections = new Set<NbdConnection>();
  private readonly listeners: Listener[] = [];
  private shuttingDown = false;
  private nextConnectionId = 1;
  private readonly capLog = new LogGate(10_000_000);
  private readonly timeoutLog = new LogGate(10_000_000);

  constructor(readonly world: World, options: NbdServerOptions) {
    if (options.exports.length === 0) throw new InputError('E_BAD_CONFIG', 'nbd server: at least one export is needed');
    const names = new Set<string>();
    for (const e of options.exports) {
      if (Buffer.byteLength(e.name) > 4096) throw new InputError('E_BAD_CONFIG', `nbd export name "${e.name.slice(0, 40)}…" is longer than 4096 bytes`);
      if (names.has(e.name)) throw new InputError('E_BAD_CONFIG', `nbd export "${e.name}" is listed twice`);
      names.add(e.name);
    }
    const maxPayloadBytes = options.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
    if (!Number.isInteger(maxPayloadBytes) || maxPayloadBytes < 4096 || maxPayloadBytes > 2 ** 31) {
      throw new InputError('E_BAD_CONFIG', `nbd maxPayloadBytes: expected an integer from 4096 to 2147483648, got ${maxPayloadBytes}`);
    }
    this.options = {
      exports: options.exports,
      maxPayloadBytes,
      maxInFlight: Math.max(1, options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT),
      maxInFlightBytes: Math.max(maxPayloadBytes, options.maxInFlightBytes ?? DEFAULT_MAX_IN_FLIGHT_BYTES),
      src: options.src ?? 'proxy/nbd',
      handshakeTimeoutUs: options.handshakeTimeoutUs ?? DEFAULT_HANDSHAKE_TIMEOUT_US,
      maxConnections: options.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
    };
    for (const [field, v] of [['handshakeTimeoutUs', this.options.handshakeTimeoutUs], ['maxConnections', this.options.maxConnections]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new InputError('E_BAD_CONFIG', `nbd ${field}: expected a positive integer, got ${v}`);
    }
  }

  /** Serve on an address ("host:port", "unix:/path", or a simulated name); resolves with the bound address. */
  async listen(address: string): Promise<Listener> {
    const listener = await this.world.net.listen(address, (t) => this.accept(t));
    this.listeners.push(listener);
    return listener;
  }

  /** Serve one already-connected transport (also used by tests and in-process pairs). */
  accept(transport: Transport): void {
    if (this.shuttingDown) {
      transport.destroy();
      return;
    }
    if (this.connections.size >= this.options.maxConnections && !this.makeRoom(transport.remoteAddress)) return transport.destroy();
    const conn = new NbdConnection(this, transport, this.nextConnectionId++);
    this.connections.add(conn);
    this.stats.connections++;
    this.stats.activeConnections++;
    conn.closed.then(() => {
      this.connections.delete(conn);
      this.stats.activeConnections--;
    }, () => undefined);
    conn.start();
  }

  /**
   * At the connection cap: close the oldest connection still in the handshake
   * (idle or half-open ones must not lock real clients out). False when every
   * connection is serving an export: the new one is refused.
   */
  private makeRoom(client: string): boolean {
    let victim: NbdConnection | undefined;
    for (const c of this.connections) if (c.negotiating) { victim = c; break; }
    this.stats.connectionsDropped++;
    const max = this.options.maxConnections;
    const n = this.capLog.pass(this.world.clock.nowUs());
    if (n) {
      this.world.log('warn', this.options.src, victim
        ? `${max} connections open: closed the oldest still in the handshake to admit a new one from ${client} (${n} such since the last report)`
        : `${max} connections open, all serving: refused a new one from ${client} (${n} such since the last report)`, { maxConnections: max });
    }
    victim?.drop(`more than ${max} connections: the oldest still in the handshake made room`);
    return victim !== undefined;
  }

  handshakeTimedOut(client: string): void {
    this.stats.handshakeTimeouts++;
    const n = this.timeoutLog.pass(this.world.clock.nowUs());
    if (n) this.world.log('warn', this.options.src, `closed a connection from ${client}: no export chosen within ${formatDurationUs(this.options.handshakeTimeoutUs)} (${n} such since the last report)`);
  }

  findExport(name: string): NbdExport | undefined {
    if (name === '') return this.options.exports[0];
    return this.options.exports.find((e) => e.name === name);
  }

  get isShuttingDown(): boolean {
    return this.shuttingDown;
  }

  /**
   * Stop accepting, let requests in flight finish (new ones get ESHUTDOWN),
   * then close every connection. Devices are not closed: their owner does that.
   */
  async close(): Promise<void> {
    this.shuttingDown = true;
    // A node listener's close resolves only after its connections end, so both run together.
    await Promise.all([
      ...this.listeners.splice(0).map((l) => l.close()),
      ...[...this.connections].map((c) => c.shutdown()),
    ]);
  }
}
