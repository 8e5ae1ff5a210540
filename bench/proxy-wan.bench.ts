/**
 * The proxy over a WAN, in virtual time (exact): a guest boots from a disk
 * streamed through both edge proxies across 40 ms RTT / 100 Mbit/s, one
 * read outstanding at a time (the boot trace of src/sim/guest).
 */
import { createHash } from 'node:crypto';
import { deflateRawSync } from 'node:zlib';
import { createCloudProxy, memoryCloudStores, type CloudProxy } from '../src/proxy/cloud/index.js';
import { createOnpremProxy, type OnpremDiskOptions, type OnpremProxy } from '../src/proxy/onprem/index.js';
import { isZero } from '../src/proxy/link/payload.js';
import { replayReads } from '../src/sim/guest/boot-profile.js';
import { GuestImage } from '../src/sim/guest/image.js';
import { WanLink, wanConfig } from '../src/sim/wan-link.js';
import { SimWorld } from '../src/world/sim-world.js';
import type { BenchFigure } from './run.js';
import { LiveImageDevice, bootTrace, uniqueBytes } from './wan-trace.js';

export const title = 'proxy over WAN: 40 ms RTT, 100 Mbit/s, boot trace of ~2,000 reads (virtual time)';

const KEY = '7e'.repeat(32);
const RTT_US = 40_000;
const BYTES_PER_S = 100e6 / 8;
const DISK_BYTES = 8 * 1024 ** 3;
const SEED = 11;

const image = new GuestImage({ seed: SEED, imageId: 'linux-base', sizeBytes: DISK_BYTES, os: 'linux' });

/**
 * Unique non-zero deduplicated bytes the trace touches, at 4 KiB granularity,
 * and what they deflate to (level 6, block by block): the floor of wire bytes.
 */
async function uniqueContentBytes(): Promise<{ unique: number; deflated: number }> {
  const disk = image.disk('probe');
  const blocks = new Set<number>();
  for (const r of image.boot.reads) for (let b = Math.floor(r.offset / 4096); b * 4096 < r.offset + r.length; b++) blocks.add(b);
  const sigs = new Set<string>();
  let deflated = 0;
  for (const b of blocks) {
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
    readAhead: { minWindowBytes: 512 * 1024, maxWindowBytes: 512 * 1024, firstWindowBytes: 512 * 1024 },
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

async function boot(world: SimWorld, name: string, diskId: string, options: { streamProfile?: boolean; readAhead?: false } = {}): Promise<{ run: Run; proxy: CloudProxy }> {
  const proxy = await createCloudProxy(world, {
    name, onprem: 'onprem:7000', pairingKey: KEY, disk: { id: diskId, image: 'linux-base' },
    stores: memoryCloudStores(name, DISK_BYTES), cacheCapacityBytes: 512 * 1024 * 1024,
    pushWindowBytes: 1024 * 1024,
    ...(options.readAhead === false ? { readAhead: false as const } : {}),
    ...(options.streamProfile === false ? { streamProfile: false } : {}),
  });
  const wire0 = proxy.wireBytes();
  const guest0 = proxy.guestBytes();
  const r = await replayReads(world, proxy.device, image.boot.reads);
  if (process.env.BENCH_DEBUG) {
    console.log(name, { elapsedUs: r.elapsedUs, readPath: proxy.readPath.counters, remote: proxy.remote.stats, link: proxy.link.stats, readAhead: proxy.readAhead?.stats(), prefetch: proxy.prefetch.stats() });
  }
  return { run: { elapsedUs: r.elapsedUs, wireBytes: proxy.wireBytes() - wire0, guestBytes: proxy.guestBytes() - guest0 }, proxy };
}

const round2 = (x: number): number => Math.round(x * 100) / 100;

export async function run(): Promise<BenchFigure[]> {
  const only = process.env.BENCH_ONLY;
  const reads = image.boot.reads;
  const guestBytes = reads.reduce((n, r) => n + r.length, 0);
  const { unique, deflated } = await uniqueContentBytes();
  const lowerUs = (unique / BYTES_PER_S) * 1e6 + RTT_US;
  const naiveUs = reads.reduce((n, r) => n + RTT_US + (r.length / BYTES_PER_S) * 1e6, 0);
  const files = image.files.files.map((f) => f.extents);
  const bootFiles = image.boot.files.map((f, i) => ({ path: f.path, ranges: f.extents, firstAccess: i }));

  // Cold, no profile: on-prem knows the file layout (FIG 23 groups) but nothing about the boot.
  const skip = { run: { elapsedUs: 1, wireBytes: 0, guestBytes: 1 }, warmUs: 0, warmWire: 0 };
  const a = only && only !== 'cold' ? null : await bed([{ id: 'vm1', device: image.disk('vm1'), image: 'linux-base', groups: files }]);
  const cold = !a ? skip : await inSim(a.world, async () => {
    const { run, proxy } = await boot(a!.world, 'vm1', 'vm1');
    // Warm: the same proxy boots again; everything is in its cache.
    const w0 = proxy.wireBytes();
    const again = await replayReads(a!.world, proxy.device, reads);
    return { run, warmUs: again.elapsedUs, warmWire: proxy.wireBytes() - w0 };
  });

  // Cold, no profile, without the client's read-ahead layer (FIG 23 group pushes read ahead on-prem).
  const d = only && only !== 'cold' ? null : await bed([{ id: 'vm1', device: image.disk('vm1'), image: 'linux-base', groups: files }]);
  const coldNoRa = !d ? skip.run : await inSim(d.world, async () => (await boot(d.world, 'vm1', 'vm1', { readAhead: false })).run);

  // Cold, profile known: a first VM of the image booted before (FIG 22 records its first-read order),
  // and the boot files are known (FIG 21). A second VM cloned from the image attaches with a cold cache.
  const b = only && only !== 'profiled' ? null : await bed([
    { id: 'vm1', device: image.disk('vm1'), image: 'linux-base', groups: files, bootFiles },
    { id: 'vm2', device: image.disk('vm2'), image: 'linux-base', groups: files, bootFiles },
  ]);
  const profiled = !b ? skip.run : await inSim(b.world, async () => {
    const first = await boot(b!.world, "vm1", "vm1", { streamProfile: false });
    await first.proxy.close();
    return (await boot(b!.world, "vm2", "vm2")).run;
  });

  // Cold, static profile only (FIG 21): boot files in boot order, no recorded session.
  const c = only && only !== 'static' ? null : await bed([{ id: 'vm1', device: image.disk('vm1'), image: 'linux-base', groups: files, bootFiles }]);
  const staticOnly = !c ? skip.run : await inSim(c.world, async () => (await boot(c!.world, "vm1", "vm1")).run);

  const live = only && only !== 'live' ? null : await liveModel();

  const s = (us: number): number => us / 1e6;
  const liveFigs: BenchFigure[] = !live ? [] : [
    { name: 'live trace model: bound (unique bytes / bw + RTT, as bench:nbd)', value: s((live.unique / BYTES_PER_S) * 1e6 + RTT_US), unit: 's', note: `${live.reads} reads, ${(live.unique / 1048576).toFixed(1)} MiB unique` },
    { name: 'live trace model: cold, no profile (serve cloud settings)', value: s(live.cold.elapsedUs), unit: 's', note: `wire/guest ${(live.cold.wireBytes / live.cold.guestBytes).toFixed(2)}` },
    { name: 'live trace model: cold, profile streamed (FIG 22)', value: s(live.profiled.elapsedUs), unit: 's', note: `wire/guest ${(live.profiled.wireBytes / live.profiled.guestBytes).toFixed(2)}` },
    { name: 'live trace model: warm', value: s(live.warmUs), unit: 's' },
  ];
  return [
    { name: 'guest reads (one outstanding)', value: reads.length, unit: 'reads', note: `${(guestBytes / 1048576).toFixed(1)} MiB read` },
    { name: 'physical lower bound (unique non-zero dedup bytes / bw + RTT)', value: s(lowerUs), unit: 's', note: `${(unique / 1048576).toFixed(1)} MiB unique` },
    { name: 'naive (one RTT per read + transfer)', value: s(naiveUs), unit: 's' },
    { name: 'spillway cold, no profile', value: s(cold.run.elapsedUs), unit: 's', target: { op: '<=', value: round2(s(naiveUs) / 6) }, note: `${(naiveUs / cold.run.elapsedUs).toFixed(1)}x faster than naive` },
    { name: 'spillway cold, no profile, no client read-ahead', value: s(coldNoRa.elapsedUs), unit: 's', note: `${(naiveUs / coldNoRa.elapsedUs).toFixed(1)}x faster than naive, wire/guest ${(coldNoRa.wireBytes / coldNoRa.guestBytes).toFixed(2)}` },
    { name: 'spillway cold, profile known (FIG 21 + FIG 22)', value: s(profiled.elapsedUs), unit: 's', target: { op: '<=', value: round2(s(lowerUs) * 1.5) }, note: `${(profiled.elapsedUs / lowerUs).toFixed(2)}x the lower bound` },
    { name: 'spillway cold, static boot files only (FIG 21)', value: s(staticOnly.elapsedUs), unit: 's', note: `${(staticOnly.elapsedUs / lowerUs).toFixed(2)}x the lower bound` },
    { name: 'spillway warm', value: s(cold.warmUs), unit: 's', note: `${cold.warmWire} wire bytes` },
    { name: 'wire floor / guest bytes (unique non-zero, deduped, deflated)', value: deflated / guestBytes, unit: 'ratio', note: 'no transport can go below this on this trace' },
    { name: 'wire bytes / guest bytes, cold no profile', value: cold.run.wireBytes / cold.run.guestBytes, unit: 'ratio', target: { op: '<=', value: 0.5 } },
    { name: 'wire bytes / guest bytes, cold profile known', value: profiled.wireBytes / profiled.guestBytes, unit: 'ratio', target: { op: '<=', value: 0.5 } },
    ...liveFigs,
  ];
}
