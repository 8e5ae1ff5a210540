/**
 * Reply buffers handed back once the socket has written them, so a steady stream of
 * same-sized READ replies reuses a few buffers instead of allocating one per request:
 * each fresh large Buffer is external memory, and its growth is what drives V8 into
 * full GCs at NBD rates. Buffers are kept by exact size (clients use a fixed request
 * size: nbdcopy 256 KiB, fio its block size); when the pool is over its byte cap it is
 * emptied and refilled by what is in use now, so an old size cannot pin memory.
 */
export class BufferPool {
  private readonly free = new Map<number, Buffer[]>();
  private pooledBytes = 0;

  constructor(readonly maxBytes: number) {}

  /** A buffer of exactly `size` bytes with unspecified content. */
  take(size: number): Buffer {
    const list = this.free.get(size);
    const b = list?.pop();
    if (b) {
      this.pooledBytes -= size;
      return b;
    }
    return Buffer.allocUnsafe(size);
  }

  /** Hand a buffer back; the caller must not touch it afterwards. */
  give(b: Buffer): void {
    if (b.length > this.maxBytes) return;
    if (this.pooledBytes + b.length > this.maxBytes) {
      this.free.clear();
      this.pooledBytes = 0;
    }
    let list = this.free.get(b.length);
    if (!list) {
      list = [];
      this.free.set(b.length, list);
    }
    list.push(b);
    this.pooledBytes += b.length;
  }

  get bytes(): number {
    return this.pooledBytes;
  }
}
