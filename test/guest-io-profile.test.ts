import { describe, expect, it } from 'vitest';
import { InputError } from '../src/errors.js';
import { SparseStore } from '../src/proxy/stores/sparse-store.js';
import { IO_PROFILE_DEFAULTS, ioOps, latencyPercentileUs, parseIoProfile, replayIo, type IoOp, type IoProfileOptions } from '../src/providers/emulated/guest/io-profile.js';
import { StorageTier } from '../src/providers/emulated/hypervisor/storage-tier.js';
import { SimWorld } from '../src/world/sim-world.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const S = 1_000_000;

function take(gen: Iterable<IoOp>, untilUs: number): IoOp[] {
  const out: IoOp[] = [];
  for (const op of gen) {
    if (op.atUs >= untilUs) break;
    out.push(op);
  }
  return out;
}

const opts = (over: Partial<IoProfileOptions> = {}): IoProfileOptions => ({ seed: 1, label: 'vm-1', area: { offset: GiB, length: 4 * GiB }, ...over });

describe('I/O profiles', () => {
  it('are deterministic per (seed, label) and differ between VMs', () => {
    const a = take(ioOps(IO_PROFILE_DEFAULTS.database, opts()), 10 * S);
    expect(take(ioOps(IO_PROFILE_DEFAULTS.database, opts()), 10 * S)).toEqual(a);
    expect(take(ioOps(IO_PROFILE_DEFAULTS.database, opts({ label: 'vm-2' })), 10 * S)).not.toEqual(a);
    expect(a.every((op, i) => i === 0 || op.atUs >= a[i - 1]!.atUs)).toBe(true);
  });

  it('database: commits append to the log at ~200/s, reads at ~400/s, a sorted checkpoint every minute', () => {
    const ops = take(ioOps(IO_PROFILE_DEFAULTS.database, opts()), 61 * S);
    const commits = ops.filter((o) => o.op === 'commit' && o.atUs < 60 * S);
    const reads = ops.filter((o) => o.op === 'read' && o.atUs < 60 * S);
    expect(commits.length / 60).toBeGreaterThan(180);
    expect(commits.length / 60).toBeLessThan(220);
    expect(reads.length / 60).toBeGreaterThan(370);
    expect(reads.length / 60).toBeLessThan(430);
    const logEnd = GiB + (4 * GiB) / 16;
    const misplaced = commits.filter((c, i) => {
      const prev = commits[i - 1];
      const appended = !prev || c.offset === prev.offset + prev.length || c.offset === GiB;
      return !appended || c.offset + c.length > logEnd || c.length % 4096 !== 0;
    });
    expect(misplaced).toEqual([]);
    expect(reads.every((r) => r.offset >= logEnd && r.offset + r.length <= 5 * GiB && r.length === 8192)).toBe(true);
    const checkpoint = ops.filter((o) => o.op === 'write');
    expect(checkpoint).toHaveLength(500);
    expect(checkpoint.every((w) => w.atUs === 60 * S)).toBe(true);
    expect(checkpoint.every((w, i) => i === 0 || w.offset >= checkpoint[i - 1]!.offset)).toBe(true);
  });

  it('follows the load curve: double intensity, about double the I/O; zero, none', () => {
    const base = take(ioOps(IO_PROFILE_DEFAULTS['random-read'], opts()), 20 * S).length;
    const twice = take(ioOps(IO_PROFILE_DEFAULTS['random-read'], opts({ intensity: () => 2 })), 20 * S).length;
    expect(twice / base).toBeGreaterThan(1.85);
    expect(twice / base).toBeLessThan(2.15);
    const paused = take(ioOps(IO_PROFILE_DEFAULTS['random-read'], opts({ intensity: (t) => (t < 10 * S ? 0 : 1) })), 20 * S);
    expect(paused.every((o) => o.atUs >= 10 * S)).toBe(true);
    expect(paused.length).toBeGreaterThan(base * 0.4);
  });

  it('web reads are small and hot: ~90% of them in the first tenth of the data area', () => {
    const ops = take(ioOps(IO_PROFILE_DEFAULTS.web, opts()), 60 * S).filter((o) => o.op === 'read');
    expect(ops.every((o) => o.length >= 4096 && o.length <= 16384)).toBe(true);
    const dataStart = GiB + (4 * GiB) / 16;
    const hotEnd = dataStart + ((4 * GiB - (4 * GiB) / 16) * 0.1);
    const hot = ops.filter((o) => o.offset < hotEnd).length / ops.length;
    expect(hot).toBeGreaterThan(0.88);
    expect(hot).toBeLessThan(0.95);
  });

  it('batch is mostly compute: bursts of sequential 1 MiB reads between long gaps', () => {
    const ops = take(ioOps(IO_PROFILE_DEFAULTS.batch, opts()), 600 * S);
    const bursts = new Set(ops.map((o) => o.atUs));
    expect(bursts.size).toBeGreaterThan(90);
    expect(bursts.size).toBeLessThan(150); // one per ~5 s of compute over 10 minutes
    const reads = ops.filter((o) => o.op === 'read');
    expect(reads.every((r) => r.length === MiB)).toBe(true);
    for (let i = 1; i < 4; i++) expect(reads[i]!.offset).toBe(reads[i - 1]!.offset + MiB);
    const bytesPerS = ops.reduce((s, o) => s + o.length, 0) / 600;
    expect(bytesPerS).toBeLessThan(2 * MiB); // a database at the defaults moves far more per second
    expect(ops.some((o) => o.op === 'write')).toBe(true);
  });

  it('replays against a storage tier on the World clock', async () => {
    const world = new SimWorld(3);
    const device = new StorageTier(world, new SparseStore('d', 8 * GiB), { name: 'ssd', readLatencyUs: 150, writeLatencyUs: 60, iops: 90_000, throughputBytesPerS: 550e6 });
    const expected = take(ioOps(IO_PROFILE_DEFAULTS.database, opts()), 5 * S);
    let stats: Awaited<ReturnType<typeof replayIo>> | undefined;
    void replayIo(world, device, ioOps(IO_PROFILE_DEFAULTS.database, opts()), { durationUs: 5 * S }).then((s) => (stats = s));
    await world.run();
    expect(stats!.reads).toBe(expected.filter((o) => o.op === 'read').length);
    expect(stats!.commits).toBe(expected.filter((o) => o.op === 'commit').length);
    expect(stats!.errors).toBe(0);
    // A read costs at least its latency + transfer; a commit a write plus a flush.
    expect(latencyPercentileUs(stats!, 0.5)).toBeGreaterThanOrEqual(128);
    expect(stats!.latencyMaxUs).toBeGreaterThanOrEqual(60 + 60);
    expect(device.stats.writeBytes).toBe(stats!.writeBytes);
  });
});

describe('parseIoProfile', () => {
  it('reads kinds and overrides', () => {
    expect(parseIoProfile('web')).toEqual(IO_PROFILE_DEFAULTS.web);
    expect(parseIoProfile({ kind: 'database', readIops: 800, checkpointEvery: '5m' })).toMatchObject({ readIops: 800, writeIops: 200, checkpointEveryUs: 300 * S });
    expect(parseIoProfile({ kind: 'batch', compute: '30s', chunk: '64MiB' })).toMatchObject({ computeUs: 30 * S, chunkBytes: 64 * MiB });
  });

  it('names the bad field', () => {
    const bad = (raw: unknown, re: RegExp) => {
      expect(() => parseIoProfile(raw, 'workloads.db.io')).toThrow(InputError);
      expect(() => parseIoProfile(raw, 'workloads.db.io')).toThrow(re);
    };
    bad('oltp', /workloads\.db\.io: expected one of database, random-read, web, batch/);
    bad({ kind: 'database', readIops: -1 }, /workloads\.db\.io\.readIops: expected a number >= 0/);
    bad({ kind: 'random-read', readSize: 100 }, /workloads\.db\.io\.readSize: expected a multiple of 512/);
    bad({ kind: 'web', rate: 5 }, /workloads\.db\.io\.rate: unknown field/);
  });
});
