import { mkdirSync, readFileSync, renameSync, writeFileSync, existsSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { GroupWrite } from '../link/server.js';

/**
 * What makes group apply atomic and idempotent across on-prem restarts: the
 * last applied seq per disk, and a staged copy of the group being applied.
 * Apply = stage, write to the disk, flush, commit; a restart that finds a
 * staged group above the committed seq applies it again (writes carry
 * absolute content, so applying twice equals applying once).
 */
export interface GroupStateStore {
  lastSeq(diskId: string): number;
  staged(diskId: string): { seq: number; writes: GroupWrite[] } | undefined;
  stage(diskId: string, seq: number, writes: GroupWrite[]): Promise<void>;
  commit(diskId: string, seq: number): Promise<void>;
}

/** In memory: in a simulation the test keeps this object across proxy restarts, like a disk would. */
export class MemoryGroupState implements GroupStateStore {
  private readonly seqs = new Map<string, number>();
  private readonly stagedGroups = new Map<string, { seq: number; writes: GroupWrite[] }>();

  lastSeq(diskId: string): number {
    return this.seqs.get(diskId) ?? 0;
  }
  staged(diskId: string): { seq: number; writes: GroupWrite[] } | undefined {
    return this.stagedGroups.get(diskId);
  }
  async stage(diskId: string, seq: number, writes: GroupWrite[]): Promise<void> {
    this.stagedGroups.set(diskId, { seq, writes: writes.map((w) => ({ offset: w.offset, data: Buffer.from(w.data) })) });
  }
  async commit(diskId: string, seq: number): Promise<void> {
    this.seqs.set(diskId, seq);
    this.stagedGroups.delete(diskId);
  }
}

/** Files in a state directory, written to a temp name and renamed, for live mode. */
export class FileGroupState implements GroupStateStore {
  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  private file(diskId: string, kind: 'seq' | 'staged'): string {
    return join(this.dir, `${encodeURIComponent(diskId)}.${kind}`);
  }

  lastSeq(diskId: string): number {
    const f = this.file(diskId, 'seq');
    return existsSync(f) ? Number(readFileSync(f, 'utf8')) || 0 : 0;
  }

  staged(diskId: string): { seq: number; writes: GroupWrite[] } | undefined {
    const f = this.file(diskId, 'staged');
    if (!existsSync(f)) return undefined;
    const buf = readFileSync(f);
    let pos = 0;
    const seq = buf.readUIntBE(pos, 6); pos += 6;
    const n = buf.readUInt32BE(pos); pos += 4;
    const writes: GroupWrite[] = [];
    for (let i = 0; i < n; i++) {
      const offset = buf.readUIntBE(pos, 6); pos += 6;
      const len = buf.readUInt32BE(pos); pos += 4;
      writes.push({ offset, data: Buffer.from(buf.subarray(pos, pos + len)) });
      pos += len;
    }
    return { seq, writes };
  }

  async stage(diskId: string, seq: number, writes: GroupWrite[]): Promise<void> {
    const parts: Buffer[] = [];
    const head = Buffer.alloc(10);
    head.writeUIntBE(seq, 0, 6);
    head.writeUInt32BE(writes.length, 6);
    parts.push(head);
    for (const w of writes) {
      const h = Buffer.alloc(10);
      h.writeUIntBE(w.offset, 0, 6);
      h.writeUInt32BE(w.data.length, 6);
      parts.push(h, w.data);
    }
    this.atomicWrite(this.file(diskId, 'staged'), Buffer.concat(parts));
  }

  async commit(diskId: string, seq: number): Promise<void> {
    this.atomicWrite(this.file(diskId, 'seq'), Buffer.from(String(seq)));
    const staged = this.file(diskId, 'staged');
    if (existsSync(staged)) unlinkSync(staged);
  }

  private atomicWrite(path: string, data: Buffer): void {
    const tmp = `${path}.tmp`;
    writeFileSync(tmp, data, { flush: true });
    renameSync(tmp, path);
  }
}
