import { invariant } from '../../../errors.js';
import type { BlockDevice } from '../../../proxy/block-device.js';
import { createRng } from '../../../world/rng.js';
import type { Rng, World } from '../../../world/types.js';
import { CONTENT_BLOCK_BYTES } from './content.js';
import type { DiskRange, FileRole, FileView, GuestFile, GuestOs } from './file-view.js';

/**
 * A boot profile (docs/guest.md): the ordered files a guest reads while it
 * boots, and the block reads that makes. It is exported two ways:
 * - `files`: paths in first-read order with their extents, the input of
 *   FIG 21's static analysis (prioritize blocks by file boot order);
 * - `reads`: the block-level trace a booting guest issues, one read at a time,
 *   which benchmarks replay against any BlockDevice.
 */

export interface BootProfileSpec {
  /** Files read at boot (fewer when the tree has fewer boot files). */
  files: number;
  /** Target number of block reads; the result is within a few percent (reads split at extent boundaries). */
  reads: number;
  minReadBytes: number;
  maxReadBytes: number;
}

export const DEFAULT_BOOT_PROFILE: BootProfileSpec = { files: 150, reads: 2000, minReadBytes: 4096, maxReadBytes: 65536 };

export const BOOT_PROFILE_PRESETS: Record<string, BootProfileSpec> = {
  default: DEFAULT_BOOT_PROFILE,
  'linux-systemd': DEFAULT_BOOT_PROFILE,
  'windows-server': { files: 200, reads: 3000, minReadBytes: 4096, maxReadBytes: 65536 },
  minimal: { files: 60, reads: 600, minReadBytes: 4096, maxReadBytes: 65536 },
  heavy: { files: 300, reads: 5000, minReadBytes: 4096, maxReadBytes: 131072 },
};

export interface BootFile {
  path: string;
  role: FileRole;
  bootPhase: number;
  extents: DiskRange[];
  /** Distinct bytes the boot reads from this file. */
  bytesRead: number;
}

export interface BootRead {
  offset: number;
  length: number;
  /** Index into `files`. */
  file: number;
}

export interface BootProfile {
  os: GuestOs;
  files: BootFile[];
  reads: BootRead[];
  /** Sum of read lengths (bytes a cold cache must fetch, counting repeats). */
  bytes: number;
  /** Distinct bytes touched. */
  uniqueBytes: number;
}

/** Read sizes a booting guest issues: mostly small, some readahead-sized. */
function readSize(rng: Rng, spec: BootProfileSpec): number {
  const u = rng.next();
  const blocks = (b: number): number => Math.max(spec.minReadBytes, Math.min(spec.maxReadBytes, b * CONTENT_BLOCK_BYTES));
  if (u < 0.5) return blocks(1);
  if (u < 0.75) return blocks(rng.pick([2, 3, 4]));
  if (u < 0.9) return blocks(8);
  return spec.maxReadBytes;
}

const SEQUENTIAL_ROLES: ReadonlySet<FileRole> = new Set(['loader', 'kernel', 'initrd']);

/** Build the profile for `view` (the image's tree); a pure function of (seed, image, spec). */
export function buildBootProfile(view: FileView, spec: BootProfileSpec, seed: number, imageId: string): BootProfile {
  invariant(spec.files > 0 && spec.reads > 0, 'a boot profile needs files > 0 and reads > 0');
  const rng = createRng(seed, `boot-profile/${imageId}`);
  const candidates = view.files.filter((f) => f.bootPhase !== undefined);
  const essential = candidates.filter((f) => f.bootPhase! <= 1);
  let rest = candidates.filter((f) => f.bootPhase! > 1);
  const want = Math.max(0, spec.files - essential.length);
  if (rest.length > want) {
    const keep = new Set(rng.shuffle([...rest]).slice(0, want));
    rest = rest.filter((f) => keep.has(f));
  }
  // Within a phase, services start in an order unrelated to where their files sit on disk.
  const byPhase = new Map<number, GuestFile[]>();
  for (const f of [...essential, ...rest]) byPhase.set(f.bootPhase!, [...(byPhase.get(f.bootPhase!) ?? []), f]);
  const ordered = [...byPhase.keys()].sort((a, b) => a - b).flatMap((phase) => {
    const group = byPhase.get(phase)!;
    return phase <= 1 ? group : rng.shuffle(group);
  });

  // Share the reads out by sqrt(size): big files get more reads, but a boot touches only part of them.
  const capacity = (f: GuestFile): number => Math.ceil(f.sizeBytes / CONTENT_BLOCK_BYTES);
  const weights = ordered.map((f) => Math.sqrt(f.sizeBytes));
  const totalWeight = weights.reduce((a, b) => a + b, 0);
  const counts = ordered.map((f, i) => Math.min(capacity(f), Math.max(1, Math.floor((spec.reads * weights[i]!) / totalWeight))));
  let left = spec.reads - counts.reduce((a, b) => a + b, 0);
  const byWeight = ordered.map((_, i) => i).sort((a, b) => weights[b]! - weights[a]!);
  for (let pass = 0; left > 0 && pass < 64; pass++) {
    for (const i of byWeight) {
      if (left <= 0) break;
      if (counts[i]! < capacity(ordered[i]!)) { counts[i]!++; left--; }
    }
  }

  const files: BootFile[] = [];
  const reads: BootRead[] = [];
  let bytes = 0;
  let uniqueBytes = 0;
  ordered.forEach((f, fi) => {
    const allocated = f.extents.reduce((s, e) => s + e.length, 0);
    const touched = new Set<number>();
    const sequential = SEQUENTIAL_ROLES.has(f.role);
    let pos = 0;
    for (let k = 0; k < counts[fi]!; k++) {
      if (pos >= allocated || (!sequential && k > 0 && rng.next() < 0.4)) {
        pos = rng.int(0, Math.ceil(allocated / CONTENT_BLOCK_BYTES)) * CONTENT_BLOCK_BYTES;
      }
      const length = Math.min(sequential ? spec.maxReadBytes : readSize(rng, spec), allocated - pos);
      for (const r of toDiskRanges(f.extents, pos, length)) reads.push({ ...r, file: fi });
      for (let b = pos; b < pos + length; b += CONTENT_BLOCK_BYTES) touched.add(b);
      bytes += length;
      pos += length;
    }
    const bytesRead = Math.min(f.sizeBytes, touched.size * CONTENT_BLOCK_BYTES);
    uniqueBytes += touched.size * CONTENT_BLOCK_BYTES;
    files.push({ path: f.path, role: f.role, bootPhase: f.bootPhase!, extents: f.extents, bytesRead });
  });
  return { os: view.os, files, reads, bytes, uniqueBytes };
}

/**
 * One VM's boot of a shared image: the image's profile with `fraction` of its
 * reads swapped for reads of files the image's boot does not touch (its own
 * services, logs, local state), in the same order. Blocks every clone reads
 * stay common, so FIG 22 sees them as hot; the swapped ones are this VM's own.
 */
export function varyBootProfile(profile: BootProfile, view: FileView, seed: number, vmId: string, fraction = 0.1): BootProfile {
  invariant(fraction >= 0 && fraction <= 1, 'fraction must be in [0, 1]');
  const rng = createRng(seed, `boot-profile/vm/${vmId}`);
  const inBoot = new Set(profile.files.map((f) => f.path));
  const others = view.files.filter((f) => !inBoot.has(f.path) && f.role !== 'swap' && f.role !== 'data');
  if (others.length === 0 || fraction === 0) return profile;
  const files = [...profile.files];
  const extra = new Map<string, number>();
  const reads = profile.reads.map((r) => {
    if (rng.next() >= fraction) return r;
    const f = rng.pick(others);
    let fi = extra.get(f.path);
    if (fi === undefined) {
      fi = files.length;
      extra.set(f.path, fi);
      files.push({ path: f.path, role: f.role, bootPhase: f.bootPhase ?? 6, extents: f.extents, bytesRead: 0 });
    }
    // Same length where the file allows, from a block inside it; one contiguous piece.
    const allocated = f.extents.reduce((n, e) => n + e.length, 0);
    const start = rng.int(0, Math.ceil(allocated / CONTENT_BLOCK_BYTES)) * CONTENT_BLOCK_BYTES;
    const piece = toDiskRanges(f.extents, start, Math.min(r.length, allocated - start))[0]!;
    files[fi]!.bytesRead += piece.length;
    return { offset: piece.offset, length: piece.length, file: fi };
  });
  const bytes = reads.reduce((n, r) => n + r.length, 0);
  const blocks = new Set<number>();
  for (const r of reads) for (let b = Math.floor(r.offset / CONTENT_BLOCK_BYTES); b * CONTENT_BLOCK_BYTES < r.offset + r.length; b++) blocks.add(b);
  return { os: profile.os, files, reads, bytes, uniqueBytes: blocks.size * CONTENT_BLOCK_BYTES };
}

/** Map a byte range of a file onto the disk, split where its extents break. */
export function toDiskRanges(extents: DiskRange[], fileOffset: number, length: number): DiskRange[] {
  const out: DiskRange[] = [];
  let skip = fileOffset;
  let need = length;
  for (const e of extents) {
    if (need <= 0) break;
    if (skip >= e.length) { skip -= e.length; continue; }
    const n = Math.min(e.length - skip, need);
    out.push({ offset: e.offset + skip, length: n });
    need -= n;
    skip = 0;
  }
  invariant(need === 0, () => `file range ${fileOffset}+${length} runs past the file's extents`);
  return out;
}

/** The trace as JSON lines (`{"offset":…,"length":…,"file":…}`), for tools outside the simulator. */
export function bootTraceJsonl(profile: BootProfile): string {
  return profile.reads.map((r) => `{"offset":${r.offset},"length":${r.length},"file":${r.file}}`).join('\n') + '\n';
}

export interface ReplayResult {
  reads: number;
  bytes: number;
  /** Virtual time from the first read's issue to the last read's completion. */
  elapsedUs: number;
}

/**
 * Replay reads against `device` the way a booting guest does: `depth` reads
 * outstanding (1 by default), `thinkUs` of CPU between a completion and the
 * next issue, on the World's clock.
 */
export async function replayReads(world: World, device: BlockDevice, reads: ReadonlyArray<{ offset: number; length: number }>, options: { depth?: number; thinkUs?: number } = {}): Promise<ReplayResult> {
  const { depth = 1, thinkUs = 0 } = options;
  const start = world.clock.nowUs();
  let next = 0;
  let bytes = 0;
  const worker = async (): Promise<void> => {
    while (next < reads.length) {
      const r = reads[next++]!;
      const data = await device.read(r.offset, r.length);
      bytes += data.length;
      if (thinkUs > 0) await world.clock.sleepUs(thinkUs);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, depth) }, worker));
  return { reads: reads.length, bytes, elapsedUs: world.clock.nowUs() - start };
}
