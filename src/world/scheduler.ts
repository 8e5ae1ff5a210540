import { invariant } from '../errors.js';

export interface ScheduledEvent {
  readonly due: number;
  readonly seq: number;
  fn: (() => void) | null;
}

/**
 * A min-heap of events ordered by (due, seq). `seq` is assigned at insertion,
 * so two events due at the same instant run in the order they were scheduled
 * and nothing else (not object identity, not real time) breaks ties.
 */
export class EventQueue {
  private heap: ScheduledEvent[] = [];
  private nextSeq = 0;
  private live = 0;

  get size(): number {
    return this.live;
  }

  get scheduledTotal(): number {
    return this.nextSeq;
  }

  push(due: number, fn: () => void): ScheduledEvent {
    invariant(Number.isInteger(due), () => `event due time must be an integer of microseconds, got ${due}`);
    const event: ScheduledEvent = { due, seq: this.nextSeq++, fn };
    const heap = this.heap;
    heap.push(event);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent]!;
      if (p.due < due || (p.due === due && p.seq < event.seq)) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = event;
    this.live++;
    return event;
  }

  /** Cancelled events stay in the heap and are skipped when they surface. */
  cancel(event: ScheduledEvent): void {
    if (event.fn) {
      event.fn = null;
      this.live--;
    }
  }

  /** Due time of the next live event, or undefined. */
  peekDue(): number | undefined {
    this.skipCancelled();
    return this.heap[0]?.due;
  }

  pop(): ScheduledEvent | undefined {
    this.skipCancelled();
    const top = this.heap[0];
    if (!top) return undefined;
    this.removeTop();
    this.live--;
    return top;
  }

  private skipCancelled(): void {
    while (this.heap.length > 0 && this.heap[0]!.fn === null) this.removeTop();
  }

  private removeTop(): void {
    const heap = this.heap;
    const last = heap.pop()!;
    if (heap.length === 0) return;
    let i = 0;
    const n = heap.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      let c = l;
      if (r < n) {
        const a = heap[l]!;
        const b = heap[r]!;
        if (b.due < a.due || (b.due === a.due && b.seq < a.seq)) c = r;
      }
      const child = heap[c]!;
      if (last.due < child.due || (last.due === child.due && last.seq < child.seq)) break;
      heap[i] = child;
      i = c;
    }
    heap[i] = last;
  }
}
