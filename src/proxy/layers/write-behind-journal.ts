import { invariant } from '../../errors.js';
import type { Journal } from '../journal.js';
import { REC_CUT, coalesce, type GroupOp, type WriterGrant } from '../write-group.js';

/*
 * What write-behind keeps in the cloud journal besides the writes
 * themselves: the cut records that close a group (so a restart rebuilds the
 * very same groups), the groups rebuilt from them, and the journal's meta
 * (the writer session and the last group on-prem acknowledged).
 */

/**
 * What the cloud journal's meta holds: the last group seq on-prem
 * acknowledged, and the writer session (on-prem's grant) the seqs belong to.
 */
export interface WriterJournalMeta {
  seq: number;
  writer: WriterGrant | null;
}

/** The journal's writer meta; null for a journal no writer ever used. */
export function readWriterMeta(journal: Journal): WriterJournalMeta | null {
  if (journal.meta.length === 0) return null;
  const raw = JSON.parse(journal.meta.toString('utf8')) as Partial<WriterJournalMeta>;
  return { seq: raw.seq ?? 0, writer: raw.writer ?? null };
}

/**
 * Start a new writer session on this journal: seqs begin again at 1 under
 * `grant`. Only for a journal with nothing left to ship (on-prem grants a new
 * session only then).
 */
export async function adoptWriterGrant(journal: Journal, grant: WriterGrant): Promise<void> {
  invariant(journal.recovered.length === 0, 'a journal adopts a new writer session only when it has nothing to ship');
  await journal.truncate(0, writerMetaBytes({ seq: 0, writer: grant }));
}

export function writerMetaBytes(meta: WriterJournalMeta): Buffer {
  return Buffer.from(JSON.stringify(meta));
}

/** An acknowledged write or zero, journaled at `lsn`, not yet cut into a group. */
export interface Entry {
  lsn: number;
  tUs: number;
  op: GroupOp;
}

/** A cut group: what ships to on-prem as one unit, under one seq. */
export interface Group {
  seq: number;
  /** LSN of the cut record: truncating up to it drops the group's entries and the cut. */
  cutLsn: number;
  ops: GroupOp[];
  bytes: number;
  oldestUs: number;
  opCount: number;
}


export function makeGroup(seq: number, cutLsn: number, entries: Entry[]): Group {
  const ops = coalesce(entries.map((e) => e.op));
  return {
    seq, cutLsn, ops,
    bytes: ops.reduce((n, o) => n + (o.zero ? 0 : o.data.length), 0),
    oldestUs: entries[0]?.tUs ?? 0,
    opCount: entries.length,
  };
}

/** Payload bytes of a cut record (see encodeCut). */
export const CUT_PAYLOAD_BYTES = 9;

export function encodeCut(seq: number): Buffer {
  const b = Buffer.alloc(CUT_PAYLOAD_BYTES);
  b[0] = REC_CUT;
  b.writeDoubleBE(seq, 1);
  return b;
}

/** The group seq a cut record closes, or undefined for a write or zero record. */
export function cutSeq(payload: Buffer): number | undefined {
  return payload[0] === REC_CUT ? payload.readDoubleBE(1) : undefined;
}
