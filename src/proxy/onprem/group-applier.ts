import { SpillwayError, invariant } from '../../errors.js';
import type { BlockDevice } from '../block-device.js';
import type { Journal } from '../journal.js';
import { LinkError, E_PROTOCOL, E_WRITER_SUPERSEDED, E_WRITER_UNFINISHED } from '../link/errors.js';
import { decodeOp, encodeOp, type GroupOp, type WriteGroup, type WriterGrant, type WriteSink } from '../write-group.js';

export const E_WB_SEQ_GAP = 'E_WB_SEQ_GAP';

interface WriterRecord extends WriterGrant {
  /** The peer name it attached with (for messages only: names are not identities). */
  peer: string;
  /** active: may still hold acknowledged writes on-prem has not seen. ended: detached after shipping everything. */
  state: 'active' | 'ended';
}

/** What on-prem keeps per disk, durably, in the apply journal's meta. */
interface DiskWriterState {
  /** Highest group seq of the current writer applied and durable. */
  seq: number;
  writer: WriterRecord | null;
  /** Highest writer epoch ever granted for this disk: epochs never repeat. */
  lastEpoch: number;
  /** Highest cache key epoch handed out for this disk: cache nonces never repeat across restarts. */
  lastKeyEpoch: number;
}

export interface WriterRequest {
  peer: string;
  /** The grant this writer's journal holds, when it holds one. */
  resume?: WriterGrant;
  /** The writer's journal (or its cloud-only store) holds writes on-prem has not applied. */
  unshipped: boolean;
  /** Accept a new writer although the last one did not end cleanly (its unshipped writes are given up). */
  takeOver?: boolean;
}

export interface WriterAnswer {
  grant: WriterGrant;
  /** The highest seq of this grant applied on-prem (0 for a new grant). */
  lastSeq: number;
  /** True when this is a new writer session: the writer must forget its local copy of on-prem state. */
  fresh: boolean;
}

/**
 * The on-prem end of FIG 4's step 413, and the disk's writer register.
 *
 * Groups are applied atomically and idempotently: a group is first staged in
 * the apply journal (durable), then written to the disk and the disk flushed,
 * then the journal is truncated with the group's seq as the new "applied"
 * mark. A crash mid-apply replays the staged group on open; a group whose seq
 * is not above the mark is acknowledged without touching the disk.
 *
 * Seqs count per writer session, so the mark is only meaningful together
 * with the session it belongs to. On-prem grants sessions (epochs that never
 * repeat, with a random token) and keeps the current one durably beside the
 * mark: a writer that comes back with its grant resumes at the mark; a new
 * writer starts a new session at 0, and is refused while the previous one may
 * still hold acknowledged writes that never arrived (it did not end cleanly).
 */
export class GroupApplier implements WriteSink {
  private serial: Promise<unknown> = Promise.resolve();
  /** How many times each group, by "epoch:seq", was actually written to the disk (tests assert 1). */
  readonly applications = new Map<string, number>();
  duplicates = 0;
  private state: DiskWriterState;

  private constructor(readonly disk: BlockDevice, private readonly journal: Journal, readonly diskId: string | undefined) {
    this.state = decodeState(journal.meta);
  }

  static async open(disk: BlockDevice, journal: Journal, diskId?: string): Promise<GroupApplier> {
    const applier = new GroupApplier(disk, journal, diskId);
    for (const rec of journal.recovered) {
      const group = decodeGroup(rec.payload);
      if ((group.epoch ?? 0) === applier.epoch && group.seq > applier.state.seq) await applier.applyStaged(group, rec.lsn);
    }
    return applier;
  }

  /** The highest group seq of the current writer applied and durable. */
  get appliedSeq(): number {
    return this.state.seq;
  }

  /** The current writer session's epoch (0: none granted; the in-process writer). */
  get epoch(): number {
    return this.state.writer?.epoch ?? 0;
  }

  get writer(): Readonly<WriterRecord> | null {
    return this.state.writer;
  }

  /**
   * Admit a writer: resume its session, or grant a new one. Refuses a new
   * writer while the last one may hold unshipped writes (E_WRITER_UNFINISHED,
   * unless takeOver), and a superseded session that still holds unshipped
   * writes (E_WRITER_SUPERSEDED): applying them now would undo later writes.
   */
  admitWriter(req: WriterRequest, newToken: () => string): Promise<WriterAnswer> {
    return this.serialize(async () => {
      const current = this.state.writer;
      const { resume } = req;
      // No recorded writer is session 0: the implicit one of an earlier version's journals (empty token).
      if (resume && resume.epoch === (current?.epoch ?? 0) && resume.token === (current?.token ?? '')) {
        if (current && current.state !== 'active') await this.save({ ...this.state, writer: { ...current, peer: req.peer, state: 'active' } });
        return { grant: { epoch: resume.epoch, token: resume.token }, lastSeq: this.state.seq, fresh: false };
      }
      if (resume && req.unshipped) {
        throw new LinkError(E_WRITER_SUPERSEDED,
          `disk ${this.diskId ?? '?'}: this cache holds writes of writer session ${resume.epoch}, but on-prem has since `
          + `${current ? `admitted session ${current.epoch} (${current.peer})` : 'lost its record of that session'}; `
          + 'applying them now would undo what came after. Keep the cache dir for inspection and start from an empty one',
          { details: { epoch: resume.epoch, current: current?.epoch ?? null } });
      }
      if (current && current.state === 'active' && !req.takeOver) {
        throw new LinkError(E_WRITER_UNFINISHED,
          `disk ${this.diskId ?? '?'}: writer session ${current.epoch} (${current.peer}) did not end cleanly and may hold `
          + 'acknowledged writes that never reached this disk. Start that cloud proxy again over its own cache dir so it '
          + 'ships them, or give them up with --take-over',
          { details: { epoch: current.epoch, peer: current.peer } });
      }
      const grant: WriterGrant = { epoch: this.state.lastEpoch + 1, token: newToken() };
      await this.save({ ...this.state, seq: 0, lastEpoch: grant.epoch, writer: { ...grant, peer: req.peer, state: 'active' } });
      return { grant, lastSeq: 0, fresh: true };
    });
  }

  /** The writer detached after shipping everything: a new writer may follow without --take-over. */
  endWriter(epoch: number): Promise<void> {
    return this.serialize(async () => {
      const current = this.state.writer;
      if (!current || current.epoch !== epoch || current.state === 'ended') return;
      await this.save({ ...this.state, writer: { ...current, state: 'ended' } });
    });
  }

  /** A cache key epoch never handed out before for this disk, durable before it is returned. */
  nextKeyEpoch(): Promise<number> {
    return this.serialize(async () => {
      const epoch = this.state.lastKeyEpoch + 1;
      await this.save({ ...this.state, lastKeyEpoch: epoch });
      return epoch;
    });
  }

  applyGroup(group: WriteGroup): Promise<void> {
    return this.serialize(async () => {
      if (this.diskId !== undefined && group.diskId !== this.diskId) {
        throw new LinkError(E_PROTOCOL, `group for disk ${group.diskId} sent to the applier of ${this.diskId}`);
      }
      const epoch = group.epoch ?? 0;
      if (epoch !== this.epoch) {
        throw new LinkError(E_WRITER_SUPERSEDED, `disk ${group.diskId}: group ${group.seq} of writer session ${epoch} refused; session ${this.epoch} holds the disk`,
          { details: { epoch, current: this.epoch } });
      }
      if (group.seq <= this.state.seq) {
        this.duplicates++;
        return;
      }
      if (group.seq !== this.state.seq + 1) {
        throw new SpillwayError(E_WB_SEQ_GAP, `disk ${group.diskId}: got group ${group.seq} but ${this.state.seq + 1} is next; a group was lost`,
          { details: { seq: group.seq, applied: this.state.seq } });
      }
      const lsn = await this.journal.append(encodeGroup(group), 0);
      await this.applyStaged(group, lsn);
    });
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.serial.then(fn);
    this.serial = run.catch(() => undefined);
    return run;
  }

  private async applyStaged(group: WriteGroup, lsn: number): Promise<void> {
    for (const op of group.writes) {
      if (op.zero) await this.disk.writeZeroes(op.offset, op.length);
      else await this.disk.write(op.offset, op.data);
    }
    await this.disk.flush();
    await this.save({ ...this.state, seq: group.seq }, lsn);
    const key = `${group.epoch ?? 0}:${group.seq}`;
    this.applications.set(key, (this.applications.get(key) ?? 0) + 1);
  }

  /** Make `next` the durable state (and drop staged records up to `upToLsn`), then adopt it. */
  private async save(next: DiskWriterState, upToLsn = 0): Promise<void> {
    invariant(next.lastEpoch >= (next.writer?.epoch ?? 0), 'the current writer epoch was granted');
    await this.journal.truncate(upToLsn, Buffer.from(JSON.stringify(next)));
    this.state = next;
  }
}

/** The state in the journal's meta; an empty meta is a disk no writer has touched. */
function decodeState(meta: Buffer): DiskWriterState {
  const empty: DiskWriterState = { seq: 0, writer: null, lastEpoch: 0, lastKeyEpoch: 0 };
  if (meta.length === 0) return empty;
  const raw = JSON.parse(meta.toString('utf8')) as Partial<DiskWriterState>;
  return { ...empty, ...raw };
}

/** Staged group records: a version byte (never the first byte of the earlier format's f64 seq), epoch, seq. */
const GROUP_RECORD_V2 = 0x02;

function encodeGroup(group: WriteGroup): Buffer {
  const id = Buffer.from(group.diskId, 'utf8');
  const head = Buffer.alloc(23);
  head[0] = GROUP_RECORD_V2;
  head.writeDoubleBE(group.epoch ?? 0, 1);
  head.writeDoubleBE(group.seq, 9);
  head.writeUInt16BE(id.length, 17);
  head.writeUInt32BE(group.writes.length, 19);
  const parts: Buffer[] = [head, id];
  // Each op is length-prefixed so the records can be split apart again.
  for (const op of group.writes) {
    const rec = encodeOp(op);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(rec.length);
    parts.push(len, rec);
  }
  return Buffer.concat(parts);
}

function decodeGroup(p: Buffer): WriteGroup {
  const v2 = p[0] === GROUP_RECORD_V2;
  const at = v2 ? 9 : 0;
  const epoch = v2 ? p.readDoubleBE(1) : 0;
  const seq = p.readDoubleBE(at);
  const idLen = p.readUInt16BE(at + 8);
  const count = p.readUInt32BE(at + 10);
  const diskId = p.subarray(at + 14, at + 14 + idLen).toString('utf8');
  let pos = at + 14 + idLen;
  const writes: GroupOp[] = [];
  for (let i = 0; i < count; i++) {
    const len = p.readUInt32BE(pos);
    writes.push(decodeOp(p.subarray(pos + 4, pos + 4 + len)));
    pos += 4 + len;
  }
  return { diskId, seq, epoch, writes };
}
