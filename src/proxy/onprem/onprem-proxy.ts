import type { ContentMemo } from '../content-memo.js';
import { hkdfSync } from 'node:crypto';
import type { World } from '../../world/types.js';
import type { BlockDevice } from '../block-device.js';
import { parsePairingKey } from '../link/pairing-key.js';
import type { ByteRange } from '../link/backend.js';
import { LinkServer } from '../link/server.js';
import type { LinkServerStats } from '../link/server-session.js';
import { DiskManager } from './disk-manager.js';
import { StoreJournal } from '../journal.js';
import { SparseStore } from '../stores/sparse-store.js';
import { GroupApplier } from './group-applier.js';
import { Prioritizer, type FileExtents } from './prioritizer.js';
import { createLinkBackend } from './link-backend.js';

export interface OnpremDiskOptions {
  id: string;
  device: BlockDevice;
  /** Image the disk was cloned from (default: the disk id); profiles are shared per image. */
  image?: string;
  /** FIG 21: the files the boot reads, with their block ranges. */
  bootFiles?: FileExtents[];
  /** FIG 23: groups pushed whole when one block is read (default: the boot files' ranges). */
  groups?: ByteRange[][];
  /**
   * Durable store of the apply journal (the group being applied and the last
   * applied seq). Keep it across restarts: a SparseStore the test holds in a
   * simulation, a FileStore live. Default: a fresh in-memory store.
   */
  applyJournal?: BlockDevice;
}

export interface OnpremProxyOptions {
  /** Where the link server listens ("onprem:7000" in a simulation, "0.0.0.0:7000" live). */
  address: string;
  /** 64 hex characters (or 32 bytes) shared with the cloud proxy. */
  pairingKey: string | Buffer;
  disks: OnpremDiskOptions[];
  name?: string;
  prioritizer?: Prioritizer;
  rateBytesPerS?: number;
  compressionLevel?: number;
  /** Link connections allowed in the handshake at once (see LinkServerOptions). */
  maxUnauthenticated?: number;
  /** Push a whole group when one of its blocks is read (FIG 23); on by default. */
  groupPush?: boolean;
  /** Cut the peer's read-ahead push requests at the end of the group (file) they start in; on by default. */
  clipReadAhead?: boolean;
  /**
   * Secret (32 bytes) from which each disk's cloud cache key is derived. It
   * never leaves on-prem; only per-disk keys do, inside the encrypted link.
   * Default: derived from the pairing key (set your own in production).
   */
  cacheSecret?: Buffer;
  /** Signatures by content across the run (see ContentMemo; a simulation shares one among all its proxies). */
  contentMemo?: ContentMemo;
}

export interface OnpremProxy {
  readonly server: LinkServer;
  readonly disks: DiskManager;
  readonly prioritizer: Prioritizer;
  /** Per disk: applies write groups atomically and idempotently. */
  readonly appliers: ReadonlyMap<string, GroupApplier>;
  readonly address: string;
  stats(): LinkServerStats;
  /** Serve one more disk (an export added while running: a mount or a clone). */
  addDisk(disk: OnpremDiskOptions): Promise<void>;
  /** Stop serving a disk; refused (E_LEASE_HELD) while a cloud proxy holds it for writing. */
  removeDisk(id: string): void;
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
  const groupPush = options.groupPush ?? true;
  const clipReadAhead = options.clipReadAhead ?? true;
  const cacheSecret = options.cacheSecret ?? Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), 'spillway cache secret', 32));
  const register = (d: OnpremDiskOptions): void => {
    const image = d.image ?? d.id;
    disks.add({ id: d.id, device: d.device, image });
    if (d.bootFiles) prioritizer.setBootFiles(image, d.bootFiles);
    const groups = d.groups ?? d.bootFiles?.map((f) => f.ranges);
    if (groups) prioritizer.setGroups(image, groups);
  };
  for (const d of options.disks) register(d);

  // Recovery happens in GroupApplier.open: a group staged before a crash but not committed is applied now.
  const appliers = new Map<string, GroupApplier>();
  const openApplier = async (d: OnpremDiskOptions): Promise<void> => {
    const journal = await StoreJournal.open(d.applyJournal ?? new SparseStore(`apply-journal:${d.id}`, 256 * 1024 * 1024));
    appliers.set(d.id, await GroupApplier.open(d.device, journal, d.id));
  };
  for (const d of options.disks) await openApplier(d);

  const backend = createLinkBackend({ world, name, disks, prioritizer, appliers, groupPush, clipReadAhead, cacheSecret });

  const server = new LinkServer(world, {
    address: options.address,
    pairingKey: key,
    backend,
    name,
    ...(options.rateBytesPerS ? { rateBytesPerS: options.rateBytesPerS } : {}),
    ...(options.compressionLevel !== undefined ? { compressionLevel: options.compressionLevel } : {}),
    ...(options.maxUnauthenticated !== undefined ? { maxUnauthenticated: options.maxUnauthenticated } : {}),
    ...(options.contentMemo ? { contentMemo: options.contentMemo } : {}),
  });
  await server.start();

  return {
    server,
    disks,
    prioritizer,
    appliers,
    get address() { return server.address; },
    stats: () => server.stats,
    async addDisk(d) {
      register(d);
      try {
        await openApplier(d);
      } catch (err) {
        disks.remove(d.id);
        throw err;
      }
    },
    removeDisk(id) {
      disks.remove(id);
      appliers.delete(id);
    },
    dropConnections: () => server.dropConnections(),
    close: () => server.close(),
  };
}
