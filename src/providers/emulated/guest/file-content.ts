import { invariant } from '../../../errors.js';
import type { ContentKind, ContentMix } from './content-mix.js';

/**
 * What files hold, per kind of file (docs/guest.md "File content"). A file's
 * blocks are drawn from its class's mix, block by block, and the bytes past
 * the file's end in its last block are zeros (a filesystem pads the tail).
 *
 * The mixes come from `bench/guest-survey.ts` run over this machine's Debian
 * install (4 KiB blocks, tails zero-padded): all-zero blocks, blocks whose
 * sha256 appeared before (dedup), and the rest mapped to `random`/`text` so
 * their deflated size matches (a block deflating to ratio r counts
 * (r - t)/(1 - t) random, t = 0.385 being the generator's text blocks).
 * Classes that machine has no samples of (journals, WAL, swap) follow how
 * the software allocates them; docs/guest.md gives the reasoning per class.
 */
export type FileContentClass =
  | 'exec' // ELF/PE executables, shared libraries, boot loaders, Windows drivers: machine code deflates to ~0.47
  | 'compressed' // vmlinuz, initramfs, .ko.xz modules, .gz/.png/.zip: incompressible
  | 'text' // configuration, unit files, scripts, docs, locale catalogs
  | 'log' // plain-text logs
  | 'journal' // systemd journal, Windows .evtx: preallocated in steps, the unwritten part reads as zeros
  | 'db' // sqlite/rpmdb, registry hives, database relation files: pages with free space
  | 'wal' // PostgreSQL WAL / SQL Server .ldf: zero-filled at creation, filled as the log advances
  | 'swap'; // swap file / page file: never written on a freshly installed image

export const FILE_CONTENT_CLASSES: readonly FileContentClass[] = ['exec', 'compressed', 'text', 'log', 'journal', 'db', 'wal', 'swap'];

/** Block-level mix of each class (fractions of the file's 4 KiB blocks). */
export const FILE_CLASS_MIX: Readonly<Record<FileContentClass, ContentMix>> = {
  // survey: executables zero 0.000, repeated 0.001, random 0.233, text 0.765;
  //         libraries    zero 0.002, repeated 0.028, random 0.186, text 0.784.
  exec: { zeros: 0.01, random: 0.21, repeated: 0.03, text: 0.75 },
  // Compressed payloads are incompressible; a few blocks recur across files (identical firmware, icons).
  compressed: { zeros: 0, random: 0.97, repeated: 0.03, text: 0 },
  // survey: text zero 0.000, repeated 0.037, random 0.010, text 0.953.
  text: { zeros: 0, random: 0.01, repeated: 0.04, text: 0.95 },
  // survey (/var/log, small sample): all compressible text; repeated lines rarely fill a whole block alike.
  log: { zeros: 0, random: 0.01, repeated: 0.02, text: 0.97 },
  // journald grows its files in 8 MiB fallocate steps and fills them over time; evtx chunks likewise.
  journal: { zeros: 0.5, random: 0.05, repeated: 0.05, text: 0.4 },
  // survey (sqlite/apt caches): zero 0.03, repeated 0.17, text 0.79; freed pages read as zeros.
  db: { zeros: 0.05, random: 0.05, repeated: 0.1, text: 0.8 },
  // PostgreSQL zero-fills a new WAL segment (wal_init_zero) and writes it front to back.
  wal: { zeros: 0.6, random: 0.05, repeated: 0, text: 0.35 },
  // mkswap writes one header page; the rest of a never-used swap area is what the installer left: zeros.
  swap: { zeros: 1, random: 0, repeated: 0, text: 0 },
};

const COMPRESSED_NAME = /\.(xz|gz|zst|bz2|lz4|zip|jar|png|jpe?g|gif|webp|woff2?|docx|xlsx|cab|msi|img)$/i;

/** The content class of a file, from its role and name. */
export function fileContentClass(role: string, path: string): FileContentClass {
  switch (role) {
    case 'kernel':
      // vmlinuz is a compressed image; ntoskrnl.exe/hal.dll are ordinary PE binaries.
      return /\.(exe|dll)$/i.test(path) ? 'exec' : 'compressed';
    case 'initrd':
      return 'compressed';
    case 'module':
      return COMPRESSED_NAME.test(path) ? 'compressed' : 'exec';
    case 'loader':
    case 'driver':
    case 'lib':
    case 'bin':
      return 'exec';
    case 'service':
    case 'config':
    case 'doc':
      return COMPRESSED_NAME.test(path) ? 'compressed' : 'text';
    case 'registry':
      return 'db';
    case 'log':
      return /journal|\.evtx$/i.test(path) ? 'journal' : 'log';
    case 'wal':
      return 'wal';
    case 'swap':
      return 'swap';
    case 'data':
      if (COMPRESSED_NAME.test(path)) return 'compressed';
      if (/\.(html?|css|js|aspx|txt|csv|json|xml)$/i.test(path)) return 'text';
      if (/\.(sqlite|db|mdf)$|\/base\/\d+\/\d+$/i.test(path)) return 'db';
      // Batch inputs and user documents: mostly already-compressed formats.
      return 'compressed';
    default:
      return 'text';
  }
}

/** One file as the content generator sees it: where its bytes are and what they are. */
export interface PlacedFile {
  /** Disk ranges in file order, whole 4 KiB blocks. */
  extents: ReadonlyArray<{ offset: number; length: number }>;
  sizeBytes: number;
  cls: FileContentClass;
}

/**
 * The disk's files as sorted extents, for per-block lookups: which class a
 * block belongs to and where the file's bytes end inside it.
 */
export class FileContentLayout {
  private readonly starts: Float64Array;
  private readonly ends: Float64Array;
  /** Disk offset where the file's bytes end inside the extent (= end except in the file's last extent). */
  private readonly dataEnds: Float64Array;
  private readonly classes: Uint8Array;
  private last = 0;
  /** Bytes of the disk's files, by class. */
  readonly bytesByClass: Record<FileContentClass, number>;

  constructor(files: ReadonlyArray<PlacedFile>) {
    const rows: Array<{ start: number; end: number; dataEnd: number; cls: number }> = [];
    const byClass = Object.fromEntries(FILE_CONTENT_CLASSES.map((c) => [c, 0])) as Record<FileContentClass, number>;
    for (const f of files) {
      byClass[f.cls] += f.extents.reduce((n, e) => n + e.length, 0);
      let before = 0;
      for (const e of f.extents) {
        const within = Math.max(0, Math.min(e.length, f.sizeBytes - before));
        rows.push({ start: e.offset, end: e.offset + e.length, dataEnd: e.offset + within, cls: FILE_CONTENT_CLASSES.indexOf(f.cls) });
        before += e.length;
      }
    }
    rows.sort((a, b) => a.start - b.start);
    for (let i = 1; i < rows.length; i++) invariant(rows[i]!.start >= rows[i - 1]!.end, 'placed files overlap');
    this.starts = Float64Array.from(rows, (r) => r.start);
    this.ends = Float64Array.from(rows, (r) => r.end);
    this.dataEnds = Float64Array.from(rows, (r) => r.dataEnd);
    this.classes = Uint8Array.from(rows, (r) => r.cls);
    this.bytesByClass = byClass;
  }

  get totalBytes(): number {
    return FILE_CONTENT_CLASSES.reduce((n, c) => n + this.bytesByClass[c], 0);
  }

  /** Index of the extent holding byte `offset`, or -1. Sequential lookups hit the cached last index. */
  private find(offset: number): number {
    const n = this.starts.length;
    if (n === 0) return -1;
    let i = this.last;
    if (i < n && offset >= this.starts[i]! && offset < this.ends[i]!) return i;
    if (i + 1 < n && offset >= this.starts[i + 1]! && offset < this.ends[i + 1]!) return (this.last = i + 1);
    let lo = 0;
    let hi = n - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (offset < this.starts[mid]!) hi = mid - 1;
      else if (offset >= this.ends[mid]!) lo = mid + 1;
      else return (this.last = mid);
    }
    return -1;
  }

  /** The class of the file holding byte `offset`, or undefined for space no file holds. */
  classAt(offset: number): FileContentClass | undefined {
    const i = this.find(offset);
    return i < 0 ? undefined : FILE_CONTENT_CLASSES[this.classes[i]!];
  }

  /**
   * Where file bytes stop inside the 4 KiB block at `blockStart` (the tail
   * past it reads as zeros): blockStart + 4096 when the block is full, less
   * in a file's last block; undefined outside files.
   */
  dataEndIn(blockStart: number, blockBytes: number): number | undefined {
    const i = this.find(blockStart);
    if (i < 0) return undefined;
    return Math.min(blockStart + blockBytes, Math.max(blockStart, this.dataEnds[i]!));
  }

  /** Whether any file extent intersects [start, end). */
  intersects(start: number, end: number): boolean {
    let lo = 0;
    let hi = this.starts.length;
    // First extent ending after start.
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.ends[mid]! <= start) lo = mid + 1;
      else hi = mid;
    }
    return lo < this.starts.length && this.starts[lo]! < end;
  }
}

/**
 * The mix the space outside files must have so the whole disk has `target`:
 * what the target asks of each kind minus what the files already hold, over
 * the bytes files leave free. A kind the files already exceed gets none in
 * free space (`shortfall` then says by how many bytes the disk misses it).
 */
export function balanceFreeSpace(target: ContentMix, layout: FileContentLayout, diskBytes: number): { free: ContentMix; shortfall: number } {
  const kinds: Array<[keyof ContentMix, ContentKind]> = [['zeros', 'zero'], ['random', 'random'], ['repeated', 'repeated'], ['text', 'text']];
  const inFiles: ContentMix = { zeros: 0, random: 0, repeated: 0, text: 0 };
  for (const cls of FILE_CONTENT_CLASSES) {
    const bytes = layout.bytesByClass[cls];
    const m = FILE_CLASS_MIX[cls];
    for (const [k] of kinds) inFiles[k] += bytes * m[k];
  }
  const freeBytes = Math.max(0, diskBytes - layout.totalBytes);
  const free: ContentMix = { zeros: 0, random: 0, repeated: 0, text: 0 };
  let shortfall = 0;
  for (const [k] of kinds) {
    const want = target[k] * diskBytes - inFiles[k];
    if (want < 0) shortfall += -want;
    free[k] = Math.max(0, want);
  }
  const sum = free.zeros + free.random + free.repeated + free.text;
  if (freeBytes === 0 || sum === 0) return { free: { zeros: 1, random: 0, repeated: 0, text: 0 }, shortfall };
  return { free: { zeros: free.zeros / sum, random: free.random / sum, repeated: free.repeated / sum, text: free.text / sum }, shortfall };
}
