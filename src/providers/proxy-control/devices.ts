import { SpillwayError } from '../../errors.js';
import { BlockError, E_CLOSED, E_READONLY, checkRange, type BlockDevice, type Extent, type WriteOptions, type ZeroOptions } from '../../proxy/block-device.js';
import { Layer } from '../../proxy/layer.js';

const BLOCK = 4096;

/** Reads pass, every write is refused: a snapshot exported to a clone whose writes stay in the cloud. */
export class ReadOnlyView extends Layer {
  readonly name: string;
  constructor(below: BlockDevice, label: string) {
    super(below);
    this.name = `read-only:${label}`;
  }
  private refuse(): never {
    throw new BlockError(E_READONLY, `${this.name}: this export is read-only (a cloud-only clone's writes never come on-prem)`);
  }
  override async write(): Promise<void> { this.refuse(); }
  override async trim(): Promise<void> { this.refuse(); }
  override async writeZeroes(): Promise<void> { this.refuse(); }
  override async flush(): Promise<void> {}
  override async close(): Promise<void> {}
}

/**
 * A copy-on-write clone disk (FIG 12 step 1207): reads come from the frozen
 * base unless the block was written since; writes land in `overlay` (any
 * BlockDevice of the same size: a SparseStore in a simulation, a FileStore
 * live) at 4 KiB granularity, copying a partially written block up first.
 * The base is never written, so any number of clones share it.
 */
export class CowOverlay implements BlockDevice {
  readonly name: string;
  private readonly written = new Set<number>();
  private closed = false;

  constructor(private readonly base: BlockDevice, private readonly overlay: BlockDevice, label: string) {
    if (overlay.size() !== base.size()) {
      throw new SpillwayError('E_OVERLAY_SIZE', `overlay ${overlay.name} is ${overlay.size()} bytes, the base ${base.name} is ${base.size()}; they must match`);
    }
    this.name = `cow:${label}`;
  }

  size(): number {
    return this.base.size();
  }

  /** Blocks written since the clone was made. */
  writtenBlocks(): number {
    return this.written.size;
  }

  /** True when any block of the range was written by the clone (it no longer equals the base there). */
  touches(offset: number, length: number): boolean {
    if (this.written.size === 0 || length === 0) return false;
    for (let b = Math.floor(offset / BLOCK); b * BLOCK < offset + length; b++) if (this.written.has(b)) return true;
    return false;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    this.check(offset, length, 'read');
    const out = Buffer.alloc(length);
    for (const run of this.runs(offset, length)) {
      const part = await (run.mine ? this.overlay : this.base).read(run.offset, run.length);
      part.copy(out, run.offset - offset);
    }
    return out;
  }

  async write(offset: number, data: Uint8Array, options?: WriteOptions): Promise<void> {
    this.check(offset, data.length, 'write');
    await this.copyUpEdges(offset, data.length);
    await this.overlay.write(offset, data, options);
    this.mark(offset, data.length);
  }

  async writeZeroes(offset: number, length: number, options?: ZeroOptions): Promise<void> {
    this.check(offset, length, 'write');
    await this.copyUpEdges(offset, length);
    await this.overlay.writeZeroes(offset, length, { noHole: options?.noHole ?? false });
    this.mark(offset, length);
  }

  trim(offset: number, length: number): Promise<void> {
    return this.writeZeroes(offset, length);
  }

  flush(): Promise<void> {
    return this.overlay.flush();
  }

  async prefetch(): Promise<void> {}

  async extents(offset: number, length: number): Promise<Extent[]> {
    this.check(offset, length, 'read');
    const out: Extent[] = [];
    for (const run of this.runs(offset, length)) {
      for (const e of await (run.mine ? this.overlay : this.base).extents(run.offset, run.length)) {
        const prev = out[out.length - 1];
        if (prev && prev.type === e.type && prev.offset + prev.length === e.offset) prev.length += e.length;
        else out.push({ ...e });
      }
    }
    return out;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private check(offset: number, length: number, op: 'read' | 'write'): void {
    if (this.closed) throw new BlockError(E_CLOSED, `${this.name} is closed`);
    checkRange(this, offset, length, op);
  }

  /** A block only partly covered by a write is copied up from the base first, so the overlay block is whole. */
  private async copyUpEdges(offset: number, length: number): Promise<void> {
    if (length === 0) return;
    const edges = new Set([Math.floor(offset / BLOCK), Math.floor((offset + length - 1) / BLOCK)]);
    for (const b of edges) {
      if (this.written.has(b)) continue;
      const start = b * BLOCK;
      const end = Math.min(this.size(), start + BLOCK);
      if (offset <= start && offset + length >= end) continue;
      await this.overlay.write(start, await this.base.read(start, end - start));
      this.written.add(b);
    }
  }

  private mark(offset: number, length: number): void {
    for (let b = Math.floor(offset / BLOCK); b * BLOCK < offset + length; b++) this.written.add(b);
  }

  /** The range cut into runs that come wholly from the overlay or wholly from the base. */
  private runs(offset: number, length: number): Array<{ offset: number; length: number; mine: boolean }> {
    const out: Array<{ offset: number; length: number; mine: boolean }> = [];
    let pos = offset;
    const end = offset + length;
    while (pos < end) {
      const b = Math.floor(pos / BLOCK);
      const mine = this.written.has(b);
      const stop = Math.min(end, (b + 1) * BLOCK);
      const prev = out[out.length - 1];
      if (prev && prev.mine === mine) prev.length += stop - pos;
      else out.push({ offset: pos, length: stop - pos, mine });
      pos = stop;
    }
    return out;
  }
}

/**
 * The storage target's device for one disk: it forwards to whichever device
 * serves the disk now (the cloud proxy stack, the migration layer, the
 * migrated volume), and can be drained (§4.4): new requests wait, in-flight
 * ones finish, then `onDrained` runs (write-behind ships its backlog).
 */
export class TargetDevice implements BlockDevice {
  readonly name: string;
  private inflight = 0;
  private idleWaiters: Array<() => void> = [];
  private gate: Promise<void> | null = null;
  private openGate: (() => void) | null = null;
  private closedWhy: string | null = null;

  constructor(private current: BlockDevice, label: string) {
    this.name = `target:${label}`;
  }

  /** Serve from another device from now on (requests already running finish where they started). */
  switchTo(device: BlockDevice): void {
    if (device.size() !== this.current.size()) {
      throw new SpillwayError('E_TARGET_SIZE', `${this.name}: cannot switch to ${device.name} (${device.size()} bytes), the disk is ${this.current.size()}`);
    }
    this.current = device;
  }

  get serving(): BlockDevice {
    return this.current;
  }

  get draining(): boolean {
    return this.gate !== null;
  }

  /** Stop taking requests: queued ones wait for `resume`; resolves when none is in flight. */
  async drain(): Promise<void> {
    if (!this.gate) this.gate = new Promise((resolve) => { this.openGate = resolve; });
    if (this.inflight > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  resume(): void {
    const open = this.openGate;
    this.gate = null;
    this.openGate = null;
    open?.();
  }

  /** Refuse every request from now on (a discarded cloud-only disk, a closed target). */
  retire(why: string): void {
    this.closedWhy = why;
    this.resume();
  }

  private async run<T>(op: () => Promise<T>): Promise<T> {
    while (this.gate) await this.gate;
    if (this.closedWhy) throw new BlockError(E_CLOSED, `${this.name}: ${this.closedWhy}`);
    this.inflight++;
    try {
      return await op();
    } finally {
      if (--this.inflight === 0) {
        const waiters = this.idleWaiters;
        this.idleWaiters = [];
        waiters.forEach((w) => w());
      }
    }
  }

  size(): number { return this.current.size(); }
  read(offset: number, length: number): Promise<Buffer> { return this.run(() => this.current.read(offset, length)); }
  write(offset: number, data: Uint8Array, options?: WriteOptions): Promise<void> { return this.run(() => this.current.write(offset, data, options)); }
  flush(): Promise<void> { return this.run(() => this.current.flush()); }
  trim(offset: number, length: number, options?: WriteOptions): Promise<void> { return this.run(() => this.current.trim(offset, length, options)); }
  writeZeroes(offset: number, length: number, options?: ZeroOptions): Promise<void> { return this.run(() => this.current.writeZeroes(offset, length, options)); }
  prefetch(offset: number, length: number, priority?: number): Promise<void> { return this.run(() => this.current.prefetch(offset, length, priority)); }
  extents(offset: number, length: number): Promise<Extent[]> { return this.run(() => this.current.extents(offset, length)); }
  async close(): Promise<void> { this.retire('the target is closed'); }
}

/**
 * Records which chunks the guest wrote while a disk is in migration mode:
 * those writes terminate on the cloud volume only, so leaving migration mode
 * before it completes must carry them back into the proxy's write-behind.
 */
export class WriteTracker extends Layer {
  readonly name = 'migration-writes';
  readonly chunks = new Set<number>();
  constructor(below: BlockDevice, private readonly chunkBytes: number) {
    super(below);
  }
  private note(offset: number, length: number): void {
    for (let c = Math.floor(offset / this.chunkBytes); c * this.chunkBytes < offset + length; c++) this.chunks.add(c);
  }
  override async write(offset: number, data: Uint8Array, options?: WriteOptions): Promise<void> {
    await this.below.write(offset, data, options);
    this.note(offset, data.length);
  }
  override async trim(offset: number, length: number, options?: WriteOptions): Promise<void> {
    await this.below.trim(offset, length, options);
    this.note(offset, length);
  }
  override async writeZeroes(offset: number, length: number, options?: ZeroOptions): Promise<void> {
    await this.below.writeZeroes(offset, length, options);
    this.note(offset, length);
  }
}
