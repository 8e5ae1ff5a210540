import { BlockError, E_READONLY, checkRange, type BlockDevice, type Extent } from '../../proxy/block-device.js';

/** What the migration source needs to know of a disk proxy's cache. */
export interface CachedBlocks {
  readonly blockBytes: number;
  has(block: number): boolean;
}

/**
 * What a migration layer copies from (FIG 18): the disk as the VM sees it,
 * without filling the secure cache. A range write-behind holds, or one the
 * cache holds some block of, is read through the proxy as usual (write-behind
 * over the read path); any other range is read from on-prem directly. The
 * background sync moves every allocated chunk once into the volume and the
 * VM then reads it from there, so sealing each chunk into the cache as well
 * would only cost a seal per block and evict the VM's working set.
 */
export class MigrationSource implements BlockDevice {
  readonly name: string;

  constructor(
    private readonly proxied: BlockDevice,
    private readonly remote: BlockDevice,
    private readonly cache: CachedBlocks | undefined,
    private readonly written: (offset: number, length: number) => boolean | Promise<boolean>,
  ) {
    this.name = `migration-source:${proxied.name}`;
  }

  size(): number {
    return this.proxied.size();
  }

  async read(offset: number, length: number): Promise<Buffer> {
    checkRange(this, offset, length);
    if (length === 0) return Buffer.alloc(0);
    if ((await this.written(offset, length)) || this.cachedAny(offset, length)) return this.proxied.read(offset, length);
    return this.remote.read(offset, length);
  }

  private cachedAny(offset: number, length: number): boolean {
    const c = this.cache;
    if (!c) return false;
    for (let b = Math.floor(offset / c.blockBytes); b * c.blockBytes < offset + length; b++) if (c.has(b)) return true;
    return false;
  }

  private async refuse(): Promise<never> {
    throw new BlockError(E_READONLY, `${this.name}: the migration source is read-only (guest writes land on the volume)`);
  }

  write(): Promise<void> { return this.refuse(); }
  trim(): Promise<void> { return this.refuse(); }
  writeZeroes(): Promise<void> { return this.refuse(); }
  async flush(): Promise<void> {}
  prefetch(offset: number, length: number): Promise<void> { return this.proxied.prefetch(offset, length); }
  extents(offset: number, length: number): Promise<Extent[]> { return this.proxied.extents(offset, length); }
  /** The proxy owns both devices: closing the source closes nothing. */
  async close(): Promise<void> {}
}
