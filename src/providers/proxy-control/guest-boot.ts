import type { GuestImage } from '../emulated/guest/image.js';
import type { FileExtents } from '../../proxy/onprem/prioritizer.js';

export type BootPhase = 'staging' | 'target';

export interface PhasedRead {
  offset: number;
  length: number;
  phase: BootPhase;
}

/**
 * What the proxies know of a guest's boot, per image: the files the boot
 * reads (FIG 21, from a static analysis of the guest's file view) and the
 * reads one VM's boot makes, split by phase. In the staging phase (FIG 9)
 * the staging image loads the target's boot loader, kernel and initrd
 * through the storage target; the rest of the boot (FIG 10/11) is the target
 * OS starting from its own disk.
 */
export interface GuestBootModel {
  bootFiles(imageId: string): FileExtents[];
  bootReads(vmId: string, imageId: string): PhasedRead[];
}

const STAGING_ROLES: ReadonlySet<string> = new Set(['loader', 'kernel', 'initrd']);

/** The boot model of generated guest images (src/providers/emulated/guest), keyed by image id. Unknown images have no boot reads. */
export function bootModelFromImages(images: ReadonlyMap<string, GuestImage>): GuestBootModel {
  return {
    bootFiles(imageId) {
      const image = images.get(imageId);
      if (!image) return [];
      return image.boot.files.map((f) => ({ path: f.path, ranges: f.extents.map((e) => ({ offset: e.offset, length: e.length })), firstAccess: f.bootPhase }));
    },
    bootReads(vmId, imageId) {
      const image = images.get(imageId);
      if (!image) return [];
      const profile = image.bootFor(vmId);
      return profile.reads.map((r) => ({
        offset: r.offset, length: r.length,
        phase: STAGING_ROLES.has(profile.files[r.file]?.role ?? '') ? 'staging' : 'target',
      }));
    },
  };
}
