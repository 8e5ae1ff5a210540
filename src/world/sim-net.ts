import { SpillwayError } from '../errors.js';
import { connectError, listenError } from './net-errors.js';
import type { Clock, Listener, Net, Transport } from './types.js';

/** One direction of an emulated link: it decides when bytes arrive. */
export interface Pipe {
  /** Accept bytes for delivery; `deliver` must be called with them, in order, at the modeled time. */
  send(chunk: Buffer, deliver: (chunk: Buffer) => void): void;
  /** Bytes accepted but not yet delivered (for backpressure). */
  readonly queuedBytes: number;
  /** Called whenever queuedBytes drops. */
  onProgress(cb: () => void): void;
  /** The connection closed: bytes still queued will never be delivered, so a link may drop them. */
  close?(): void;
}

/** What a link model may do to a connection it carries. */
export interface ConnectionControl {
  readonly id: number;
  /** Tear the connection down on both ends, as a TCP reset would. */
  reset(err: Error): void;
}

/** A link between a client and a listener: two pipes per connection. */
export interface LinkModel {
  open(conn: ConnectionControl): { toServer: Pipe; toClient: Pipe };
}

const HIGH_WATER_BYTES = 4 * 1024 * 1024;

/** A pipe with a fixed one-way delay and unlimited bandwidth. */
export class DelayPipe implements Pipe {
  private queued = 0;
  private readonly progress: Array<() => void> = [];
  constructor(private readonly clock: Clock, private readonly delayUs: number) {}

  send(chunk: Buffer, deliver: (chunk: Buffer) => void): void {
    this.queued += chunk.length;
    this.clock.schedule(this.delayUs, () => {
      this.queued -= chunk.length;
      deliver(chunk);
      for (const cb of this.progress) cb();
    });
  }

  get queuedBytes(): number {
    return this.queued;
  }

  onProgress(cb: () => void): void {
    this.progress.push(cb);
  }
}

export const directLink = (clock: Clock, delayUs = 0): LinkModel => ({
  open: () => ({ toServer: new DelayPipe(clock, delayUs), toClient: new DelayPipe(clock, delayUs) }),
});

class SimEndpoint implements Transport {
  peer!: SimEndpoint;
  closed = false;
  private dataCbs: Array<(chunk: Buffer) => void> = [];
  private drainCbs: Array<() => void> = [];
  private closeCbs: Array<(err?: Error) => void> = [];
  private pendingData: Buffer[] = [];
  private wantDrain = false;
  private ending = false;
  private paused = false;

  constructor(
    readonly localAddress: string,
    readonly remoteAddress: string,
    private readonly outbound: Pipe,
  ) {
    outbound.onProgress(() => {
      if (this.wantDrain && outbound.queuedBytes < HIGH_WATER_BYTES) {
        this.wantDrain = false;
        for (const cb of this.drainCbs) cb();
      }
      if (this.ending && outbound.queuedBytes === 0) this.finishEnd();
    });
  }

  write(data: Uint8Array): boolean {
    if (this.closed || this.ending) return false;
    // Held by reference until delivery, as a real socket holds a queued write: a caller never
    // changes a buffer it wrote (Transport.write), so a copy here would only cost.
    const chunk = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    this.outbound.send(chunk, (c) => this.peer.receive(c));
    const ok = this.outbound.queuedBytes < HIGH_WATER_BYTES;
    if (!ok) this.wantDrain = true;
    return ok;
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    const pending = this.pendingData;
    this.pendingData = [];
    for (const chunk of pending) this.receive(chunk);
  }

  receive(chunk: Buffer): void {
    if (this.closed) return;
    if (this.dataCbs.length === 0 || this.paused) {
      this.pendingData.push(chunk);
      return;
    }
    for (const cb of this.dataCbs) cb(chunk);
  }

  onData(cb: (chunk: Buffer) => void): void {
    this.dataCbs.push(cb);
    if (this.pendingData.length) {
      const pending = this.pendingData;
      this.pendingData = [];
      for (const chunk of pending) cb(chunk);
    }
  }

  onDrain(cb: () => void): void {
    this.drainCbs.push(cb);
  }

  onClose(cb: (err?: Error) => void): void {
    if (this.closed) cb();
    else this.closeCbs.push(cb);
  }

  end(): void {
    if (this.closed || this.ending) return;
    this.ending = true;
    if (this.outbound.queuedBytes === 0) this.finishEnd();
  }

  private finishEnd(): void {
    this.ending = false;
    this.close();
    this.peer.close();
  }

  destroy(err?: Error): void {
    this.close(err);
    this.peer.close(err ? new SpillwayError('ECONNRESET', 'connection reset by peer', { cause: err }) : undefined);
  }

  close(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.outbound.close?.();
    const cbs = this.closeCbs;
    this.closeCbs = [];
    for (const cb of cbs) cb(err);
  }
}

/**
 * In-simulation networking. Addresses are plain names ("onprem:7000"); a
 * listener may be given a link model that decides how bytes travel.
 */
export class SimNet implements Net {
  private readonly listeners = new Map<string, { onConnection: (t: Transport) => void; link: LinkModel }>();
  private readonly links = new Map<string, LinkModel>();
  private nextConnId = 1;
  private nextPort = 40000;

  constructor(private readonly clock: Clock) {}

  /** Route connections to `address` over `link` (e.g. the emulated WAN). */
  setLink(address: string, link: LinkModel): void {
    this.links.set(address, link);
    const l = this.listeners.get(address);
    if (l) l.link = link;
  }

  async listen(address: string, onConnection: (t: Transport) => void): Promise<Listener> {
    if (this.listeners.has(address)) {
      throw listenError(address, 'the simulated address is already being served', 'EADDRINUSE');
    }
    this.listeners.set(address, { onConnection, link: this.links.get(address) ?? directLink(this.clock) });
    return {
      address,
      close: async () => {
        this.listeners.delete(address);
      },
    };
  }

  async connect(address: string): Promise<Transport> {
    const listener = this.listeners.get(address);
    if (!listener) throw connectError(address, 'nothing listens on this simulated address', 'ECONNREFUSED');
    const id = this.nextConnId++;
    const clientAddress = `client-${id}:${this.nextPort++}`;
    let client!: SimEndpoint;
    let server!: SimEndpoint;
    const control: ConnectionControl = {
      id,
      reset: (err) => {
        client.close(err);
        server.close(err);
      },
    };
    const { toServer, toClient } = listener.link.open(control);
    client = new SimEndpoint(clientAddress, address, toServer);
    server = new SimEndpoint(address, clientAddress, toClient);
    client.peer = server;
    server.peer = client;
    listener.onConnection(server);
    return client;
  }
}
