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
  /** Slots handed out and not released yet: one entry (or one move target) each. */
  private readonly held = new Set<number>();
  private readonly pins = new Map<number, number>();
  private readonly pendingFree = new Set<number>();

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  /** A free slot, or undefined when every slot below capacity is taken. */
  take(): number | undefined {
    let s = this.free.pop();
    if (s === undefined && this.highWater < this.capacity) {
      this.everUsed = Math.max(this.everUsed, this.highWater + 1);
      s = this.highWater++;
    }
    if (s === undefined) return undefined;
    // A slot is free or holds exactly one block: two blocks in one slot would overwrite each other's ciphertext.
    invariant(!this.held.has(s), () => `cache slot ${s} handed out while it still holds a block`);
    this.held.add(s);
    return s;
  }

  /** A reopened index says this slot holds a block (call settleClaims once all are claimed). */
  claim(slot: number): void {
    invariant(slot < this.capacity && !this.held.has(slot), () => `cache slot ${slot} claimed twice or past capacity ${this.capacity}`);
    this.held.add(slot);
    this.highWater = Math.max(this.highWater, slot + 1);
    this.everUsed = Math.max(this.everUsed, this.highWater);
  }

  /** After claims: every unclaimed slot below the high water is free, lowest handed out first. */
  settleClaims(): void {
    this.free = [];
    for (let s = this.highWater - 1; s >= 0; s--) if (!this.held.has(s)) this.free.push(s);
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
    invariant(this.held.delete(slot), () => `cache slot ${slot} released but not held (released twice?)`);
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
