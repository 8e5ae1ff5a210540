import type { Clock, Transport } from '../../world/types.js';
import { LinkError, E_LINK_CLOSED } from './errors.js';
import { FrameCipher, TAG_BYTES } from './secure-channel.js';
import { TokenBucket } from './token-bucket.js';
import { FrameSplitter, HEADER_BYTES, MAX_FRAME_BYTES, MAX_FRAME_BYTES_BEFORE_AUTH, decodeBody, encodeBody, encodeHeader, lengthPrefix, type Frame } from './wire.js';

export interface ConnectionOptions {
  clock: Clock;
  /** Outbound rate limit; none when undefined. */
  rateBytesPerS?: number;
  burstBytes?: number;
  onFrame: (frame: Frame) => void;
  onClose: (err?: Error) => void;
}

/**
 * One framed connection: splits the byte stream into frames, seals and opens
 * them once a cipher pair is installed, and paces outbound bytes through a
 * token bucket. Used by both ends of the link.
 */
export class LinkConnection {
  wireBytesOut = 0;
  wireBytesIn = 0;
  framesOut = 0;
  framesIn = 0;
  closed = false;
  /** Only handshake-sized frames until `secure()`: an unauthenticated peer cannot make this end buffer more. */
  private readonly splitter = new FrameSplitter(MAX_FRAME_BYTES_BEFORE_AUTH);
  private sendCipher: FrameCipher | null = null;
  private recvCipher: FrameCipher | null = null;
  private readonly bucket: TokenBucket | null;
  private readonly queue: Buffer[] = [];
  private pumpArmed = false;
  private closeCbs: Array<(err?: Error) => void> = [];

  constructor(readonly transport: Transport, private readonly options: ConnectionOptions) {
    this.bucket = options.rateBytesPerS
      ? new TokenBucket(options.clock, options.rateBytesPerS, options.burstBytes ?? Math.max(64 * 1024, options.rateBytesPerS / 20))
      : null;
    this.closeCbs.push(options.onClose);
    transport.onData((chunk) => this.receive(chunk));
    transport.onClose((err) => this.finish(err));
  }

  /** Switch both directions to AES-256-GCM; frames after this call are sealed. */
  secure(sendKey: Buffer, recvKey: Buffer): void {
    this.sendCipher = new FrameCipher(sendKey);
    this.recvCipher = new FrameCipher(recvKey);
    this.splitter.maxFrameBytes = MAX_FRAME_BYTES;
  }

  get secured(): boolean {
    return this.sendCipher !== null;
  }

  send(frame: Frame): void {
    if (this.closed) return;
    let bytes: Buffer;
    if (this.sendCipher) {
      // Header and payload sealed straight into the length-prefixed frame: one frame-sized buffer, not four.
      const sealedBytes = HEADER_BYTES + frame.payload.length + TAG_BYTES;
      bytes = Buffer.allocUnsafe(4 + sealedBytes);
      bytes.writeUInt32BE(sealedBytes, 0);
      this.sendCipher.sealInto(bytes, 4, [encodeHeader(frame), frame.payload]);
    } else {
      bytes = lengthPrefix(encodeBody(frame));
    }
    this.framesOut++;
    if (!this.bucket) {
      this.put(bytes);
      return;
    }
    this.queue.push(bytes);
    this.pump();
  }

  /** Bytes waiting for the rate limiter. */
  get queuedBytes(): number {
    let n = 0;
    for (const b of this.queue) n += b.length;
    return n;
  }

  /** Send queued bytes in slices no bigger than the burst, each when the bucket allows. */
  private pump(): void {
    if (this.pumpArmed || this.closed) return;
    const slice = Math.max(1024, Math.min(16 * 1024, this.bucket!.burstBytes));
    while (this.queue.length) {
      const wait = this.bucket!.delayUs();
      if (wait > 0) {
        this.pumpArmed = true;
        this.options.clock.schedule(wait, () => { this.pumpArmed = false; this.pump(); });
        return;
      }
      const head = this.queue[0]!;
      const bytes = head.length <= slice ? head : head.subarray(0, slice);
      if (bytes === head) this.queue.shift();
      else this.queue[0] = head.subarray(slice);
      this.bucket!.take(bytes.length);
      this.put(bytes);
    }
  }

  private put(bytes: Buffer): void {
    this.wireBytesOut += bytes.length;
    this.transport.write(bytes);
  }

  private receive(chunk: Buffer): void {
    if (this.closed) return;
    this.wireBytesIn += chunk.length;
    try {
      this.splitter.push(chunk, (body) => {
        if (this.closed) return;
        const plain = this.recvCipher ? this.recvCipher.open(body) : body;
        this.framesIn++;
        this.options.onFrame(decodeBody(plain));
      });
    } catch (err) {
      this.destroy(err as Error);
    }
  }

  onClose(cb: (err?: Error) => void): void {
    if (this.closed) cb();
    else this.closeCbs.push(cb);
  }

  /** Send queued frames, then close. */
  end(): void {
    if (this.closed) return;
    this.transport.end();
  }

  destroy(err?: Error): void {
    if (this.closed) return;
    this.transport.destroy(err);
    this.finish(err ?? new LinkError(E_LINK_CLOSED, 'link connection closed'));
  }

  private finish(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    const cbs = this.closeCbs;
    this.closeCbs = [];
    for (const cb of cbs) cb(err);
  }
}
