/**
 * `npm run bench:nbd`: spillway's NBD target side by side with nbdkit and
 * qemu-nbd, in one run, medians of repeated runs.
 *
 * Raw (bench/nbd-raw.ts): `spillway serve pair` as users start it (defaults:
 * encrypted cache, write-behind), warm and cold, beside `qemu-nbd` and
 * `nbdkit file` over the same image on tmpfs; the bare NBD server over a
 * SparseStore only as a labelled breakdown.
 *
 * WAN (a userspace 40 ms RTT / 100 Mbit/s relay): a boot-like trace replayed
 * one request at a time through the spillway proxy pair (cold, cold with the
 * FIG 22 profile recorded by an earlier session, warm) and through nbdkit's nbd
 * plugin with cache and readahead filters (cold, warm), plus the physical
 * lower bound of the trace.
 *
 * Environment: SPILLWAY_BENCH_REPEAT (default 3), SPILLWAY_BENCH_ONLY=raw|wan|wan-spillway,
 * SPILLWAY_BENCH_TRACE_READS (default 2000), SPILLWAY_BENCH_WAN_REPEAT (default 1),
 * SPILLWAY_BENCH_VERBOSE=1 (print the proxies' own output and stats).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { NbdClient, NbdServer } from '../src/proxy/nbd/index.js';
import { SparseStore } from '../src/proxy/stores/sparse-store.js';
import { LiveWorld, wallMs } from '../src/world/live-world.js';
import { startRelay } from '../src/world/live-relay.js';
import { daemon } from './daemon.js';
import { runRaw } from './nbd-raw.js';
import { bootTrace, makeImage, uniqueBytes, type TraceRead } from './wan-trace.js';
import type { BenchFigure } from './run.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const REPEAT = Number(process.env.SPILLWAY_BENCH_REPEAT ?? 3);
const WAN_REPEAT = Number(process.env.SPILLWAY_BENCH_WAN_REPEAT ?? 1);
const ONLY = process.env.SPILLWAY_BENCH_ONLY;
const TRACE_READS = Number(process.env.SPILLWAY_BENCH_TRACE_READS ?? 2000);
const WAN_RTT_US = 40_000;
const WAN_RATE_BYTES_PER_S = 100e6 / 8;
const REPO = join(import.meta.dirname, '..');
const DISK_ID = 'boot';

// ---- helpers ----

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function exec(cmd: string, args: string[], timeoutMs = 600_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err.trim().slice(0, 2000)}`));
    });
  });
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = wallMs();
  await fn();
  return (wallMs() - t0) / 1000;
}


function need(tools: string[]): string[] {
  return tools.filter((t) => !['/usr/bin', '/usr/sbin', '/usr/local/bin', '/bin'].some((d) => existsSync(join(d, t))));
}

const uri = (socket: string, name = ''): string => `nbd+unix:///${name}?socket=${socket}`;

// ---- WAN ----

/** Seconds, with every run listed when there are several: a median hides how far one run strays on the shared machine. */
function runs(xs: number[]): string {
  return xs.length > 1 ? `s (runs ${xs.map((x) => x.toFixed(1)).join(', ')})` : 's';
}

async function replay(address: string, exportName: string, trace: TraceRead[]): Promise<number> {
  const world = new LiveWorld(1, () => {});
  const client = await NbdClient.connect(world.net, address, { exportName });
  try {
    return await timed(async () => {
      for (const r of trace) await client.read(r.offset, r.length);
    });
  } finally {
    await client.close();
  }
}

async function runWan(work: string): Promise<BenchFigure[]> {
  const missing = need(['nbdkit', 'qemu-nbd']);
  if (missing.length) throw new Error(`WAN bench needs ${missing.join(', ')} (apt-get install -y nbdkit qemu-utils)`);
  const diskBytes = 4 * GiB;
  const image = join(work, `${DISK_ID}.img`);
  makeImage(image, diskBytes);
  const trace = bootTrace(TRACE_READS, diskBytes);
  const unique = uniqueBytes(trace);
  const boundS = unique / WAN_RATE_BYTES_PER_S + WAN_RTT_US / 1e6;
  // Two shared cores: the live WAN figures move with the machine's load, so the load goes with them.
  const loadBefore = loadavg()[0]!;
  const figs: BenchFigure[] = [
    { name: 'wan trace: reads (one outstanding)', value: trace.length, unit: 'reads' },
    { name: 'wan trace: unique bytes', value: unique / MiB, unit: 'MiB' },
    { name: 'wan physical lower bound (bytes/rate + 1 RTT)', value: boundS, unit: 's' },
  ];

  // nbdkit chain: qemu-nbd on-prem ← relay ← nbdkit nbd plugin + cache + readahead.
  const nbdkitCold: number[] = [];
  const nbdkitWarm: number[] = [];
  for (let i = 0; i < (ONLY === 'wan-spillway' ? 0 : WAN_REPEAT); i++) {
    const onpremSock = join(work, `onprem-q${i}.sock`);
    const onprem = await daemon('qemu-nbd', ['-t', '-e', '8', '-r', '-f', 'raw', '-k', onpremSock, image], { socket: onpremSock });
    const relay = await startRelay({ listen: '127.0.0.1:0', target: `unix:${onpremSock}`, rttUs: WAN_RTT_US, rateBytesPerS: WAN_RATE_BYTES_PER_S });
    const [host, port] = relay.address.split(':');
    const front = join(work, `nbdkit-chain${i}.sock`);
    const chain = await daemon('nbdkit', ['-f', '-U', front, '--filter=readahead', '--filter=cache', 'nbd', `hostname=${host}`, `port=${port}`], { socket: front });
    try {
      nbdkitCold.push(await replay(`unix:${front}`, '', trace));
      nbdkitWarm.push(await replay(`unix:${front}`, '', trace));
    } finally {
      await chain.stop();
      await relay.close();
      await onprem.stop();
    }
  }
  const kCold = nbdkitCold.length ? median(nbdkitCold) : NaN;
  const kWarm = nbdkitWarm.length ? median(nbdkitWarm) : NaN;
  figs.push({ name: 'wan nbdkit nbd+cache+readahead: cold', value: kCold, unit: runs(nbdkitCold) });
  figs.push({ name: 'wan nbdkit nbd+cache+readahead: warm', value: kWarm, unit: runs(nbdkitWarm) });

  figs.push(...await runWanSpillway(work, image, trace, boundS, kCold, kWarm));
  figs.push({ name: 'wan load average (1 min) before / after', value: loadBefore, unit: `/ ${loadavg()[0]!.toFixed(1)}` });
  rmSync(image, { force: true });
  return figs;
}

/** The spillway pair across the same relay: `serve onprem` ← relay ← `serve cloud`. */
async function runWanSpillway(work: string, image: string, trace: TraceRead[], boundS: number, nbdkitColdS: number, nbdkitWarmS: number): Promise<BenchFigure[]> {
  const key = join(work, 'pair.key');
  if (!existsSync(key)) await exec(process.execPath, [join(REPO, 'bin/spillway.js'), 'keygen', key]);
  const cold: number[] = [];
  const warm: number[] = [];
  const profiled: number[] = [];
  for (let i = 0; i < WAN_REPEAT; i++) {
    const onprem = await daemon(process.execPath, [join(REPO, 'bin/spillway.js'), 'serve', 'onprem', '--disk', image, '--listen', '127.0.0.1:0', '--pair-key', key], /link listening on (\S+)/);
    const linkAddr = /link listening on (\S+)/.exec(onprem.out())![1]!;
    const relay = await startRelay({ listen: '127.0.0.1:0', target: linkAddr, rttUs: WAN_RTT_US, rateBytesPerS: WAN_RATE_BYTES_PER_S });
    const cloud = async (n: number) => {
      const sock = join(work, `cloud${i}-${n}.sock`);
      const cacheDir = join(work, `cache${i}-${n}`);
      mkdirSync(cacheDir, { recursive: true });
      // Each cloud proxy is a different VM (peer): the second one gets the first one's recorded profile.
      const d = await daemon(process.execPath, [join(REPO, 'bin/spillway.js'), 'serve', 'cloud', '--onprem', relay.address, '--pair-key', key,
        '--disk', DISK_ID, '--name', `vm-${i}-${n}`, '--nbd', `unix:${sock}`, '--cache-dir', cacheDir, '--cache-size', '4GiB'], /ready/);
      return { sock, d, cacheDir };
    };
    try {
      const first = await cloud(1);
      try {
        cold.push(await replay(`unix:${first.sock}`, DISK_ID, trace));
        warm.push(await replay(`unix:${first.sock}`, DISK_ID, trace));
      } finally {
        await first.d.stop();
        if (process.env.SPILLWAY_BENCH_VERBOSE) console.log(first.d.out());
        rmSync(first.cacheDir, { recursive: true, force: true });
      }
      // A second VM from the same image: a new cloud proxy with a cold cache; on-prem streams the recorded profile.
      const second = await cloud(2);
      try {
        profiled.push(await replay(`unix:${second.sock}`, DISK_ID, trace));
      } finally {
        await second.d.stop();
        if (process.env.SPILLWAY_BENCH_VERBOSE) console.log(first.d.out(), second.d.out());
        rmSync(second.cacheDir, { recursive: true, force: true });
      }
    } finally {
      await relay.close();
      await onprem.stop();
    }
  }
  const c = median(cold);
  const w = median(warm);
  const p = median(profiled);
  return [
    { name: 'wan spillway: cold, no profile', value: c, unit: runs(cold) },
    { name: 'wan spillway: cold, profile streamed (FIG 22)', value: p, unit: runs(profiled) },
    { name: 'wan spillway: warm', value: w, unit: runs(warm) },
    { name: 'wan cold with profile / physical bound', value: p / boundS, unit: 'x', target: { op: '<=', value: 1.5 } },
    { name: 'wan nbdkit cold / spillway cold no profile', value: nbdkitColdS / c, unit: 'x', target: { op: '>=', value: 5 } },
    { name: 'wan spillway warm / nbdkit warm', value: w / nbdkitWarmS, unit: 'x', target: { op: '<=', value: 1.5 } },
  ];
}

// ---- entry points ----

/** Helper mode: serve an in-memory disk over NBD until SIGTERM (the raw bench's spillway target). */
async function serveMemory(socket: string, size: number): Promise<void> {
  const world = new LiveWorld(1, () => {});
  // 256 KiB chunks (the default is 64 KiB): a quarter as many live Buffers for V8 to track, which
  // measured 0.62-0.72 s vs 0.85-1.2 s of server CPU per GiB read and 0.67 vs 1.4-1.7 s per GiB written.
  const server = new NbdServer(world, { exports: [{ name: 'disk', device: new SparseStore('bench', size, 256 * 1024) }] });
  await server.listen(`unix:${socket}`);
  process.stdout.write(`serving unix:${socket}\n`);
  const stop = () => { void server.close().then(() => process.exit(0)); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

function print(title: string, figs: BenchFigure[]): number {
  console.log(`\n== ${title} ==`);
  let missed = 0;
  for (const f of figs) {
    const value = Math.abs(f.value) >= 100 ? f.value.toFixed(0) : f.value.toPrecision(3);
    let verdict = '';
    if (f.target) {
      const ok = f.target.op === '<=' ? f.value <= f.target.value : f.value >= f.target.value;
      if (!ok) missed++;
      verdict = `  [target ${f.target.op} ${f.target.value}: ${ok ? 'met' : 'MISSED'}]`;
    }
    console.log(`  ${f.name.padEnd(56)} ${value.padStart(10)} ${f.unit}${verdict}`);
  }
  return missed;
}

async function main(): Promise<void> {
  if (process.argv[2] === '--serve-memory') {
    await serveMemory(process.argv[3]!, Number(process.argv[4]));
    return;
  }
  const base = existsSync('/dev/shm') ? '/dev/shm' : undefined;
  const work = mkdtempSync(join(base ?? '/tmp', 'spillway-bench-'));
  let missed = 0;
  try {
    console.log(`spillway NBD bench: medians of ${REPEAT} runs (raw), ${WAN_REPEAT} (WAN); work dir ${work}`);
    if (ONLY !== 'wan' && ONLY !== 'wan-spillway') {
      missed += print('NBD raw, loopback unix sockets: spillway serve pair as users start it, beside qemu-nbd and nbdkit', await runRaw({ repo: REPO, repeat: REPEAT, exec, timed, median }, work));
    }
    if (ONLY !== 'raw') missed += print('NBD across a 40 ms / 100 Mbit/s WAN relay, boot trace one request at a time', await runWan(work));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  console.log(`\n${missed === 0 ? 'all targets met' : `${missed} target(s) missed`}`);
}

await main();
