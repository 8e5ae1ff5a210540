/**
 * Link time under outages (docs/wan.md): during an outage window link time
 * stops, so bytes being serialized or in flight arrive late by exactly the
 * overlap. OutageWindows keeps the windows (sorted, non-overlapping, in real
 * time) and converts between real and link time; WanLink schedules them.
 */

export interface WanOutage {
  /** Virtual time the outage starts, microseconds since the run began. */
  atUs: number;
  forUs: number;
  /** Reset every open connection when the outage starts (as a NAT or firewall losing state would). */
  reset: boolean;
}

export class OutageWindows {
  private readonly windows: WanOutage[] = [];

  /**
   * The parts of [atUs, atUs + forUs) no window covers yet, in order: a fault
   * injected during a configured outage extends it rather than overlapping it.
   */
  gaps(atUs: number, forUs: number): Array<[number, number]> {
    let start = atUs;
    const end = atUs + forUs;
    const gaps: Array<[number, number]> = [];
    for (const o of this.windows) {
      const oEnd = o.atUs + o.forUs;
      if (oEnd <= start || o.atUs >= end) continue;
      if (o.atUs > start) gaps.push([start, o.atUs - start]);
      start = Math.max(start, oEnd);
    }
    if (start < end) gaps.push([start, end - start]);
    return gaps;
  }

  /** Add a window that overlaps none (one of `gaps`). */
  add(outage: WanOutage): void {
    this.windows.push(outage);
    this.windows.sort((a, b) => a.atUs - b.atUs);
  }

  /** Whether a window covers real time `realUs`. */
  covers(realUs: number): boolean {
    return this.windows.some((o) => o.atUs <= realUs && realUs < o.atUs + o.forUs);
  }

  /** Link time: real time minus every outage before it. */
  toLinkUs(realUs: number): number {
    let t = realUs;
    for (const o of this.windows) {
      if (o.atUs >= realUs) break;
      t -= Math.min(o.atUs + o.forUs, realUs) - o.atUs;
    }
    return t;
  }

  /** The earliest real time at which link time reaches `linkUs`. */
  toRealUs(linkUs: number): number {
    let t = linkUs;
    for (const o of this.windows) {
      if (o.atUs < t) t += o.forUs;
      else break;
    }
    return t;
  }
}
