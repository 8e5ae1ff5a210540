import { invariant } from '../../../errors.js';
import { FILE_CLASS_MIX, FILE_CONTENT_CLASSES, balanceFreeSpace, type FileContentClass, type FileContentLayout } from './file-content.js';
import { DEFAULT_MIX, normalizeMix, type ContentKind, type ContentMix } from './content-mix.js';
import { CONTENT_BLOCK_BYTES, DEFAULT_POOL_BLOCKS, REGION_BLOCKS, REGION_BYTES, SPAN_BYTES, SPAN_REGIONS } from './content.js';
import { fillRandom, fillTextFromCorpus, hashString, keyOf, textCorpus } from './fill.js';
import { GeneratedDisk } from './generated-disk.js';

export interface ImageContentOptions {
  seed: number;
  /** Disks cloned from one image share its content. */
  imageId: string;
  mix?: ContentMix;
  /** Disks whose images name the same pool share repeated blocks (default "common"). */
  poolId?: string;
  poolBlocks?: number;
  /** Files whose blocks follow their own content class (see withFiles). */
  files?: FileContentLayout;
  /** The disk size the layout's balance is computed for (with `files`). */
  diskBytes?: number;
}

/** The base content of one image: the layout and the bytes of every block. */
export class ImageContent {
  readonly seed: number;
  readonly imageId: string;
  readonly mix: ContentMix;
  readonly poolId: string;
  readonly poolBlocks: number;
  /** Installed files, if any: their blocks follow their class's mix. */
  readonly files: FileContentLayout | undefined;
  /** The mix of the space outside files (equal to `mix` without files). */
  readonly freeMix: ContentMix;
  /** Bytes by which the files alone exceed the image mix of some kind (0: the disk meets the mix). */
  readonly mixShortfallBytes: number;
  private readonly imageKey: number;
  private readonly poolKey: number;
  /** Zero-span threshold, then cumulative random/repeated thresholds among non-zero regions, on [0, 2^32). */
  private readonly zeroThreshold: number;
  private readonly thresholds: [number, number];
  private readonly corpus: Buffer;
  private readonly pool = new Map<number, Buffer>();
  /**
   * Salt of the per-span zero draw. Files were placed on the base layout's
   * non-zero spans; with files installed the free space draws afresh, or its
   * zeros would all fall in the spans the files skipped and the balance would miss.
   */
  private readonly spanSalt: number;
  /** Per file class: cumulative zero / random / repeated thresholds on [0, 2^32). */
  private readonly classThresholds: Array<[number, number, number]>;

  constructor(private readonly options: ImageContentOptions) {
    invariant(Number.isInteger(options.seed) && options.seed >= 0, 'ImageContent seed must be a non-negative integer');
    this.seed = options.seed;
    this.imageId = options.imageId;
    this.mix = normalizeMix(options.mix ?? DEFAULT_MIX);
    this.poolId = options.poolId ?? 'common';
    this.poolBlocks = options.poolBlocks ?? DEFAULT_POOL_BLOCKS;
    invariant(Number.isInteger(this.poolBlocks) && this.poolBlocks > 0, 'poolBlocks must be a positive integer');
    this.imageKey = hashString(`image/${this.imageId}`, this.seed);
    this.poolKey = hashString(`pool/${this.poolId}`, this.seed);
    this.files = options.files;
    this.spanSalt = this.files ? 0x5be0cd19 : 0x3c6ef372;
    let free = this.mix;
    let shortfall = 0;
    if (this.files) {
      invariant(options.diskBytes !== undefined && options.diskBytes > 0, 'ImageContent with files needs diskBytes');
      ({ free, shortfall } = balanceFreeSpace(this.mix, this.files, options.diskBytes));
    }
    this.freeMix = free;
    this.mixShortfallBytes = shortfall;
    const m = free;
    const q = 0x1_0000_0000;
    this.classThresholds = FILE_CONTENT_CLASSES.map((c) => {
      const x = FILE_CLASS_MIX[c];
      const sum = x.zeros + x.random + x.repeated + x.text;
      return [(x.zeros / sum) * q, ((x.zeros + x.random) / sum) * q, ((x.zeros + x.random + x.repeated) / sum) * q];
    });
    const data = m.random + m.repeated + m.text;
    this.zeroThreshold = m.zeros * q;
    this.thresholds = data > 0 ? [(m.random / data) * q, ((m.random + m.repeated) / data) * q] : [q, q];
    this.corpus = textCorpus(this.seed);
  }

  /**
   * The same image with `files` installed: their blocks follow their content
   * class, and the space outside them is balanced so the whole disk of
   * `diskBytes` keeps this image's mix.
   */
  withFiles(files: FileContentLayout, diskBytes: number): ImageContent {
    return new ImageContent({ ...this.options, files, diskBytes });
  }

  /** Whether the 1 MiB span `span` is empty (all its regions are zero; never when a file lies in it). */
  spanIsZero(span: number): boolean {
    if (keyOf(this.imageKey ^ this.spanSalt, span) >= this.zeroThreshold) return false;
    return !this.files || !this.files.intersects(span * SPAN_BYTES, (span + 1) * SPAN_BYTES);
  }

  /** Whether any file lies in 64 KiB region `region` (its blocks then vary: use blockKind). */
  regionHasFiles(region: number): boolean {
    return this.files !== undefined && this.files.intersects(region * REGION_BYTES, (region + 1) * REGION_BYTES);
  }

  /** The kind of the region's blocks that lie outside files (all of them, without files). */
  regionKind(region: number): ContentKind {
    if (keyOf(this.imageKey ^ this.spanSalt, Math.floor(region / SPAN_REGIONS)) < this.zeroThreshold) return 'zero';
    const u = keyOf(this.imageKey ^ 0x7f4a7c15, region);
    const [a, b] = this.thresholds;
    return u < a ? 'random' : u < b ? 'repeated' : 'text';
  }

  /** The content class of the file holding `block`, if a file does. */
  fileClassOf(block: number): FileContentClass | undefined {
    return this.files?.classAt(block * CONTENT_BLOCK_BYTES);
  }

  blockKind(block: number): ContentKind {
    if (this.files) {
      const cls = this.files.classAt(block * CONTENT_BLOCK_BYTES);
      if (cls !== undefined) {
        // Block by block within a file: sections of code, strings, padding and tables interleave.
        const u = keyOf(this.imageKey ^ 0x2f6b9d1d, block);
        const [z, r, d] = this.classThresholds[FILE_CONTENT_CLASSES.indexOf(cls)]!;
        return u < z ? 'zero' : u < r ? 'random' : u < d ? 'repeated' : 'text';
      }
    }
    return this.regionKind(Math.floor(block / REGION_BLOCKS));
  }

  /** Index in the shared pool of a block in a `repeated` region: runs of consecutive pool blocks. */
  poolIndexOf(block: number): number {
    const region = Math.floor(block / REGION_BLOCKS);
    const start = keyOf(this.imageKey ^ 0x1b873593, region);
    return (start + (block - region * REGION_BLOCKS)) % this.poolBlocks;
  }

  /**
   * Write block `block`'s base content into `out[at, at + 4096)`. `diskKey`
   * (from a disk with unique regions) replaces the image key for that disk's
   * own random and text regions; repeated and zero regions never change.
   */
  fillBlock(block: number, out: Buffer, at: number, diskKey?: number): void {
    const kind = this.blockKind(block);
    if (kind === 'zero') {
      out.fill(0, at, at + CONTENT_BLOCK_BYTES);
      return;
    } else if (kind === 'repeated') {
      this.poolBlock(this.poolIndexOf(block)).copy(out, at);
    } else {
      const key = keyOf((diskKey ?? this.imageKey) ^ (kind === 'text' ? 0x85ebca6b : 0xc2b2ae35), block);
      if (kind === 'random') fillRandom(out, at, CONTENT_BLOCK_BYTES, key);
      else fillTextFromCorpus(out, at, CONTENT_BLOCK_BYTES, key, this.corpus);
    }
    if (this.files) {
      // A file's last block holds its tail, then zeros up to the block's end.
      const start = block * CONTENT_BLOCK_BYTES;
      const dataEnd = this.files.dataEndIn(start, CONTENT_BLOCK_BYTES);
      if (dataEnd !== undefined && dataEnd < start + CONTENT_BLOCK_BYTES) out.fill(0, at + dataEnd - start, at + CONTENT_BLOCK_BYTES);
    }
  }

  /** The shared pool's block `index` (cached: the pool is small). */
  poolBlock(index: number): Buffer {
    let b = this.pool.get(index);
    if (!b) {
      b = Buffer.alloc(CONTENT_BLOCK_BYTES);
      const key = keyOf(this.poolKey, index);
      // Half the pool is text (duplicated config and docs), half binary (duplicated libraries).
      if (key & 1) fillTextFromCorpus(b, 0, CONTENT_BLOCK_BYTES, key, this.corpus);
      else fillRandom(b, 0, CONTENT_BLOCK_BYTES, key);
      this.pool.set(index, b);
    }
    return b;
  }

  /** A new disk of `sizeBytes` with this image's content. */
  disk(diskId: string, sizeBytes: number, options: { uniqueFraction?: number } = {}): GeneratedDisk {
    return new GeneratedDisk(this, diskId, sizeBytes, options);
  }

  /** Key that makes a disk's unique regions its own. */
  diskKey(diskId: string): number {
    return hashString(`disk/${this.imageId}/${diskId}`, this.seed);
  }
}
