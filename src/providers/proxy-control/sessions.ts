import { SpillwayError } from '../../errors.js';
import type { DiskExport } from '../../ports/proxy-control.js';
import { createCloudProxy, type CloudStores } from '../../proxy/cloud/cloud-proxy.js';
import { NbdServer } from '../../proxy/nbd/server.js';
import { TargetDevice } from './devices.js';
import { leaveMigration } from './migration.js';
import { closePeers, prefetchViaSiblings, siblingRef, warmSibling } from './siblings.js';
import {
  MiB, cacheStoreBytes, exportSafe, memoOf, newBootProgress, requireTarget, type DiskSession, type ProxyControlState,
} from './state.js';

/**
 * The cloud edge: a VM's storage target (an NBD server) with one cloud proxy
 * per disk, what its profile prefetch streams, flushing and discarding its
 * writes, and closing it.
 */

export async function openTarget(pc: ProxyControlState, req: { vmId: string; instanceId: string; disks: DiskExport[]; siblingSources: string[] }): Promise<{ targetAddress: string }> {
  const existing = pc.targets.get(req.vmId);
  if (existing) {
    if (existing.instanceId !== req.instanceId) throw new SpillwayError('E_TARGET_BUSY', `the target of ${req.vmId} is open for instance ${existing.instanceId}, not ${req.instanceId}`);
    return { targetAddress: existing.address };
  }
  const sessions: DiskSession[] = [];
  try {
    for (const d of req.disks) sessions.push(await openSession(pc, req.vmId, d, req.siblingSources));
    const address = pc.options.targetAddress?.(req.vmId) ?? `target-${exportSafe(req.vmId)}:10809`;
    // The instance boots from this NBD server (the staging image's initrd connects to it).
    const nbd = new NbdServer(pc.world, { exports: sessions.map((s) => ({ name: s.diskId, device: s.target })), src: `proxy/target/${req.vmId}` });
    const listener = await nbd.listen(address);
    pc.targets.set(req.vmId, {
      vmId: req.vmId, instanceId: req.instanceId, address: listener.address, sessions, nbd,
      closeNbd: async () => { await nbd.close(); },
      boot: { staging: newBootProgress(), target: newBootProgress() },
    });
    for (const s of sessions) pc.sessions.set(s.proxyId, s);
    return { targetAddress: listener.address };
  } catch (err) {
    for (const s of sessions) await s.proxy.close().catch(() => undefined);
    throw err;
  }
}

async function openSession(pc: ProxyControlState, vmId: string, d: DiskExport, siblingSources: string[]): Promise<DiskSession> {
  const exp = pc.exports.get(d.exportName);
  if (!exp) throw new SpillwayError('E_NO_EXPORT', `no on-prem export "${d.exportName}" (mount or clone the disk first); exported: ${[...pc.exports.keys()].join(', ') || '(none)'}`);
  const proxyId = `${vmId}/${d.diskId}`;
  const size = exp.device.size();
  const blockBytes = pc.cacheBlockBytes;
  const stores: CloudStores = {
    writeStore: pc.makeStore(`wb-store:${proxyId}`, size),
    writeMap: pc.makeStore(`wb-map:${proxyId}`, Math.max(4096, Math.ceil(size / 4096 / 8))),
    journal: pc.makeStore(`wb-journal:${proxyId}`, pc.options.journalBytes ?? 64 * MiB),
    cache: pc.makeStore(`cache-store:${proxyId}`, cacheStoreBytes(pc.maxCacheBytes, blockBytes)),
  };
  const sources = siblingSources.filter((src) => src !== vmId);
  const siblings = sources.map((src) => siblingRef(pc, src, d.diskId, exp.base, size));
  const proxy = await createCloudProxy(pc.world, {
    name: proxyId, onprem: pc.options.onpremAddress, pairingKey: pc.key,
    disk: { id: d.exportName, image: exp.imageId, persistence: d.policy },
    stores, cacheCapacityBytes: pc.cacheBytes, blockBytes, siblings,
    // The profile streams when the machine asks for prefetch (startPrefetch), not at attach.
    streamProfile: false,
    ...(pc.options.readAhead !== undefined ? { readAhead: pc.options.readAhead } : {}),
    ...(pc.options.rpoUs ? { rpoUs: pc.options.rpoUs } : {}),
    ...memoOf(pc),
  });
  return {
    proxyId, vmId, diskId: d.diskId, exp, policy: d.policy, proxy, target: new TargetDevice(proxy.device, proxyId),
    siblings, siblingSources: sources, peers: new Map(), prefetchStarted: false, migration: null, discarded: false,
    writeStore: stores.writeStore,
  };
}

export async function startPrefetch(pc: ProxyControlState, req: { vmId: string }): Promise<{ queuedBytes: number }> {
  let queuedBytes = 0;
  for (const s of requireTarget(pc, req.vmId).sessions) {
    const mode = pc.options.prefetch ?? true;
    if (s.discarded || mode === false) continue;
    if (mode === 'recorded' && pc.onprem.prioritizer.sessions(s.exp.imageId) === 0) continue;
    const remote = s.proxy.remote;
    queuedBytes += remote.profileBlocks * remote.blockBytes;
    if (s.prefetchStarted) continue;
    s.prefetchStarted = true;
    if (remote.profileBlocks > 0 && s.proxy.cache.stats().usedBytes === 0 && warmSibling(pc, s)) {
      prefetchViaSiblings(pc, s).catch((err: Error) => pc.world.log('warn', `proxy/cloud/${s.proxyId}`, `sibling prefetch stopped: ${err.message}`));
    } else if (remote.profileBlocks > 0 && s.proxy.cache.stats().usedBytes === 0) {
      remote.streamProfile().catch((err: Error) => pc.world.log('warn', `proxy/cloud/${s.proxyId}`, `profile stream not started: ${err.message}`));
    }
  }
  return { queuedBytes };
}

export async function flushWriteBehind(pc: ProxyControlState, req: { vmId: string }): Promise<{ flushedBytes: number; pendingBytes: number }> {
  let flushedBytes = 0;
  let pendingBytes = 0;
  for (const s of requireTarget(pc, req.vmId).sessions) {
    if (s.discarded || s.policy !== 'on-prem') continue;
    const wb = s.proxy.writeBehind;
    const before = wb.stats().bytesShipped;
    await s.proxy.drain();
    const after = wb.stats();
    flushedBytes += after.bytesShipped - before;
    pendingBytes += after.backlogBytes;
  }
  return { flushedBytes, pendingBytes };
}

export async function discardCloudOnly(pc: ProxyControlState, req: { vmId: string; diskId: string }): Promise<void> {
  const t = pc.targets.get(req.vmId);
  const s = t?.sessions.find((x) => x.diskId === req.diskId);
  if (!s || s.discarded) return;
  if (s.policy !== 'cloud-only') throw new SpillwayError('E_NOT_CLOUD_ONLY', `disk ${req.diskId} of ${req.vmId} persists on-prem; only cloud-only writes may be discarded`);
  // Closing ships nothing (cloud-only) and releases the on-prem lease; the stores holding the writes are dropped with the session.
  s.discarded = true;
  s.target.retire('its cloud-only writes were discarded');
  await closePeers(pc, s);
  await s.proxy.close();
  pc.sessions.delete(s.proxyId);
}

export async function closeTarget(pc: ProxyControlState, req: { vmId: string }): Promise<void> {
  const t = pc.targets.get(req.vmId);
  if (!t) return;
  for (const s of t.sessions) {
    if (s.discarded) continue;
    if (s.migration) await leaveMigration(pc, s);
    s.target.retire('the target is closed');
    await closePeers(pc, s);
    // Acknowledged writes are never dropped: on-prem ones ship before the lease goes.
    if (s.policy === 'on-prem') await s.proxy.drain();
    await s.proxy.close();
    pc.sessions.delete(s.proxyId);
  }
  await t.closeNbd();
  pc.targets.delete(req.vmId);
}
