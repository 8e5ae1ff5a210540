import { errorCode } from '../../errors.js';
import { BlockError, E_READONLY, checkRange, type BlockDevice } from '../../proxy/block-device.js';
import { LinkClient } from '../../proxy/link/client.js';
import { E_NOT_HELD, ReadPath } from '../../proxy/layers/read-path.js';
import { SecureCache } from '../../proxy/layers/secure-cache.js';
import { cacheStoreBytes, memoOf, requireSession, type DiskSession, type ProxyControlState } from './state.js';

/**
 * FIG 14 siblings: sibling clones' caches as read sources, prefetch through
 * a warm sibling, and scale-out's read-only peer proxies (§4.4).
 */

/** An open sibling session of the same base whose cache already holds blocks. */
export function warmSibling(pc: ProxyControlState, s: DiskSession): DiskSession | undefined {
  for (const source of s.siblingSources) {
    const t = pc.targets.get(source) ?? [...pc.targets.values()].find((x) => x.address === source);
    const sib = t?.sessions.find((x) => x !== s && x.diskId === s.diskId && !x.discarded && x.exp.base === s.exp.base);
    if (sib && sib.proxy.cache.stats().usedBytes > 0) return sib;
  }
  return undefined;
}

/**
 * FIG 14 prefetch: with a warm sibling, the profile is pulled through this
 * proxy's read path (cache, then siblings, then on-prem for what no sibling
 * holds) instead of being pushed whole from on-prem over the WAN.
 */
export async function prefetchViaSiblings(pc: ProxyControlState, s: DiskSession): Promise<void> {
  const ranges = pc.onprem.prioritizer.profile(s.exp.imageId);
  const depth = Math.max(1, pc.options.boot?.depth ?? 1);
  const maxRead = 256 * 1024;
  const reads: Array<{ offset: number; length: number }> = [];
  for (const r of ranges) for (let o = r.offset; o < r.offset + r.length; o += maxRead) reads.push({ offset: o, length: Math.min(maxRead, r.offset + r.length - o) });
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < reads.length && !s.discarded && pc.sessions.get(s.proxyId) === s) {
      const r = reads[next++]!;
      await s.proxy.readPath.read(r.offset, r.length);
    }
  };
  await Promise.all(Array.from({ length: depth }, worker));
}

/**
 * A sibling clone's cache as a FIG 14 source, resolved at read time (the
 * sibling may open after this target). It serves a range only when the
 * sibling holds the same clean content: same base (snapshot and disk), and
 * no block of the range written by that clone on-prem (an on-prem clone's
 * pushes could carry its own writes into its cache).
 */
export function siblingRef(pc: ProxyControlState, source: string, diskId: string, base: string, size: number): BlockDevice {
  const resolve = (): DiskSession | undefined => {
    const t = pc.targets.get(source) ?? [...pc.targets.values()].find((x) => x.address === source);
    return t?.sessions.find((s) => s.diskId === diskId && !s.discarded && s.exp.base === base);
  };
  return guardedView(`sibling:${source}/${diskId}`, size, async (offset, length) => {
    const s = resolve();
    if (!s) throw new BlockError(E_NOT_HELD, `sibling ${source} has no open target of the same base for ${diskId}`);
    if (s.exp.overlay?.touches(offset, length)) throw new BlockError(E_NOT_HELD, `sibling ${source} wrote part of this range`);
    return s.proxy.readPath.cleanView().read(offset, length);
  });
}

function guardedView(name: string, size: number, read: (offset: number, length: number) => Promise<Buffer>): BlockDevice {
  const refuse = async (): Promise<never> => { throw new BlockError(E_READONLY, `${name}: a sibling source is read-only`); };
  const dev: BlockDevice = {
    name,
    size: () => size,
    read: (offset, length) => { checkRange(dev, offset, length); return read(offset, length); },
    write: refuse, trim: refuse, writeZeroes: refuse,
    flush: async () => undefined,
    prefetch: async () => undefined,
    extents: async (offset, length) => [{ offset, length, type: 'data' as const }],
    close: async () => undefined,
  };
  return dev;
}

/**
 * Scale-out: each instance id becomes a read-only peer proxy of this disk —
 * its own link connection (a lease-free `ro` attach), its own secure cache,
 * streaming the disk's profile — and the primary's read path consults it
 * as a FIG 14 sibling before going on-prem. Peers add cache capacity and
 * link connections; writes stay with the primary (one writer per disk).
 */
export async function addPeers(pc: ProxyControlState, req: { proxyId: string; instanceIds: string[] }): Promise<void> {
  const s = requireSession(pc, req.proxyId);
  for (const instanceId of req.instanceIds) {
    if (s.peers.has(instanceId)) continue;
    const link = new LinkClient(pc.world, { address: pc.options.onpremAddress, pairingKey: pc.key, peer: `peer/${instanceId}/${s.exp.exportName}`, sigs: 'sha256', reportsAccess: false, ...memoOf(pc) });
    await link.connect();
    try {
      const remote = await link.attach(s.exp.exportName, { mode: 'ro', blockBytes: s.proxy.cache.blockBytes, image: s.exp.imageId });
      const capacity = s.proxy.cache.capacityBytes;
      // The disk's cache key is the primary's, but this attach got its own key epoch from on-prem (every
      // attach takes the next one), so the peer's session key and nonces are not the primary's.
      const keyEpoch = remote.keyEpoch;
      const cache = await SecureCache.open({
        name: `secure-cache:peer/${instanceId}/${s.proxyId}`, key: remote.cacheKey, keyEpoch,
        store: pc.makeStore(`cache-store:peer/${instanceId}/${s.proxyId}`, cacheStoreBytes(capacity, remote.blockBytes)), capacityBytes: capacity, blockBytes: remote.blockBytes,
        ...memoOf(pc),
      });
      remote.setSignatureResolver((sig) => cache.findBySignature(sig));
      const readPath = new ReadPath({ world: pc.world, name: `read-path:peer/${instanceId}/${s.proxyId}`, cache, remote });
      remote.onPush((offset, data) => { void readPath.acceptPush(offset, data); });
      if (remote.profileBlocks > 0) remote.streamProfile().catch((err: Error) => pc.world.log('warn', `proxy/peer/${instanceId}`, `profile stream not started: ${err.message}`));
      const clean = readPath.cleanView();
      const view = guardedView(`peer:${instanceId}/${s.proxyId}`, s.target.size(), async (offset, length) => {
        if (s.exp.overlay?.touches(offset, length)) throw new BlockError(E_NOT_HELD, `peer ${instanceId}: the disk was written on-prem in this range`);
        return clean.read(offset, length);
      });
      s.peers.set(instanceId, { instanceId, link, remote, cache, keyEpoch, view });
      s.siblings.push(view);
    } catch (err) {
      await link.close().catch(() => undefined);
      throw err;
    }
  }
}

export async function removePeers(pc: ProxyControlState, req: { proxyId: string; instanceIds: string[] }): Promise<void> {
  const s = pc.sessions.get(req.proxyId);
  if (!s) return;
  for (const id of req.instanceIds) await closePeer(pc, s, id);
}

/** Peers of a proxy (for reports and tests), with the key epoch each peer's cache seals under. */
export function peersOf(pc: ProxyControlState, proxyId: string): Array<{ instanceId: string; cachedBytes: number; keyEpoch: number }> {
  return [...requireSession(pc, proxyId).peers.values()].map((p) => ({ instanceId: p.instanceId, cachedBytes: p.cache.stats().usedBytes, keyEpoch: p.keyEpoch }));
}

async function closePeer(pc: ProxyControlState, s: DiskSession, instanceId: string): Promise<void> {
  const p = s.peers.get(instanceId);
  if (!p) return;
  s.peers.delete(instanceId);
  const i = s.siblings.indexOf(p.view);
  if (i >= 0) s.siblings.splice(i, 1);
  await p.remote.close().catch((err: unknown) => pc.world.log('warn', `proxy/peer/${instanceId}`, `detach failed (${errorCode(err)})`));
  await p.link.close();
}

export async function closePeers(pc: ProxyControlState, s: DiskSession): Promise<void> {
  for (const id of [...s.peers.keys()]) await closePeer(pc, s, id);
}
