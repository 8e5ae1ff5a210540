import type { GuestImage } from '../emulated/guest/image.js';
import type { GuestBootModel } from '../../ports/guest-boot.js';

export type { BootPhase, BootProfileFigures, GuestBootModel, PhasedRead } from '../../ports/guest-boot.js';

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
    bootProfile(vmId, imageId) {
      const image = images.get(imageId);
      if (!image) return { reads: 0, workingSetBytes: 0 };
      const profile = image.bootFor(vmId);
      return { reads: profile.reads.length, workingSetBytes: profile.uniqueBytes };
    },
  };
}
