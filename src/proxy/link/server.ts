import { errorCode } from '../../errors.js';
import { LogGate } from '../../util/log-gate.js';
import type { Listener, Transport, World } from '../../world/types.js';
import type { LinkConnection } from './connection.js';
import { LinkError, E_PROTOCOL } from './errors.js';
import { EncodedRunCache, newCodecStats } from './payload.js';
import type { HandleState } from './push-queue.js';
import { PeerMemory, ServerSession, type LinkServerStats, type SessionHost, type SessionOptions } from './server-session.js';

export interface LinkServerOptions extends SessionOptions {
  address: string;
  /** Name shown to peers and in traces. */
  name?: string;
  /** Signatures remembered per peer for dedup. */
  dedupMemory?: number;
  /** Bytes of encoded data runs kept by content across peers (0 turns the cache off). */
  runCacheBytes?: number;
  /**
   * Connections allowed in the handshake at once (default 64); past that the
   * oldest still unauthenticated one is dropped, so a flood of idle or slow
   * peers costs bounded memory and a real peer (done in one round trip) gets in.
   */
  maxUnauthenticated?: number;
}

export const DEFAULT_MAX_UNAUTHENTICATED = 64;

/**
 * The on-prem end of the link: authenticates peers, serves reads (answering
 * with zero markers, signatures or PUSHED markers where it can), applies
 * write groups in seq order, and streams pushes within the client's credit.
 */
export class LinkServer {
  /** Link bytes both ways, the open connections included (stats counts a connection when it closes). */
  wireBytes(): { in: number; out: number } {
    let i = this.stats.wireBytesIn;
    let o = this.stats.wireBytesOut;
    for (const c of this.conns) { i += c.wireBytesIn; o += c.wireBytesOut; }
    return { in: i, out: o };
  }

  readonly stats: LinkServerStats = {
    connections: 0, refused: 0, unauthenticatedDropped: 0, reads: 0, pushes: 0, groupsApplied: 0, groupsDuplicate: 0, peerCachesForgotten: 0, sigsAnswered: 0, wireBytesOut: 0, wireBytesIn: 0, codec: newCodecStats(),
  };
  private listener: Listener | null = null;
  private readonly peers = new Map<string, PeerMemory>();
  /** The cache generation each peer last authenticated with. */
  private readonly generations = new Map<string, string | null>();
  /** Peers booting one image read the same blocks: each distinct run is deflated once. */
  readonly runCache: EncodedRunCache | undefined;
  /** Every open handle per disk id, so a write can retract stale pushes everywhere. */
  private readonly byDisk = new Map<string, Set<HandleState>>();
  private readonly conns = new Set<LinkConnection>();
  /** Connections not authenticated yet, oldest first. */
  private readonly unauthenticated = new Set<LinkConnection>();
  private readonly dropLog = new LogGate(10_000_000);
  private readonly failLog = new LogGate(10_000_000);
  private readonly maxUnauthenticated: number;
  private readonly name: string;
  private readonly host: SessionHost;

  constructor(private readonly world: World, private readonly options: LinkServerOptions) {
    this.name = options.name ?? 'onprem';
    this.maxUnauthenticated = Math.max(1, options.maxUnauthenticated ?? DEFAULT_MAX_UNAUTHENTICATED);
    const runCacheBytes = options.runCacheBytes ?? 64 * 1024 * 1024;
    this.runCache = runCacheBytes > 0 ? new EncodedRunCache(runCacheBytes) : undefined;
    this.host = this.sessionHost();
  }

  get address(): string {
    return this.listener?.address ?? this.options.address;
  }

  async start(): Promise<void> {
    this.listener = await this.world.net.listen(this.options.address, (t) => this.accept(t));
  }

  async close(): Promise<void> {
    // Connections first: a listener's close waits for its open connections to end.
    for (const c of [...this.conns]) c.destroy();
    await this.listener?.close();
    this.listener = null;
  }

  /** Drop every open connection (fault injection: the WAN went away). */
  dropConnections(): void {
    for (const c of [...this.conns]) c.transport.destroy(new LinkError('ECONNRESET', 'link dropped'));
  }

  private trace(state: string, data: Record<string, unknown>): void {
    this.world.trace.emit(`proxy/${this.name}`, 'link.state', { state, ...data });
  }

  private accept(transport: Transport): void {
    new ServerSession(this.host, transport);
  }

  /** A connection starts its handshake: past the cap, the oldest one still in it makes room. */
  private authPending(conn: LinkConnection): void {
    if (this.unauthenticated.size >= this.maxUnauthenticated) {
      const oldest = this.unauthenticated.values().next().value!;
      this.unauthenticated.delete(oldest);
      this.stats.unauthenticatedDropped++;
      oldest.destroy(new LinkError(E_PROTOCOL, `more than ${this.maxUnauthenticated} connections were authenticating at once`));
      const n = this.dropLog.pass(this.world.clock.nowUs());
      if (n) this.world.log('warn', `proxy/${this.name}`, `dropped ${n} unauthenticated link connection(s): more than ${this.maxUnauthenticated} were in the handshake at once (oldest dropped first)`);
    }
    this.unauthenticated.add(conn);
  }

  private sessionHost(): SessionHost {
    const { world, options, stats, runCache, peers, byDisk, conns, name } = this;
    return {
      world, options, stats, runCache, name,
      nonceLabel: `link-server/${name}`,
      peerMemory: (peer) => {
        let m = peers.get(peer);
        if (!m) { m = new PeerMemory(options.dedupMemory ?? 1 << 20); peers.set(peer, m); }
        return m;
      },
      peerCache: (peer, generation) => {
        const known = this.generations.has(peer);
        if (known && this.generations.get(peer) === generation && generation !== null) return true;
        this.generations.set(peer, generation);
        // A new cache (a restarted proxy with an empty one, a new instance under the same name)
        // holds nothing on-prem sent the old one: answering by signature would cost it a refetch per block.
        if (peers.delete(peer)) stats.peerCachesForgotten++;
        return false;
      },
      handlesOf: (diskId) => byDisk.get(diskId) ?? [],
      addHandle: (h) => {
        let set = byDisk.get(h.disk.diskId);
        if (!set) { set = new Set(); byDisk.set(h.disk.diskId, set); }
        set.add(h);
      },
      removeHandle: (h) => { byDisk.get(h.disk.diskId)?.delete(h); },
      connOpened: (conn) => { conns.add(conn); this.authPending(conn); },
      authenticated: (conn) => { this.unauthenticated.delete(conn); },
      droppedBeforeAuth: (remote, err) => {
        const n = this.failLog.pass(world.clock.nowUs());
        if (n) world.log('warn', `proxy/${name}`, `dropped unauthenticated link peer ${remote}: ${err.message}${n > 1 ? ` (${n} such drops since the last report)` : ''}`, { code: errorCode(err) ?? 'E_IO' });
      },
      connClosed: (conn) => { conns.delete(conn); this.unauthenticated.delete(conn); },
      trace: (state, data) => this.trace(state, data),
    };
  }
}
