import { invariant } from '../../../errors.js';
import {
  BlockError, E_CLOSED, appendExtent, checkRange, type BlockDevice, type Extent, type ExtentType, type WriteOptions, type ZeroOptions,
} from '../../../proxy/block-device.js';
import { SparseStore } from '../../../proxy/stores/sparse-store.js';
import type { ContentKind } from './content-mix.js';
import { CONTENT_BLOCK_BYTES, REGION_BLOCKS, REGION_BYTES, SPAN_BYTES, SPAN_REGIONS } from './content.js';
import type { FileContentLayout } from './file-content.js';
import { keyOf } from './fill.js';

/**
 * What a generated disk reads of its image's base content (ImageContent
 * provides it). Declared here so the image can make disks without the two
 * modules importing each other.
 */
export interface BaseContent {
  readonly files: FileContentLayout | undefined;
  spanIsZero(span: number): boolean;
  regionHasFiles(region: number): boolean;
  regionKind(region: number): ContentKind;
  blockKind(block: number): ContentKind;
  fillBlock(block: number, out: Buffer, at: number, diskKey?: number): void;
  diskKey(diskId: string): number;
}

/**
 * A virtual disk whose unwritten blocks are computed on read. Writes, trims
 * and zeroes land in a SparseStore overlay at 4 KiB granularity (a partial
 * write first copies the block's base content), so memory grows only with
 * what the guest wrote.
 */
export class GeneratedDisk implements BlockDevice {
  readonly name: string;
  readonly overlay: SparseStore;
  /** Fraction of non-zero regions whose bytes belong to this disk alone (logs, keys, local state). */
  readonly uniqueFraction: number;
  private readonly overridden = new Set<number>();
  private readonly overriddenRegions = new Set<number>();
  private readonly overriddenSpans = new Set<number>();
  private readonly diskKey: number;
  private readonly scratch = Buffer.alloc(CONTENT_BLOCK_BYTES);
  private closed = false;

  constructor(readonly image: BaseContent, readonly diskId: string, private readonly sizeBytes: number, options: { uniqueFraction?: number } = {}) {
    invariant(Number.isInteger(sizeBytes) && sizeBytes > 0, () => `disk size must be a positive integer of bytes, got ${sizeBytes}`);
    this.name = `generated:${diskId}`;
    this.uniqueFraction = options.uniqueFraction ?? 0;
    invariant(this.uniqueFraction >= 0 && this.uniqueFraction <= 1, 'uniqueFraction must be in [0, 1]');
    this.diskKey = image.diskKey(diskId);
    this.overlay = new SparseStore(`overlay:${diskId}`, sizeBytes, CONTENT_BLOCK_BYTES);
  }

  size(): number {
    return this.sizeBytes;
  }

  get blocks(): number {
    return Math.ceil(this.sizeBytes / CONTENT_BLOCK_BYTES);
  }

  /** Blocks the guest has written, trimmed or zeroed. */
  get writtenBlocks(): number {
    return this.overridden.size;
  }

  /** Bytes of memory the disk holds for guest writes. */
  allocatedBytes(): number {
    return this.overlay.allocatedBytes();
  }

  isWritten(block: number): boolean {
    return this.overridden.has(block);
  }

  /** What block `block` holds now: its base kind, or `written` once the guest changed it. */
  blockKind(block: number): ContentKind | 'written' {
    return this.overridden.has(block) ? 'written' : this.image.blockKind(block);
  }

  private ownKey(block: number): number | undefined {
    if (this.uniqueFraction === 0) return undefined;
    const region = Math.floor(block / REGION_BLOCKS);
    return keyOf(this.diskKey, region) / 0x1_0000_0000 < this.uniqueFraction ? this.diskKey : undefined;
  }

  /** Base content of one whole block into out[at..]. */
  private fillBase(block: number, out: Buffer, at: number): void {
    this.image.fillBlock(block, out, at, this.ownKey(block));
  }

  readSync(offset: number, length: number): Buffer {
    this.check(offset, length, 'read');
    // Every byte is written below (zero blocks explicitly), so the buffer need not start zeroed.
    const out = Buffer.allocUnsafe(length);
    const B = CONTENT_BLOCK_BYTES;
    const end = offset + length;
    let pos = offset;
    while (pos < end) {
      const block = Math.floor(pos / B);
      const blockStart = block * B;
      const within = pos - blockStart;
      const n = Math.min(B - within, end - pos);
      if (this.overridden.size > 0 && this.overridden.has(block)) {
        this.overlay.readInto(pos, n, out, pos - offset);
      } else if (this.image.blockKind(block) === 'zero') {
        out.fill(0, pos - offset, pos - offset + n);
      } else if (within === 0 && n === B) {
        this.fillBase(block, out, pos - offset);
      } else {
        this.fillBase(block, this.scratch, 0);
        this.scratch.copy(out, pos - offset, within, within + n);
      }
      pos += n;
    }
    return out;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    return this.readSync(offset, length);
  }

  writeSync(offset: number, data: Uint8Array): void {
    this.check(offset, data.length, 'write');
    this.eachBlock(offset, data.length, (block, blockStart, blockLength, within, n, src) => {
      if (within === 0 && n === blockLength) {
        this.overlay.writeSync(blockStart, data.subarray(src, src + n));
      } else {
        const current = this.currentBlock(block, blockStart, blockLength);
        current.set(data.subarray(src, src + n), within);
        this.overlay.writeSync(blockStart, current);
      }
      this.markWritten(block);
    });
  }

  async write(offset: number, data: Uint8Array, _options?: WriteOptions): Promise<void> {
    this.writeSync(offset, data);
  }

  private zeroSync(offset: number, length: number, noHole: boolean): void {
    this.check(offset, length, 'write');
    this.eachBlock(offset, length, (block, blockStart, blockLength, within, n) => {
      if (within === 0 && n === blockLength) {
        this.overlay.zeroSync(blockStart, blockLength, noHole);
      } else {
        const current = this.currentBlock(block, blockStart, blockLength);
        current.fill(0, within, within + n);
        this.overlay.writeSync(blockStart, current);
      }
      this.markWritten(block);
    });
  }

  async trim(offset: number, length: number): Promise<void> {
    this.zeroSync(offset, length, false);
  }

  async writeZeroes(offset: number, length: number, options: ZeroOptions = {}): Promise<void> {
    this.zeroSync(offset, length, options.noHole ?? false);
  }

  async flush(): Promise<void> {
    this.check(0, 0, 'read');
  }

  async prefetch(offset: number, length: number): Promise<void> {
    this.check(offset, length, 'read');
  }

  async extents(offset: number, length: number): Promise<Extent[]> {
    return this.extentsSync(offset, length);
  }

  /** Zero regions are holes, other base regions data; written blocks report what the overlay holds. */
  extentsSync(offset: number, length: number): Extent[] {
    this.check(offset, length, 'read');
    const out: Extent[] = [];
    const push = (start: number, stop: number, type: ExtentType): void => appendExtent(out, start, stop - start, type);
    const end = offset + length;
    const B = CONTENT_BLOCK_BYTES;
    for (let region = Math.floor(offset / REGION_BYTES); region * REGION_BYTES < end; region++) {
      // Fast path: a whole span with no guest writes is one extent.
      if (region % SPAN_REGIONS === 0 && !this.overriddenSpans.has(region / SPAN_REGIONS) && !this.spanHasFiles(region / SPAN_REGIONS)) {
        const span = region / SPAN_REGIONS;
        const sStart = Math.max(offset, span * SPAN_BYTES);
        const sEnd = Math.min(end, (span + 1) * SPAN_BYTES);
        push(sStart, sEnd, this.image.spanIsZero(span) ? 'hole' : 'data');
        region += SPAN_REGIONS - 1;
        continue;
      }
      const rStart = Math.max(offset, region * REGION_BYTES);
      const rEnd = Math.min(end, (region + 1) * REGION_BYTES);
      const baseType: ExtentType = this.image.regionKind(region) === 'zero' ? 'hole' : 'data';
      const hasFiles = this.image.regionHasFiles(region);
      if (!this.overriddenRegions.has(region) && !hasFiles) {
        push(rStart, rEnd, baseType);
        continue;
      }
      for (let pos = rStart; pos < rEnd;) {
        const block = Math.floor(pos / B);
        const stop = Math.min(rEnd, (block + 1) * B);
        const base: ExtentType = hasFiles ? (this.image.blockKind(block) === 'zero' ? 'hole' : 'data') : baseType;
        const type = this.overridden.has(block) ? this.overlay.extentsSync(block * B, Math.min(B, this.sizeBytes - block * B))[0]!.type : base;
        push(pos, stop, type);
        pos = stop;
      }
    }
    return out;
  }

  private spanHasFiles(span: number): boolean {
    return this.image.files !== undefined && this.image.files.intersects(span * SPAN_BYTES, (span + 1) * SPAN_BYTES);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.overlay.close();
  }

  private currentBlock(block: number, blockStart: number, blockLength: number): Buffer {
    if (this.overridden.has(block)) return this.overlay.readSync(blockStart, blockLength);
    const full = Buffer.alloc(CONTENT_BLOCK_BYTES);
    if (this.image.blockKind(block) !== 'zero') this.fillBase(block, full, 0);
    return full.subarray(0, blockLength);
  }

  private markWritten(block: number): void {
    if (this.overridden.has(block)) return;
    this.overridden.add(block);
    const region = Math.floor(block / REGION_BLOCKS);
    this.overriddenRegions.add(region);
    this.overriddenSpans.add(Math.floor(region / SPAN_REGIONS));
  }

  private eachBlock(offset: number, length: number, fn: (block: number, blockStart: number, blockLength: number, within: number, n: number, src: number) => void): void {
    const B = CONTENT_BLOCK_BYTES;
    const end = offset + length;
    for (let pos = offset; pos < end;) {
      const block = Math.floor(pos / B);
      const blockStart = block * B;
      const blockLength = Math.min(B, this.sizeBytes - blockStart);
      const within = pos - blockStart;
      const n = Math.min(blockLength - within, end - pos);
      fn(block, blockStart, blockLength, within, n, pos - offset);
      pos += n;
    }
  }

  private check(offset: number, length: number, op: 'read' | 'write'): void {
    if (this.closed) throw new BlockError(E_CLOSED, `${this.name}: device is closed`);
    checkRange(this, offset, length, op);
  }
}

/** Count block kinds over [offset, offset+length) (for reports and tests); O(regions + blocks in files). */
export function countKinds(image: BaseContent, offset: number, length: number): Record<ContentKind, number> {
  const counts: Record<ContentKind, number> = { zero: 0, random: 0, repeated: 0, text: 0 };
  const end = offset + length;
  for (let region = Math.floor(offset / REGION_BYTES); region * REGION_BYTES < end; region++) {
    if (region % SPAN_REGIONS === 0 && image.spanIsZero(region / SPAN_REGIONS) && (region + SPAN_REGIONS) * REGION_BYTES <= end) {
      counts.zero += SPAN_BYTES;
      region += SPAN_REGIONS - 1;
      continue;
    }
    const rStart = Math.max(offset, region * REGION_BYTES);
    const rEnd = Math.min(end, (region + 1) * REGION_BYTES);
    if (image.regionHasFiles(region)) {
      for (let pos = rStart; pos < rEnd;) {
        const block = Math.floor(pos / CONTENT_BLOCK_BYTES);
        const stop = Math.min(rEnd, (block + 1) * CONTENT_BLOCK_BYTES);
        counts[image.blockKind(block)] += stop - pos;
        pos = stop;
      }
      continue;
    }
    counts[image.regionKind(region)] += rEnd - rStart;
  }
  return counts;
}
