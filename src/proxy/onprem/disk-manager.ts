import { InputError } from '../../errors.js';
import type { BlockDevice } from '../block-device.js';
import { LinkError, E_LEASE_HELD, E_UNKNOWN_DISK } from '../link/errors.js';
import type { AttachMode } from '../link/messages.js';

export interface ManagedDisk {
  id: string;
  device: BlockDevice;
  /** The image the disk was cloned from; VMs sharing an image share profiles (FIG 22). */
  image: string;
}

interface Lease {
  owner: string;
  sinceUs: number;
}

/**
 * The disk manager of the on-prem proxy (§2.4, "locking them in a mutually
 * exclusive manner"): a disk is served only under a lease, and a disk has at
 * most one writer. The same owner may take its lease again (a reconnecting
 * cloud proxy); any other would-be writer is refused with E_LEASE_HELD.
 * Read-only attachments (clones reading a shared image) need no lease.
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

  /** Take the disk for `owner`; rw needs the exclusive lease. */
  acquire(id: string, owner: string, mode: AttachMode, nowUs: number): ManagedDisk {
    const disk = this.get(id);
    if (mode === 'ro') return disk;
    const held = this.leases.get(id);
    if (held && held.owner !== owner) {
      throw new LinkError(E_LEASE_HELD, `disk "${id}" is leased to ${held.owner} for writing; a second writer (${owner}) is refused`, {
        details: { disk: id, holder: held.owner, sinceUs: held.sinceUs },
      });
    }
    if (!held) this.leases.set(id, { owner, sinceUs: nowUs });
    return disk;
  }

  /** Stop serving a disk. Refused with E_LEASE_HELD while a writer holds its lease. */
  remove(id: string): void {
    const held = this.leases.get(id);
    if (held) {
      throw new LinkError(E_LEASE_HELD, `disk "${id}" is leased to ${held.owner} for writing; it cannot stop being served until that peer detaches`, {
        details: { disk: id, holder: held.owner, sinceUs: held.sinceUs },
      });
    }
    this.disks.delete(id);
  }

  release(id: string, owner: string): boolean {
    const held = this.leases.get(id);
    if (!held || held.owner !== owner) return false;
    this.leases.delete(id);
    return true;
  }

  holder(id: string): string | undefined {
    return this.leases.get(id)?.owner;
  }
}
