import type { World } from '../../world/types.js';
import { BlockError, E_READONLY, type BlockDevice } from '../block-device.js';
import { parsePairingKey } from '../link/pairing-key.js';
import { LinkServer, type AttachedDisk, type ByteRange, type GroupWrite, type LinkBackend, type LinkServerStats } from '../link/server.js';
import { DiskManager, type ManagedDisk } from './disk-manager.js';
import { MemoryGroupState, type GroupStateStore } from './group-state.js';
import { Prioritizer, type FileExtents } from './prioritizer.js';

export interface OnpremDiskOptions {
  id: string;
  device: BlockDevice;
  /** Image the disk was cloned from (default: the disk id); profiles are shared per image. */
  image?: string;
  /** FIG 21: the files the boot reads, with their block ranges. */
  bootFiles?: FileExtents[];
  /** FIG 23: groups pushed whole when one block is read (default: the boot files' ranges). */
  groups?: ByteRange[][];
}

export interface OnpremProxyOptions {
  /** Where the link server listens ("onprem:7000" in a simulation, "0.0.0.0:7000" live). */
  address: string;
  /** 64 hex characters (or 32 bytes) shared with the cloud proxy. */
  pairingKey: string | Buffer;
  disks: OnpremDiskOptions[];
  name?: string;
  /** Survives restarts: last applied group per disk and the group being applied. */
  groupState?: GroupStateStore;
  prioritizer?: Prioritizer;
  rateBytesPerS?: number;
  compressionLevel?: number;
  /** Push a whole group when one of its blocks is read (FIG 23); on by default. */
  groupPush?: boolean;
}

export interface OnpremProxy {
  readonly server: LinkServer;
  readonly disks: DiskManager;
  readonly prioritizer: Prioritizer;
  readonly address: string;
  stats(): LinkServerStats;
  /** Cut every link connection (fault injection). */
  dropConnections(): void;
  close(): Promise<void>;
}

/**
 * The on-prem edge proxy (§2.4): a disk manager that leases disks, a
 * prioritizer, and the link server, wired to apply write groups atomically
 * and idempotently. Resolves once it listens; staged groups left by a crash
 * are applied before the first connection is served.
 */
export async function createOnpremProxy(world: World, options: OnpremProxyOptions): Promise<OnpremProxy> {
  const key = parsePairingKey(options.pairingKey, 'onprem.pairingKey');
  const name = options.name ?? 'onprem';
  const disks = new DiskManager();
  const prioritizer = options.prioritizer ?? new Prioritizer();
  const state = options.groupState ?? new MemoryGroupState();
  const groupPush = options.groupPush ?? true;
  for (const d of options.disks) {
    const image = d.image ?? d.id;
    disks.add({ id: d.id, device: d.device, image });
    if (d.bootFiles) prioritizer.setBootFiles(image, d.bootFiles);
    const groups = d.groups ?? d.bootFiles?.map((f) => f.ranges);
    if (groups) prioritizer.setGroups(image, groups);
  }

  /** One apply at a time per disk, in arrival order (the client ships in seq order). */
  const applyChains = new Map<string, Promise<unknown>>();

  const applyStaged = async (disk: ManagedDisk, seq: number, writes: GroupWrite[]): Promise<void> => {
    for (const w of writes) await disk.device.write(w.offset, w.data);
    await disk.device.flush();
    await state.commit(disk.id, seq);
  };

  // Recovery: a group staged before a crash but not committed is applied now.
  for (const disk of disks.list()) {
    const staged = state.staged(disk.id);
    if (staged && staged.seq > state.lastSeq(disk.id)) {
      await applyStaged(disk, staged.seq, staged.writes);
      world.log('info', `proxy/${name}`, `re-applied write group ${staged.seq} of ${disk.id} staged before a restart`);
    }
  }

  const backend: LinkBackend = {
    async attach({ peer, disk: diskId, mode, image: requestedImage }): Promise<AttachedDisk> {
      const disk = disks.acquire(diskId, peer, mode, world.clock.nowUs());
      const image = requestedImage ?? disk.image;
      const session = `${peer}/${diskId}`;
      // The profile a new session gets comes from other sessions and the static boot files.
      const profile = prioritizer.profile(image, session);
      return {
        diskId,
        sizeBytes: disk.device.size(),
        lastSeq: () => state.lastSeq(diskId),
        read: (offset, length) => disk.device.read(offset, length),
        noteRead(offset, length) {
          prioritizer.recordRead(image, session, offset, length);
          return groupPush ? prioritizer.groupFor(image, offset, length) : [];
        },
        applyGroup(seq, writes) {
          const prev = applyChains.get(diskId) ?? Promise.resolve();
          const next = prev.catch(() => {}).then(async () => {
            if (mode !== 'rw') throw new BlockError(E_READONLY, `disk "${diskId}" is attached read-only by ${peer}; write groups need a rw attach`);
            if (seq <= state.lastSeq(diskId)) return { duplicate: true };
            await state.stage(diskId, seq, writes);
            await applyStaged(disk, seq, writes);
            return { duplicate: false };
          });
          applyChains.set(diskId, next);
          return next;
        },
        flush: () => disk.device.flush(),
        profile: () => profile,
        detach: async () => {
          if (mode === 'rw') disks.release(diskId, peer);
        },
      };
    },
  };

  const server = new LinkServer(world, {
    address: options.address,
    pairingKey: key,
    backend,
    name,
    ...(options.rateBytesPerS ? { rateBytesPerS: options.rateBytesPerS } : {}),
    ...(options.compressionLevel !== undefined ? { compressionLevel: options.compressionLevel } : {}),
  });
  await server.start();

  return {
    server,
    disks,
    prioritizer,
    get address() { return server.address; },
    stats: () => server.stats,
    dropConnections: () => server.dropConnections(),
    close: () => server.close(),
  };
}
