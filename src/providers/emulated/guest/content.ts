import { invariant } from '../../../errors.js';
import {
  BlockError, E_CLOSED, appendExtent, checkRange, type BlockDevice, type Extent, type ExtentType, type WriteOptions, type ZeroOptions,
} from '../../../proxy/block-device.js';
import { SparseStore } from '../../../proxy/stores/sparse-store.js';
import { FILE_CLASS_MIX, FILE_CONTENT_CLASSES, balanceFreeSpace, type FileContentClass, type FileContentLayout } from './file-content.js';
import { CONTENT_KINDS, type ContentKind, type ContentMix } from './content-mix.js';

/**
 * Generated virtual-disk content (docs/guest.md). A disk's bytes are a pure
 * function of (seed, image id, block index): nothing is stored until the
 * guest writes, so a 100 GiB disk costs a few kilobytes. The layout is cut
 * into 64 KiB regions, each of one kind (whether a region is zero is decided
 * per 1 MiB span, so empty space forms large holes; the other kinds vary per
 * region inside the non-zero spans):
 *
 * - `zero`: all zeros; reported as a hole by `extents`.
 * - `random`: incompressible bytes from xorshift32 keyed by the block.
 * - `repeated`: runs of blocks from a small pool shared by every disk with
 *   the same pool id, so identical 4 KiB blocks appear at many offsets and
 *   across disks (what dedup and FIG 22 hotspots feed on).
 * - `text`: lines of words from a small word list generated from the seed.
 *
 * With a file layout installed (`withFiles`, what GuestImage does), blocks
 * inside files follow their file's content class instead (file-content.ts),
 * the tail of a file's last block is zeros, and the space outside files takes
 * the mix that keeps the whole disk at the image's mix.
 *
 * Every disk cloned from one image shares the image's base content; its own
 * writes go to a sparse overlay.
 */

export const CONTENT_BLOCK_BYTES = 4096;
export const REGION_BLOCKS = 16;
export const REGION_BYTES = CONTENT_BLOCK_BYTES * REGION_BLOCKS;
/** Zero-or-not is decided per 1 MiB span, so free space shows as large holes (as on a real disk). */
export const SPAN_REGIONS = 16;
export const SPAN_BYTES = REGION_BYTES * SPAN_REGIONS;

export { CONTENT_KINDS, type ContentKind, type ContentMix } from './content-mix.js';

/** The proxy benchmark's mix: about half empty, a third incompressible, some duplicates and text. */
export const DEFAULT_MIX: ContentMix = { zeros: 0.5, random: 0.35, repeated: 0.07, text: 0.06 };

export const DEFAULT_POOL_BLOCKS = 256;

// ---- hashing: small, fast, stable across platforms ------------------------

/** A 32-bit finalizer (lowbias32): good avalanche for sequential inputs. */
export function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

export function hashString(s: string, salt = 0): number {
  let h = (0x811c9dc5 ^ salt) >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return mix32(h);
}

/** Key for an index that may exceed 2^32 (disks over 16 TiB). */
function keyOf(base: number, index: number): number {
  const lo = index >>> 0;
  const hi = Math.floor(index / 0x1_0000_0000);
  return mix32(base ^ mix32(lo ^ mix32(hi + 0x9e3779b9)));
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Fill `length` bytes (a multiple of 4) at `out[at]` with xorshift32 output seeded by `key`. */
export function fillRandom(out: Buffer, at: number, length: number, key: number): void {
  let x = key | 0 || 0x6d2b79f5;
  if (LITTLE_ENDIAN && (out.byteOffset + at) % 4 === 0) {
    const words = new Uint32Array(out.buffer, out.byteOffset + at, length >>> 2);
    for (let i = 0; i < words.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      words[i] = x;
    }
    return;
  }
  for (let i = 0; i < length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeUInt32LE(x >>> 0, at + i);
  }
}

const SYLLABLES = ['ka', 'lo', 'mi', 'ne', 'ru', 'sa', 'to', 'vi', 'de', 'fa', 'gu', 'ho', 'ji', 'be', 'po', 'ze', 'qu', 'xa', 'ly', 'or', 'an', 'el', 'is', 'um'];

/** A word list of 256 pseudo-words made from syllables, chosen by the seed. */
function wordList(seed: number): Buffer[] {
  const words: Buffer[] = [];
  let x = mix32(seed ^ 0x51ed270b) || 1;
  const next = (): number => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  for (let i = 0; i < 256; i++) {
    const n = 1 + (next() % 4);
    let w = '';
    for (let k = 0; k < n; k++) w += SYLLABLES[next() % SYLLABLES.length];
    words.push(Buffer.from(w, 'latin1'));
  }
  return words;
}

/** Fill one block with lines of words; deterministic in `key`. */
function fillText(out: Buffer, at: number, length: number, key: number, words: Buffer[]): void {
  let x = key | 0 || 0x2545f491;
  const end = at + length;
  let pos = at;
  let inLine = 0;
  let lineLength = 6 + ((x >>> 0) % 10);
  while (pos < end) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const w = words[(x >>> 0) & 255]!;
    // A byte loop beats Buffer.copy for words this short.
    for (let i = 0; i < w.length && pos < end; i++) out[pos++] = w[i]!;
    if (pos >= end) break;
    if (++inLine >= lineLength) {
      out[pos++] = 0x0a;
      inLine = 0;
      lineLength = 6 + ((x >>> 8) % 10);
    } else {
      out[pos++] = 0x20;
    }
  }
}

const CORPUS_BYTES = 256 * 1024;
const TEXT_SLICE_BYTES = 512;

/**
 * Text blocks are stitched from 512-byte slices of a per-seed corpus of
 * words: as compressible as prose, and about ten times faster to make than
 * drawing word by word.
 */
function fillTextFromCorpus(out: Buffer, at: number, length: number, key: number, corpus: Buffer): void {
  let x = key | 0 || 0x2545f491;
  const span = corpus.length - TEXT_SLICE_BYTES;
  for (let pos = 0; pos < length; pos += TEXT_SLICE_BYTES) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const from = (x >>> 0) % span;
    corpus.copy(out, at + pos, from, from + Math.min(TEXT_SLICE_BYTES, length - pos));
  }
}

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
    this.corpus = Buffer.alloc(CORPUS_BYTES);
    fillText(this.corpus, 0, CORPUS_BYTES, hashString('corpus', this.seed), wordList(hashString('words', this.seed)));
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

export function normalizeMix(mix: ContentMix): ContentMix {
  const sum = mix.zeros + mix.random + mix.repeated + mix.text;
  invariant(
    [mix.zeros, mix.random, mix.repeated, mix.text].every((x) => Number.isFinite(x) && x >= 0) && sum > 0,
    () => `a content mix needs non-negative fractions with a positive sum, got ${JSON.stringify(mix)}`,
  );
  return { zeros: mix.zeros / sum, random: mix.random / sum, repeated: mix.repeated / sum, text: mix.text / sum };
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

  constructor(readonly image: ImageContent, readonly diskId: string, private readonly sizeBytes: number, options: { uniqueFraction?: number } = {}) {
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
export function countKinds(image: ImageContent, offset: number, length: number): Record<ContentKind, number> {
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
