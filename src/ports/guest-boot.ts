import type { FileExtents } from '../proxy/onprem/prioritizer.js';

/**
 * The GuestBootModel port: what the proxies and the controllers know of a
 * guest's boot, per image. The proxy control adapter orders the boot files
 * for prefetch (FIG 21) and replays a VM's boot reads through the storage
 * target; the burst controller reports the boot's size. The generated guest
 * images of the simulation implement it (bootModelFromImages); a real
 * deployment would read the same from an earlier boot's recorded trace.
 */

export type BootPhase = 'staging' | 'target';

export interface PhasedRead {
  offset: number;
  length: number;
  phase: BootPhase;
}

/** How much one VM's boot reads. */
export interface BootProfileFigures {
  reads: number;
  /** Distinct bytes the boot touches (its working set). */
  workingSetBytes: number;
}

/**
 * In the staging phase (FIG 9) the staging image loads the target's boot
 * loader, kernel and initrd through the storage target; the rest of the boot
 * (FIG 10/11) is the target OS starting from its own disk.
 */
export interface GuestBootModel {
  bootFiles(imageId: string): FileExtents[];
  bootReads(vmId: string, imageId: string): PhasedRead[];
  bootProfile(vmId: string, imageId: string): BootProfileFigures;
}
