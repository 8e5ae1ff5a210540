import { open, stat, type FileHandle } from 'node:fs/promises';
import {
  BlockError, E_CLOSED, E_FAST_ZERO_UNSUPPORTED, E_IO, E_READONLY, checkRange,
  type BlockDevice, type Extent, type WriteOptions, type ZeroOptions,
} from '../block-device.js';
import type { World } from '../../world/types.js';

export interface FileStoreOptions {
  /** Create (or extend) the file to this size. Without it the file's current size is the device size. */
  sizeBytes?: number;
  readOnly?: boolean;
  /** Refuse a missing file instead of creating it (a disk image: a typo must not serve an empty disk). */
  mustExist?: boolean;
  /**
   * Inside a simulation, route every file operation through `world.external`
   * so its result lands at a fixed virtual time (file I/O is real async work
   * the scheduler cannot otherwise see). Live mode passes nothing.
   */
  world?: World;
  /** Modeled latency per operation when `world` is given. */
  latencyUs?: number;
}

/** Zero-writes go out in pieces this big, so a huge trim never allocates a huge buffer. */
const ZERO_PIECE_BYTES = 1024 * 1024;

/**
 * A BlockDevice over a real (sparse) file, for live mode: positional reads and
 * writes through one FileHandle, flush = fdatasync.
 *
 * Limits, honestly: Node exposes neither lseek(SEEK_DATA/SEEK_HOLE) nor
 * fallocate(PUNCH_HOLE). So `extents` reports the whole range as `data`
 * unless the file has no blocks allocated at all (then it is one `hole`),
 * and `trim`/`writeZeroes` write real zeros (they allocate; FAST_ZERO is
 * refused because zeroing is not cheap here).
 */
export class FileStore implements BlockDevice {
  private closed = false;
  private zeroPiece: Buffer | undefined;

  private constructor(
    readonly name: string,
    readonly path: string,
    private readonly fh: FileHandle,
    private readonly sizeBytes: number,
    private readonly readOnly: boolean,
    private readonly world: World | undefined,
    private readonly latencyUs: number,
  ) {}

  static async open(path: string, options: FileStoreOptions = {}): Promise<FileStore> {
    const { sizeBytes, readOnly = false, mustExist = false, world, latencyUs = 0 } = options;
    if (sizeBytes !== undefined && (!Number.isInteger(sizeBytes) || sizeBytes < 0)) {
      throw new BlockError('E_BAD_SIZE', `file store ${path}: sizeBytes must be a non-negative integer, got ${sizeBytes}`);
    }
    const run = <T>(op: () => Promise<T>): Promise<T> => (world ? world.external(op, latencyUs) : op());
    let fh: FileHandle;
    try {
      // 'r+' keeps existing content; 'w+' would truncate. Create first when missing.
      fh = await run(() => open(path, readOnly ? 'r' : 'r+').catch(async (err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT' || readOnly || mustExist) throw err;
        return open(path, 'w+');
      }));
    } catch (err) {
      throw new BlockError(E_IO, `file store ${path}: cannot open: ${(err as Error).message}`, { cause: err });
    }
    let size: number;
    try {
      const current = (await run(() => fh.stat())).size;
      size = sizeBytes ?? current;
      if (sizeBytes !== undefined && current < sizeBytes) {
        if (readOnly) throw new Error(`file is ${current} bytes, smaller than sizeBytes ${sizeBytes}`);
        // ftruncate to extend makes a sparse file: nothing is allocated.
        await run(() => fh.truncate(sizeBytes));
      }
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw new BlockError(E_IO, `file store ${path}: cannot size: ${(err as Error).message}`, { cause: err });
    }
    return new FileStore(`file:${path}`, path, fh, size, readOnly, world, latencyUs);
  }

  size(): number {
    return this.sizeBytes;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    this.check(offset, length, 'read');
    const out = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.io(() => this.fh.read(out, done, length - done, offset + done));
      // A file shorter than the device (never the case after open's truncate) reads as zeros.
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return out;
  }

  async write(offset: number, data: Uint8Array, options: WriteOptions = {}): Promise<void> {
    this.checkWritable(offset, data.length);
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.io(() => this.fh.write(data, done, data.length - done, offset + done));
      done += bytesWritten;
    }
    if (options.fua) await this.flush();
  }

  async flush(): Promise<void> {
    this.check(0, 0, 'read');
    if (this.readOnly) return;
    await this.io(() => this.fh.datasync());
  }

  async trim(offset: number, length: number, options: WriteOptions = {}): Promise<void> {
    await this.zero(offset, length, options);
  }

  async writeZeroes(offset: number, length: number, options: ZeroOptions = {}): Promise<void> {
    if (options.fastZero) {
      this.checkWritable(offset, length);
      throw new BlockError(E_FAST_ZERO_UNSUPPORTED, `${this.name}: zeroing writes real zeros here (Node cannot punch holes), so it is not fast`);
    }
    await this.zero(offset, length, options);
  }

  async prefetch(offset: number, length: number): Promise<void> {
    this.check(offset, length, 'read');
  }

  async extents(offset: number, length: number): Promise<Extent[]> {
    this.check(offset, length, 'read');
    if (length === 0) return [];
    const st = await this.io(() => stat(this.path));
    return [{ offset, length, type: st.blocks === 0 ? 'hole' : 'data' }];
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.io(() => this.fh.close(), true);
  }

  private async zero(offset: number, length: number, options: WriteOptions): Promise<void> {
    this.checkWritable(offset, length);
    this.zeroPiece ??= Buffer.alloc(ZERO_PIECE_BYTES);
    for (let pos = offset; pos < offset + length; pos += ZERO_PIECE_BYTES) {
      const n = Math.min(ZERO_PIECE_BYTES, offset + length - pos);
      await this.write(pos, this.zeroPiece.subarray(0, n));
    }
    if (options.fua) await this.flush();
  }

  private async io<T>(op: () => Promise<T>, allowClosed = false): Promise<T> {
    if (this.closed && !allowClosed) throw new BlockError(E_CLOSED, `${this.name}: device is closed`);
    try {
      return await (this.world ? this.world.external(op, this.latencyUs) : op());
    } catch (err) {
      if (err instanceof BlockError) throw err;
      throw new BlockError(E_IO, `${this.name}: ${(err as Error).message}`, { cause: err });
    }
  }

  private check(offset: number, length: number, op: 'read' | 'write'): void {
    if (this.closed) throw new BlockError(E_CLOSED, `${this.name}: device is closed`);
    checkRange(this, offset, length, op);
  }

  private checkWritable(offset: number, length: number): void {
    this.check(offset, length, 'write');
    if (this.readOnly) throw new BlockError(E_READONLY, `${this.name}: opened read-only`);
  }
}
