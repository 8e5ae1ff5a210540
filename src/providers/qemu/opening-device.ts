import type { BlockDevice, Extent, WriteOptions, ZeroOptions } from '../../proxy/block-device.js';

/**
 * A BlockDevice whose backend is still opening: the port hands out disks
 * synchronously, a file opens asynchronously. Every call waits for the open;
 * the size is known up front (from qemu-img).
 */
export class OpeningDevice implements BlockDevice {
  constructor(readonly name: string, private readonly sizeBytes: number, private readonly ready: Promise<BlockDevice>) {
    // An open that fails is reported by the first call; do not let it go unhandled before that.
    ready.catch(() => undefined);
  }

  size(): number { return this.sizeBytes; }
  read(offset: number, length: number): Promise<Buffer> { return this.ready.then((d) => d.read(offset, length)); }
  write(offset: number, data: Uint8Array, options?: WriteOptions): Promise<void> { return this.ready.then((d) => d.write(offset, data, options)); }
  flush(): Promise<void> { return this.ready.then((d) => d.flush()); }
  trim(offset: number, length: number, options?: WriteOptions): Promise<void> { return this.ready.then((d) => d.trim(offset, length, options)); }
  writeZeroes(offset: number, length: number, options?: ZeroOptions): Promise<void> { return this.ready.then((d) => d.writeZeroes(offset, length, options)); }
  prefetch(offset: number, length: number, priority?: number): Promise<void> { return this.ready.then((d) => d.prefetch(offset, length, priority)); }
  extents(offset: number, length: number): Promise<Extent[]> { return this.ready.then((d) => d.extents(offset, length)); }
  close(): Promise<void> { return this.ready.then((d) => d.close(), () => undefined); }
}
