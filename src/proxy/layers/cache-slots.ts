import { invariant } from '../../errors.js';

/**
 * The slots of the secure cache's store and who holds them. A slot is free,
 * holds a block, or is pinned by a store read or write in flight; a slot
 * released while pinned becomes free when its last pin goes, so a reader
 * never sees its bytes overwritten. Slots are handed out lowest first on a
 * cold cache (adjacent blocks land in adjacent slots: one store write).
 */
export class CacheSlots {
  /** Slots the cache may use now. */
  capacity: number;
  /** Slots at or above this were never handed out since the last shrink. */
  private highWater = 0;
  /** Slots below this may hold ciphertext in the store (what a shrink trims back). */
  everUsed = 0;
  private free: number[] = [];
  private readonly pins = new Map<number, number>();
  private readonly pendingFree = new Set<number>();

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  /** A free slot, or undefined when every slot below capacity is taken. */
  take(): number | undefined {
    const s = this.free.pop();
    if (s !== undefined) return s;
    if (this.highWater < this.capacity) {
      this.everUsed = Math.max(this.everUsed, this.highWater + 1);
      return this.highWater++;
    }
    return undefined;
  }

  pin(slot: number): void {
    this.pins.set(slot, (this.pins.get(slot) ?? 0) + 1);
  }

  unpin(slot: number): void {
    const pins = this.pins.get(slot);
    invariant(pins !== undefined, () => `cache slot ${slot} unpinned more often than pinned`);
    if (pins > 1) {
      this.pins.set(slot, pins - 1);
      return;
    }
    this.pins.delete(slot);
    if (this.pendingFree.delete(slot)) this.makeFree(slot);
  }

  /** The slot's block is gone; it is free once nobody reads or writes it. */
  release(slot: number): void {
    if (this.pins.has(slot)) this.pendingFree.add(slot);
    else this.makeFree(slot);
  }

  /** Capacity drops to `slots`: slots past it are never handed out again (their blocks move or go). */
  shrink(slots: number): void {
    this.capacity = slots;
    this.free = this.free.filter((s) => s < slots);
    this.highWater = Math.min(this.highWater, slots);
  }

  /** Some read or write in flight holds a slot at or past `slots`. */
  pinnedFrom(slots: number): boolean {
    for (const s of this.pins.keys()) if (s >= slots) return true;
    return false;
  }

  private makeFree(slot: number): void {
    if (slot < this.capacity && slot < this.highWater) this.free.push(slot);
  }
}
