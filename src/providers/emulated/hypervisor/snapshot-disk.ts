import { BlockError, E_CLOSED, checkRange, type BlockDevice, type Extent } from '../../../proxy/block-device.js';
import { SparseStore } from '../../../proxy/stores/sparse-store.js';

const BLOCK = 4096;

/**
 * A snapshot delta (the way a hypervisor's redo log works): the disk's state
 * at snapshot time stays frozen below, and every write after it lands here,
 * in a sparse overlay at 4 KiB granularity (a partial write first copies the
 * block up from below). Reverting discards the delta; the frozen state is
 * never written, so any number of snapshots can share it.
 */
export class SnapshotDelta implements BlockDevice {
  readonly name: string;
  private readonly overlay: SparseStore;
  private readonly written = new Set<number>();
  private closed = false;

  constructor(readonly frozen: BlockDevice, label: string) {
    this.name = `delta:${label}`;
    this.overlay = new SparseStore(`${this.name}/overlay`, frozen.size(), BLOCK);
  }

  size(): number {
    return this.frozen.size();
  }

  /** Bytes written since the snapshot (whole blocks). */
  deltaBytes(): number {
    return this.written.size * BLOCK;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    this.check(offset, length, 'read');
    // Most reads fall wholly in one run (above all on a delta nothing was written to yet): its buffer is the answer.
    const runs = [...this.runs(offset, length)];
    if (runs.length === 1) return runs[0]!.mine ? this.overlay.readSync(offset, length) : this.frozen.read(offset, length);
    // The runs tile the range, so every byte of `out` is written below.
    const out = Buffer.allocUnsafe(length);
    for (const run of runs) {
      const part = run.mine ? this.overlay.readSync(run.offset, run.length) : await this.frozen.read(run.offset, run.length);
      part.copy(out, run.offset - offset);
    }
    return out;
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.check(offset, data.length, 'write');
    await this.copyUpEdges(offset, data.length);
    this.overlay.writeSync(offset, data);
    this.mark(offset, data.length);
  }

  async writeZeroes(offset: number, length: number): Promise<void> {
    this.check(offset, length, 'write');
    await this.copyUpEdges(offset, length);
    this.overlay.zeroSync(offset, length, false);
    this.mark(offset, length);
  }

  trim(offset: number, length: number): Promise<void> {
    return this.writeZeroes(offset, length);
  }

  async flush(): Promise<void> {
    this.check(0, 0, 'read');
  }

  prefetch(offset: number, length: number, priority?: number): Promise<void> {
    return this.frozen.prefetch(offset, length, priority);
  }

  async extents(offset: number, length: number): Promise<Extent[]> {
    this.check(offset, length, 'read');
    const out: Extent[] = [];
    const push = (e: Extent): void => {
      const last = out[out.length - 1];
      if (last && last.type === e.type && last.offset + last.length === e.offset) last.length += e.length;
      else out.push({ ...e });
    };
    for (const run of this.runs(offset, length)) {
      if (run.mine) for (const e of this.overlay.extentsSync(run.offset, run.length)) push(e.type === 'hole' ? { ...e, type: 'zero' } : e);
      else for (const e of await this.frozen.extents(run.offset, run.length)) push(e);
    }
    return out;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** Consecutive ranges that are all written here (`mine`) or all still frozen below. */
  private *runs(offset: number, length: number): Generator<{ offset: number; length: number; mine: boolean }> {
    const end = offset + length;
    let pos = offset;
    while (pos < end) {
      const mine = this.written.has(Math.floor(pos / BLOCK));
      let stop = Math.min(end, (Math.floor(pos / BLOCK) + 1) * BLOCK);
      while (stop < end && this.written.has(Math.floor(stop / BLOCK)) === mine) stop = Math.min(end, stop + BLOCK);
      yield { offset: pos, length: stop - pos, mine };
      pos = stop;
    }
  }

  /** A write that covers part of a block keeps the rest of that block's frozen bytes. */
  private async copyUpEdges(offset: number, length: number): Promise<void> {
    if (length === 0) return;
    const first = Math.floor(offset / BLOCK);
    const last = Math.floor((offset + length - 1) / BLOCK);
    for (const b of first === last ? [first] : [first, last]) {
      if (this.written.has(b)) continue;
      const start = b * BLOCK;
      const n = Math.min(BLOCK, this.size() - start);
      const covered = offset <= start && offset + length >= start + n;
      if (covered) continue;
      this.overlay.writeSync(start, await this.frozen.read(start, n));
      this.written.add(b);
    }
  }

  private mark(offset: number, length: number): void {
    if (length === 0) return;
    const last = Math.floor((offset + length - 1) / BLOCK);
    for (let b = Math.floor(offset / BLOCK); b <= last; b++) this.written.add(b);
  }

  private check(offset: number, length: number, op: 'read' | 'write'): void {
    if (this.closed) throw new BlockError(E_CLOSED, `${this.name}: closed`);
    checkRange(this, offset, length, op);
  }
}

/**
 * A stable handle on a disk whose contents are swapped underneath it when a
 * snapshot is taken or reverted, so the layers above (tier, lease guard) and
 * anyone holding the device keep working.
 */
export class DiskChain implements BlockDevice {
  readonly name: string;
  constructor(public current: BlockDevice, diskId: string) {
    this.name = `disk:${diskId}`;
  }
  size(): number { return this.current.size(); }
  read(offset: number, length: number): Promise<Buffer> { return this.current.read(offset, length); }
  write(offset: number, data: Uint8Array): Promise<void> { return this.current.write(offset, data); }
  flush(): Promise<void> { return this.current.flush(); }
  trim(offset: number, length: number): Promise<void> { return this.current.trim(offset, length); }
  writeZeroes(offset: number, length: number): Promise<void> { return this.current.writeZeroes(offset, length); }
  prefetch(offset: number, length: number, priority?: number): Promise<void> { return this.current.prefetch(offset, length, priority); }
  extents(offset: number, length: number): Promise<Extent[]> { return this.current.extents(offset, length); }
  close(): Promise<void> { return this.current.close(); }
}
