import type { ByteRange } from '../link/backend.js';
import type { Prioritizer } from './prioritizer.js';

/** Declined stretches remembered per session (a few per stream the reader has open). */
const MAX_DECLINED = 64;

/**
 * Per session: what of the peer's read-ahead push requests on-prem pushes.
 * A request is cut at the end of the file (FIG 23 group) the reader is in
 * (Prioritizer.clipToGroup), and the cut-off part is remembered as declined:
 * the peer's read-ahead does not know about the cut and asks next for the
 * window after it, which is declined too. A demand read inside a declined
 * stretch means the reader went there after all, so the stretch is forgotten
 * and read-ahead from there is served again.
 */
export class ReadAheadClip {
  private declined: Array<{ start: number; end: number }> = [];
  /** Bytes of read-ahead requests not pushed. */
  declinedBytes = 0;

  constructor(private readonly prioritizer: Prioritizer, private readonly image: string) {}

  clip(ranges: ByteRange[]): ByteRange[] {
    const out: ByteRange[] = [];
    for (const r of ranges) {
      if (r.length <= 0) continue;
      const end = r.offset + r.length;
      const d = this.declined.find((x) => r.offset >= x.start && r.offset <= x.end);
      if (d) {
        d.end = Math.max(d.end, end);
        this.declinedBytes += r.length;
        continue;
      }
      const kept = this.prioritizer.clipToGroup(this.image, r);
      if (kept.length > 0) out.push(kept);
      if (kept.length < r.length) {
        this.declinedBytes += r.length - kept.length;
        this.declined.push({ start: r.offset + kept.length, end });
        if (this.declined.length > MAX_DECLINED) this.declined.shift();
      }
    }
    return out;
  }

  /** A demand read: declined stretches it falls in are where the reader went after all. */
  noteRead(offset: number, length: number): void {
    if (this.declined.length === 0) return;
    const end = offset + length;
    this.declined = this.declined.filter((x) => end <= x.start || offset >= x.end);
  }
}
