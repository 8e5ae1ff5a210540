/**
 * `npm run bench:nbd`: spillway's NBD target side by side with nbdkit and
 * qemu-nbd, in one run, medians of repeated runs.
 *
 * Raw (loopback, unix sockets, warm): nbdcopy sequential write and read of
 * 1 GiB, fio 4 KiB random reads at queue depth 1 and 32 (fio's nbd engine),
 * against `nbdkit memory` and `qemu-nbd` over a raw file on tmpfs. All three
 * serve at once and every repetition visits each in turn; server CPU per GiB
 * read comes from /proc.
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
import { existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeSync, ftruncateSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { randomFillSync } from 'node:crypto';
import { NbdClient, NbdServer } from '../src/proxy/nbd/index.js';
import { SparseStore } from '../src/proxy/stores/sparse-store.js';
import { LiveWorld, wallMs } from '../src/world/live-world.js';
import { startRelay } from '../src/world/live-relay.js';
import { daemon } from './daemon.js';
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

// ---- raw ----

interface RawResult {
  writeGiBs: number; readGiBs: number; qd1Iops: number; qd32Iops: number;
  /** Server CPU (user + system, from /proc): per GiB written and read, per 4 KiB read at QD1. */
  writeCpuSPerGiB: number; readCpuSPerGiB: number; qd1CpuUsPerOp: number;
}
interface RawTarget { key: 'spillway' | 'nbdkit' | 'qemu'; uri: string; pid: number }

const FIO_RUNTIME_S = 3;

async function fioIops(target: string, depth: number): Promise<number> {
  const out = await exec('fio', ['--name=randread', '--ioengine=nbd', `--uri=${target}`, '--rw=randread', '--bs=4k',
    `--iodepth=${depth}`, '--size=1G', `--runtime=${FIO_RUNTIME_S}`, '--time_based', '--output-format=json']);
  const json = JSON.parse(out.slice(out.indexOf('{'))) as { jobs: Array<{ read: { iops: number } }> };
  return json.jobs[0]!.read.iops;
}

/** User + system CPU seconds a process has used so far (Linux /proc; clock ticks are 100 Hz there). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * Every target serves at once and each repetition visits them in turn (rotating who goes first),
 * so a change in the box's load hits all of them alike: the ratios compare like with like.
 */
async function rawRounds(targets: RawTarget[], source: string): Promise<Record<string, RawResult>> {
  const samples = new Map(targets.map((t) => [t.key, {
    writes: [] as number[], reads: [] as number[], writeCpu: [] as number[], cpu: [] as number[], qd1: [] as number[], qd1Cpu: [] as number[], qd32: [] as number[],
  }]));
  const turn = (i: number): RawTarget[] => targets.map((_, k) => targets[(k + i) % targets.length]!);
  for (let i = 0; i < REPEAT; i++) {
    for (const t of turn(i)) {
      const s = samples.get(t.key)!;
      const wcpu0 = cpuSeconds(t.pid);
      s.writes.push(GiB / GiB / await timed(() => exec('nbdcopy', [source, t.uri])));
      s.writeCpu.push(cpuSeconds(t.pid) - wcpu0);
      const cpu0 = cpuSeconds(t.pid);
      s.reads.push(GiB / GiB / await timed(() => exec('nbdcopy', [t.uri, 'null:'])));
      s.cpu.push(cpuSeconds(t.pid) - cpu0);
    }
  }
  for (let i = 0; i < REPEAT; i++) {
    for (const t of turn(i)) {
      const s = samples.get(t.key)!;
      const qcpu0 = cpuSeconds(t.pid);
      const iops = await fioIops(t.uri, 1);
      s.qd1.push(iops);
      // Ops = IOPS x run time; the connection set-up around it is counted too (a few hundred us).
      s.qd1Cpu.push((cpuSeconds(t.pid) - qcpu0) * 1e6 / (iops * FIO_RUNTIME_S));
      s.qd32.push(await fioIops(t.uri, 32));
    }
  }
  const results: Record<string, RawResult> = {};
  for (const [key, s] of samples) {
    results[key] = {
      writeGiBs: median(s.writes), readGiBs: median(s.reads), qd1Iops: median(s.qd1), qd32Iops: median(s.qd32),
      writeCpuSPerGiB: median(s.writeCpu), readCpuSPerGiB: median(s.cpu), qd1CpuUsPerOp: median(s.qd1Cpu),
    };
  }
  return results;
}

async function runRaw(work: string): Promise<BenchFigure[]> {
  const missing = need(['nbdcopy', 'fio', 'nbdkit', 'qemu-nbd']);
  if (missing.length) throw new Error(`raw bench needs ${missing.join(', ')} (apt-get install -y libnbd-bin fio nbdkit qemu-utils)`);
  const source = join(work, 'source.img');
  const fd = openSync(source, 'w');
  const block = Buffer.alloc(16 * MiB);
  for (let at = 0; at < GiB; at += block.length) {
    randomFillSync(block);
    writeSync(fd, block);
  }
  closeSync(fd);

  const spillwaySock = join(work, 'spillway.sock');
  const nbdkitSock = join(work, 'nbdkit.sock');
  const qemuSock = join(work, 'qemu.sock');
  const img = join(work, 'qemu.img');
  const fd2 = openSync(img, 'w');
  ftruncateSync(fd2, GiB);
  closeSync(fd2);
  const daemons: Array<Awaited<ReturnType<typeof daemon>>> = [];
  let results: Record<string, RawResult>;
  try {
    const spillway = await daemon(process.execPath, ['--max-semi-space-size=64', '--import', 'tsx', join(REPO, 'bench/nbd.ts'), '--serve-memory', spillwaySock, String(GiB)], /serving/);
    daemons.push(spillway);
    const nbdkit = await daemon('nbdkit', ['-f', '-U', nbdkitSock, 'memory', '1G'], { socket: nbdkitSock });
    daemons.push(nbdkit);
    const qemu = await daemon('qemu-nbd', ['-t', '-e', '16', '-f', 'raw', '-k', qemuSock, img], { socket: qemuSock });
    daemons.push(qemu);
    results = await rawRounds([
      { key: 'spillway', uri: uri(spillwaySock, 'disk'), pid: spillway.child.pid! },
      { key: 'nbdkit', uri: uri(nbdkitSock), pid: nbdkit.child.pid! },
      { key: 'qemu', uri: uri(qemuSock), pid: qemu.child.pid! },
    ], source);
  } finally {
    for (const d of daemons) await d.stop();
    rmSync(img, { force: true });
    rmSync(source, { force: true });
  }

  const s = results.spillway!;
  const k = results.nbdkit!;
  const q = results.qemu!;
  const figs: BenchFigure[] = [];
  const rows: Array<[string, 'writeGiBs' | 'readGiBs' | 'qd1Iops' | 'qd32Iops', string]> = [
    ['nbdcopy write 1 GiB', 'writeGiBs', 'GiB/s'], ['nbdcopy read 1 GiB', 'readGiBs', 'GiB/s'],
    ['fio 4k randread QD1', 'qd1Iops', 'IOPS'], ['fio 4k randread QD32', 'qd32Iops', 'IOPS'],
  ];
  for (const [label, key, unit] of rows) {
    figs.push({ name: `raw ${label}: spillway`, value: s[key], unit });
    figs.push({ name: `raw ${label}: nbdkit memory`, value: k[key], unit });
    figs.push({ name: `raw ${label}: qemu-nbd tmpfs`, value: q[key], unit });
    figs.push({ name: `raw ${label}: spillway / qemu-nbd`, value: s[key] / q[key], unit: 'x', target: { op: '>=', value: 1 } });
    figs.push({ name: `raw ${label}: spillway / nbdkit`, value: s[key] / k[key], unit: 'x', target: { op: '>=', value: 0.75 } });
  }
  const cpuRows: Array<[string, 'writeCpuSPerGiB' | 'readCpuSPerGiB' | 'qd1CpuUsPerOp', string]> = [
    ['per GiB written', 'writeCpuSPerGiB', 's'], ['per GiB read', 'readCpuSPerGiB', 's'], ['per 4k read at QD1', 'qd1CpuUsPerOp', 'us'],
  ];
  for (const [label, key, unit] of cpuRows) {
    figs.push({ name: `raw server CPU ${label}: spillway`, value: s[key], unit });
    figs.push({ name: `raw server CPU ${label}: nbdkit memory`, value: k[key], unit });
    figs.push({ name: `raw server CPU ${label}: qemu-nbd tmpfs`, value: q[key], unit });
  }
  return figs;
}

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
    if (ONLY !== 'wan' && ONLY !== 'wan-spillway') missed += print('NBD raw, loopback unix socket, warm', await runRaw(work));
    if (ONLY !== 'raw') missed += print('NBD across a 40 ms / 100 Mbit/s WAN relay, boot trace one request at a time', await runWan(work));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  console.log(`\n${missed === 0 ? 'all targets met' : `${missed} target(s) missed`}`);
}

await main();
