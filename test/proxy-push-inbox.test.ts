import { describe, expect, it } from 'vitest';
import { PushInbox, type PushInboxStats } from '../src/proxy/layers/push-inbox.js';
import { SecureCache } from '../src/proxy/layers/secure-cache.js';
import { SparseStore } from '../src/proxy/stores/sparse-store.js';
import { SimWorld } from '../src/world/sim-world.js';
import { randomBytes } from './proxy-link-helpers.js';

const K = 4096;

async function rig(options: { filling?: Set<number>; askedPushWaitUs?: number } = {}) {
  const world = new SimWorld(11);
  const blocks = 64;
  const cache = await SecureCache.open({ key: Buffer.alloc(32, 3), keyEpoch: 1, store: new SparseStore('cs', 4096 + blocks * (K + 16)), capacityBytes: blocks * K, blockBytes: K });
  const counters: PushInboxStats = { pushedBlocks: 0, pushesIgnored: 0, pushesDropped: 0 };
  const filling = options.filling ?? new Set<number>();
  const inbox = new PushInbox({
    world, cache, blockBytes: K, size: () => blocks * K, pushPriority: 1, askedPushWaitUs: options.askedPushWaitUs ?? 200_000,
    filling: (b) => filling.has(b), counters,
  });
  const content = randomBytes(world.rng('c'), blocks * K);
  return { world, cache, counters, inbox, content, filling };
}

describe('PushInbox', () => {
  it('serves a pushed block before the cache holds it, then seals it into the cache on the next tick', async () => {
    const { world, cache, counters, inbox, content } = await rig();
    await inbox.acceptPush(0, content.subarray(0, 4 * K));
    expect(counters.pushedBlocks).toBe(4);
    expect(cache.has(0)).toBe(false);
    expect(inbox.holds(2)).toBe(true);
    expect(inbox.useHeld(2)!.equals(content.subarray(2 * K, 3 * K))).toBe(true);
    await world.advance(0);
    expect(inbox.holds(2)).toBe(false);
    expect(cache.blocks()).toEqual([0, 1, 2, 3]);
    expect((await cache.get(1))!.equals(content.subarray(K, 2 * K))).toBe(true);
    // Block 2 was used by a read before it was sealed: a demand block; 1 and 3 count as prefetch hits.
    await cache.get(2);
    await cache.get(3);
    expect(cache.stats().prefetchHits).toBe(2);
  });

  it('ignores pushes of blocks cached, being fetched, or already waiting; partial blocks are never taken', async () => {
    const { cache, counters, inbox, content, filling } = await rig();
    await cache.put(0, content.subarray(0, K), 1);
    filling.add(1);
    await inbox.acceptPush(0, content.subarray(0, 3 * K));
    await inbox.acceptPush(2 * K, content.subarray(2 * K, 3 * K));
    await inbox.acceptPush(4 * K + 512, content.subarray(4 * K + 512, 6 * K));
    expect(counters).toEqual({ pushedBlocks: 2, pushesIgnored: 3, pushesDropped: 0 });
    expect(inbox.holds(2)).toBe(true);
    expect(inbox.holds(4)).toBe(false);
    expect(inbox.holds(5)).toBe(true);
  });

  it('hands a block straight to a read waiting for it, and the wait ends at its deadline otherwise', async () => {
    const { world, inbox, content } = await rig();
    let done = false;
    const wait = inbox.waitForPush(3, 4, 50_000).then(() => { done = true; });
    await inbox.acceptPush(3 * K, content.subarray(3 * K, 4 * K));
    await world.advance(0);
    expect(done).toBe(false);
    await inbox.acceptPush(4 * K, content.subarray(4 * K, 5 * K));
    await world.advance(0);
    await wait;
    expect(world.clock.nowUs()).toBe(0);
    expect(inbox.fromRecent(3 * K + 100, K)!.equals(content.subarray(3 * K + 100, 4 * K + 100))).toBe(true);
    expect(inbox.fromRecent(5 * K, K)).toBeUndefined();
    const late = inbox.waitForPush(9, 9, 50_000);
    await world.advance(60_000);
    await late;
    expect(world.clock.nowUs()).toBe(50_000);
  });

  it('a miss on blocks asked for by push waits until the ask is askedPushWaitUs old, and not after a failed ask', async () => {
    const { world, inbox } = await rig({ askedPushWaitUs: 200_000 });
    expect(inbox.askedPushDeadline(0, 2 * K)).toBeUndefined();
    inbox.noteAsked([0, 1], world.clock.nowUs());
    expect(inbox.wasAsked(1)).toBe(true);
    expect(inbox.askedPushDeadline(0, 2 * K)).toBe(200_000);
    expect(inbox.askedPushDeadline(0, 3 * K)).toBeUndefined();
    world.clock.schedule(200_000, () => undefined);
    await world.advance(200_000);
    expect(inbox.askedPushDeadline(0, 2 * K)).toBeUndefined();
    inbox.noteAsked([5], world.clock.nowUs());
    inbox.askFailed([5]);
    expect(inbox.wasAsked(5)).toBe(false);
    expect(inbox.askedPushDeadline(5 * K, K)).toBeUndefined();
  });

  it('settlePushes waits for every accepted push to reach the cache; close drops what has not and ignores later pushes', async () => {
    const { cache, counters, inbox, content } = await rig();
    await inbox.acceptPush(0, content.subarray(0, 8 * K));
    await inbox.settlePushes();
    expect(cache.blocks()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    await inbox.acceptPush(8 * K, content.subarray(8 * K, 10 * K));
    inbox.close();
    expect(counters.pushesDropped).toBe(2);
    expect(inbox.holds(8)).toBe(false);
    await inbox.acceptPush(10 * K, content.subarray(10 * K, 11 * K));
    expect(counters.pushedBlocks).toBe(10);
  });
});
