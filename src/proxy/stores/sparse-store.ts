import { BlockError, E_CLOSED, appendExtent, checkRange, type BlockDevice, type Extent, type ExtentType, type ZeroOptions } from '../block-device.js';

/** Marks a chunk that is allocated but reads as zeros (writeZeroes with noHole). */
const ZERO_CHUNK = Buffer.alloc(0);

export const SPARSE_CHUNK_BYTES = 64 * 1024;

/** Stored bytes lent out as views; `release` ends the loan (idempotent). */
export interface LentBytes {
  views: Buffer[];
  /** Bytes of the chunks the views keep alive: what a loan can cost if the chunks are then written (copied). */
  heldBytes: number;
  release(): void;
}

/**
 * The bottom of every in-memory stack: a map from chunk index to buffer.
 * Untouched chunks cost nothing, so a 100 GiB disk with 1 GiB written holds
 * 1 GiB. Never dense, never memfs (memfs files are dense and capped at 4 GiB).
 */
export class SparseStore implements BlockDevice {
  private readonly chunks = new Map<number, Buffer>();
  /**
   * Outstanding loans per chunk buffer (lend). A write to a lent chunk goes to a copy, so a view
   * keeps the bytes it had when lent. Weak: a loan never released (a socket that died before
   * writing) pins no memory, it only costs that chunk one copy on its next write.
   */
  private readonly loans = new WeakMap<Buffer, number>();
  private loansOpen = 0;
  /** Read-only zeros lent for holes, one chunk long. */
  private zeros: Buffer | undefined;
  private closed = false;

  constructor(readonly name: string, private readonly sizeBytes: number, readonly chunkBytes = SPARSE_CHUNK_BYTES) {}

  size(): number {
    return this.sizeBytes;
  }

  /** Bytes of memory held for data (zero-allocated chunks hold none). */
  allocatedBytes(): number {
    let n = 0;
    for (const c of this.chunks.values()) n += c.length;
    return n;
  }

  readSync(offset: number, length: number): Buffer {
    this.check(offset, length, 'read');
    // Every byte is either copied from a chunk or zero-filled below, so the buffer need not start zeroed.
    const out = Buffer.allocUnsafe(length);
    this.copyOut(offset, length, out, 0);
    return out;
  }

  /**
   * Copy `length` bytes at `offset` into `target` at `targetOffset` (holes as zeros). Lets a caller
   * that owns a bigger buffer (the NBD server's reply: header + payload) skip an allocation and a copy.
   */
  readInto(offset: number, length: number, target: Uint8Array, targetOffset: number): void {
    this.check(offset, length, 'read');
    if (targetOffset < 0 || targetOffset + length > target.length) {
      throw new RangeError(`${this.name}: readInto of ${length} bytes at ${targetOffset} does not fit a ${target.length}-byte buffer`);
    }
    this.copyOut(offset, length, target, targetOffset);
  }

  /**
   * [offset, offset + length) as views of the stored chunks (holes as shared zeros), copying nothing:
   * the NBD server hands them to the socket as the READ payload. The views keep the content they have
   * now until released; release once the consumer no longer needs them.
   */
  lend(offset: number, length: number): LentBytes {
    this.check(offset, length, 'read');
    const views: Buffer[] = [];
    let lent: Buffer[] | undefined;
    let heldBytes = 0;
    // The chunk walk is inlined: this runs once per NBD READ, and a visitor closure per call shows in profiles.
    const cb = this.chunkBytes;
    const end = offset + length;
    for (let pos = offset; pos < end;) {
      const index = Math.floor(pos / cb);
      const within = pos - index * cb;
      const n = Math.min(cb - within, end - pos);
      const chunk = this.chunks.get(index);
      if (chunk && chunk.length) {
        views.push(chunk.subarray(within, within + n));
        this.loans.set(chunk, (this.loans.get(chunk) ?? 0) + 1);
        (lent ??= []).push(chunk);
        heldBytes += chunk.length;
      } else {
        this.zeros ??= Buffer.alloc(cb);
        views.push(this.zeros.subarray(0, n));
      }
      pos += n;
    }
    if (!lent) return new Loan(this, views, 0, undefined);
    this.loansOpen++;
    return new Loan(this, views, heldBytes, lent);
  }

  /** Ends one loan of `lent` (Loan.release). */
  endLoan(lent: Buffer[]): void {
    this.loansOpen--;
    for (const chunk of lent) {
      const left = this.loans.get(chunk)! - 1;
      if (left > 0) this.loans.set(chunk, left);
      else this.loans.delete(chunk);
    }
  }

  /** Loans (lend calls that lent a chunk) not yet released. */
  openLoans(): number {
    return this.loansOpen;
  }

  /** The chunk at `index` ready to be changed in place: a lent chunk is replaced by a copy first. */
  private ownChunk(index: number, chunk: Buffer, copy: boolean): Buffer {
    if (!this.loans.has(chunk)) return chunk;
    const own = copy ? Buffer.from(chunk) : Buffer.allocUnsafe(chunk.length);
    this.chunks.set(index, own);
    return own;
  }

  private copyOut(offset: number, length: number, out: Uint8Array, outOffset: number): void {
    this.eachChunk(offset, length, (index, within, n, pos) => {
      const chunk = this.chunks.get(index);
      const at = outOffset + pos - offset;
      if (chunk && chunk.length) chunk.copy(out, at, within, within + n);
      else out.fill(0, at, at + n);
    });
  }

  writeSync(offset: number, data: Uint8Array): void {
    this.check(offset, data.length, 'write');
    const cb = this.chunkBytes;
    this.eachChunk(offset, data.length, (index, within, n, pos) => {
      let chunk = this.chunks.get(index);
      if (!chunk || chunk.length === 0) {
        // allocUnsafe is fine only when the whole chunk is about to be overwritten.
        chunk = n === cb ? Buffer.allocUnsafe(cb) : Buffer.alloc(cb);
        this.chunks.set(index, chunk);
      } else {
        chunk = this.ownChunk(index, chunk, n !== cb);
      }
      chunk.set(data.subarray(pos - offset, pos - offset + n), within);
    });
  }

  /** Zero a range; whole chunks become holes (or zero-allocated with noHole), partial chunks are cleared. */
  zeroSync(offset: number, length: number, noHole: boolean): void {
    this.check(offset, length, 'write');
    const cb = this.chunkBytes;
    this.eachChunk(offset, length, (index, within, n) => {
      const chunk = this.chunks.get(index);
      if (n === cb) {
        if (noHole) this.chunks.set(index, ZERO_CHUNK);
        else this.chunks.delete(index);
      } else if (chunk && chunk.length) {
        this.ownChunk(index, chunk, true).fill(0, within, within + n);
      } else if (!chunk && noHole) {
        this.chunks.set(index, Buffer.alloc(cb));
      }
    });
  }

  /** Visit [offset, offset + length) chunk by chunk: chunk index, offset within it, bytes in it, absolute position. */
  private eachChunk(offset: number, length: number, visit: (index: number, within: number, n: number, pos: number) => void): void {
    const cb = this.chunkBytes;
    const end = offset + length;
    for (let pos = offset; pos < end;) {
      const index = Math.floor(pos / cb);
      const within = pos - index * cb;
      const n = Math.min(cb - within, end - pos);
      visit(index, within, n, pos);
      pos += n;
    }
  }

  async read(offset: number, length: number): Promise<Buffer> {
    return this.readSync(offset, length);
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.writeSync(offset, data);
  }

  async flush(): Promise<void> {
    this.check(0, 0, 'read');
  }

  async trim(offset: number, length: number): Promise<void> {
    this.zeroSync(offset, length, false);
  }

  async writeZeroes(offset: number, length: number, options: ZeroOptions = {}): Promise<void> {
    // Zeroing a map entry is always cheap, so FAST_ZERO never has to be refused here.
    this.zeroSync(offset, length, options.noHole ?? false);
  }

  async prefetch(offset: number, length: number): Promise<void> {
    this.check(offset, length, 'read');
  }

  async extents(offset: number, length: number): Promise<Extent[]> {
    return this.extentsSync(offset, length);
  }

  extentsSync(offset: number, length: number): Extent[] {
    this.check(offset, length, 'read');
    const out: Extent[] = [];
    const push = (start: number, n: number, type: ExtentType): void => appendExtent(out, start, n, type);
    const cb = this.chunkBytes;
    const end = offset + length;
    const first = Math.floor(offset / cb);
    const lastIndex = Math.floor((end - 1) / cb);
    // Walk only allocated chunks when the range is much larger than what is allocated.
    const indices = lastIndex - first + 1 > 4 * this.chunks.size + 64
      ? [...this.chunks.keys()].filter((i) => i >= first && i <= lastIndex).sort((a, b) => a - b)
      : null;
    let pos = offset;
    const emitChunk = (index: number): void => {
      const start = Math.max(offset, index * cb);
      const stop = Math.min(end, (index + 1) * cb);
      if (start > pos) push(pos, start - pos, 'hole');
      const chunk = this.chunks.get(index);
      push(start, stop - start, chunk === undefined ? 'hole' : chunk.length === 0 ? 'zero' : 'data');
      pos = stop;
    };
    if (indices) for (const i of indices) emitChunk(i);
    else for (let i = first; i <= lastIndex && length > 0; i++) emitChunk(i);
    if (pos < end) push(pos, end - pos, 'hole');
    return out;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private check(offset: number, length: number, op: 'read' | 'write'): void {
    if (this.closed) throw new BlockError(E_CLOSED, `${this.name}: device is closed`);
    checkRange(this, offset, length, op);
  }
}

/**
 * One lend() result. A class rather than an object with a release closure: tsx compiles with
 * keepNames, which turns every named closure created per call into a defineProperty (measured ~1 us).
 */
class Loan implements LentBytes {
  constructor(private readonly store: SparseStore, readonly views: Buffer[], readonly heldBytes: number, private lent: Buffer[] | undefined) {}

  release(): void {
    const lent = this.lent;
    if (!lent) return;
    this.lent = undefined;
    this.store.endLoan(lent);
  }
}
