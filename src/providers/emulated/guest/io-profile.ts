import { invariant } from '../../../errors.js';
import type { BlockDevice } from '../../../proxy/block-device.js';
import { duration, fail, join, known, num, obj, size, str } from '../../../util/check.js';
import { US_PER_S } from '../../../util/units.js';
import { createRng } from '../../../world/rng.js';
import type { Rng, World } from '../../../world/types.js';
import { CONTENT_BLOCK_BYTES } from './content.js';
import type { DiskRange } from './file-view.js';

/**
 * Application I/O profiles (docs/guest.md): seeded generators of timed
 * BlockDevice operations that a workload replays against any BlockDevice on
 * the World's clock. Arrivals are Poisson at the profile's rates times the
 * workload's current intensity (its load curve).
 *
 * - `database`: commits (a log append of 4–64 KiB, then a flush) into a log
 *   area written sequentially, random 8 KiB reads over the data area with an
 *   80/20 hot set, and a checkpoint burst of sorted random writes every minute.
 * - `random-read`: uniform random reads of one size.
 * - `web`: small random reads (4–16 KiB) with a 90/10 hot set, and an access
 *   log appended without flushes.
 * - `batch`: mostly compute; between compute phases it reads the next chunk
 *   of its input sequentially in 1 MiB reads and now and then writes output.
 */

export type IoProfileKind = 'database' | 'random-read' | 'web' | 'batch';
export const IO_PROFILE_KINDS: readonly IoProfileKind[] = ['database', 'random-read', 'web', 'batch'];

export interface IoOp {
  /** Microseconds since the profile started. */
  atUs: number;
  /** `commit`: write, then flush before it counts as done. */
  op: 'read' | 'write' | 'commit';
  offset: number;
  length: number;
}

export interface IoProfileSpec {
  kind: IoProfileKind;
  /** Reads per second at intensity 1 (database, random-read, web). */
  readIops: number;
  /** Commits (database) or log appends (web) per second at intensity 1. */
  writeIops: number;
  /** Read size for random-read; the base size for the others. */
  readBytes: number;
  /** database: checkpoint interval and writes per checkpoint. */
  checkpointEveryUs: number;
  checkpointWrites: number;
  /** batch: mean compute time between I/O phases, and input read per phase. */
  computeUs: number;
  chunkBytes: number;
}

export const IO_PROFILE_DEFAULTS: Record<IoProfileKind, IoProfileSpec> = {
  database: { kind: 'database', readIops: 400, writeIops: 200, readBytes: 8192, checkpointEveryUs: 60 * US_PER_S, checkpointWrites: 500, computeUs: 0, chunkBytes: 0 },
  'random-read': { kind: 'random-read', readIops: 1000, writeIops: 0, readBytes: 4096, checkpointEveryUs: 0, checkpointWrites: 0, computeUs: 0, chunkBytes: 0 },
  web: { kind: 'web', readIops: 300, writeIops: 20, readBytes: 4096, checkpointEveryUs: 0, checkpointWrites: 0, computeUs: 0, chunkBytes: 0 },
  batch: { kind: 'batch', readIops: 0, writeIops: 0, readBytes: 1024 * 1024, checkpointEveryUs: 0, checkpointWrites: 0, computeUs: 5 * US_PER_S, chunkBytes: 4 * 1024 * 1024 },
};

export interface IoProfileOptions {
  seed: number;
  /** Names the stream (e.g. the VM id): two VMs with one profile issue different I/O. */
  label: string;
  /** Where the application's data lives (default: the second half of the disk). */
  area: DiskRange;
  /** Where the database log / web access log goes (default: the first 1/16 of `area`). */
  logArea?: DiskRange;
  /** The workload's load curve: a rate multiplier at a time since start (default 1). */
  intensity?: (tUs: number) => number;
}

/** A source of ops in time order; merged by `ioOps`. */
interface Stream {
  nextUs: number;
  emit(atUs: number): IoOp[];
}

const align = (x: number): number => Math.floor(x / CONTENT_BLOCK_BYTES) * CONTENT_BLOCK_BYTES;

/** Arrivals at `ratePerS` × intensity; a zero rate never fires (nextUs is Infinity). */
function poissonStream(rng: Rng, ratePerS: number, intensity: (t: number) => number, emit: (atUs: number) => IoOp[]): Stream {
  if (ratePerS <= 0) return { nextUs: Infinity, emit: () => [] };
  const meanUs = US_PER_S / ratePerS;
  const gap = (t: number): number => {
    const k = intensity(t);
    // A paused workload (intensity 0) looks again a second later.
    return k > 0 ? Math.max(1, Math.round(rng.exp(meanUs / k))) : US_PER_S;
  };
  const s: Stream = {
    nextUs: gap(0),
    emit: (atUs) => {
      const k = intensity(atUs);
      const ops = k > 0 ? emit(atUs) : [];
      s.nextUs = atUs + gap(atUs);
      return ops;
    },
  };
  return s;
}

/** A random aligned offset for `length` bytes in `area`, `hotShare` of the time inside its first `hotFraction`. */
function pickOffset(rng: Rng, area: DiskRange, length: number, hotFraction = 1, hotShare = 0): number {
  const span = Math.max(CONTENT_BLOCK_BYTES, area.length - length);
  const within = hotShare > 0 && rng.next() < hotShare ? rng.next() * span * hotFraction : rng.next() * span;
  return area.offset + align(within);
}

/**
 * The profile's operations in time order, forever (stop when you have enough).
 * A pure function of (seed, label, spec, areas, intensity).
 */
export function* ioOps(spec: IoProfileSpec, options: IoProfileOptions): Generator<IoOp> {
  const rng = createRng(options.seed, `io/${spec.kind}/${options.label}`);
  const intensity = options.intensity ?? (() => 1);
  const area = options.area;
  invariant(area.length >= 2 * CONTENT_BLOCK_BYTES, 'an I/O profile needs an area of at least two blocks');
  const logArea = options.logArea ?? { offset: area.offset, length: Math.max(CONTENT_BLOCK_BYTES, align(area.length / 16)) };
  const dataArea = options.logArea ? area : { offset: logArea.offset + logArea.length, length: area.length - logArea.length };
  let logPos = 0;
  const append = (length: number): number => {
    if (logPos + length > logArea.length) logPos = 0;
    const at = logArea.offset + logPos;
    logPos += length;
    return at;
  };
  const clampLen = (n: number, a: DiskRange): number => Math.min(n, align(a.length));
  const streams: Stream[] = [];
  switch (spec.kind) {
    case 'database': {
      streams.push(poissonStream(rng, spec.writeIops, intensity, (atUs) => {
        const length = clampLen(Math.min(64 * 1024, Math.max(4096, align(Math.exp(rng.normal(Math.log(8192), 0.7))))), logArea);
        return [{ atUs, op: 'commit', offset: append(length), length }];
      }));
      streams.push(poissonStream(rng, spec.readIops, intensity, (atUs) => {
        const length = clampLen(spec.readBytes, dataArea);
        return [{ atUs, op: 'read', offset: pickOffset(rng, dataArea, length, 0.2, 0.8), length }];
      }));
      if (spec.checkpointWrites > 0 && spec.checkpointEveryUs > 0) {
        const s: Stream = {
          nextUs: spec.checkpointEveryUs,
          emit: (atUs) => {
            s.nextUs = atUs + spec.checkpointEveryUs;
            const n = Math.round(spec.checkpointWrites * intensity(atUs));
            const length = clampLen(spec.readBytes, dataArea);
            const offsets = Array.from({ length: n }, () => pickOffset(rng, dataArea, length, 0.2, 0.8)).sort((a, b) => a - b);
            return offsets.map((offset) => ({ atUs, op: 'write' as const, offset, length }));
          },
        };
        streams.push(s);
      }
      break;
    }
    case 'random-read':
      streams.push(poissonStream(rng, spec.readIops, intensity, (atUs) => {
        const length = clampLen(spec.readBytes, area);
        return [{ atUs, op: 'read', offset: pickOffset(rng, area, length), length }];
      }));
      break;
    case 'web':
      streams.push(poissonStream(rng, spec.readIops, intensity, (atUs) => {
        const length = clampLen(spec.readBytes * rng.pick([1, 1, 2, 4]), dataArea);
        return [{ atUs, op: 'read', offset: pickOffset(rng, dataArea, length, 0.1, 0.9), length }];
      }));
      if (spec.writeIops > 0) {
        streams.push(poissonStream(rng, spec.writeIops, intensity, (atUs) => {
          const length = clampLen(4096, logArea);
          return [{ atUs, op: 'write', offset: append(length), length }];
        }));
      }
      break;
    case 'batch': {
      const outputStart = align(dataArea.length * 0.75);
      let inPos = 0;
      let outPos = 0;
      let phase = 0;
      const s: Stream = {
        nextUs: 0,
        emit: (atUs) => {
          const ops: IoOp[] = [];
          const readLen = clampLen(spec.readBytes, dataArea);
          for (let done = 0; done < spec.chunkBytes; done += readLen) {
            if (inPos + readLen > outputStart) inPos = 0;
            ops.push({ atUs, op: 'read', offset: dataArea.offset + inPos, length: readLen });
            inPos += readLen;
          }
          // Every fourth phase writes a result the size of one read.
          if (++phase % 4 === 0) {
            if (outputStart + outPos + readLen > dataArea.length) outPos = 0;
            ops.push({ atUs, op: 'write', offset: dataArea.offset + outputStart + outPos, length: readLen });
            outPos += readLen;
          }
          const k = intensity(atUs);
          s.nextUs = atUs + (k > 0 ? Math.max(1, Math.round(rng.exp(spec.computeUs / k))) : US_PER_S);
          return ops;
        },
      };
      streams.push(s);
      break;
    }
  }
  const live = streams.filter((st) => Number.isFinite(st.nextUs));
  if (live.length === 0) return;
  for (;;) {
    let best = live[0]!;
    for (const st of live) if (st.nextUs < best.nextUs) best = st;
    yield* best.emit(best.nextUs);
  }
}

export interface ReplayStats {
  reads: number;
  writes: number;
  commits: number;
  readBytes: number;
  writeBytes: number;
  /** Ops whose issue waited because `maxInFlight` were outstanding. */
  delayed: number;
  latencySumUs: number;
  latencyMaxUs: number;
  /** Counts per power-of-two latency bucket: index i holds latencies in [2^(i-1), 2^i) µs. */
  latencyLog2: number[];
  errors: number;
}

export function latencyPercentileUs(stats: ReplayStats, p: number): number {
  const total = stats.latencyLog2.reduce((a, b) => a + b, 0);
  let seen = 0;
  for (let i = 0; i < stats.latencyLog2.length; i++) {
    seen += stats.latencyLog2[i]!;
    if (seen >= p * total) return 2 ** i;
  }
  return 0;
}

/**
 * Issue `ops` against `device` at their times (open loop, relative to the
 * call) until `durationUs` has passed, with at most `maxInFlight` outstanding.
 * Resolves when every issued op has completed.
 */
export async function replayIo(world: World, device: BlockDevice, ops: Iterable<IoOp>, options: { durationUs: number; maxInFlight?: number }): Promise<ReplayStats> {
  const { durationUs, maxInFlight = 32 } = options;
  const stats: ReplayStats = { reads: 0, writes: 0, commits: 0, readBytes: 0, writeBytes: 0, delayed: 0, latencySumUs: 0, latencyMaxUs: 0, latencyLog2: [], errors: 0 };
  const start = world.clock.nowUs();
  const payload = Buffer.alloc(1024 * 1024);
  // Writes carry bytes that differ from run to run of the guest but not between runs of a seed.
  const fill = createRng(world.seed, 'io/payload');
  for (let i = 0; i < payload.length; i += 4) payload.writeUInt32LE(fill.u32(), i);
  let inFlight = 0;
  const waiters: Array<() => void> = [];
  const pending = new Set<Promise<void>>();
  const run = async (op: IoOp): Promise<void> => {
    const t0 = world.clock.nowUs();
    try {
      if (op.op === 'read') {
        await device.read(op.offset, op.length);
        stats.reads++;
        stats.readBytes += op.length;
      } else {
        const data = op.length <= payload.length ? payload.subarray(0, op.length) : Buffer.alloc(op.length, 0x5a);
        await device.write(op.offset, data);
        if (op.op === 'commit') {
          await device.flush();
          stats.commits++;
        } else {
          stats.writes++;
        }
        stats.writeBytes += op.length;
      }
      const lat = world.clock.nowUs() - t0;
      stats.latencySumUs += lat;
      stats.latencyMaxUs = Math.max(stats.latencyMaxUs, lat);
      const bucket = lat <= 0 ? 0 : Math.ceil(Math.log2(lat + 1));
      while (stats.latencyLog2.length <= bucket) stats.latencyLog2.push(0);
      stats.latencyLog2[bucket]!++;
    } catch {
      stats.errors++;
    } finally {
      inFlight--;
      waiters.shift()?.();
    }
  };
  for (const op of ops) {
    if (op.atUs >= durationUs) break;
    const due = start + op.atUs;
    const now = world.clock.nowUs();
    if (due > now) await world.clock.sleepUs(due - now);
    if (inFlight >= maxInFlight) {
      stats.delayed++;
      await new Promise<void>((resolve) => waiters.push(resolve));
    }
    inFlight++;
    const p = run(op);
    pending.add(p);
    void p.then(() => pending.delete(p));
  }
  await Promise.all(pending);
  return stats;
}

const SPEC_KEYS = ['kind', 'readIops', 'writeIops', 'readSize', 'checkpointEvery', 'checkpointWrites', 'compute', 'chunk'] as const;

/** Read an `io:` profile, e.g. `{ kind: database, readIops: 800, writeIops: 300 }`; missing fields take the kind's defaults. */
export function parseIoProfile(raw: unknown, path = 'io'): IoProfileSpec {
  if (typeof raw === 'string') {
    if (!(IO_PROFILE_KINDS as readonly string[]).includes(raw)) fail(path, `one of ${IO_PROFILE_KINDS.join(', ')} or a mapping { kind, readIops, writeIops, … }`, raw);
    return { ...IO_PROFILE_DEFAULTS[raw as IoProfileKind] };
  }
  const o = obj(raw, path);
  known(o, path, SPEC_KEYS);
  const kind = str(o, 'kind', path, { allowed: IO_PROFILE_KINDS }) as IoProfileKind;
  const d = IO_PROFILE_DEFAULTS[kind];
  const spec: IoProfileSpec = {
    kind,
    readIops: num(o, 'readIops', path, { default: d.readIops, min: 0, max: 1e7 }),
    writeIops: num(o, 'writeIops', path, { default: d.writeIops, min: 0, max: 1e7 }),
    readBytes: size(o, 'readSize', path, d.readBytes),
    checkpointEveryUs: duration(o, 'checkpointEvery', path, d.checkpointEveryUs),
    checkpointWrites: num(o, 'checkpointWrites', path, { default: d.checkpointWrites, min: 0, max: 1e6, integer: true }),
    computeUs: duration(o, 'compute', path, d.computeUs),
    chunkBytes: size(o, 'chunk', path, d.chunkBytes),
  };
  if (spec.readBytes < 512 || spec.readBytes > 16 * 1024 * 1024 || spec.readBytes % 512 !== 0) fail(join(path, 'readSize'), 'a multiple of 512 bytes up to 16MiB', o.readSize);
  if (kind !== 'batch' && spec.readIops === 0 && spec.writeIops === 0) fail(join(path, 'readIops'), 'a positive rate (readIops or writeIops)', o.readIops);
  if (kind === 'batch' && spec.computeUs <= 0) fail(join(path, 'compute'), 'a positive duration', o.compute);
  return spec;
}
