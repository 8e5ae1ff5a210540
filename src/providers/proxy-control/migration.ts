import { InputError, SpillwayError } from '../../errors.js';
import type { MigrationProgress } from '../../ports/proxy-control.js';
import type { BlockDevice, Extent } from '../../proxy/block-device.js';
import { MigrationLayer } from '../../proxy/layers/migration.js';
import { SparseStore } from '../../proxy/stores/sparse-store.js';
import { WriteTracker } from './devices.js';
import { MigrationSource } from './migration-source.js';
import { requireTarget, type DiskSession, type ProxyControlState, type VmTarget } from './state.js';

/**
 * Migration (FIG 17/18): a disk's session switches to a migration layer that
 * moves it chunk by chunk into a cloud volume, and leaves it complete (the
 * volume serves) or not (writes made meanwhile go back into write-behind).
 */

/** Whether a store holds any data in the range (synchronously for the in-memory sparse store). */
function holdsData(store: BlockDevice, offset: number, length: number): boolean | Promise<boolean> {
  const any = (ex: Extent[]): boolean => ex.some((e) => e.type === 'data');
  return store instanceof SparseStore ? any(store.extentsSync(offset, length)) : store.extents(offset, length).then(any);
}

export async function startMigration(pc: ProxyControlState, req: { vmId: string; volumes: Record<string, string> }): Promise<MigrationProgress> {
  const t = requireTarget(pc, req.vmId);
  for (const s of t.sessions) {
    const volumeId = req.volumes[s.diskId];
    if (!volumeId || s.migration || s.discarded) continue;
    const size = s.target.size();
    let vol = pc.volumes.get(volumeId);
    if (!vol) {
      const chunks = Math.ceil(size / pc.migrationChunk);
      vol = { store: pc.makeStore(`volume:${volumeId}`, size), log: pc.makeStore(`migration-log:${volumeId}`, 4096 * (2 + Math.ceil(chunks / 8 / 4096))) };
      pc.volumes.set(volumeId, vol);
    }
    // Below the migration layer is write-behind: reads see every write acknowledged before migration mode.
    // The chunks are read past the secure cache: they go to the volume, and the VM reads them from there.
    const source = new MigrationSource(s.proxy.writeBehind, s.proxy.remote, s.proxy.cache, (offset, length) => holdsData(s.writeStore, offset, length));
    const layer = await MigrationLayer.open(source, {
      world: pc.world, target: vol.store, logStore: vol.log, chunkBytes: pc.migrationChunk, isHole: await holeMap(pc, s),
    });
    const writes = new WriteTracker(layer, pc.migrationChunk);
    s.migration = { volumeId, layer, writes, cursor: 0 };
    s.target.switchTo(writes);
  }
  return migrationProgress(pc, t);
}

export async function syncRound(pc: ProxyControlState, req: { vmId: string; maxBytes: number }): Promise<MigrationProgress> {
  if (!Number.isInteger(req.maxBytes) || req.maxBytes <= 0) throw new InputError('E_BAD_FIELD', `syncRound.maxBytes: expected a positive integer, got ${JSON.stringify(req.maxBytes)}`);
  const t = requireTarget(pc, req.vmId);
  const migrating = t.sessions.filter((s) => s.migration);
  if (migrating.length === 0) throw new SpillwayError('E_NOT_MIGRATING', `${req.vmId} is not in migration mode`);
  let budget = req.maxBytes;
  for (const s of migrating) {
    const m = s.migration!;
    const size = s.target.size();
    const chunks = Math.ceil(size / pc.migrationChunk);
    // The persistent log says what is already in the volume: a re-run or a resumed migration fetches nothing twice.
    // Rounds running side by side (a restarted controller's next to the one still in flight) claim chunks from
    // one cursor before awaiting, and the cursor wraps: a chunk one round passed while another held it is found
    // on a later pass instead of never.
    for (let seen = 0; budget > 0 && seen < chunks; seen++) {
      const c = m.cursor;
      m.cursor = (c + 1) % chunks;
      const offset = c * pc.migrationChunk;
      // Holes cost no budget: they are written as zeros without a fetch.
      if (!m.layer.isTransferred(offset)) budget -= await m.layer.syncChunk(offset);
    }
    await m.layer.flush();
    if (budget <= 0) break;
  }
  return migrationProgress(pc, t);
}

/**
 * Where the disk holds only zeros: neither the on-prem export's allocation
 * map (the hypervisor's allocated areas, taken once: nothing else writes
 * the leased disk) nor write-behind's store has data there. The sync skips
 * such chunks without fetching them, so a sparse disk moves its data only.
 */
async function holeMap(pc: ProxyControlState, s: DiskSession): Promise<(offset: number, length: number) => boolean | Promise<boolean>> {
  const size = s.target.size();
  const data = (await s.exp.device.extents(0, size)).filter((e) => e.type === 'data');
  const store = s.writeStore;
  return (offset, length) => {
    const end = offset + length;
    let lo = 0;
    let hi = data.length;
    // First data extent ending after `offset`.
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (data[mid]!.offset + data[mid]!.length <= offset) lo = mid + 1;
      else hi = mid;
    }
    if (lo < data.length && data[lo]!.offset < end) return false;
    const held = holdsData(store, offset, length);
    return typeof held === 'boolean' ? !held : held.then((h) => !h);
  };
}

export async function stopMigration(pc: ProxyControlState, req: { vmId: string }): Promise<void> {
  const t = pc.targets.get(req.vmId);
  if (!t) return;
  for (const s of t.sessions) if (s.migration) await leaveMigration(pc, s);
}

/**
 * Leave migration mode. Complete: the volume is the disk now and the target
 * serves it directly (the proxies leave the data path). Incomplete (a
 * rollback): the writes that terminated on the volume are carried into
 * write-behind, and the target serves through the proxy again.
 */
export async function leaveMigration(pc: ProxyControlState, s: DiskSession): Promise<void> {
  const m = s.migration!;
  const vol = pc.volumes.get(m.volumeId)!;
  await s.target.drain();
  try {
    await m.layer.flush();
    if (m.layer.progress().done) {
      s.target.switchTo(vol.store);
    } else {
      for (const c of [...m.writes.chunks].sort((a, b) => a - b)) {
        const offset = c * pc.migrationChunk;
        const length = Math.min(pc.migrationChunk, s.target.size() - offset);
        await s.proxy.writeBehind.write(offset, await vol.store.read(offset, length));
      }
      s.target.switchTo(s.proxy.device);
    }
    s.migration = null;
  } finally {
    s.target.resume();
  }
}

function migrationProgress(pc: ProxyControlState, t: VmTarget): MigrationProgress {
  let syncedBytes = 0;
  let totalBytes = 0;
  for (const s of t.sessions) {
    if (!s.migration) continue;
    const p = s.migration.layer.progress();
    syncedBytes += p.transferredBytes;
    totalBytes += p.totalBytes;
  }
  // Writes in migration mode terminate on the volume only, so nothing on-prem goes dirty behind the sync.
  return { syncedBytes, totalBytes, dirtyBytes: 0 };
}
