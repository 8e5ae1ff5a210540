import type { ByteRange } from '../link/backend.js';

/** A file of the guest's file view, as block ranges (FIG 21 step 2107). */
export interface FileExtents {
  path: string;
  ranges: ByteRange[];
  /** When the boot first touched it (any unit, smaller is earlier); files without it sort last. */
  firstAccess?: number;
  /** How often the workload reads it; breaks ties in first access. */
  accessCount?: number;
}

interface SessionTrace {
  /** Block index -> rank of its first read in this session. */
  firstRead: Map<number, number>;
}

interface ImageState {
  /** Bumped when what profile() reads changes (a first read, the boot files): its memo is then stale. */
  version: number;
  /** profile() by excluded session, as of `version`: a session asks at prioritize and again at attach. */
  profiles: Map<string, { version: number; ranges: ByteRange[] }>;
  bootFiles: FileExtents[];
  /** Block -> the group (file) it belongs to, for FIG 23. */
  groupOf: Map<number, number>;
  groups: ByteRange[][];
  sessions: Map<string, SessionTrace>;
}

export interface PrioritizerOptions {
  /** Granularity of recorded reads and profiles. */
  blockBytes?: number;
  /** A group larger than this is pushed only in part, after the block that was read. */
  maxGroupPushBytes?: number;
  /**
   * Also push the group's ranges before the read (nearest first) once those
   * after it are out. Default false: a read at a file's start (the usual
   * first read) pushes the whole file either way, and a reader that jumped
   * into the middle of a file has mostly been pushed what lies behind it by
   * the file's first read already; behind that, pushes are mostly not read
   * (WAN bench, Debian-file boot, no profile: 11.5 s / wire 0.857 with them,
   * 11.3 s / 0.809 without).
   */
  groupPushBehind?: boolean;
  /**
   * Sessions per image whose first reads are recorded (FIG 22); later ones
   * are streamed the profile but add nothing to it. The profile is a
   * statistic over sessions that has settled long before this many, and
   * without a bound its memory grows with every VM ever booted from the
   * image and each profile costs sessions × blocks (a 500-VM burst of one
   * image made that quadratic). Default 64.
   */
  maxSessions?: number;
}

/**
 * Block priorities for streaming (FIG 7 step 719):
 *  - FIG 21: files sorted by how early / how often the boot uses them, mapped
 *    to block ranges, prioritised in that order;
 *  - FIG 22: per image, the order in which each cloud session first read
 *    blocks; blocks read by more sessions (VMs) rank higher, and within a
 *    rank the earlier first read goes first, so the profile streams in boot
 *    order;
 *  - FIG 23: a read of one block of a group (a file) yields the rest of the
 *    group to push.
 */
const DEFAULT_MAX_SESSIONS = 64;

export class Prioritizer {
  readonly blockBytes: number;
  private readonly maxGroupPushBytes: number;
  private readonly groupPushBehind: boolean;
  private readonly maxSessions: number;
  private readonly images = new Map<string, ImageState>();

  constructor(options: PrioritizerOptions = {}) {
    this.blockBytes = options.blockBytes ?? 4096;
    this.maxGroupPushBytes = options.maxGroupPushBytes ?? 4 * 1024 * 1024;
    this.groupPushBehind = options.groupPushBehind ?? false;
    this.maxSessions = options.maxSessions ?? DEFAULT_MAX_SESSIONS;
  }

  private image(image: string): ImageState {
    let s = this.images.get(image);
    if (!s) {
      s = { version: 0, profiles: new Map(), bootFiles: [], groupOf: new Map(), groups: [], sessions: new Map() };
      this.images.set(image, s);
    }
    return s;
  }

  /** FIG 21: the files a boot (or workload) uses, from a static analysis of the guest file view. */
  setBootFiles(image: string, files: FileExtents[]): void {
    const sorted = files.map((f, i) => ({ f, i })).sort((a, b) =>
      (a.f.firstAccess ?? Infinity) - (b.f.firstAccess ?? Infinity) ||
      (b.f.accessCount ?? 0) - (a.f.accessCount ?? 0) ||
      a.i - b.i);
    const s = this.image(image);
    s.bootFiles = sorted.map((x) => x.f);
    s.version++;
  }

  /** FIG 23: groups of blocks that are read together (files, a file set). */
  setGroups(image: string, groups: ByteRange[][]): void {
    const s = this.image(image);
    s.groups = groups;
    s.groupOf.clear();
    const bb = this.blockBytes;
    groups.forEach((ranges, gi) => {
      for (const r of ranges) for (let b = Math.floor(r.offset / bb); b * bb < r.offset + r.length; b++) s.groupOf.set(b, gi);
    });
  }

  /** FIG 22 input: a demand read by one cloud session of a disk cloned from `image`. */
  recordRead(image: string, session: string, offset: number, length: number): void {
    const s = this.image(image);
    let t = s.sessions.get(session);
    if (!t) {
      if (s.sessions.size >= this.maxSessions) return;
      t = { firstRead: new Map() };
      s.sessions.set(session, t);
    }
    const bb = this.blockBytes;
    for (let b = Math.floor(offset / bb); b * bb < offset + length; b++) {
      if (!t.firstRead.has(b)) { t.firstRead.set(b, t.firstRead.size); s.version++; }
    }
  }

  /** FIG 23: the rest of every group the range touches after it (and before it with groupPushBehind), bounded in size, nearest first. */
  groupFor(image: string, offset: number, length: number): ByteRange[] {
    const s = this.images.get(image);
    if (!s || s.groups.length === 0) return [];
    const bb = this.blockBytes;
    const seen = new Set<number>();
    const out: ByteRange[] = [];
    for (let b = Math.floor(offset / bb); b * bb < offset + length; b++) {
      const g = s.groupOf.get(b);
      if (g === undefined || seen.has(g)) continue;
      seen.add(g);
      let budget = this.maxGroupPushBytes;
      // Ranges after the read first (files are mostly read forwards), then, if asked, the ones before it.
      const ranges = [...s.groups[g]!].sort((x, y) => x.offset - y.offset);
      const after = ranges.filter((r) => r.offset + r.length > offset + length);
      const before = this.groupPushBehind ? ranges.filter((r) => r.offset + r.length <= offset + length).reverse() : [];
      for (const r of [...after, ...before]) {
        let start = r.offset;
        let end = r.offset + r.length;
        if (start < offset + length && end > offset) start = offset + length;
        if (end <= start) continue;
        if (end - start > budget) end = start + budget;
        if (end <= start) break;
        out.push({ offset: start, length: end - start });
        budget -= end - start;
        if (budget <= 0) break;
      }
    }
    return out;
  }

  /**
   * A push asked for by the peer's read-ahead, cut where it leaves the group
   * (file) the reader is in — the group of the byte just before the range,
   * where the reader's last read ended: the next bytes on disk past a file's
   * end belong to another file (or free space), which a reader walking this
   * file does not read next. With no group there, the range is kept whole.
   */
  clipToGroup(image: string, range: ByteRange): ByteRange {
    const s = this.images.get(image);
    if (!s || s.groups.length === 0 || range.length <= 0) return range;
    const bb = this.blockBytes;
    const first = Math.floor(range.offset / bb);
    const g = (range.offset > 0 ? s.groupOf.get(Math.floor((range.offset - 1) / bb)) : undefined) ?? s.groupOf.get(first);
    if (g === undefined) return range;
    let b = first;
    while (b * bb < range.offset + range.length && s.groupOf.get(b) === g) b++;
    return { offset: range.offset, length: Math.max(0, Math.min(range.length, b * bb - range.offset)) };
  }

  /** How many blocks more than one session read (hotspots(image).length, without sorting them). */
  hotspotCount(image: string): number {
    let n = 0;
    for (const c of this.counts(image).values()) if (c.n > 1) n++;
    return n;
  }

  /** FIG 22 output: blocks read by more than one session, hottest first. */
  hotspots(image: string): Array<{ block: number; sessions: number }> {
    const counts = this.counts(image);
    return [...counts.entries()].filter(([, c]) => c.n > 1).sort((a, b) => b[1].n - a[1].n || a[1].rank - b[1].rank || a[0] - b[0]).map(([block, c]) => ({ block, sessions: c.n }));
  }

  private counts(image: string): Map<number, { n: number; rank: number }> {
    const out = new Map<number, { n: number; rank: number }>();
    const s = this.images.get(image);
    if (!s) return out;
    for (const t of s.sessions.values()) {
      // Normalise ranks so a long session does not push everyone else's blocks back.
      const scale = 1 / Math.max(1, t.firstRead.size);
      for (const [b, r] of t.firstRead) {
        const c = out.get(b);
        if (c) { c.n++; c.rank = Math.min(c.rank, r * scale); }
        else out.set(b, { n: 1, rank: r * scale });
      }
    }
    return out;
  }

  /** Sessions recorded for the image (FIG 22 needs at least one). */
  sessions(image: string): number {
    return this.images.get(image)?.sessions.size ?? 0;
  }

  /**
   * What to stream to a cold cache, most urgent first: blocks recorded by
   * earlier sessions (hot ones — read by at least half the sessions — first,
   * each class in boot order), then the static boot files not covered yet.
   * Once two sessions are recorded only blocks read by more than one of them
   * stream (FIG 22 step 2203: blocks accessed by multiple VMs): a block one
   * session touched is that VM's own business, mostly not read by the next
   * one. On quarter-end this cut the stream from 62–87 MiB to about 47–57
   * MiB per VM against a ~41 MiB boot working set (WAN 0.95 -> 0.83 bytes per
   * guest byte), for ~0.5 s longer profiled boots (2.3–3.3 s).
   */
  profile(image: string, exceptSession?: string): ByteRange[] {
    const s = this.images.get(image);
    if (!s) return [];
    // Leaving out a session that recorded nothing is the whole profile: one memo serves them all.
    const except = exceptSession !== undefined && s.sessions.has(exceptSession) ? exceptSession : undefined;
    const key = except ?? '';
    const memo = s.profiles.get(key);
    if (memo && memo.version === s.version) return memo.ranges.map((r) => ({ ...r }));
    const ranges = this.computeProfile(s, except);
    s.profiles.set(key, { version: s.version, ranges });
    return ranges.map((r) => ({ ...r }));
  }

  private computeProfile(s: ImageState, exceptSession: string | undefined): ByteRange[] {
    const bb = this.blockBytes;
    const counts = new Map<number, { n: number; rank: number }>();
    let sessions = 0;
    for (const [key, t] of s.sessions) {
      if (key === exceptSession) continue;
      sessions++;
      const scale = 1 / Math.max(1, t.firstRead.size);
      for (const [b, r] of t.firstRead) {
        const c = counts.get(b);
        if (c) { c.n++; c.rank = Math.min(c.rank, r * scale); }
        else counts.set(b, { n: 1, rank: r * scale });
      }
    }
    const hot = Math.max(1, Math.ceil(sessions / 2));
    const blocks = [...counts.entries()]
      .filter(([, c]) => sessions < 2 || c.n > 1)
      .sort((a, b) => Number(b[1].n >= hot) - Number(a[1].n >= hot) || a[1].rank - b[1].rank || a[0] - b[0])
      .map(([b]) => b);
    const seen = new Set(blocks);
    for (const f of s.bootFiles) {
      for (const r of f.ranges) {
        for (let b = Math.floor(r.offset / bb); b * bb < r.offset + r.length; b++) {
          if (!seen.has(b)) { seen.add(b); blocks.push(b); }
        }
      }
    }
    const out: ByteRange[] = [];
    for (const b of blocks) {
      const last = out[out.length - 1];
      if (last && last.offset + last.length === b * bb) last.length += bb;
      else out.push({ offset: b * bb, length: bb });
    }
    return out;
  }
}
