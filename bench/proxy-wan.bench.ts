/**
 * The proxy over a WAN, in virtual time (exact): a guest boots from a disk
 * streamed through both edge proxies across 40 ms RTT / 100 Mbit/s, one
 * read outstanding at a time.
 *
 * The targets apply to the "spec trace" section: the benchmark issue 3
 * defines (a disk of the stated content mix, a ~2,000-read trace clustered in
 * a few regions of it). The "Debian-file boot" section is informational: a
 * boot of files whose content is calibrated on real Debian files, whose own
 * wire floor is above the 0.5 target. The "live trace model" rows are the
 * live NBD bench's run (bench/nbd.ts) in virtual time.
 */
import { createHash } from 'node:crypto';
import { deflateRawSync } from 'node:zlib';
import { createCloudProxy, memoryCloudStores, type CloudProxy } from '../src/proxy/cloud/index.js';
import { createOnpremProxy, type OnpremDiskOptions, type OnpremProxy } from '../src/proxy/onprem/index.js';
import type { BlockDevice } from '../src/proxy/block-device.js';
import { BOOT_READ_AHEAD } from '../src/proxy/layers/read-ahead.js';
import { isZero } from '../src/proxy/link/payload.js';
import { replayReads } from '../src/providers/emulated/guest/boot-profile.js';
import { DEFAULT_MIX } from '../src/providers/emulated/guest/content-mix.js';
import { ImageContent } from '../src/providers/emulated/guest/image-content.js';
import { GuestImage } from '../src/providers/emulated/guest/image.js';
import { WanLink, wanConfig } from '../src/providers/emulated/wan/wan-link.js';
import { SimWorld } from '../src/world/sim-world.js';
import type { BenchFigure } from './run.js';
import { LiveImageDevice, bootTrace, specBootTrace, uniqueBytes, type TraceRead } from './wan-trace.js';

export const title = 'proxy over WAN: 40 ms RTT, 100 Mbit/s, ~2,000-read boot traces (virtual time; targets apply to the spec trace)';

const KEY = '7e'.repeat(32);
const RTT_US = 40_000;
const BYTES_PER_S = 100e6 / 8;
const DISK_BYTES = 8 * 1024 ** 3;
const SEED = 11;

/**
 * Unique non-zero deduplicated bytes a trace touches on a disk, at 4 KiB
 * granularity, and what they deflate to (level 6, block by block): the
 * numerator of the lower bound and the floor of wire bytes.
 */
async function uniqueContentBytes(disk: BlockDevice, reads: ReadonlyArray<TraceRead>): Promise<{ unique: number; deflated: number }> {
  const blocks = new Set<number>();
  for (const r of reads) for (let b = Math.floor(r.offset / 4096); b * 4096 < r.offset + r.length; b++) blocks.add(b);
  const sigs = new Set<string>();
  let deflated = 0;
  for (const b of [...blocks].sort((x, y) => x - y)) {
    const data = await disk.read(b * 4096, 4096);
    if (isZero(data)) continue;
    const sig = createHash('sha256').update(data).digest('hex');
    if (sigs.has(sig)) continue;
    sigs.add(sig);
    deflated += Math.min(4096, deflateRawSync(data, { level: 6 }).length);
  }
  return { unique: sigs.size * 4096, deflated };
}

interface Run {
  elapsedUs: number;
  wireBytes: number;
  guestBytes: number;
}

interface Bed {
  world: SimWorld;
  onprem: OnpremProxy;
}

async function bed(disks: OnpremDiskOptions[]): Promise<Bed> {
  const world = new SimWorld(SEED);
  world.net.setLink('onprem:7000', new WanLink(world, wanConfig({ name: 'wan', rttUs: RTT_US, downBytesPerS: BYTES_PER_S, upBytesPerS: BYTES_PER_S })));
  const onprem = await createOnpremProxy(world, { address: 'onprem:7000', pairingKey: KEY, disks });
  return { world, onprem };
}

async function inSim<T>(world: SimWorld, body: () => Promise<T>): Promise<T> {
  let done = false;
  const p = body().finally(() => { done = true; });
  p.catch(() => undefined);
  while (!done) {
    const r = await world.run();
    if (!done && r.reason === 'idle') await Promise.race([p, Promise.resolve()]);
    if (!done && r.reason === 'idle') throw new Error('bench simulation went idle before the boot finished');
  }
  return p;
}

/**
 * The live benchmark (bench/nbd.ts WAN) in virtual time: its image and trace,
 * on-prem serving a bare image (no file layout, so no FIG 23 groups), the
 * cloud proxy configured as `serve cloud` configures it. What the proxy logic
 * alone costs on that run; the live figure minus this is the machine.
 */
async function liveModel(): Promise<{ cold: Run; warmUs: number; profiled: Run; reads: number; unique: number }> {
  const diskBytes = 4 * 1024 ** 3;
  const trace = bootTrace(2000, diskBytes);
  const { world, onprem } = await bed([{ id: 'boot', device: new LiveImageDevice(diskBytes) }]);
  void onprem;
  const open = (name: string) => createCloudProxy(world, {
    name, onprem: 'onprem:7000', pairingKey: KEY, disk: { id: 'boot' },
    stores: memoryCloudStores(name, diskBytes), cacheCapacityBytes: 4 * 1024 ** 3, blockBytes: 4096,
    // As serve-cloud.ts sets it.
    prefetch: { blockBytes: 64 * 1024, maxConcurrent: 8, yieldToForeground: false },
    readAhead: { minWindowBytes: 768 * 1024, maxWindowBytes: 768 * 1024, firstWindowBytes: 768 * 1024 },
    ...(process.env.BENCH_LIVE_PW ? { pushWindowBytes: Number(process.env.BENCH_LIVE_PW) * 1024 } : {}),
    ...(process.env.BENCH_LIVE_RA ? { readAhead: { minWindowBytes: Number(process.env.BENCH_LIVE_RA.split(',')[0]) * 1024, maxWindowBytes: Number(process.env.BENCH_LIVE_RA.split(',')[1]) * 1024, firstWindowBytes: Number(process.env.BENCH_LIVE_RA.split(',')[2] ?? 0) * 1024 } } : {}),
  });
  return inSim(world, async () => {
    const first = await open('vm-1');
    const g0 = first.guestBytes();
    const cold = await replayReads(world, first.device, trace);
    const coldRun: Run = { elapsedUs: cold.elapsedUs, wireBytes: first.wireBytes(), guestBytes: first.guestBytes() - g0 };
    const warm = await replayReads(world, first.device, trace);
    if (process.env.BENCH_DEBUG) console.log('live-model vm-1', { readPath: first.readPath.counters, remote: first.remote.stats, link: first.link.stats, prefetch: first.prefetch.stats() });
    await first.close();
    const second = await open('vm-2');
    const p = await replayReads(world, second.device, trace);
    if (process.env.BENCH_DEBUG) console.log('live-model vm-2', { readPath: second.readPath.counters, remote: second.remote.stats, link: second.link.stats, prefetch: second.prefetch.stats() });
    return { cold: coldRun, warmUs: warm.elapsedUs, profiled: { elapsedUs: p.elapsedUs, wireBytes: second.wireBytes(), guestBytes: second.guestBytes() }, reads: trace.length, unique: uniqueBytes(trace) };
  });
}

interface BootOptions {
  image: string;
  reads: ReadonlyArray<TraceRead>;
  streamProfile?: boolean;
  readAhead?: false;
}

async function boot(world: SimWorld, name: string, diskId: string, options: BootOptions): Promise<{ run: Run; proxy: CloudProxy }> {
  const proxy = await createCloudProxy(world, {
    name, onprem: 'onprem:7000', pairingKey: KEY, disk: { id: diskId, image: options.image },
    stores: memoryCloudStores(name, DISK_BYTES), cacheCapacityBytes: 512 * 1024 * 1024,
    pushWindowBytes: 1024 * 1024,
    // The read-ahead policy the spec-trace targets are met with (see docs/proxy/read-ahead.md).
    readAhead: options.readAhead === false ? false : { ...BOOT_READ_AHEAD },
    ...(options.streamProfile === false ? { streamProfile: false } : {}),
  });
  const wire0 = proxy.wireBytes();
  const guest0 = proxy.guestBytes();
  const r = await replayReads(world, proxy.device, options.reads);
  if (process.env.BENCH_DEBUG) {
    console.log(name, { elapsedUs: r.elapsedUs, readPath: proxy.readPath.counters, remote: proxy.remote.stats, link: proxy.link.stats, readAhead: proxy.readAhead?.stats(), prefetch: proxy.prefetch.stats() });
  }
  return { run: { elapsedUs: r.elapsedUs, wireBytes: proxy.wireBytes() - wire0, guestBytes: proxy.guestBytes() - guest0 }, proxy };
}

/** Cold boot, then a warm one on the same proxy (everything in its cache). */
async function coldAndWarm(disk: OnpremDiskOptions, options: BootOptions): Promise<{ cold: Run; warm: Run }> {
  const t = await bed([disk]);
  return inSim(t.world, async () => {
    const { run, proxy } = await boot(t.world, 'vm1', disk.id, options);
    const w0 = proxy.wireBytes();
    const g0 = proxy.guestBytes();
    const again = await replayReads(t.world, proxy.device, options.reads);
    return { cold: run, warm: { elapsedUs: again.elapsedUs, wireBytes: proxy.wireBytes() - w0, guestBytes: proxy.guestBytes() - g0 } };
  });
}

/**
 * FIG 22: a first VM of the image boots while on-prem records its first-read
 * order (its own profile stream off); a second VM cloned from the image then
 * attaches with a cold cache and is streamed that profile while it boots.
 */
async function profiledBoot(vm1: OnpremDiskOptions, vm2: OnpremDiskOptions, options: BootOptions): Promise<Run> {
  const t = await bed([vm1, vm2]);
  return inSim(t.world, async () => {
    const first = await boot(t.world, 'vm1', vm1.id, { ...options, streamProfile: false });
    await first.proxy.close();
    return (await boot(t.world, 'vm2', vm2.id, options)).run;
  });
}

const round2 = (x: number): number => Math.round(x * 100) / 100;
const s = (us: number): number => us / 1e6;
const ratio = (r: Run): number => r.wireBytes / r.guestBytes;
const MiB = 1048576;

/**
 * BENCH_ONLY=a,b runs only the runs whose names start with one of the
 * tokens (spec.cold, spec.profiled, debian.cold, debian.nora,
 * debian.profiled, debian.static, live); rows of runs skipped are not printed.
 */
function wanted(run: string): boolean {
  const only = process.env.BENCH_ONLY;
  if (!only) return true;
  return only.split(',').map((x) => x.trim()).filter(Boolean).some((t) => run.startsWith(t) || t.startsWith(`${run}.`));
}

/**
 * The benchmark the issue defines (the TARGET rows): an 8 GiB disk of the
 * stated mix (50% zeros, 35% random, 7% repeated, 6% text; no file layout,
 * so on-prem has no FIG 23 groups and no FIG 21 boot files) and a ~2,000-read
 * trace clustered in a few regions of it.
 */
async function specSection(): Promise<BenchFigure[]> {
  if (!wanted('spec')) return [];
  const content = new ImageContent({ seed: SEED, imageId: 'spec-disk', mix: DEFAULT_MIX });
  // BENCH_SPEC_SEED draws another trace of the same shape (docs/proxy/cloud.md lists a few).
  const traceSeed = process.env.BENCH_SPEC_SEED === undefined ? 33 : Number(process.env.BENCH_SPEC_SEED);
  if (!Number.isInteger(traceSeed) || traceSeed < 0) throw new Error(`BENCH_SPEC_SEED must be a non-negative integer, got "${process.env.BENCH_SPEC_SEED}"`);
  const { reads, clusters } = specBootTrace(DISK_BYTES, { seed: traceSeed });
  const guestBytes = reads.reduce((n, r) => n + r.length, 0);
  const { unique, deflated } = await uniqueContentBytes(content.disk('probe', DISK_BYTES), reads);
  const lowerUs = (unique / BYTES_PER_S) * 1e6 + RTT_US;
  const naiveUs = reads.reduce((n, r) => n + RTT_US + (r.length / BYTES_PER_S) * 1e6, 0);
  const opts: BootOptions = { image: 'spec-disk', reads };
  const disk = (id: string): OnpremDiskOptions => ({ id, device: content.disk(id, DISK_BYTES), image: 'spec-disk' });
  const p = 'spec trace: ';
  const out: BenchFigure[] = [
    { name: `${p}guest reads (one outstanding)`, value: reads.length, unit: 'reads', note: `${(guestBytes / MiB).toFixed(1)} MiB read in ${clusters.length} regions of ${(clusters[0]!.length / MiB).toFixed(0)} MiB, trace seed ${traceSeed}` },
    { name: `${p}physical lower bound (unique non-zero dedup / bw + RTT)`, value: s(lowerUs), unit: 's', note: `${(unique / MiB).toFixed(1)} MiB unique non-zero` },
    { name: `${p}naive (one RTT per read + transfer)`, value: s(naiveUs), unit: 's' },
    { name: `${p}wire floor / guest bytes (unique non-zero, deduped, deflated)`, value: deflated / guestBytes, unit: 'ratio', note: 'no transport can go below this on this trace' },
  ];
  if (wanted('spec.cold')) {
    const { cold, warm } = await coldAndWarm(disk('vm1'), opts);
    out.push(
      { name: `${p}spillway cold, no profile`, value: s(cold.elapsedUs), unit: 's', target: { op: '<=', value: round2(s(naiveUs) / 6) }, note: `${(naiveUs / cold.elapsedUs).toFixed(1)}x faster than naive` },
      { name: `${p}wire bytes / guest bytes, cold no profile`, value: ratio(cold), unit: 'ratio', target: { op: '<=', value: 0.5 }, note: `${(cold.wireBytes / MiB).toFixed(1)} MiB on the wire` },
      { name: `${p}spillway warm`, value: s(warm.elapsedUs), unit: 's', note: `wire/guest ${ratio(warm).toFixed(4)} (${warm.wireBytes} wire bytes)` },
    );
  }
  if (wanted('spec.profiled')) {
    const profiled = await profiledBoot(disk('vm1'), disk('vm2'), opts);
    out.push(
      { name: `${p}spillway cold, profile known (FIG 22)`, value: s(profiled.elapsedUs), unit: 's', target: { op: '<=', value: round2(s(lowerUs) * 1.5) }, note: `${(profiled.elapsedUs / lowerUs).toFixed(2)}x the lower bound` },
      { name: `${p}wire bytes / guest bytes, cold profile known`, value: ratio(profiled), unit: 'ratio', target: { op: '<=', value: 0.5 }, note: `${(profiled.wireBytes / MiB).toFixed(1)} MiB on the wire` },
    );
  }
  return out;
}

/**
 * Informational, no targets: a boot of a Debian-like image whose boot reads
 * files whose content is calibrated on real Debian files (compressed kernel
 * and initramfs, machine code), with the file layout known on-prem (FIG 23
 * groups) and boot files (FIG 21). Its wire floor is far above the spec
 * disk's, so the 0.5 target cannot apply to it.
 */
async function debianSection(): Promise<BenchFigure[]> {
  if (!wanted('debian')) return [];
  const image = new GuestImage({ seed: SEED, imageId: 'linux-base', sizeBytes: DISK_BYTES, os: 'linux' });
  const reads = image.boot.reads;
  const guestBytes = reads.reduce((n, r) => n + r.length, 0);
  const { unique, deflated } = await uniqueContentBytes(image.disk('probe'), reads);
  const lowerUs = (unique / BYTES_PER_S) * 1e6 + RTT_US;
  const naiveUs = reads.reduce((n, r) => n + RTT_US + (r.length / BYTES_PER_S) * 1e6, 0);
  const files = image.files.files.map((f) => f.extents);
  const bootFiles = image.boot.files.map((f, i) => ({ path: f.path, ranges: f.extents, firstAccess: i }));
  const opts: BootOptions = { image: 'linux-base', reads };
  const disk = (id: string, withBootFiles: boolean): OnpremDiskOptions => ({ id, device: image.disk(id), image: 'linux-base', groups: files, ...(withBootFiles ? { bootFiles } : {}) });
  const p = 'Debian-file boot (info): ';
  const vsNaive = (r: Run): string => `${(naiveUs / r.elapsedUs).toFixed(1)}x faster than naive, wire/guest ${ratio(r).toFixed(3)}`;
  const vsBound = (r: Run): string => `${(r.elapsedUs / lowerUs).toFixed(2)}x the lower bound, wire/guest ${ratio(r).toFixed(3)}`;
  const out: BenchFigure[] = [
    { name: `${p}guest reads (one outstanding)`, value: reads.length, unit: 'reads', note: `${(guestBytes / MiB).toFixed(1)} MiB read` },
    { name: `${p}physical lower bound`, value: s(lowerUs), unit: 's', note: `${(unique / MiB).toFixed(1)} MiB unique non-zero` },
    { name: `${p}naive`, value: s(naiveUs), unit: 's' },
    { name: `${p}wire floor / guest bytes`, value: deflated / guestBytes, unit: 'ratio', note: 'compressed kernel/initramfs and machine code: 0.5 is below this floor' },
  ];
  if (wanted('debian.cold')) {
    // On-prem knows the file layout (FIG 23 groups) but nothing about the boot.
    const { cold, warm } = await coldAndWarm(disk('vm1', false), opts);
    out.push(
      { name: `${p}cold, no profile`, value: s(cold.elapsedUs), unit: 's', note: vsNaive(cold) },
      { name: `${p}warm`, value: s(warm.elapsedUs), unit: 's', note: `${warm.wireBytes} wire bytes` },
    );
  }
  if (wanted('debian.nora')) {
    const t = await bed([disk('vm1', false)]);
    const r = await inSim(t.world, async () => (await boot(t.world, 'vm1', 'vm1', { ...opts, readAhead: false })).run);
    out.push({ name: `${p}cold, no profile, no client read-ahead`, value: s(r.elapsedUs), unit: 's', note: vsNaive(r) });
  }
  if (wanted('debian.profiled')) {
    const r = await profiledBoot(disk('vm1', true), disk('vm2', true), opts);
    out.push({ name: `${p}cold, profile known (FIG 21 + FIG 22)`, value: s(r.elapsedUs), unit: 's', note: vsBound(r) });
  }
  if (wanted('debian.static')) {
    // Static profile only (FIG 21): boot files in boot order, no recorded session.
    const t = await bed([disk('vm1', true)]);
    const r = await inSim(t.world, async () => (await boot(t.world, 'vm1', 'vm1', opts)).run);
    out.push({ name: `${p}cold, static boot files only (FIG 21)`, value: s(r.elapsedUs), unit: 's', note: vsBound(r) });
  }
  return out;
}

async function liveSection(): Promise<BenchFigure[]> {
  if (!wanted('live')) return [];
  const live = await liveModel();
  return [
    { name: 'live trace model: bound (unique bytes / bw + RTT, as bench:nbd)', value: s((live.unique / BYTES_PER_S) * 1e6 + RTT_US), unit: 's', note: `${live.reads} reads, ${(live.unique / MiB).toFixed(1)} MiB unique` },
    { name: 'live trace model: cold, no profile (serve cloud settings)', value: s(live.cold.elapsedUs), unit: 's', note: `wire/guest ${ratio(live.cold).toFixed(2)}` },
    { name: 'live trace model: cold, profile streamed (FIG 22)', value: s(live.profiled.elapsedUs), unit: 's', note: `wire/guest ${ratio(live.profiled).toFixed(2)}` },
    { name: 'live trace model: warm', value: s(live.warmUs), unit: 's' },
  ];
}

export async function run(): Promise<BenchFigure[]> {
  return [...await specSection(), ...await debianSection(), ...await liveSection()];
}
