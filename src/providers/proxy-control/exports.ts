import { SpillwayError } from '../../errors.js';
import type { Hypervisor } from '../../ports/hypervisor.js';
import type { PersistencePolicy } from '../../ports/proxy-control.js';
import type { BlockDevice } from '../../proxy/block-device.js';
import { CowOverlay, ReadOnlyView } from './devices.js';
import type { GuestBootModel } from './guest-boot.js';
import { exportSafe, type ProxyControlState } from './state.js';

/**
 * The on-prem edge: mounting a hypervisor disk (its write lease) or a clone
 * of a snapshot's disk as an export of the on-prem proxy, and the FIG 21/22
 * prioritizer's boot files and groups per image.
 */

export async function mountDisk(pc: ProxyControlState, req: { vmId: string; diskId: string; owner: string }): Promise<{ exportName: string }> {
  const hv = pc.options.hypervisor;
  const held = pc.mounts.get(req.diskId);
  if (held) {
    if (held.owner !== req.owner) throw new SpillwayError('E_LEASE_HELD', `disk ${req.diskId} is mounted for ${held.owner}; ${req.owner} is refused (one writer per disk)`, { details: { diskId: req.diskId, holder: held.owner } });
    return { exportName: held.exportName };
  }
  const info = hv.disk(req.diskId);
  const lease = hv.lockDisk(req.diskId, req.owner);
  const exportName = exportSafe(req.diskId);
  try {
    const device = hv.openDisk(req.diskId);
    await pc.onprem.addDisk({ id: exportName, device, image: info.imageId, ...bootFilesOf(pc, info.imageId) });
    pc.exports.set(exportName, { exportName, diskId: req.diskId, imageId: info.imageId, vmId: info.vmId, base: `disk:${req.diskId}`, device, overlay: null });
  } catch (err) {
    lease.release();
    throw err;
  }
  pc.mounts.set(req.diskId, { owner: req.owner, lease, exportName });
  return { exportName };
}

export async function unmountDisk(pc: ProxyControlState, req: { vmId: string; diskId: string; owner: string }): Promise<void> {
  const held = pc.mounts.get(req.diskId);
  if (!held) return;
  if (held.owner !== req.owner) throw new SpillwayError('E_LEASE_HELD', `disk ${req.diskId} is mounted for ${held.owner}, not ${req.owner}`);
  // Refused (E_LEASE_HELD) while a cloud proxy still has the export attached for writing.
  if (pc.exports.has(held.exportName)) pc.onprem.removeDisk(held.exportName);
  pc.exports.delete(held.exportName);
  held.lease.release();
  pc.mounts.delete(req.diskId);
}

export async function cloneDisk(pc: ProxyControlState, req: { snapshotId: string; diskId: string; cloneId: string; policy: PersistencePolicy }): Promise<{ exportName: string }> {
  const exportName = exportSafe(`clone/${req.cloneId}/${req.diskId}`);
  if (pc.exports.has(exportName)) return { exportName };
  const hv = pc.options.hypervisor;
  const info = hv.disk(req.diskId);
  const base = snapshotDisk(pc, req.snapshotId, req.diskId);
  const overlay = req.policy === 'on-prem' ? new CowOverlay(base, pc.makeStore(`clone-overlay:${exportName}`, base.size()), exportName) : null;
  // A cloud-only clone's writes never come on-prem, so its export refuses them.
  const device = overlay ?? new ReadOnlyView(base, exportName);
  await pc.onprem.addDisk({ id: exportName, device, image: info.imageId, ...bootFilesOf(pc, info.imageId) });
  pc.exports.set(exportName, { exportName, diskId: req.diskId, imageId: info.imageId, vmId: info.vmId, base: `snapshot:${req.snapshotId}/${req.diskId}`, device, overlay });
  const list = pc.clones.get(req.cloneId) ?? [];
  list.push(exportName);
  pc.clones.set(req.cloneId, list);
  return { exportName };
}

export async function dropClone(pc: ProxyControlState, req: { cloneId: string }): Promise<void> {
  for (const name of pc.clones.get(req.cloneId) ?? []) {
    if (!pc.exports.has(name)) continue;
    pc.onprem.removeDisk(name);
    pc.exports.delete(name);
  }
  pc.clones.delete(req.cloneId);
}

export async function prioritize(pc: ProxyControlState, req: { vmId: string; diskIds: string[] }): Promise<{ groups: number; bytes: number }> {
  const p = pc.onprem.prioritizer;
  let groups = 0;
  let bytes = 0;
  const seen = new Set<string>();
  for (const diskId of req.diskIds) {
    const imageId = pc.options.hypervisor.disk(diskId).imageId;
    if (seen.has(imageId)) continue;
    seen.add(imageId);
    const files = pc.options.guest?.bootFiles(imageId) ?? [];
    if (files.length > 0) {
      // 'recorded' streams only what earlier sessions read (FIG 22), not the whole boot files (FIG 21).
      if (pc.options.prefetch !== 'recorded') p.setBootFiles(imageId, files);
      p.setGroups(imageId, files.map((f) => f.ranges));
    }
    groups += files.length;
    // FIG 21 boot files plus FIG 22 hotspots of earlier sessions: what a new session is streamed first.
    for (const r of p.profile(imageId)) bytes += r.length;
    pc.world.log('info', 'proxy/control', `prioritized ${imageId} for ${req.vmId}: ${files.length} boot files, ${p.hotspotCount(imageId)} hotspot blocks from ${p.sessions(imageId)} sessions`);
  }
  return { groups, bytes };
}

function bootFilesOf(pc: ProxyControlState, imageId: string): { bootFiles?: ReturnType<GuestBootModel['bootFiles']>; groups?: Array<Array<{ offset: number; length: number }>> } {
  const files = pc.options.guest?.bootFiles(imageId) ?? [];
  if (files.length === 0) return {};
  // Groups (FIG 23 pushes on a demand read) either way; boot files in the streamed profile unless 'recorded'.
  return pc.options.prefetch === 'recorded' ? { groups: files.map((f) => f.ranges) } : { bootFiles: files };
}

function snapshotDisk(pc: ProxyControlState, snapshotId: string, diskId: string): BlockDevice {
  if (pc.options.snapshotDisk) return pc.options.snapshotDisk(snapshotId, diskId);
  const hv = pc.options.hypervisor as Hypervisor & { openSnapshotDisk?: (snapshotId: string, diskId: string) => BlockDevice };
  if (typeof hv.openSnapshotDisk !== 'function') {
    throw new SpillwayError('E_UNSUPPORTED', 'clones need the snapshot\'s frozen disk: give proxyControl.snapshotDisk or a hypervisor with openSnapshotDisk');
  }
  return hv.openSnapshotDisk(snapshotId, diskId);
}
