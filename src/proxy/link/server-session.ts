import { errorCode } from '../../errors.js';
import type { ContentMemo } from '../content-memo.js';
import type { Transport, World } from '../../world/types.js';
import type { ByteRange, GroupWrite, LinkBackend } from './backend.js';
import { LinkConnection } from './connection.js';
import { LinkError, E_PROTOCOL } from './errors.js';
import { ServerHandshake } from './handshake.js';
import { PushKind, decodePushReq, decodeRangeReq, type AttachReply, type AttachReq, type ErrorMsg, type HelloMsg, type WriteBatchReply } from './messages.js';
import { contentSignature, decodeSegments, encodeSegments, isZero, type CodecStats, type EncodeOptions, type EncodedRunCache } from './payload.js';
import { HandleState, PushClass, PushQueue } from './push-queue.js';
import { DETACH_ENDED, F_ERROR, F_NO_PUSHED, F_SIGS_OK, Op, WireReader, WireWriter, jsonPayload, parseJson, type Frame } from './wire.js';

export interface LinkServerStats {
  connections: number;
  refused: number;
  /** Connections dropped in the handshake because too many were authenticating at once. */
  unauthenticatedDropped: number;
  reads: number;
  pushes: number;
  groupsApplied: number;
  groupsDuplicate: number;
  /** Peers that came back with another cache generation: what on-prem believed they held was forgotten. */
  peerCachesForgotten: number;
  /** Blocks answered by signature (the peer was believed to hold their content). */
  sigsAnswered: number;
  wireBytesOut: number;
  wireBytesIn: number;
  codec: CodecStats;
}

/** The server options a session reads. */
export interface SessionOptions {
  pairingKey: Buffer;
  backend: LinkBackend;
  rateBytesPerS?: number;
  /** zlib level for data runs; 0 turns compression off. */
  compressionLevel?: number;
  handshakeTimeoutUs?: number;
  /** Largest push frame, bytes of plaintext. */
  pushChunkBytes?: number;
  /** Signatures by content across the run (a simulation shares one among all its proxies). */
  contentMemo?: ContentMemo;
}

/** What the server remembers about a peer across its connections: signatures of content it sent, for dedup. */
export class PeerMemory {
  private readonly sigs = new Set<string>();
  constructor(private readonly limit: number) {}
  has(sig: Buffer): boolean {
    return this.sigs.has(sig.toString('base64'));
  }
  add(sig: Buffer): void {
    const key = sig.toString('base64');
    if (this.sigs.has(key)) return;
    if (this.sigs.size >= this.limit) this.sigs.delete(this.sigs.values().next().value!);
    this.sigs.add(key);
  }
}

/** What a session needs from the server that accepted it (LinkServer provides it). */
export interface SessionHost {
  readonly world: World;
  /** The server's name, in challenges, traces and logs. */
  readonly name: string;
  readonly nonceLabel: string;
  readonly options: SessionOptions;
  readonly stats: LinkServerStats;
  /** Encoded data runs shared across peers; undefined when off. */
  readonly runCache: EncodedRunCache | undefined;
  peerMemory(peer: string): PeerMemory;
  /**
   * The peer authenticated with this cache generation: true when it is the one
   * on-prem saw last; otherwise the peer's memory starts over (it holds none of it).
   */
  peerCache(peer: string, generation: string | null): boolean;
  /** Every open handle of a disk, on any connection (a write retracts their stale pushes). */
  handlesOf(diskId: string): Iterable<HandleState>;
  addHandle(h: HandleState): void;
  removeHandle(h: HandleState): void;
  connOpened(conn: LinkConnection): void;
  /** The peer proved the pairing key. */
  authenticated(conn: LinkConnection): void;
  /** A connection failed before authenticating (a bad or oversized frame, the handshake timeout). */
  droppedBeforeAuth(remote: string, err: Error): void;
  connClosed(conn: LinkConnection): void;
  trace(state: string, data: Record<string, unknown>): void;
}

/**
 * One peer connection on the on-prem end of the link: the handshake, then
 * one method per op (attach, read, write batch, flush, signatures, profile
 * and push requests, access reports, detach), and the push stream within the
 * peer's credit. Ops run concurrently; each is answered by its frame id.
 */
export class ServerSession {
  private readonly conn: LinkConnection;
  private readonly handshake: ServerHandshake;
  private readonly handles = new Map<number, Promise<HandleState>>();
  /** Attached handles in attach order (the push stream serves them in this order). */
  private readonly live = new Set<HandleState>();
  private readonly pushes: PushQueue;
  private readonly level: number;

  constructor(private readonly host: SessionHost, transport: Transport) {
    const o = host.options;
    this.level = o.compressionLevel ?? 1;
    this.conn = new LinkConnection(transport, {
      clock: host.world.clock,
      ...(o.rateBytesPerS ? { rateBytesPerS: o.rateBytesPerS } : {}),
      onFrame: (f) => {
        try {
          this.onFrame(f);
        } catch (err) {
          this.conn.destroy(err as Error);
        }
      },
      onClose: (err) => this.onClose(err),
    });
    host.connOpened(this.conn);
    this.handshake = new ServerHandshake({
      world: host.world,
      conn: this.conn,
      pairingKey: o.pairingKey,
      serverName: host.name,
      nonceLabel: host.nonceLabel,
      timeoutUs: o.handshakeTimeoutUs ?? 10_000_000,
      refused: (peer, code, message) => {
        host.stats.refused++;
        host.trace('refused', { peer: peer ?? '', code });
        host.world.log('warn', `proxy/${host.name}`, `refused link peer ${peer ?? '?'}: ${message}`, { code });
      },
      opened: (hello) => {
        host.authenticated(this.conn);
        this.knownCache = host.peerCache(hello.peer, hello.cache ?? null);
        this.pushes.open(hello.pushWindowBytes);
        host.stats.connections++;
        host.trace('authenticated', { peer: hello.peer });
      },
    });
    this.pushes = new PushQueue(this.conn, this.live, {
      pushChunkBytes: o.pushChunkBytes ?? 128 * 1024,
      encodeOptions: (h) => this.encodeOptions(h, true, false),
      pushed: () => { host.stats.pushes++; },
      log: (message) => host.world.log('warn', `proxy/${host.name}`, message),
    });
  }

  /** The peer's cache is the one on-prem saw on its last connection (see SessionHost.peerCache). */
  private knownCache = false;

  /** The peer's HELLO (set once the handshake got that far). */
  private get hello(): HelloMsg {
    return this.handshake.hello!;
  }

  private onClose(err?: Error): void {
    if (!this.handshake.open && this.handshake.phase !== 'refused' && err) this.host.droppedBeforeAuth(this.conn.transport.remoteAddress, err);
    this.handshake.cancel();
    this.host.connClosed(this.conn);
    for (const h of this.live) {
      this.host.removeHandle(h);
      h.disk.disconnected();
    }
    this.host.stats.wireBytesOut += this.conn.wireBytesOut;
    this.host.stats.wireBytesIn += this.conn.wireBytesIn;
    if (this.handshake.open) this.host.trace('closed', { peer: this.handshake.hello?.peer ?? '' });
  }

  private onFrame(f: Frame): void {
    if (!this.handshake.open) return this.handshake.onFrame(f);
    if (f.op === Op.CREDIT) {
      this.pushes.grant(new WireReader(f.payload).u32());
      return;
    }
    this.handle(f).catch((err) => { if (!this.conn.closed) this.replyError(f.id, err); });
  }

  private handle(f: Frame): Promise<void> {
    switch (f.op) {
      case Op.ATTACH: return this.attach(f);
      case Op.READ: return this.read(f);
      case Op.WRITE_BATCH: return this.writeBatch(f);
      case Op.FLUSH: return this.flush(f);
      case Op.SIGS: return this.sigs(f);
      case Op.PROFILE: return this.profile(f);
      case Op.REPORT: return this.report(f);
      case Op.DETACH: return this.detach(f);
      default: return Promise.reject(new LinkError(E_PROTOCOL, `unexpected op 0x${f.op.toString(16)}`));
    }
  }

  private reply(id: number, payload: Buffer): void {
    this.conn.send({ op: Op.REPLY, flags: 0, id, payload });
  }

  private replyError(id: number, err: unknown): void {
    const code = errorCode(err) ?? 'E_IO';
    const message = err instanceof Error ? err.message : String(err);
    this.conn.send({ op: Op.REPLY, flags: F_ERROR, id, payload: jsonPayload({ code, message } satisfies ErrorMsg) });
  }

  private async getHandle(h: number): Promise<HandleState> {
    const p = this.handles.get(h);
    if (!p) throw new LinkError(E_PROTOCOL, `no disk is attached as handle ${h} on this connection`);
    return p;
  }

  /** How data for this handle is encoded: signatures only if allowed and the peer indexes by them, PUSHED markers only if allowed. */
  private encodeOptions(h: HandleState, allowSigs: boolean, allowPushed: boolean): EncodeOptions {
    const hello = this.hello;
    const mem = this.host.peerMemory(hello.peer);
    const sigsOk = allowSigs && hello.sigs === 'sha256';
    return {
      blockBytes: h.bb,
      level: this.level,
      stats: this.host.stats.codec,
      ...(this.host.runCache && hello.sigs === 'sha256' ? { runCache: this.host.runCache } : {}),
      ...(this.host.options.contentMemo ? { memo: this.host.options.contentMemo } : {}),
      ...(allowPushed ? { pushed: (b: number) => h.pushedRecently(b) } : {}),
      ...(sigsOk ? { peerHas: (sig: Buffer) => mem.has(sig) && ++this.host.stats.sigsAnswered > 0 } : {}),
      ...(hello.sigs === 'sha256' ? { sentData: (sig: Buffer) => mem.add(sig) } : {}),
    };
  }

  private async attach(f: Frame): Promise<void> {
    const req = parseJson<AttachReq>(f.payload, 'ATTACH');
    const p = this.openHandle(req);
    this.handles.set(req.handle, p);
    p.catch(() => this.handles.delete(req.handle));
    const h = await p;
    this.reply(f.id, jsonPayload({
      sizeBytes: h.disk.sizeBytes, blockBytes: h.bb, lastSeq: h.disk.lastSeq(), profileBlocks: rangesToBlocks(h.disk.profile(), h.bb, h.disk.sizeBytes).length,
      cacheKey: h.disk.cacheKey.toString('hex'), keyEpoch: h.disk.keyEpoch,
      ...(h.disk.writer ? { writer: h.disk.writer } : {}),
    } satisfies AttachReply));
  }

  private async openHandle(req: AttachReq): Promise<HandleState> {
    const disk = await this.host.options.backend.attach({ peer: this.hello.peer, disk: req.disk, mode: req.mode, image: req.image, writer: req.writer, knownCache: this.knownCache });
    const bb = req.blockBytes ?? 4096;
    if (!Number.isInteger(bb) || bb < 512 || bb > 1 << 20 || bb % 512 !== 0) throw new LinkError(E_PROTOCOL, `ATTACH: blockBytes must be a multiple of 512 up to 1 MiB, got ${bb}`);
    const h = new HandleState(req.handle, disk, bb);
    this.live.add(h);
    this.host.addHandle(h);
    return h;
  }

  private async read(f: Frame): Promise<void> {
    const req = decodeRangeReq(new WireReader(f.payload));
    const h = await this.getHandle(req.handle);
    this.host.stats.reads++;
    const groups = h.disk.noteRead(req.offset, req.length, !this.hello.reportsAccess);
    const data = await h.disk.read(req.offset, req.length);
    const w = new WireWriter();
    encodeSegments(w, req.offset, data, this.encodeOptions(h, (f.flags & F_SIGS_OK) !== 0, (f.flags & F_NO_PUSHED) === 0));
    h.markSent(req.offset, req.length, false);
    this.reply(f.id, w.done());
    if (groups.length) {
      h.queueRanges(PushClass.GROUP, groups);
      void this.pushes.pump();
    }
  }

  private async writeBatch(f: Frame): Promise<void> {
    const r = new WireReader(f.payload);
    const handle = r.u16();
    const seq = r.u48();
    const n = r.u32();
    const h = await this.getHandle(handle);
    const writes: GroupWrite[] = [];
    for (let i = 0; i < n; i++) {
      const kind = r.u8();
      const offset = r.u48();
      if (kind === 1) { writes.push({ offset, length: r.u48(), zero: true }); continue; }
      if (kind !== 0) throw new LinkError(E_PROTOCOL, `unknown write kind ${kind}`);
      const length = r.u32();
      const dec = decodeSegments(r, length);
      if (dec.sigs.length || dec.pushed.length) throw new LinkError(E_PROTOCOL, 'a write batch may carry only data and zero segments');
      writes.push({ offset, data: dec.data });
    }
    const { duplicate } = await h.disk.applyGroup(seq, writes);
    if (duplicate) this.host.stats.groupsDuplicate++;
    else {
      this.host.stats.groupsApplied++;
      // Pushes of these blocks made before the write are stale now, on every connection.
      for (const other of this.host.handlesOf(h.disk.diskId)) {
        for (const w of writes) other.forgetWritten(w.offset, w.offset + (w.zero ? w.length : w.data.length));
      }
    }
    this.reply(f.id, jsonPayload({ lastSeq: h.disk.lastSeq(), duplicate } satisfies WriteBatchReply));
  }

  private async flush(f: Frame): Promise<void> {
    const h = await this.getHandle(new WireReader(f.payload).u16());
    await h.disk.flush();
    this.reply(f.id, Buffer.alloc(0));
  }

  /** Per block of the range: a zero marker or the content's signature. */
  private async sigs(f: Frame): Promise<void> {
    const req = decodeRangeReq(new WireReader(f.payload));
    const h = await this.getHandle(req.handle);
    const data = await h.disk.read(req.offset, req.length);
    const bb = h.bb;
    const w = new WireWriter();
    const blocks: Buffer[] = [];
    for (let pos = 0; pos < data.length;) {
      const end = Math.min(data.length, (Math.floor((req.offset + pos) / bb) + 1) * bb - req.offset);
      blocks.push(data.subarray(pos, end));
      pos = end;
    }
    w.u32(blocks.length);
    const memo = this.host.options.contentMemo;
    for (const b of blocks) {
      if (isZero(b)) w.u8(0);
      else w.u8(1).bytes(memo ? memo.signature(b) : contentSignature(b));
    }
    this.reply(f.id, w.done());
  }

  /** Stream the profile from a position, or push the ranges the peer asks for. */
  private async profile(f: Frame): Promise<void> {
    const req = decodePushReq(new WireReader(f.payload));
    const h = await this.getHandle(req.handle);
    if (req.kind === PushKind.PROFILE) {
      const runs = h.setProfile(rangesToBlocks(h.disk.profile(), h.bb, h.disk.sizeBytes), req.skip);
      // Tell the client the order, so a read can wait for a block that is about to arrive.
      this.reply(f.id, jsonPayload({ base: h.profileBase, runs }));
    } else {
      h.queueRanges(PushClass.EXPLICIT, h.disk.pushable ? h.disk.pushable(req.ranges) : req.ranges);
      this.reply(f.id, jsonPayload({ queuedBlocks: h.queued(PushClass.EXPLICIT) }));
    }
    void this.pushes.pump();
  }

  private async report(f: Frame): Promise<void> {
    const r = new WireReader(f.payload);
    const handle = r.u16();
    const n = r.u32();
    const ranges: ByteRange[] = [];
    for (let i = 0; i < n; i++) ranges.push({ offset: r.u48(), length: r.u32() });
    const h = await this.getHandle(handle);
    h.disk.noteAccess(ranges);
    this.reply(f.id, Buffer.alloc(0));
  }

  private async detach(f: Frame): Promise<void> {
    const r = new WireReader(f.payload);
    const handle = r.u16();
    const ended = r.remaining > 0 && (r.u8() & DETACH_ENDED) !== 0;
    const h = await this.getHandle(handle);
    this.handles.delete(handle);
    this.live.delete(h);
    this.host.removeHandle(h);
    await h.disk.detach(ended);
    this.reply(f.id, Buffer.alloc(0));
  }
}

/** Block indices covering the ranges, in order of first appearance, each once. */
export function rangesToBlocks(ranges: ByteRange[], bb: number, sizeBytes: number): number[] {
  const seen = new Set<number>();
  const out: number[] = [];
  for (const r of ranges) {
    const end = Math.min(sizeBytes, r.offset + r.length);
    for (let b = Math.floor(r.offset / bb); b * bb < end; b++) {
      if (!seen.has(b)) { seen.add(b); out.push(b); }
    }
  }
  return out;
}
