import { InputError } from '../../errors.js';
import type { BlockDevice } from '../block-device.js';
import { LinkError, E_LEASE_HELD, E_UNKNOWN_DISK } from '../link/errors.js';

export interface ManagedDisk {
  id: string;
  device: BlockDevice;
  /** The image the disk was cloned from; VMs sharing an image share profiles (FIG 22). */
  image: string;
}

interface Lease {
  /** The writer session (on-prem's grant): the identity that holds the lease. */
  epoch: number;
  /** The name the peer attached with, for messages. */
  peer: string;
  sinceUs: number;
  /** Attachments of this session on live connections. */
  connections: number;
}

/**
 * The disk manager of the on-prem proxy (§2.4, "locking them in a mutually
 * exclusive manner"): a disk is served only under a lease, and a disk has at
 * most one writer. The lease belongs to a writer session (the epoch on-prem
 * granted), not to a peer name: the same session may take it again (a
 * reconnecting cloud proxy); any other would-be writer is refused with
 * E_LEASE_HELD while the holder is attached. Read-only attachments (clones
 * reading a shared image) need no lease.
 */
export class DiskManager {
  private readonly disks = new Map<string, ManagedDisk>();
  private readonly leases = new Map<string, Lease>();

  add(disk: ManagedDisk): void {
    if (!/^[A-Za-z0-9._:/-]{1,128}$/.test(disk.id)) {
      throw new InputError('E_BAD_FIELD', `disk id "${disk.id}": use 1-128 letters, digits, . _ : / -`);
    }
    if (this.disks.has(disk.id)) throw new InputError('E_BAD_FIELD', `disk id "${disk.id}" is already registered`);
    this.disks.set(disk.id, disk);
  }

  get(id: string): ManagedDisk {
    const disk = this.disks.get(id);
    if (!disk) {
      throw new LinkError(E_UNKNOWN_DISK, `no disk "${id}" is served by this on-prem proxy; known: ${[...this.disks.keys()].join(', ') || '(none)'}`);
    }
    return disk;
  }

  list(): ManagedDisk[] {
    return [...this.disks.values()];
  }

  /**
   * Refuse a would-be writer while another session holds the lease on a live
   * connection. `epoch`: the session the writer claims (undefined: a new one).
   * A holder with no live connection does not block here: whether its session
   * may be replaced is the writer register's call (it knows if it ended).
   */
  checkWriter(id: string, peer: string, epoch: number | undefined): void {
    this.get(id);
    const held = this.leases.get(id);
    if (held && held.epoch !== epoch && held.connections > 0) {
      throw new LinkError(E_LEASE_HELD, `disk "${id}" is leased to ${held.peer} (writer session ${held.epoch}) for writing; a second writer (${peer}) is refused: `
        + 'stop the cloud proxy that holds it (SIGTERM ships its writes and ends its session), then start this one', {
        details: { disk: id, holder: held.peer, epoch: held.epoch, sinceUs: held.sinceUs },
      });
    }
  }

  /** Take the disk's write lease for an admitted writer session (one more live attachment of it). */
  acquire(id: string, epoch: number, peer: string, nowUs: number): ManagedDisk {
    this.checkWriter(id, peer, epoch);
    const held = this.leases.get(id);
    if (held && held.epoch === epoch) {
      held.connections++;
      held.peer = peer;
    } else this.leases.set(id, { epoch, peer, sinceUs: nowUs, connections: 1 });
    return this.get(id);
  }

  /** One attachment of the session went away with its connection; the lease stays for its return. */
  disconnected(id: string, epoch: number): void {
    const held = this.leases.get(id);
    if (held && held.epoch === epoch) held.connections = Math.max(0, held.connections - 1);
  }

  /** Stop serving a disk. Refused with E_LEASE_HELD while a writer holds its lease. */
  remove(id: string): void {
    const held = this.leases.get(id);
    if (held) {
      throw new LinkError(E_LEASE_HELD, `disk "${id}" is leased to ${held.peer} for writing; it cannot stop being served until that peer detaches`, {
        details: { disk: id, holder: held.peer, epoch: held.epoch, sinceUs: held.sinceUs },
      });
    }
    this.disks.delete(id);
  }

  /** The session detached: the lease is free. */
  release(id: string, epoch: number): boolean {
    const held = this.leases.get(id);
    if (!held || held.epoch !== epoch) return false;
    this.leases.delete(id);
    return true;
  }

  /** The peer name of the lease holder, if any. */
  holder(id: string): string | undefined {
    return this.leases.get(id)?.peer;
  }
}
