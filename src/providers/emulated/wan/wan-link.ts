import { InputError, SpillwayError, invariant } from '../../../errors.js';
import { US_PER_S } from '../../../util/units.js';
import type { ConnectionControl, LinkModel, Pipe } from '../../../world/sim-net.js';
import type { Rng, Timer, World } from '../../../world/types.js';
import { jitteredDelayUs, type JitterModel } from './jitter.js';
import { OutageWindows, type WanOutage } from './outage-windows.js';

export type { JitterModel } from './jitter.js';
export type { WanOutage } from './outage-windows.js';

/**
 * The emulated WAN (docs/wan.md). A `WanLink` is a `LinkModel`: give it to
 * `world.net.setLink(address, wan)` and every simulated connection to that
 * address travels over it. All connections share one serialization queue per
 * direction, so a bulk transfer and a latency-sensitive request compete for
 * bandwidth the way they would on a real circuit.
 *
 * Directions are named from the connecting side (the cloud proxy dials the
 * on-prem link server): `down` carries bytes to the client (on-prem → cloud,
 * the bulk direction when streaming disks), `up` carries bytes to the server.
 */

export interface WanConfig {
  name: string;
  /** Base round-trip time; each direction gets half as its propagation delay. */
  rttUs: number;
  /** Bytes per second towards the client (on-prem → cloud). */
  downBytesPerS: number;
  /** Bytes per second towards the server (cloud → on-prem). */
  upBytesPerS: number;
  jitter: JitterModel;
  /** Probability that one segment transmission is lost (each retransmission may be lost again). */
  lossRate: number;
  /** Payload bytes per segment. */
  mssBytes: number;
  /** Header bytes each segment adds on the wire (IP + TCP + options). */
  headerBytes: number;
  /** Floor of the retransmission timeout; the RTO is max(minRtoUs, 2 × rttUs). */
  minRtoUs: number;
  outages: WanOutage[];
  /** How often `wan.stats` is sampled while the link carries traffic. */
  sampleEveryUs: number;
}

export const WAN_DEFAULTS = {
  mssBytes: 1448,
  headerBytes: 52,
  minRtoUs: 200_000,
  sampleEveryUs: 10 * US_PER_S,
} as const;

/** Segments a link sends back to back for one connection before serving the next (fair sharing granularity). */
export const SEGMENTS_PER_TURN = 44;

export function wanConfig(partial: Partial<WanConfig> & { rttUs: number; downBytesPerS: number }): WanConfig {
  const cfg: WanConfig = {
    name: 'wan',
    upBytesPerS: partial.downBytesPerS,
    jitter: { kind: 'none' },
    lossRate: 0,
    outages: [],
    ...WAN_DEFAULTS,
    ...partial,
  };
  validateWanConfig(cfg);
  return cfg;
}

function validateWanConfig(cfg: WanConfig): void {
  invariant(Number.isInteger(cfg.rttUs) && cfg.rttUs >= 0, `wan rttUs must be a non-negative integer, got ${cfg.rttUs}`);
  invariant(cfg.downBytesPerS > 0 && cfg.upBytesPerS > 0, 'wan bandwidth must be positive');
  invariant(cfg.lossRate >= 0 && cfg.lossRate < 1, `wan lossRate must be in [0, 1), got ${cfg.lossRate}`);
  invariant(Number.isInteger(cfg.mssBytes) && cfg.mssBytes > 0, 'wan mssBytes must be a positive integer');
  invariant(Number.isInteger(cfg.headerBytes) && cfg.headerBytes >= 0, 'wan headerBytes must be a non-negative integer');
  let end = -1;
  for (const o of [...cfg.outages].sort((a, b) => a.atUs - b.atUs)) {
    invariant(o.atUs >= end, `wan outages must not overlap (one starts at ${o.atUs}us before the previous ends at ${end}us)`);
    end = o.atUs + o.forUs;
  }
}

/** Bytes on the wire for one write of `payloadBytes`: every started segment carries a header. */
export function wireBytesFor(payloadBytes: number, cfg: Pick<WanConfig, 'mssBytes' | 'headerBytes'>): number {
  return payloadBytes + Math.ceil(payloadBytes / cfg.mssBytes) * cfg.headerBytes;
}

/**
 * Microseconds to serialize `wireBytes` at `bytesPerS`, rounded up to the next
 * whole microsecond. The tolerance absorbs floating-point noise so an exact
 * quotient (12.5 MB at 12.5 MB/s) is not pushed up by one.
 */
export function serializeUs(wireBytes: number, bytesPerS: number): number {
  return Math.ceil((wireBytes * US_PER_S) / bytesPerS - 1e-6);
}

/**
 * The model's time for one connection to move `payloadBytes` written at once
 * over an idle link without jitter, loss or outages: serialization of the
 * wire bytes plus the one-way delay. Tests and benchmarks quote it as the bound.
 */
export function idealTransferUs(payloadBytes: number, cfg: WanConfig, direction: 'up' | 'down' = 'down'): number {
  const bps = direction === 'down' ? cfg.downBytesPerS : cfg.upBytesPerS;
  return serializeUs(wireBytesFor(payloadBytes, cfg), bps) + oneWayUs(cfg);
}

export const oneWayUs = (cfg: Pick<WanConfig, 'rttUs'>): number => Math.floor(cfg.rttUs / 2);
export const rtoUs = (cfg: Pick<WanConfig, 'rttUs' | 'minRtoUs'>): number => Math.max(cfg.minRtoUs, 2 * cfg.rttUs);

export interface WanDirectionStats {
  /** Payload bytes delivered to the far end. */
  deliveredBytes: number;
  /** Bytes serialized on the wire, headers and retransmissions included. */
  wireBytes: number;
  segments: number;
  /** Segment transmissions lost (each cost one RTO and a resend). */
  lostSegments: number;
  /** Payload accepted and not yet delivered. */
  queuedBytes: number;
  /** Payload bytes per second delivered over the last sample interval. */
  throughputBps: number;
}

export interface WanStats {
  up: WanDirectionStats;
  down: WanDirectionStats;
  /** Base RTT plus the queueing delay a new segment would meet in both directions now. */
  rttUs: number;
  /** Lost transmissions / transmissions over the last sample interval (the configured rate when idle). */
  lossPct: number;
  linkUp: boolean;
  outagesStarted: number;
  connectionsReset: number;
}

interface Chunk {
  data: Buffer;
  at: number;
  deliver: (chunk: Buffer) => void;
}

/** One connection's bytes in one direction. */
class Flow implements Pipe {
  readonly chunks: Chunk[] = [];
  queued = 0;
  /** Link time of the last scheduled arrival: a reliable stream never reorders. */
  lastArrivalLinkUs = 0;
  dead = false;
  private readonly progress: Array<() => void> = [];

  constructor(private readonly direction: Direction, private readonly onClosed: () => void = () => undefined) {}

  /** The endpoint closed (end, destroy or reset): what is still queued stops using the link. */
  close(): void {
    if (this.dead) return;
    this.direction.drop(this);
    this.onClosed();
  }

  send(chunk: Buffer, deliver: (chunk: Buffer) => void): void {
    if (this.dead || chunk.length === 0) return;
    this.queued += chunk.length;
    this.chunks.push({ data: chunk, at: 0, deliver });
    this.direction.enqueue(this);
  }

  get queuedBytes(): number {
    return this.queued;
  }

  onProgress(cb: () => void): void {
    this.progress.push(cb);
  }

  delivered(piece: Buffer, deliver: (chunk: Buffer) => void): void {
    // A dropped flow already forgot its queue; a piece still in flight must not count again.
    if (this.dead) return;
    this.queued -= piece.length;
    deliver(piece);
    for (const cb of this.progress) cb();
  }

  drop(): void {
    this.dead = true;
    this.chunks.length = 0;
    this.queued = 0;
  }
}

/** One direction: a FIFO transmitter serving flows round-robin, SEGMENTS_PER_TURN segments per turn. */
class Direction {
  private readonly active: Flow[] = [];
  private busy = false;
  private anchorLinkUs = 0;
  private wireSinceAnchor = 0;
  /** Wire bytes queued but not yet serialized (for the RTT estimate). */
  backlogWire = 0;
  readonly stats: WanDirectionStats = { deliveredBytes: 0, wireBytes: 0, segments: 0, lostSegments: 0, queuedBytes: 0, throughputBps: 0 };
  sampleDelivered = 0;
  sampleSegments = 0;
  sampleLost = 0;

  constructor(private readonly link: WanLink, readonly bytesPerS: number, private readonly cfg: WanConfig) {}

  enqueue(flow: Flow): void {
    const last = flow.chunks[flow.chunks.length - 1]!;
    this.backlogWire += wireBytesFor(last.data.length, this.cfg);
    this.stats.queuedBytes += last.data.length;
    if (!this.active.includes(flow)) this.active.push(flow);
    this.link.noteActivity();
    if (!this.busy) {
      this.busy = true;
      this.anchorLinkUs = this.link.linkNowUs();
      this.wireSinceAnchor = 0;
      this.transmitNext();
    }
  }

  drop(flow: Flow): void {
    if (flow.dead) return;
    for (const c of flow.chunks) {
      this.backlogWire -= wireBytesFor(c.data.length - c.at, this.cfg);
      this.stats.queuedBytes -= c.data.length - c.at;
    }
    const i = this.active.indexOf(flow);
    if (i >= 0) this.active.splice(i, 1);
    flow.drop();
  }

  private transmitNext(): void {
    const flow = this.active.shift();
    if (!flow) {
      this.busy = false;
      return;
    }
    const { mssBytes, headerBytes } = this.cfg;
    const chunk = flow.chunks[0]!;
    // Turns are whole segments of one write, so the wire bytes of a write are the
    // same however it is cut into turns: len + ceil(len / mss) × header.
    const take = Math.min(chunk.data.length - chunk.at, mssBytes * SEGMENTS_PER_TURN);
    const piece = chunk.data.subarray(chunk.at, chunk.at + take);
    chunk.at += take;
    if (chunk.at === chunk.data.length) flow.chunks.shift();
    if (flow.chunks.length > 0) this.active.push(flow);

    const segments = Math.ceil(take / mssBytes);
    const lost = this.link.drawLosses(segments);
    const baseWire = take + segments * headerBytes;
    const wire = baseWire + lost * (mssBytes + headerBytes);
    this.backlogWire -= baseWire;
    this.stats.queuedBytes -= take;
    this.stats.wireBytes += wire;
    this.stats.segments += segments + lost;
    this.stats.lostSegments += lost;
    this.sampleSegments += segments + lost;
    this.sampleLost += lost;

    this.wireSinceAnchor += wire;
    const finishLinkUs = this.anchorLinkUs + serializeUs(this.wireSinceAnchor, this.bytesPerS);
    const arrival = finishLinkUs + this.link.propagationUs() + lost * this.link.rtoUs;
    const arrivalLinkUs = Math.max(arrival, flow.lastArrivalLinkUs);
    flow.lastArrivalLinkUs = arrivalLinkUs;
    const deliver = chunk.deliver;
    this.link.atLinkTime(finishLinkUs, () => this.transmitNext());
    this.link.atLinkTime(arrivalLinkUs, () => {
      if (!flow.dead) {
        this.stats.deliveredBytes += take;
        this.sampleDelivered += take;
      }
      flow.delivered(piece, deliver);
    });
  }

  /** Microseconds a segment queued now would wait before it is serialized. */
  queueDelayUs(): number {
    return serializeUs(this.backlogWire, this.bytesPerS);
  }

  get idle(): boolean {
    return !this.busy && this.active.length === 0;
  }
}

/**
 * An emulated WAN circuit. Timing model (all in virtual time, docs/wan.md):
 *
 * - Serialization: a write of n bytes occupies n + ceil(n/mss)·header wire
 *   bytes; wire bytes leave one after another at the direction's rate. Busy
 *   periods are timed from their start with cumulative bytes, so rounding to
 *   whole microseconds never accumulates.
 * - Propagation: rtt/2 plus jitter drawn per turn; a piece never arrives
 *   before the previous piece of the same connection (no reordering).
 * - Loss: each segment transmission is lost with probability p (again on
 *   resend); every lost transmission costs one RTO = max(minRto, 2·rtt) of
 *   delay for its piece and occupies the wire again (mss + header).
 * - Outages: link time stops during an outage window (outage-windows.ts).
 *   Bytes being serialized or in flight arrive late by exactly the overlap;
 *   an outage with `reset` resets every open connection when it starts.
 *
 * The jitter models and their draw are in jitter.ts.
 */
export class WanLink implements LinkModel {
  readonly config: WanConfig;
  readonly rtoUs: number;
  private readonly up: Direction;
  private readonly down: Direction;
  private readonly outages = new OutageWindows();
  private readonly conns = new Map<number, { control: ConnectionControl; up: Flow; down: Flow }>();
  private readonly jitterRng: Rng;
  private readonly lossRng: Rng;
  private sampleTimer: Timer | undefined;
  private lastSampleUs = 0;
  private outagesStarted = 0;
  private connectionsReset = 0;

  constructor(private readonly world: World, config: WanConfig) {
    validateWanConfig(config);
    this.config = config;
    this.rtoUs = rtoUs(config);
    this.up = new Direction(this, config.upBytesPerS, config);
    this.down = new Direction(this, config.downBytesPerS, config);
    this.jitterRng = world.rng(`${config.name}/jitter`);
    this.lossRng = world.rng(`${config.name}/loss`);
    for (const o of config.outages) this.scheduleOutage(o.atUs, o.forUs, o.reset);
  }

  get src(): string {
    return this.config.name;
  }

  open(conn: ConnectionControl): { toServer: Pipe; toClient: Pipe } {
    let open = 2;
    const closed = (): void => {
      if (--open === 0) this.conns.delete(conn.id);
    };
    const entry = { control: conn, up: new Flow(this.up, closed), down: new Flow(this.down, closed) };
    this.conns.set(conn.id, entry);
    return { toServer: entry.up, toClient: entry.down };
  }

  /** Connections the link carries now. */
  get openConnections(): number {
    return this.conns.size;
  }

  /**
   * Add an outage window at `atUs` (not in the past). Deliveries already
   * scheduled past its start are pushed back by its length. Where it overlaps
   * windows already known, it adds only the time they do not cover (a fault
   * injected during a configured outage extends it rather than failing).
   */
  scheduleOutage(atUs: number, forUs: number, reset = false): void {
    const now = this.world.clock.nowUs();
    if (!Number.isInteger(atUs) || !Number.isInteger(forUs) || forUs <= 0 || atUs < now) {
      throw new InputError('E_WAN_OUTAGE', `${this.src}: an outage needs an integer start >= now (${now}us) and a positive length, got at ${atUs}us for ${forUs}us`);
    }
    for (const [at, length] of this.outages.gaps(atUs, forUs)) this.addOutage(at, length, reset);
  }

  private addOutage(atUs: number, forUs: number, reset: boolean): void {
    const now = this.world.clock.nowUs();
    const end = atUs + forUs;
    const outage: WanOutage = { atUs, forUs, reset };
    this.outages.add(outage);
    this.world.clock.schedule(atUs - now, () => this.outageStarts(outage));
    this.world.clock.schedule(end - now, () => this.outageEnds(outage));
  }

  /** True unless an outage window covers now. */
  get isUp(): boolean {
    return !this.outages.covers(this.world.clock.nowUs());
  }

  stats(): WanStats {
    const copy = (d: Direction): WanDirectionStats => ({ ...d.stats });
    return {
      up: copy(this.up),
      down: copy(this.down),
      rttUs: this.config.rttUs + this.up.queueDelayUs() + this.down.queueDelayUs(),
      lossPct: this.lossPctSinceSample(),
      linkUp: this.isUp,
      outagesStarted: this.outagesStarted,
      connectionsReset: this.connectionsReset,
    };
  }

  // ---- used by Direction -------------------------------------------------

  /** Link time: real time minus every outage before it. */
  linkNowUs(): number {
    return this.toLinkUs(this.world.clock.nowUs());
  }

  toLinkUs(realUs: number): number {
    return this.outages.toLinkUs(realUs);
  }

  /** The earliest real time at which link time reaches `linkUs`. */
  toRealUs(linkUs: number): number {
    return this.outages.toRealUs(linkUs);
  }

  /** Run `fn` when link time reaches `linkUs`; an outage added meanwhile defers it. */
  atLinkTime(linkUs: number, fn: () => void): void {
    const fire = (): void => {
      const due = this.toRealUs(linkUs);
      const now = this.world.clock.nowUs();
      if (due > now) this.world.clock.schedule(due - now, fire);
      else fn();
    };
    this.world.clock.schedule(this.toRealUs(linkUs) - this.world.clock.nowUs(), fire);
  }

  /** One-way delay of a turn: rtt/2 plus jitter (jitter.ts). */
  propagationUs(): number {
    return jitteredDelayUs(oneWayUs(this.config), this.config.jitter, this.jitterRng);
  }

  drawLosses(segments: number): number {
    const p = this.config.lossRate;
    if (p === 0) return 0;
    let lost = 0;
    for (let i = 0; i < segments; i++) while (this.lossRng.chance(p)) lost++;
    return lost;
  }

  noteActivity(): void {
    if (this.sampleTimer) return;
    this.lastSampleUs = this.world.clock.nowUs();
    this.sampleTimer = this.world.clock.schedule(this.config.sampleEveryUs, () => this.sample());
  }

  // ---- internals ---------------------------------------------------------

  private sample(): void {
    const now = this.world.clock.nowUs();
    const spanS = Math.max(1, now - this.lastSampleUs) / US_PER_S;
    this.up.stats.throughputBps = this.up.sampleDelivered / spanS;
    this.down.stats.throughputBps = this.down.sampleDelivered / spanS;
    const quiet = this.up.sampleDelivered === 0 && this.down.sampleDelivered === 0 && this.up.idle && this.down.idle;
    this.world.trace.emit(this.src, 'wan.stats', {
      upBps: Math.round(this.up.stats.throughputBps),
      downBps: Math.round(this.down.stats.throughputBps),
      rttUs: this.config.rttUs + this.up.queueDelayUs() + this.down.queueDelayUs(),
      lossPct: round3(this.lossPctSinceSample()),
      up: this.isUp,
    });
    for (const d of [this.up, this.down]) {
      d.sampleDelivered = 0;
      d.sampleSegments = 0;
      d.sampleLost = 0;
    }
    this.lastSampleUs = now;
    // An idle link stops sampling, so a quiet simulation can still run to idle.
    this.sampleTimer = quiet ? undefined : this.world.clock.schedule(this.config.sampleEveryUs, () => this.sample());
  }

  private lossPctSinceSample(): number {
    const sent = this.up.sampleSegments + this.down.sampleSegments;
    if (sent === 0) return this.config.lossRate * 100;
    return ((this.up.sampleLost + this.down.sampleLost) / sent) * 100;
  }

  private outageStarts(outage: WanOutage): void {
    this.outagesStarted++;
    this.world.trace.emit(this.src, 'wan.outage', { start: true, reset: outage.reset });
    if (!outage.reset) return;
    const err = new SpillwayError('ECONNRESET', `${this.src}: connection reset by a WAN outage`, { details: { atUs: outage.atUs } });
    const entries = [...this.conns.values()];
    this.conns.clear();
    for (const e of entries) {
      this.up.drop(e.up);
      this.down.drop(e.down);
      this.connectionsReset++;
      e.control.reset(err);
    }
  }

  private outageEnds(outage: WanOutage): void {
    this.world.trace.emit(this.src, 'wan.outage', { start: false, reset: outage.reset });
  }
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;
