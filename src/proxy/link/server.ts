import { errorCode } from '../../errors.js';
import type { GroupOp } from '../write-group.js';
import type { Listener, Transport, World } from '../../world/types.js';
import { LinkConnection } from './connection.js';
import { LinkError, E_BAD_HANDLE, E_NOT_PAIRED, E_PROTOCOL, E_VERSION } from './errors.js';
import {
  PushKind, decodePushReq, decodeRangeReq,
  type AttachMode, type AttachReply, type AttachReq, type AuthMsg, type ChallengeMsg, type ErrorMsg, type HelloMsg, type WriteBatchReply, type WriterClaim,
} from './messages.js';
import { decodeSegments, encodeSegments, isZero, contentSignature, newCodecStats, EncodedRunCache, type CodecStats } from './payload.js';
import { NONCE_BYTES, proof, proofMatches, sessionKeys } from './secure-channel.js';
import {
  DETACH_ENDED, F_ERROR, F_NO_PUSHED, F_PROFILE, F_SIGS_OK, Op, PROTOCOL_VERSION, WireReader, WireWriter, jsonPayload, parseJson, type Frame,
} from './wire.js';

/** Half of what the client keeps of recent pushes (RemoteDisk), so a PUSHED answer always resolves. */
export const PUSHED_HORIZON_BYTES = 16 * 1024 * 1024;

export interface ByteRange {
  offset: number;
  length: number;
}

/** One op of a write-behind group as it crosses the link: bytes, or a range to zero. */
export type GroupWrite = GroupOp;

/** A disk the backend has opened (and leased) for one peer. */
export interface AttachedDisk {
  readonly diskId: string;
  readonly sizeBytes: number;
  lastSeq(): number;
  read(offset: number, length: number): Promise<Buffer>;
  /**
   * Told of every demand read (for profiles and hotspots); returns ranges to
   * push after the reply, e.g. the rest of the file the read fell in (FIG 23).
   */
  noteRead(offset: number, length: number, record: boolean): ByteRange[];
  /**
   * The peer's own record of what its guest read first, in order (reads its
   * cache served never reach us); the input of FIG 22's dynamic analysis.
   */
  noteAccess(ranges: ByteRange[]): void;
  /** The part of a peer's prefetch push request worth pushing (e.g. cut at a file's end); all of it when absent. */
  pushable?(ranges: ByteRange[]): ByteRange[];
  /** Apply a group atomically; a seq at or below lastSeq() is a duplicate and changes nothing. */
  applyGroup(seq: number, writes: GroupWrite[]): Promise<{ duplicate: boolean }>;
  flush(): Promise<void>;
  /** Byte ranges to stream to a cold cache, most urgent first (FIG 21/22). */
  profile(): ByteRange[];
  /**
   * Give the lease back. `ended`: the writer shipped everything and ends its
   * session, so a new writer may follow it.
   */
  detach(ended: boolean): Promise<void>;
  /** The connection carrying this handle went away without a DETACH (the peer may come back). */
  disconnected(): void;
  /** For a rw attach: the writer session on-prem admitted (see AttachReply.writer). */
  readonly writer?: { epoch: number; token: string; fresh: boolean };
  /** Key for the peer's cache of this disk, and a fresh epoch for it (see AttachReply). */
  readonly cacheKey: Buffer;
  readonly keyEpoch: number;
}

export interface LinkBackend {
  /**
   * Open `disk` for `peer`; refuse with E_UNKNOWN_DISK, E_LEASE_HELD, or (rw)
   * E_WRITER_UNFINISHED / E_WRITER_SUPERSEDED.
   */
  attach(req: { peer: string; disk: string; mode: AttachMode; image: string | undefined; writer: WriterClaim | undefined }): Promise<AttachedDisk>;
}

export interface LinkServerOptions {
  address: string;
  pairingKey: Buffer;
  backend: LinkBackend;
  /** Name shown to peers and in traces. */
  name?: string;
  rateBytesPerS?: number;
  /** zlib level for data runs; 0 turns compression off. */
  compressionLevel?: number;
  handshakeTimeoutUs?: number;
  /** Largest push frame, bytes of plaintext. */
  pushChunkBytes?: number;
  /** Signatures remembered per peer for dedup. */
  dedupMemory?: number;
  /** Bytes of encoded data runs kept by content across peers (0 turns the cache off). */
  runCacheBytes?: number;
}

/** What the server remembers about a peer across its connections. */
class PeerMemory {
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

interface HandleState {
  handle: number;
  disk: AttachedDisk;
  /** The client's block size: unit of signatures, pushes and PUSHED markers. */
  bb: number;
  /**
   * Blocks pushed on this connection and not written since, with the push
   * byte count at the time: a READ may answer PUSHED only for a block pushed
   * within the last PUSHED_HORIZON_BYTES, which the client still remembers.
   */
  pushed: Map<number, number>;
  pushedBytes: number;
  /** Blocks sent on this connection (pushed or replied) and not written since: the pump skips them. */
  sent: Set<number>;
  /** Blocks written (on any connection) while the pump reads a push chunk from disk; null when it is not reading. */
  writtenDuringRead: Set<number> | null;
  /** Push classes, most urgent first: FIG 23 groups, profile stream, explicit prefetch. */
  queues: [number[], number[], number[]];
  cursors: [number, number, number];
  /** Profile position of queues[2][0] (after a resume skip). */
  profileBase: number;
}

export interface LinkServerStats {
  connections: number;
  refused: number;
  reads: number;
  pushes: number;
  groupsApplied: number;
  groupsDuplicate: number;
  wireBytesOut: number;
  wireBytesIn: number;
  codec: CodecStats;
}

/**
 * The on-prem end of the link: authenticates peers, serves reads (answering
 * with zero markers, signatures or PUSHED markers where it can), applies
 * write groups in seq order, and streams pushes within the client's credit.
 */
export class LinkServer {
  readonly stats: LinkServerStats = {
    connections: 0, refused: 0, reads: 0, pushes: 0, groupsApplied: 0, groupsDuplicate: 0, wireBytesOut: 0, wireBytesIn: 0, codec: newCodecStats(),
  };
  private listener: Listener | null = null;
  private readonly peers = new Map<string, PeerMemory>();
  /** Peers booting one image read the same blocks: each distinct run is deflated once. */
  readonly runCache: EncodedRunCache | undefined;
  /** Every open handle per disk id, so a write can retract stale pushes everywhere. */
  private readonly byDisk = new Map<string, Set<HandleState>>();
  private readonly conns = new Set<LinkConnection>();
  private readonly name: string;
  private readonly nonceLabel: string;

  constructor(private readonly world: World, private readonly options: LinkServerOptions) {
    this.name = options.name ?? 'onprem';
    this.nonceLabel = `link-server/${this.name}`;
    const runCacheBytes = options.runCacheBytes ?? 64 * 1024 * 1024;
    this.runCache = runCacheBytes > 0 ? new EncodedRunCache(runCacheBytes) : undefined;
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
    const o = this.options;
    let phase: 'hello' | 'auth' | 'open' | 'refused' = 'hello';
    let hello: HelloMsg | null = null;
    let serverNonce: Buffer | null = null;
    let credit = 0;
    let pumping = false;
    const handles = new Map<number, Promise<HandleState>>();
    const live = new Set<HandleState>();
    const pushChunk = o.pushChunkBytes ?? 128 * 1024;
    const level = o.compressionLevel ?? 1;

    const conn: LinkConnection = new LinkConnection(transport, {
      clock: this.world.clock,
      ...(o.rateBytesPerS ? { rateBytesPerS: o.rateBytesPerS } : {}),
      onFrame: (f) => {
        try {
          onFrame(f);
        } catch (err) {
          conn.destroy(err as Error);
        }
      },
      onClose: () => {
        timer.cancel();
        this.conns.delete(conn);
        for (const h of live) {
          this.byDisk.get(h.disk.diskId)?.delete(h);
          h.disk.disconnected();
        }
        this.stats.wireBytesOut += conn.wireBytesOut;
        this.stats.wireBytesIn += conn.wireBytesIn;
        if (phase === 'open') this.trace('closed', { peer: hello?.peer ?? '' });
      },
    });
    this.conns.add(conn);
    const timer = this.world.clock.schedule(o.handshakeTimeoutUs ?? 10_000_000, () => {
      if (phase !== 'open') conn.destroy(new LinkError(E_PROTOCOL, 'handshake timed out'));
    });

    const refuse = (code: string, message: string): void => {
      phase = 'refused';
      this.stats.refused++;
      this.trace('refused', { peer: hello?.peer ?? '', code });
      this.world.log('warn', `proxy/${this.name}`, `refused link peer ${hello?.peer ?? '?'}: ${message}`, { code });
      conn.send({ op: Op.REPLY, flags: F_ERROR, id: 0, payload: jsonPayload({ code, message } satisfies ErrorMsg) });
      conn.end();
    };

    const reply = (id: number, payload: Buffer): void => conn.send({ op: Op.REPLY, flags: 0, id, payload });
    const replyError = (id: number, err: unknown): void => {
      const code = errorCode(err) ?? 'E_IO';
      const message = err instanceof Error ? err.message : String(err);
      conn.send({ op: Op.REPLY, flags: F_ERROR, id, payload: jsonPayload({ code, message } satisfies ErrorMsg) });
    };
    const peerMemory = (): PeerMemory => {
      const peer = hello!.peer;
      let m = this.peers.get(peer);
      if (!m) { m = new PeerMemory(o.dedupMemory ?? 1 << 20); this.peers.set(peer, m); }
      return m;
    };
    const getHandle = async (h: number): Promise<HandleState> => {
      const p = handles.get(h);
      if (!p) throw new LinkError(E_BAD_HANDLE, `no disk is attached as handle ${h} on this connection`);
      return p;
    };

    const encodeOpts = (h: HandleState, allowSigs: boolean, allowPushed: boolean) => {
      const mem = peerMemory();
      const sigsOk = allowSigs && hello!.sigs === 'sha256';
      return {
        blockBytes: h.bb,
        level,
        stats: this.stats.codec,
        ...(this.runCache && hello!.sigs === 'sha256' ? { runCache: this.runCache } : {}),
        ...(allowPushed ? { pushed: (b: number) => { const at = h.pushed.get(b); return at !== undefined && h.pushedBytes - at < PUSHED_HORIZON_BYTES; } } : {}),
        ...(sigsOk ? { peerHas: (sig: Buffer) => mem.has(sig) } : {}),
        ...(hello!.sigs === 'sha256' ? { sentData: (sig: Buffer) => mem.add(sig) } : {}),
      };
    };

    const markSent = (h: HandleState, offset: number, length: number, pushed: boolean): void => {
      const bb = h.bb;
      const first = Math.ceil(offset / bb);
      const end = Math.floor((offset + length) / bb);
      for (let b = first; b < end; b++) {
        h.sent.add(b);
        if (pushed) h.pushed.set(b, h.pushedBytes);
      }
    };

    const nextPush = (h: HandleState): { blocks: number[]; cls: number; profileEnd: number } | null => {
      for (let cls = 0; cls < 3; cls++) {
        const q = h.queues[cls]!;
        let i = h.cursors[cls]!;
        while (i < q.length && h.sent.has(q[i]!)) i++;
        if (i >= q.length) { h.cursors[cls] = i; continue; }
        const blocks = [q[i]!];
        i++;
        const maxBlocks = Math.max(1, Math.floor(pushChunk / h.bb));
        while (i < q.length && blocks.length < maxBlocks && q[i] === blocks[blocks.length - 1]! + 1 && !h.sent.has(q[i]!)) blocks.push(q[i++]!);
        h.cursors[cls] = i;
        return { blocks, cls, profileEnd: cls === 1 ? h.profileBase + i : 0 };
      }
      return null;
    };

    const pump = async (): Promise<void> => {
      if (pumping) return;
      pumping = true;
      try {
        while (!conn.closed && credit > 0) {
          let picked: { h: HandleState; item: NonNullable<ReturnType<typeof nextPush>> } | null = null;
          for (const h of live) {
            const item = nextPush(h);
            if (item) { picked = { h, item }; break; }
          }
          if (!picked) break;
          const { h, item } = picked;
          const bb = h.bb;
          const offset = item.blocks[0]! * bb;
          const length = Math.min(item.blocks.length * bb, h.disk.sizeBytes - offset);
          if (length <= 0) continue;
          const written = new Set<number>();
          h.writtenDuringRead = written;
          let data: Buffer;
          try {
            data = await h.disk.read(offset, length);
          } finally {
            h.writtenDuringRead = null;
          }
          if (conn.closed) break;
          // While we read, a READ reply may have sent some of these blocks (the client has them) and a
          // write may have changed some (our bytes are stale): push the rest, in runs of what is left.
          const first = item.blocks[0]!;
          const total = Math.ceil(length / bb);
          for (let i = 0; i < total;) {
            while (i < total && (h.sent.has(first + i) || written.has(first + i))) i++;
            let j = i;
            while (j < total && !h.sent.has(first + j) && !written.has(first + j)) j++;
            if (j === i) break;
            const runOffset = offset + i * bb;
            const runLength = Math.min(j * bb, length) - i * bb;
            const w = new WireWriter().u16(h.handle).u48(runOffset).u32(runLength).u32(item.profileEnd);
            encodeSegments(w, runOffset, data.subarray(i * bb, i * bb + runLength), encodeOpts(h, true, false));
            const payload = w.done();
            markSent(h, runOffset, runLength, true);
            h.pushedBytes += runLength;
            this.stats.pushes++;
            conn.send({ op: Op.PUSH, flags: item.cls === 1 ? F_PROFILE : 0, id: 0, payload });
            credit -= payload.length;
            i = j;
          }
        }
      } catch (err) {
        this.world.log('warn', `proxy/${this.name}`, `push stream stopped: ${(err as Error).message}`);
      } finally {
        pumping = false;
      }
    };

    const handleRequest = async (f: Frame): Promise<void> => {
      const r = new WireReader(f.payload);
      switch (f.op) {
        case Op.ATTACH: {
          const req = parseJson<AttachReq>(f.payload, 'ATTACH');
          const p = (async () => {
            const disk = await this.options.backend.attach({ peer: hello!.peer, disk: req.disk, mode: req.mode, image: req.image, writer: req.writer });
            const bb = req.blockBytes ?? 4096;
            if (!Number.isInteger(bb) || bb < 512 || bb > 1 << 20 || bb % 512 !== 0) throw new LinkError(E_PROTOCOL, `ATTACH: blockBytes must be a multiple of 512 up to 1 MiB, got ${bb}`);
            const h: HandleState = { handle: req.handle, disk, bb, pushed: new Map(), pushedBytes: 0, sent: new Set(), writtenDuringRead: null, queues: [[], [], []], cursors: [0, 0, 0], profileBase: 0 };
            live.add(h);
            let set = this.byDisk.get(disk.diskId);
            if (!set) { set = new Set(); this.byDisk.set(disk.diskId, set); }
            set.add(h);
            return h;
          })();
          handles.set(req.handle, p);
          p.catch(() => handles.delete(req.handle));
          const h = await p;
          reply(f.id, jsonPayload({
            sizeBytes: h.disk.sizeBytes, blockBytes: h.bb, lastSeq: h.disk.lastSeq(), profileBlocks: rangesToBlocks(h.disk.profile(), h.bb, h.disk.sizeBytes).length,
            cacheKey: h.disk.cacheKey.toString('hex'), keyEpoch: h.disk.keyEpoch,
            ...(h.disk.writer ? { writer: h.disk.writer } : {}),
          } satisfies AttachReply));
          return;
        }
        case Op.READ: {
          const req = decodeRangeReq(r);
          const h = await getHandle(req.handle);
          this.stats.reads++;
          const groups = h.disk.noteRead(req.offset, req.length, !hello!.reportsAccess);
          const data = await h.disk.read(req.offset, req.length);
          const w = new WireWriter();
          encodeSegments(w, req.offset, data, encodeOpts(h, (f.flags & F_SIGS_OK) !== 0, (f.flags & F_NO_PUSHED) === 0));
          markSent(h, req.offset, req.length, false);
          reply(f.id, w.done());
          if (groups.length) {
            const bb = h.bb;
            for (const g of groups) {
              const end = Math.min(h.disk.sizeBytes, g.offset + g.length);
              for (let b = Math.floor(g.offset / bb); b * bb < end; b++) if (!h.sent.has(b)) h.queues[0].push(b);
            }
            void pump();
          }
          return;
        }
        case Op.WRITE_BATCH: {
          const handle = r.u16();
          const seq = r.u48();
          const n = r.u32();
          const h = await getHandle(handle);
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
          if (duplicate) this.stats.groupsDuplicate++;
          else {
            this.stats.groupsApplied++;
            // Pushes of these blocks made before the write are stale now, on every connection.
            const bb = h.bb;
            for (const other of this.byDisk.get(h.disk.diskId) ?? []) {
              for (const w of writes) {
                const end = w.offset + (w.zero ? w.length : w.data.length);
                for (let b = Math.floor(w.offset / bb); b * bb < end; b++) { other.pushed.delete(b); other.sent.delete(b); other.writtenDuringRead?.add(b); }
              }
            }
          }
          reply(f.id, jsonPayload({ lastSeq: h.disk.lastSeq(), duplicate } satisfies WriteBatchReply));
          return;
        }
        case Op.FLUSH: {
          const h = await getHandle(r.u16());
          await h.disk.flush();
          reply(f.id, Buffer.alloc(0));
          return;
        }
        case Op.SIGS: {
          const req = decodeRangeReq(r);
          const h = await getHandle(req.handle);
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
          for (const b of blocks) {
            if (isZero(b)) w.u8(0);
            else w.u8(1).bytes(contentSignature(b));
          }
          reply(f.id, w.done());
          return;
        }
        case Op.PROFILE: {
          const req = decodePushReq(r);
          const h = await getHandle(req.handle);
          const bb = h.bb;
          if (req.kind === PushKind.PROFILE) {
            const profile = rangesToBlocks(h.disk.profile(), bb, h.disk.sizeBytes);
            h.queues[1] = profile.slice(req.skip);
            h.cursors[1] = 0;
            h.profileBase = Math.min(req.skip, profile.length);
            // Tell the client the order, so a read can wait for a block that is about to arrive.
            const runs: number[] = [];
            for (const b of h.queues[1]) {
              const n = runs.length;
              if (n && runs[n - 2]! + runs[n - 1]! === b) runs[n - 1]!++;
              else runs.push(b, 1);
            }
            reply(f.id, jsonPayload({ base: h.profileBase, runs }));
          } else {
            for (const g of h.disk.pushable ? h.disk.pushable(req.ranges) : req.ranges) {
              const end = Math.min(h.disk.sizeBytes, g.offset + g.length);
              for (let b = Math.floor(g.offset / bb); b * bb < end; b++) if (!h.sent.has(b)) h.queues[2].push(b);
            }
            reply(f.id, jsonPayload({ queuedBlocks: h.queues[2].length - h.cursors[2] }));
          }
          void pump();
          return;
        }
        case Op.REPORT: {
          const handle = r.u16();
          const n = r.u32();
          const ranges: ByteRange[] = [];
          for (let i = 0; i < n; i++) ranges.push({ offset: r.u48(), length: r.u32() });
          const h = await getHandle(handle);
          h.disk.noteAccess(ranges);
          reply(f.id, Buffer.alloc(0));
          return;
        }
        case Op.DETACH: {
          const handle = r.u16();
          const ended = r.remaining > 0 && (r.u8() & DETACH_ENDED) !== 0;
          const h = await getHandle(handle);
          handles.delete(handle);
          live.delete(h);
          this.byDisk.get(h.disk.diskId)?.delete(h);
          await h.disk.detach(ended);
          reply(f.id, Buffer.alloc(0));
          return;
        }
        default:
          throw new LinkError(E_PROTOCOL, `unexpected op 0x${f.op.toString(16)}`);
      }
    };

    const onFrame = (f: Frame): void => {
      if (phase === 'refused') return;
      if (phase === 'hello') {
        if (f.op !== Op.HELLO) throw new LinkError(E_PROTOCOL, 'expected HELLO');
        hello = parseJson<HelloMsg>(f.payload, 'HELLO');
        if (hello.v !== PROTOCOL_VERSION) { refuse(E_VERSION, `protocol version ${hello.v} is not supported; this server speaks ${PROTOCOL_VERSION}`); return; }
        serverNonce = this.world.unpredictable(this.nonceLabel, NONCE_BYTES);
        const clientNonce = Buffer.from(hello.nonce, 'hex');
        const msg: ChallengeMsg = { v: PROTOCOL_VERSION, nonce: serverNonce.toString('hex'), proof: proof(o.pairingKey, 'server', clientNonce, serverNonce).toString('hex'), server: this.name };
        conn.send({ op: Op.CHALLENGE, flags: 0, id: 0, payload: jsonPayload(msg) });
        phase = 'auth';
        return;
      }
      if (phase === 'auth') {
        if (f.op !== Op.AUTH) throw new LinkError(E_PROTOCOL, 'expected AUTH');
        const auth = parseJson<AuthMsg>(f.payload, 'AUTH');
        const clientNonce = Buffer.from(hello!.nonce, 'hex');
        const expected = proof(o.pairingKey, 'client', clientNonce, serverNonce!);
        if (!proofMatches(expected, Buffer.from(String(auth.proof), 'hex'))) {
          refuse(E_NOT_PAIRED, 'this peer is not paired with this on-prem proxy (its proof does not match the pairing key)');
          return;
        }
        conn.send({ op: Op.AUTH_OK, flags: 0, id: 0, payload: Buffer.alloc(0) });
        const keys = sessionKeys(o.pairingKey, clientNonce, serverNonce!);
        conn.secure(keys.s2c, keys.c2s);
        credit = Math.max(0, hello!.pushWindowBytes | 0);
        phase = 'open';
        timer.cancel();
        this.stats.connections++;
        this.trace('authenticated', { peer: hello!.peer });
        return;
      }
      if (f.op === Op.CREDIT) {
        credit += new WireReader(f.payload).u32();
        void pump();
        return;
      }
      handleRequest(f).catch((err) => { if (!conn.closed) replyError(f.id, err); });
    };
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
