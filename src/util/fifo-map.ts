/**
 * A map that also drops its oldest entry in O(1): the recent-block windows
 * of the link and the read path, and the read path's queue of pushes waiting
 * for the cache.
 *
 * A plain Map used as a queue (`map.delete(map.keys().next().value)`) is not
 * O(1) in V8: a deleted entry's slot stays in the table until the table is
 * rebuilt, and an iterator starts by walking over those slots. Kept at 8,192
 * entries, dropping the oldest cost ~6 µs (measured on this machine), once
 * per pushed 4 KiB block. Here a separate array keeps the insertion order.
 *
 * Order is first insertion, as in Map: `set` on a present key replaces the
 * value and keeps its place.
 */
export class FifoMap<K, V> {
  private readonly map = new Map<K, { value: V; seq: number }>();
  /** Insertion order: keys and the seq each was inserted with (a slot whose seq no longer matches is stale). */
  private order: K[] = [];
  private orderSeqs: number[] = [];
  private head = 0;
  private nextSeq = 0;

  get size(): number {
    return this.map.size;
  }

  has(key: K): boolean {
    return this.map.has(key);
  }

  get(key: K): V | undefined {
    return this.map.get(key)?.value;
  }

  set(key: K, value: V): this {
    const entry = this.map.get(key);
    if (entry) {
      entry.value = value;
      return this;
    }
    const seq = this.nextSeq++;
    this.map.set(key, { value, seq });
    this.order.push(key);
    this.orderSeqs.push(seq);
    return this;
  }

  delete(key: K): boolean {
    if (!this.map.delete(key)) return false;
    // Its slot in `order` is stale now; drop stale slots before they outnumber live ones.
    if (this.order.length - this.head > 2 * this.map.size + 1024) this.rebuildOrder();
    return true;
  }

  /** The oldest entry, without removing it. */
  peek(): [K, V] | undefined {
    while (this.head < this.order.length) {
      const key = this.order[this.head]!;
      const entry = this.map.get(key);
      if (entry && entry.seq === this.orderSeqs[this.head]) return [key, entry.value];
      this.head++;
    }
    return undefined;
  }

  /** Remove and return the oldest entry. */
  shift(): [K, V] | undefined {
    const first = this.peek();
    if (!first) return undefined;
    this.map.delete(first[0]);
    this.head++;
    // Drop the consumed prefix once it is as long as what is left: amortized O(1).
    if (this.head > 1024 && this.head * 2 > this.order.length) {
      this.order = this.order.slice(this.head);
      this.orderSeqs = this.orderSeqs.slice(this.head);
      this.head = 0;
    }
    return first;
  }

  clear(): void {
    this.map.clear();
    this.order = [];
    this.orderSeqs = [];
    this.head = 0;
  }

  private rebuildOrder(): void {
    const order: K[] = [];
    const seqs: number[] = [];
    for (let i = this.head; i < this.order.length; i++) {
      const key = this.order[i]!;
      const entry = this.map.get(key);
      if (entry && entry.seq === this.orderSeqs[i]) { order.push(key); seqs.push(entry.seq); }
    }
    this.order = order;
    this.orderSeqs = seqs;
    this.head = 0;
  }
}
