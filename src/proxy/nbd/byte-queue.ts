/**
 * Incoming bytes as a queue of received chunks. Parsers peek at fixed-size
 * headers and take payloads without copying when a payload lies inside one
 * chunk (the common case for small requests); only payloads that straddle
 * chunks are gathered into a new buffer.
 */
export class ByteQueue {
  private chunks: Buffer[] = [];
  private head = 0;
  /** Offset into chunks[head] of the first unread byte. */
  private offset = 0;
  private total = 0;
  /** The last chunk pushed when it is only lent (a transport's reused read buffer): see pushLent. */
  private lent: Buffer | undefined;

  get length(): number {
    return this.total;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.total += chunk.length;
  }

  /**
   * Push a chunk the caller may only read until it calls `keepLent` (a view of a reused read
   * buffer). Until then `peek` and `takeViews` may return views of it, valid only that long;
   * `take` copies whatever it returns from it.
   */
  pushLent(chunk: Buffer): void {
    this.keepLent();
    if (chunk.length === 0) return;
    this.push(chunk);
    this.lent = chunk;
  }

  /** Copy the unread part of the lent chunk, if any is left, so the queue no longer refers to it. */
  keepLent(): void {
    const lent = this.lent;
    if (!lent) return;
    this.lent = undefined;
    const last = this.chunks.length - 1;
    if (last < this.head || this.chunks[last] !== lent) return;
    const from = last === this.head ? this.offset : 0;
    this.chunks[last] = Buffer.from(lent.subarray(from));
    if (last === this.head) this.offset = 0;
  }

  /** The next `n` bytes without consuming them; a view when possible. */
  peek(n: number): Buffer {
    return this.gather(n, false);
  }

  take(n: number): Buffer {
    return this.gather(n, true);
  }

  /**
   * Consume `n` bytes as views of the received chunks, in order, copying nothing: for a consumer
   * that can take a payload in pieces (a store writing at successive offsets).
   */
  takeViews(n: number): Buffer[] {
    if (n > this.total) throw new RangeError(`byte queue holds ${this.total} bytes, ${n} wanted`);
    const views: Buffer[] = [];
    let left = n;
    while (left > 0) {
      const chunk = this.chunks[this.head]!;
      const m = Math.min(chunk.length - this.offset, left);
      views.push(chunk.subarray(this.offset, this.offset + m));
      left -= m;
      if (this.offset + m === chunk.length) this.advanceChunk();
      else this.offset += m;
    }
    this.total -= n;
    this.compact();
    return views;
  }

  /** Drop up to `n` bytes; returns how many were dropped. */
  skip(n: number): number {
    let left = Math.min(n, this.total);
    const dropped = left;
    while (left > 0) {
      const chunk = this.chunks[this.head]!;
      const avail = chunk.length - this.offset;
      if (avail > left) {
        this.offset += left;
        left = 0;
      } else {
        left -= avail;
        this.advanceChunk();
      }
    }
    this.total -= dropped;
    this.compact();
    return dropped;
  }

  clear(): void {
    this.lent = undefined;
    this.chunks = [];
    this.head = 0;
    this.offset = 0;
    this.total = 0;
  }

  private gather(n: number, consume: boolean): Buffer {
    if (n > this.total) throw new RangeError(`byte queue holds ${this.total} bytes, ${n} wanted`);
    const first = this.chunks[this.head];
    if (n === 0 || !first) return Buffer.alloc(0);
    if (first.length - this.offset >= n) {
      let view = first.subarray(this.offset, this.offset + n);
      if (consume) {
        if (first === this.lent) view = Buffer.from(view);
        this.offset += n;
        this.total -= n;
        if (this.offset === first.length) this.advanceChunk();
        this.compact();
      }
      return view;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    let index = this.head;
    let off = this.offset;
    while (filled < n) {
      const chunk = this.chunks[index]!;
      const m = Math.min(chunk.length - off, n - filled);
      chunk.copy(out, filled, off, off + m);
      filled += m;
      if (off + m === chunk.length) { index++; off = 0; } else off += m;
    }
    if (consume) {
      for (let i = this.head; i < index; i++) this.chunks[i] = EMPTY;
      this.head = index;
      this.offset = off;
      this.total -= n;
      this.compact();
    }
    return out;
  }

  private advanceChunk(): void {
    this.chunks[this.head] = EMPTY;
    this.head++;
    this.offset = 0;
  }

  private compact(): void {
    if (this.total === 0) {
      this.chunks = [];
      this.head = 0;
      this.offset = 0;
    } else if (this.head > 64 && this.head * 2 > this.chunks.length) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
  }
}

const EMPTY = Buffer.alloc(0);
