import { BlockError, E_IO, type BlockDevice, type Extent } from '../proxy/block-device.js';
import { SparseStore } from '../proxy/stores/sparse-store.js';
import type { Rng } from '../world/types.js';

interface PendingOp {
  offset: number;
  length: number;
  /** undefined: zeros */
  data: Buffer | undefined;
}

/**
 * A store with a volatile write cache, the way a disk behaves under a
 * crash: writes are visible at once but reach stable storage only on flush.
 * `crash` keeps a random prefix of the unflushed writes, in order, and drops
 * the rest, so every durability claim must be backed by a flush in the right
 * order. `flipBit` damages stable storage the way a bad sector or a stray
 * write does; `failNext` makes the next operations fail with EIO.
 */
export class FaultyStore implements BlockDevice {
  private readonly live: SparseStore;
  private readonly durable: SparseStore;
  private pending: PendingOp[] = [];
  private failures = 0;
  /** Operations failed on purpose so far. */
  failed = 0;
  /** Told what a fault did to this store (for `spillway fuzz --verbose`). */
  onFault: ((what: string) => void) | undefined;

  constructor(readonly name: string, private readonly sizeBytes: number) {
    this.live = new SparseStore(name, sizeBytes);
    this.durable = new SparseStore(`${name}:durable`, sizeBytes);
  }

  size(): number {
    return this.sizeBytes;
  }

  /** Setup only: bytes on stable storage from the start. */
  writeSync(offset: number, data: Uint8Array): void {
    this.live.writeSync(offset, data);
    this.durable.writeSync(offset, data);
  }

  readSync(offset: number, length: number): Buffer {
    return this.live.readSync(offset, length);
  }

  /** The next `n` writes fail with E_IO (reads go on: a failing read at start-up is an operator's problem, not a data path's). */
  failNext(n: number): void {
    this.failures += n;
  }

  private maybeFail(what: string, offset: number): void {
    if (this.failures === 0) return;
    this.failures--;
    this.failed++;
    this.onFault?.(`${this.name}: injected I/O error on ${what} at ${offset}`);
    throw new BlockError(E_IO, `${this.name}: injected I/O error on ${what} at ${offset}`);
  }

  async read(offset: number, length: number): Promise<Buffer> {
    return this.live.readSync(offset, length);
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.maybeFail('write', offset);
    const copy = Buffer.from(data);
    this.live.writeSync(offset, copy);
    this.pending.push({ offset, length: copy.length, data: copy });
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    this.maybeFail('write', offset);
    this.live.zeroSync(offset, length, false);
    this.pending.push({ offset, length, data: undefined });
  }

  trim(offset: number, length: number): Promise<void> {
    return this.writeZeroes(offset, length);
  }

  async flush(): Promise<void> {
    for (const op of this.pending) apply(this.durable, op);
    this.pending = [];
  }

  async prefetch(): Promise<void> {}

  async extents(offset: number, length: number): Promise<Extent[]> {
    return this.live.extents(offset, length);
  }

  async close(): Promise<void> {}

  /** Bytes written but not flushed (what a crash may lose). */
  get unflushedOps(): number {
    return this.pending.length;
  }

  /** Power loss: a random prefix of the unflushed writes reaches stable storage; the rest are gone. */
  crash(rng: Rng): void {
    this.failures = 0; // an injected error is a moment's fault: a restarted process does not inherit it
    const keep = rng.int(0, this.pending.length + 1);
    const lost = this.pending.slice(keep);
    if (this.pending.length) this.onFault?.(`${this.name}: crash kept ${keep} of ${this.pending.length} unflushed write(s)`);
    for (const op of this.pending.slice(0, keep)) apply(this.durable, op);
    this.pending = [];
    // What the lost writes covered reads as stable storage has it again.
    for (const op of lost) this.live.writeSync(op.offset, this.durable.readSync(op.offset, op.length));
  }

  /** Flip one bit on stable storage (and in what reads see). */
  flipBit(offset: number, bit: number): void {
    this.onFault?.(`${this.name}: bit ${bit & 7} of byte ${offset} flipped`);
    for (const s of [this.durable, this.live]) {
      const b = s.readSync(offset, 1);
      b[0] = b[0]! ^ (1 << (bit & 7));
      s.writeSync(offset, b);
    }
  }

  /** Byte ranges that hold data on stable storage (where a flip can hurt). */
  writtenExtents(): Extent[] {
    return this.durable.extentsSync(0, this.sizeBytes).filter((e) => e.type === 'data');
  }
}

function apply(store: SparseStore, op: PendingOp): void {
  if (op.data) store.writeSync(op.offset, op.data);
  else store.zeroSync(op.offset, op.length, false);
}
