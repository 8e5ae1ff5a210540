/**
 * The raw NBD bench, measured on what users run: `spillway serve pair` with
 * its defaults (encrypted cache in a cache dir, write-behind on, on-prem side
 * over a raw image file), warm and cold, beside `qemu-nbd -t -e 4 -f raw` and
 * `nbdkit file` over the same 256 MiB random image on tmpfs, in one run,
 * every repetition visiting each target in turn. The bare NBD server over an
 * in-memory SparseStore (no proxy layers) is printed as a breakdown only.
 *
 * Tests (loopback, unix sockets): nbdcopy -C 1 sequential read and write of
 * the whole image, fio 4 KiB random read at queue depth 1 and 32 and random
 * write at depth 1 (fio's nbd engine), server CPU per GiB from /proc.
 */
import { copyFileSync, mkdirSync, openSync, closeSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { randomFillSync } from 'node:crypto';
import { daemon } from './daemon.js';
import type { BenchFigure } from './run.js';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const IMAGE_BYTES = 256 * MiB;
const FIO_RUNTIME_S = 3;

export interface RawContext {
  repo: string;
  repeat: number;
  exec(cmd: string, args: string[], timeoutMs?: number): Promise<string>;
  timed(fn: () => Promise<unknown>): Promise<number>;
  median(xs: number[]): number;
}

interface Target {
  key: string;
  label: string;
  uri: string;
  pid: number;
  stop(): Promise<void>;
  /** Shown, never compared with a target: not what a user runs. */
  breakdown?: boolean;
}

interface Samples {
  seqRead: number[];
  seqWrite: number[];
  qd1: number[];
  qd32: number[];
  wqd1: number[];
  readCpu: number[];
  writeCpu: number[];
}

const uri = (socket: string, name = ''): string => `nbd+unix:///${name}?socket=${socket}`;

/** User + system CPU seconds a process has used so far (Linux /proc; 100 Hz ticks). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function fio(ctx: RawContext, target: string, rw: 'randread' | 'randwrite', depth: number): Promise<number> {
  const out = await ctx.exec('fio', ['--name=bench', '--ioengine=nbd', `--uri=${target}`, `--rw=${rw}`, '--bs=4k',
    `--iodepth=${depth}`, `--size=${IMAGE_BYTES}`, `--runtime=${FIO_RUNTIME_S}`, '--time_based', '--output-format=json']);
  const json = JSON.parse(out.slice(out.indexOf('{'))) as { jobs: Array<{ read: { iops: number }; write: { iops: number } }> };
  return rw === 'randread' ? json.jobs[0]!.read.iops : json.jobs[0]!.write.iops;
}

function randomImage(path: string): void {
  const fd = openSync(path, 'w');
  const block = Buffer.alloc(16 * MiB);
  for (let at = 0; at < IMAGE_BYTES; at += block.length) {
    randomFillSync(block);
    writeSync(fd, block);
  }
  closeSync(fd);
}

async function servePair(ctx: RawContext, work: string, name: string, key: string, source: string): Promise<Target> {
  const img = join(work, `${name}.img`);
  copyFileSync(source, img);
  const sock = join(work, `${name}.sock`);
  const cache = join(work, `${name}-cache`);
  mkdirSync(cache, { recursive: true });
  // What a user types (README): the defaults, a cache big enough for the disk.
  const d = await daemon(process.execPath, [join(ctx.repo, 'bin/spillway.js'), 'serve', 'pair', '--disk', img, '--pair-key', key,
    '--nbd', `unix:${sock}`, '--cache-dir', cache, '--cache-size', '512MiB'], /ready/);
  return { key: name, label: 'spillway serve pair', uri: uri(sock, name), pid: d.child.pid!, stop: d.stop };
}

export async function runRaw(ctx: RawContext, work: string): Promise<BenchFigure[]> {
  const source = join(work, 'source.img');
  randomImage(source);
  const key = join(work, 'pair.key');
  await ctx.exec(process.execPath, [join(ctx.repo, 'bin/spillway.js'), 'keygen', key, '--force']);
  const loadBefore = loadavg()[0]!;
  const targets: Target[] = [];
  const cold = { seqRead: [] as number[], qd1: [] as number[] };
  try {
    // Cold: a fresh serve pair (empty cache) per repetition, first touch of every block over the link.
    for (let i = 0; i < ctx.repeat; i++) {
      const t = await servePair(ctx, work, `cold${i}`, key, source);
      try {
        cold.seqRead.push(IMAGE_BYTES / MiB / await ctx.timed(() => ctx.exec('nbdcopy', ['-C', '1', t.uri, 'null:'])));
      } finally {
        await t.stop();
      }
      const q = await servePair(ctx, work, `coldq${i}`, key, source);
      try {
        cold.qd1.push(await fio(ctx, q.uri, 'randread', 1));
      } finally {
        await q.stop();
      }
    }
    const pair = await servePair(ctx, work, 'warm', key, source);
    targets.push(pair);
    // Warm the cache: every block read once.
    await ctx.exec('nbdcopy', ['-C', '1', pair.uri, 'null:']);
    const qemuImg = join(work, 'qemu.img');
    copyFileSync(source, qemuImg);
    const qemuSock = join(work, 'qemu.sock');
    const qemu = await daemon('qemu-nbd', ['-t', '-e', '4', '-f', 'raw', '-k', qemuSock, qemuImg], { socket: qemuSock });
    targets.push({ key: 'qemu', label: 'qemu-nbd -t -e 4 (tmpfs)', uri: uri(qemuSock), pid: qemu.child.pid!, stop: qemu.stop });
    const kitImg = join(work, 'nbdkit.img');
    copyFileSync(source, kitImg);
    const kitSock = join(work, 'nbdkit.sock');
    const kit = await daemon('nbdkit', ['-f', '-U', kitSock, 'file', kitImg], { socket: kitSock });
    targets.push({ key: 'nbdkit', label: 'nbdkit file (tmpfs)', uri: uri(kitSock), pid: kit.child.pid!, stop: kit.stop });
    const bareSock = join(work, 'bare.sock');
    const bare = await daemon(process.execPath, ['--import', 'tsx', join(ctx.repo, 'bench/nbd.ts'), '--serve-memory', bareSock, String(IMAGE_BYTES)], /serving/);
    targets.push({ key: 'bare', label: 'breakdown: bare NBD server over a SparseStore', uri: uri(bareSock, 'disk'), pid: bare.child.pid!, stop: bare.stop, breakdown: true });

    const samples = new Map<string, Samples>(targets.map((t) => [t.key, { seqRead: [], seqWrite: [], qd1: [], qd32: [], wqd1: [], readCpu: [], writeCpu: [] }]));
    for (let i = 0; i < ctx.repeat; i++) {
      // Rotate who goes first, so a change in the box's load hits every target alike.
      for (const t of targets.map((_, k) => targets[(k + i) % targets.length]!)) {
        const s = samples.get(t.key)!;
        let c0 = cpuSeconds(t.pid);
        s.seqRead.push(IMAGE_BYTES / MiB / await ctx.timed(() => ctx.exec('nbdcopy', ['-C', '1', t.uri, 'null:'])));
        s.readCpu.push((cpuSeconds(t.pid) - c0) * GiB / IMAGE_BYTES);
        s.qd1.push(await fio(ctx, t.uri, 'randread', 1));
        s.qd32.push(await fio(ctx, t.uri, 'randread', 32));
        c0 = cpuSeconds(t.pid);
        s.seqWrite.push(IMAGE_BYTES / MiB / await ctx.timed(() => ctx.exec('nbdcopy', ['-C', '1', source, t.uri])));
        s.writeCpu.push((cpuSeconds(t.pid) - c0) * GiB / IMAGE_BYTES);
        s.wqd1.push(await fio(ctx, t.uri, 'randwrite', 1));
      }
    }
    return figures(ctx, targets, samples, cold, loadBefore);
  } finally {
    for (const t of targets) await t.stop();
  }
}

function figures(ctx: RawContext, targets: Target[], samples: Map<string, Samples>, cold: { seqRead: number[]; qd1: number[] }, loadBefore: number): BenchFigure[] {
  const m = (key: string, field: keyof Samples): number => ctx.median(samples.get(key)![field]);
  const figs: BenchFigure[] = [];
  const rows: Array<[string, keyof Samples, string, number]> = [
    ['nbdcopy -C 1 sequential read 256 MiB', 'seqRead', 'MiB/s', 1.0],
    ['fio 4k randread QD1', 'qd1', 'IOPS', 1.0],
    ['fio 4k randread QD32', 'qd32', 'IOPS', 1.0],
    ['nbdcopy -C 1 sequential write 256 MiB', 'seqWrite', 'MiB/s', 0.8],
    ['fio 4k randwrite QD1', 'wqd1', 'IOPS', 0.8],
  ];
  for (const [label, field, unit, target] of rows) {
    for (const t of targets) figs.push({ name: `${label}: ${t.label}${t.key === 'warm' ? ', warm' : ''}`, value: m(t.key, field), unit });
    figs.push({ name: `${label}: serve pair warm / qemu-nbd`, value: m('warm', field) / m('qemu', field), unit: 'x', target: { op: '>=', value: target } });
    figs.push({ name: `${label}: serve pair warm / nbdkit`, value: m('warm', field) / m('nbdkit', field), unit: 'x' });
  }
  figs.push({ name: 'nbdcopy -C 1 sequential read: serve pair cold (empty cache)', value: ctx.median(cold.seqRead), unit: 'MiB/s' });
  figs.push({ name: 'fio 4k randread QD1: serve pair cold (empty cache)', value: ctx.median(cold.qd1), unit: 'IOPS' });
  for (const t of targets) {
    figs.push({ name: `server CPU per GiB read: ${t.label}`, value: m(t.key, 'readCpu'), unit: 's' });
    figs.push({ name: `server CPU per GiB written: ${t.label}`, value: m(t.key, 'writeCpu'), unit: 's' });
  }
  figs.push({ name: 'load average (1 min) before / after', value: loadBefore, unit: `/ ${loadavg()[0]!.toFixed(1)}` });
  return figs;
}
