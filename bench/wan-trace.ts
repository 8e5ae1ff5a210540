/**
 * The live WAN benchmark's image and trace (bench/nbd.ts), in a module of its
 * own so the probe (bench/wan-probe.ts) and the virtual-time model of the same
 * run (bench/proxy-wan.bench.ts, "live trace") use exactly the same bytes and
 * reads.
 */
import { closeSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { BlockError, E_READONLY, checkRange, type BlockDevice, type Extent } from '../src/proxy/block-device.js';
import { createRng } from '../src/world/rng.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const KiB = 1024;

export interface TraceRead { offset: number; length: number }

/** Where the live bench's image holds data (the trace reads only here). */
export const LIVE_DATA_BYTES = 2 * GiB;

/**
 * A boot-like read trace: runs of sequential 4-64 KiB reads (files being
 * read) separated by seeks, over the first part of a disk, with a few re-reads.
 */
export function bootTrace(reads: number, diskBytes: number, seed = 22): TraceRead[] {
  const rng = createRng(seed, 'bench/boot-trace');
  const out: TraceRead[] = [];
  const span = Math.min(diskBytes, LIVE_DATA_BYTES) - 64 * KiB;
  let pos = 0;
  while (out.length < reads) {
    if (out.length > 0 && rng.chance(0.05)) {
      out.push(out[rng.int(0, out.length)]!);
      continue;
    }
    pos = Math.floor(rng.int(0, span) / 4096) * 4096;
    const run = rng.int(1, 24);
    for (let i = 0; i < run && out.length < reads; i++) {
      const length = 4096 * rng.int(1, 17);
      if (pos + length > span) break;
      out.push({ offset: pos, length });
      pos += length;
    }
  }
  return out;
}

export function uniqueBytes(trace: TraceRead[], blockBytes = 4096): number {
  const blocks = new Set<number>();
  for (const r of trace) for (let b = Math.floor(r.offset / blockBytes); b * blockBytes < r.offset + r.length; b++) blocks.add(b);
  return blocks.size * blockBytes;
}

/** The text block the live image repeats every 8 KiB (so it dedups to one block). */
export function liveTextBlock(): Buffer {
  return Buffer.from('#!/bin/sh\n# boot script line, libraries and config text compress like real system files\n'.repeat(64)).subarray(0, 4096);
}

/**
 * Data over the first 2 GiB (where the trace reads), alternating random and
 * text-like 4 KiB blocks so link compression sees what a system disk offers;
 * the rest stays sparse.
 */
export function makeImage(path: string, bytes: number): void {
  const fd = openSync(path, 'w');
  ftruncateSync(fd, bytes);
  const block = Buffer.alloc(16 * MiB);
  const text = liveTextBlock();
  for (let at = 0; at < Math.min(bytes, LIVE_DATA_BYTES); at += block.length) {
    randomFillSync(block);
    for (let b = 0; b < block.length; b += 8192) text.copy(block, b);
    writeSync(fd, block, 0, block.length, at);
  }
  closeSync(fd);
}

/**
 * The live image's content as a BlockDevice for the virtual-time model of
 * the live run: the same layout (text block at even 4 KiB blocks, random at
 * odd ones, zeros past 2 GiB), with seeded instead of crypto random bytes.
 */
export class LiveImageDevice implements BlockDevice {
  readonly name = 'live-image-model';
  private readonly text = liveTextBlock();
  constructor(private readonly sizeBytes: number) {}
  size(): number { return this.sizeBytes; }
  async read(offset: number, length: number): Promise<Buffer> {
    checkRange(this, offset, length);
    const out = Buffer.alloc(length);
    const block = Buffer.alloc(4096);
    for (let b = Math.floor(offset / 4096); b * 4096 < offset + length; b++) {
      const start = b * 4096;
      if (start >= LIVE_DATA_BYTES) break;
      if (b % 2 === 0) this.text.copy(block);
      else {
        let x = (b * 2654435761) >>> 0 || 1;
        for (let i = 0; i < 4096; i += 4) {
          x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
          block.writeUInt32LE(x >>> 0, i);
        }
      }
      const from = Math.max(offset, start);
      const to = Math.min(offset + length, start + 4096);
      block.copy(out, from - offset, from - start, to - start);
    }
    return out;
  }
  async write(): Promise<void> { throw new BlockError(E_READONLY, `${this.name}: read-only`); }
  async flush(): Promise<void> {}
  async trim(): Promise<void> { throw new BlockError(E_READONLY, `${this.name}: read-only`); }
  async writeZeroes(): Promise<void> { throw new BlockError(E_READONLY, `${this.name}: read-only`); }
  async prefetch(): Promise<void> {}
  async extents(offset: number, length: number): Promise<Extent[]> {
    checkRange(this, offset, length);
    const split = Math.min(offset + length, Math.max(offset, LIVE_DATA_BYTES));
    const out: Extent[] = [];
    if (split > offset) out.push({ offset, length: split - offset, type: 'data' });
    if (offset + length > split) out.push({ offset: split, length: offset + length - split, type: 'hole' });
    return out;
  }
  async close(): Promise<void> {}
}

/** One cluster of the spec trace: a byte range of the disk the boot reads in. */
export interface TraceCluster { offset: number; length: number }

export interface SpecTraceOptions {
  reads?: number;
  /** Regions the boot reads in (kernel, libraries, config, ...). Default 4. */
  clusters?: number;
  /** Width of each region. Default 32 MiB. */
  clusterBytes?: number;
  seed?: number;
}

/**
 * The trace the WAN benchmark defines: ~2,000 reads of 4-64 KiB,
 * clustered in a few regions of the disk, one outstanding at a time. The
 * regions sit at seeded 1 MiB-aligned offsets wherever they fall, so the
 * disk's zero spans inside them are read like any other (a real boot reads
 * sparse metadata areas too). Inside a region reads come in sequential runs
 * of 1-23 reads (a file being read) from a seeded start, with 5% re-reads of
 * earlier reads: the run structure of `bootTrace`, confined to the regions.
 */
export function specBootTrace(diskBytes: number, options: SpecTraceOptions = {}): { reads: TraceRead[]; clusters: TraceCluster[] } {
  const reads = options.reads ?? 2000;
  const nClusters = options.clusters ?? 4;
  const clusterBytes = options.clusterBytes ?? 32 * MiB;
  const rng = createRng(options.seed ?? 33, 'bench/spec-trace');
  const slots = Math.floor(diskBytes / clusterBytes);
  if (nClusters < 1 || slots < nClusters) throw new Error(`spec trace: ${nClusters} clusters of ${clusterBytes} bytes do not fit a ${diskBytes}-byte disk`);
  // Distinct cluster-sized slots of the disk, so regions never overlap.
  const chosen = new Set<number>();
  while (chosen.size < nClusters) chosen.add(rng.int(0, slots));
  const clusters = [...chosen].sort((a, b) => a - b).map((slot) => ({ offset: slot * clusterBytes, length: clusterBytes }));
  const out: TraceRead[] = [];
  while (out.length < reads) {
    if (out.length > 0 && rng.chance(0.05)) {
      out.push(out[rng.int(0, out.length)]!);
      continue;
    }
    const c = clusters[rng.int(0, clusters.length)]!;
    let pos = c.offset + Math.floor(rng.int(0, c.length - 64 * KiB) / 4096) * 4096;
    const run = rng.int(1, 24);
    for (let i = 0; i < run && out.length < reads; i++) {
      const length = 4096 * rng.int(1, 17);
      if (pos + length > c.offset + c.length) break;
      out.push({ offset: pos, length });
      pos += length;
    }
  }
  return { reads: out, clusters };
}
