import type { BlockDevice, Extent, WriteOptions, ZeroOptions } from './block-device.js';

/**
 * A layer with pass-through defaults: subclasses override the methods they
 * care about, everything else goes to the device below unchanged.
 */
export abstract class Layer implements BlockDevice {
  abstract readonly name: string;

  constructor(protected readonly below: BlockDevice) {}

  size(): number {
    return this.below.size();
  }
  read(offset: number, length: number): Promise<Buffer> {
    return this.below.read(offset, length);
  }
  write(offset: number, data: Uint8Array, options?: WriteOptions): Promise<void> {
    return this.below.write(offset, data, options);
  }
  flush(): Promise<void> {
    return this.below.flush();
  }
  trim(offset: number, length: number, options?: WriteOptions): Promise<void> {
    return this.below.trim(offset, length, options);
  }
  writeZeroes(offset: number, length: number, options?: ZeroOptions): Promise<void> {
    return this.below.writeZeroes(offset, length, options);
  }
  prefetch(offset: number, length: number, priority?: number): Promise<void> {
    return this.below.prefetch(offset, length, priority);
  }
  extents(offset: number, length: number): Promise<Extent[]> {
    return this.below.extents(offset, length);
  }
  close(): Promise<void> {
    return this.below.close();
  }
}

export type LayerFactory = (below: BlockDevice) => BlockDevice;

/** Build a stack bottom-up: stack(base, a, b) serves b → a → base. */
export function stack(base: BlockDevice, ...layers: LayerFactory[]): BlockDevice {
  return layers.reduce<BlockDevice>((below, make) => make(below), base);
}
