import { createHmac } from 'node:crypto';
import type { World } from '../../world/types.js';
import { BlockError, E_READONLY } from '../block-device.js';
import type { AttachedDisk, LinkBackend } from '../link/backend.js';
import type { DiskManager } from './disk-manager.js';
import type { GroupApplier } from './group-applier.js';
import type { Prioritizer } from './prioritizer.js';
import { ReadAheadClip } from './read-ahead-clip.js';

export interface LinkBackendDeps {
  world: World;
  /** The on-prem proxy's name, in logs. */
  name: string;
  disks: DiskManager;
  prioritizer: Prioritizer;
  /** Per disk: the write-group applier (opened before the disk is served). */
  appliers: ReadonlyMap<string, GroupApplier>;
  /** Push a whole group when one of its blocks is read (FIG 23). */
  groupPush: boolean;
  /** Cut the peer's read-ahead push requests at the end of the group (file) they start in. */
  clipReadAhead: boolean;
  /** Secret each disk's cloud cache key is derived from; it never leaves on-prem. */
  cacheSecret: Buffer;
}

/**
 * What the link server serves a peer's attach with: the disk leased (a rw
 * attach gets a writer session from the disk's applier), its profile and
 * FIG 23 groups from the prioritizer, write groups applied through the
 * applier, and a per-disk cache key with a fresh epoch.
 */
export function createLinkBackend(deps: LinkBackendDeps): LinkBackend {
  const { world, name, disks, prioritizer, appliers, groupPush, clipReadAhead, cacheSecret } = deps;
  // Writer tokens only need to be unguessable by accident (every peer holds the pairing key).
  const newToken = (): string => world.unpredictable('onprem/writer-token', 16).toString('hex');
  return {
    async attach({ peer, disk: diskId, mode, image: requestedImage, writer: claim, knownCache }): Promise<AttachedDisk> {
      let disk = disks.get(diskId);
      const applier = appliers.get(diskId)!;
      let writer: AttachedDisk['writer'];
      if (mode === 'rw') {
        const request = claim ?? { resume: null, unshipped: false };
        disks.checkWriter(diskId, peer, request.resume?.epoch);
        const answer = await applier.admitWriter({
          peer, unshipped: request.unshipped, ...(request.resume ? { resume: request.resume } : {}), ...(request.takeOver ? { takeOver: true } : {}),
        }, newToken);
        disk = disks.acquire(diskId, answer.grant.epoch, peer, world.clock.nowUs());
        writer = { ...answer.grant, fresh: answer.fresh };
        if (answer.fresh) world.log('info', `proxy/${name}`, `disk ${diskId}: writer session ${answer.grant.epoch} granted to ${peer}`);
      }
      const epoch = writer?.epoch;
      const image = requestedImage ?? disk.image;
      const session = `${peer}/${diskId}`;
      // The profile comes from other sessions and the static boot files; a peer whose cache is not
      // the one on-prem saw last (restarted empty, replaced) holds none of its own boot either: FIG 22
      // streams it that too.
      const profile = prioritizer.profile(image, knownCache ? session : undefined);
      const clip = clipReadAhead ? new ReadAheadClip(prioritizer, image) : undefined;
      const keyEpoch = await applier.nextKeyEpoch();
      const device = disk.device;
      return {
        diskId,
        sizeBytes: device.size(),
        lastSeq: () => applier.appliedSeq,
        read: (offset, length) => device.read(offset, length),
        noteRead(offset, length, record) {
          clip?.noteRead(offset, length);
          if (record) prioritizer.recordRead(image, session, offset, length);
          return groupPush ? prioritizer.groupFor(image, offset, length) : [];
        },
        noteAccess(ranges) {
          for (const r of ranges) prioritizer.recordRead(image, session, r.offset, r.length);
        },
        pushable: (ranges) => clip ? clip.clip(ranges) : ranges,
        async applyGroup(seq, writes) {
          if (epoch === undefined) throw new BlockError(E_READONLY, `disk "${diskId}" is attached read-only by ${peer}; write groups need a rw attach`);
          const duplicate = seq <= applier.appliedSeq && applier.epoch === epoch;
          await applier.applyGroup({ diskId, epoch, seq, writes });
          return { duplicate };
        },
        flush: () => device.flush(),
        profile: () => profile,
        cacheKey: createHmac('sha256', cacheSecret).update(`cache-key/${diskId}`).digest(),
        keyEpoch,
        ...(writer ? { writer } : {}),
        detach: async (ended) => {
          if (epoch === undefined) return;
          if (ended) await applier.endWriter(epoch);
          disks.release(diskId, epoch);
        },
        disconnected: () => {
          if (epoch !== undefined) disks.disconnected(diskId, epoch);
        },
      };
    },
  };
}
