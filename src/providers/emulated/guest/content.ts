/**
 * Generated virtual-disk content (docs/guest.md). A disk's bytes are a pure
 * function of (seed, image id, block index): nothing is stored until the
 * guest writes, so a 100 GiB disk costs a few kilobytes. The layout is cut
 * into 64 KiB regions, each of one kind (whether a region is zero is decided
 * per 1 MiB span, so empty space forms large holes; the other kinds vary per
 * region inside the non-zero spans):
 *
 * - `zero`: all zeros; reported as a hole by `extents`.
 * - `random`: incompressible bytes from xorshift32 keyed by the block.
 * - `repeated`: runs of blocks from a small pool shared by every disk with
 *   the same pool id, so identical 4 KiB blocks appear at many offsets and
 *   across disks (what dedup and FIG 22 hotspots feed on).
 * - `text`: lines of words from a small word list generated from the seed.
 *
 * With a file layout installed (`withFiles`, what GuestImage does), blocks
 * inside files follow their file's content class instead (file-content.ts),
 * the tail of a file's last block is zeros, and the space outside files takes
 * the mix that keeps the whole disk at the image's mix.
 *
 * Every disk cloned from one image shares the image's base content; its own
 * writes go to a sparse overlay.
 *
 * This file holds the layout's units. The pieces: content-mix.ts (kinds and
 * mixes), fill.ts (the byte generators), image-content.ts (ImageContent: an
 * image's layout and base bytes), generated-disk.ts (GeneratedDisk: a disk
 * over them with a sparse overlay for guest writes, and countKinds).
 */

export const CONTENT_BLOCK_BYTES = 4096;
export const REGION_BLOCKS = 16;
export const REGION_BYTES = CONTENT_BLOCK_BYTES * REGION_BLOCKS;
/** Zero-or-not is decided per 1 MiB span, so free space shows as large holes (as on a real disk). */
export const SPAN_REGIONS = 16;
export const SPAN_BYTES = REGION_BYTES * SPAN_REGIONS;

export const DEFAULT_POOL_BLOCKS = 256;
