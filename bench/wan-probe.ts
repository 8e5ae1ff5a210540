/**
 * `node --import tsx bench/wan-probe.ts [MODE…]`: where the live WAN run's
 * time goes. Replays bench/nbd.ts's trace and records every read's latency,
 * then prints the distribution in round-trip buckets. Modes (default: relay
 * local cold):
 * - `relay`: the relay alone, qemu-nbd behind it: 4 KiB and 1 MiB reads,
 *   what one RTT and the rate cost live (the model says 40 ms and 40 + 84 ms);
 * - `local`: the replay client against qemu-nbd on loopback (no WAN): the
 *   floor of client + server cost per read;
 * - `cold`: `serve onprem` ← relay ← `serve cloud`, cold then warm, then a
 *   second cloud proxy with the recorded profile streamed (FIG 22).
 * SPILLWAY_PROBE_READS (default 2000) cuts the trace; SPILLWAY_PROBE_CPU_PROF=DIR
 * runs the cloud proxy with --cpu-prof into DIR.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { NbdClient } from '../src/proxy/nbd/index.js';
import { LiveWorld, wallMs } from '../src/world/live-world.js';
import { startRelay } from '../src/world/live-relay.js';
import { daemon } from './daemon.js';
import { bootTrace, makeImage, uniqueBytes, type TraceRead } from './wan-trace.js';

const GiB = 1024 ** 3;
const RTT_MS = 40;
const RATE = 100e6 / 8;
const REPO = join(import.meta.dirname, '..');
const READS = Number(process.env.SPILLWAY_PROBE_READS ?? 2000);
const CPU_PROF = process.env.SPILLWAY_PROBE_CPU_PROF;


/**
 * Replay one read at a time; every read's latency in ms. With `wireBytes`,
 * also a timeline: each second, reads done and bytes the WAN delivered.
 */
async function replay(address: string, exportName: string, trace: TraceRead[], wireBytes?: () => number): Promise<{ totalS: number; latMs: number[]; timeline?: string }> {
  const world = new LiveWorld(1, () => {});
  const client = await NbdClient.connect(world.net, address, { exportName });
  const latMs: number[] = [];
  const t0 = wallMs();
  const w0 = wireBytes?.() ?? 0;
  const marks: string[] = [];
  const sampler = wireBytes ? setInterval(() => {
    marks.push(`${((wallMs() - t0) / 1000).toFixed(0)}s:${latMs.length}r/${((wireBytes() - w0) / 1e6).toFixed(1)}MB`);
  }, 1000) : undefined;
  try {
    for (const r of trace) {
      const s = wallMs();
      await client.read(r.offset, r.length);
      latMs.push(wallMs() - s);
    }
  } finally {
    if (sampler) clearInterval(sampler);
    await client.close();
  }
  return { totalS: (wallMs() - t0) / 1000, latMs, ...(marks.length ? { timeline: marks.join(' ') } : {}) };
}

function report(label: string, r: { totalS: number; latMs: number[]; timeline?: string }): void {
  const s = [...r.latMs].sort((a, b) => a - b);
  const p = (q: number): string => s[Math.min(s.length - 1, Math.floor(q * s.length))]!.toFixed(2);
  const buckets: Array<[string, number, number]> = [
    ['<1 ms (local)', 0, 1], ['1-5 ms', 1, 5], ['5-35 ms (waits)', 5, 35], ['35-60 ms (1 RTT)', 35, 60],
    ['60-100 ms (1 RTT + data)', 60, 100], ['100-140 ms', 100, 140], ['>=140 ms', 140, Infinity],
  ];
  const line = buckets.map(([name, lo, hi]) => {
    const inB = s.filter((x) => x >= lo && x < hi);
    return `${name}: ${inB.length} reads, ${(inB.reduce((a, b) => a + b, 0) / 1000).toFixed(2)} s`;
  });
  console.log(`${label}: ${r.totalS.toFixed(2)} s for ${s.length} reads; p50 ${p(0.5)} ms, p90 ${p(0.9)} ms, p99 ${p(0.99)} ms, max ${s[s.length - 1]!.toFixed(1)} ms`);
  for (const l of line) console.log(`    ${l}`);
  if (r.timeline) console.log(`    timeline (reads done / MB from on-prem): ${r.timeline}`);
}

async function main(): Promise<void> {
  const modes = process.argv.slice(2).length ? process.argv.slice(2) : ['relay', 'local', 'cold'];
  const work = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : '/tmp', 'spillway-probe-'));
  const diskBytes = 4 * GiB;
  const image = join(work, 'boot.img');
  try {
    makeImage(image, diskBytes);
    const trace = bootTrace(2000, diskBytes).slice(0, READS);
    const unique = uniqueBytes(trace);
    console.log(`trace ${trace.length} reads, ${(unique / 2 ** 20).toFixed(1)} MiB unique, bound ${(unique / RATE + RTT_MS / 1000).toFixed(2)} s; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
    if (modes.includes('relay') || modes.includes('local')) {
      const sock = join(work, 'q.sock');
      const q = await daemon('qemu-nbd', ['-t', '-e', '8', '-r', '-f', 'raw', '-k', sock, image], { socket: sock });
      try {
        if (modes.includes('local')) report('local qemu-nbd (no WAN)', await replay(`unix:${sock}`, '', trace));
        if (modes.includes('relay')) {
          const relay = await startRelay({ listen: '127.0.0.1:0', target: `unix:${sock}`, rttUs: RTT_MS * 1000, rateBytesPerS: RATE });
          try {
            const small = Array.from({ length: 30 }, (_, i) => ({ offset: i * 1048576, length: 4096 }));
            const big = Array.from({ length: 10 }, (_, i) => ({ offset: 64 * 1048576 + i * 1048576, length: 1048576 }));
            report('relay, 4 KiB reads (model: 40.3 ms)', await replay(relay.address, '', small));
            report('relay, 1 MiB reads (model: 40 + 83.9 ms)', await replay(relay.address, '', big));
          } finally {
            await relay.close();
          }
        }
      } finally {
        await q.stop();
      }
    }
    if (modes.includes('cold')) {
      const key = join(work, 'pair.key');
      const cli = join(REPO, 'bin/spillway.js');
      await daemon(process.execPath, [cli, 'keygen', key], /./).then((d) => d.stop()).catch(() => undefined);
      while (!existsSync(key)) await new Promise((r) => setTimeout(r, 20));
      const onprem = await daemon(process.execPath, [cli, 'serve', 'onprem', '--disk', image, '--listen', '127.0.0.1:0', '--pair-key', key], /link listening on (\S+)/);
      const linkAddr = /link listening on (\S+)/.exec(onprem.out())![1]!;
      const relay = await startRelay({ listen: '127.0.0.1:0', target: linkAddr, rttUs: RTT_MS * 1000, rateBytesPerS: RATE });
      const cloud = async (n: number) => {
        const sock = join(work, `cloud${n}.sock`);
        const cacheDir = join(work, `cache${n}`);
        mkdirSync(cacheDir, { recursive: true });
        const node = CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', CPU_PROF] : [];
        const d = await daemon(process.execPath, [...node, cli, 'serve', 'cloud', '--onprem', relay.address, '--pair-key', key,
          '--disk', 'boot', '--name', `vm-${n}`, '--nbd', `unix:${sock}`, '--cache-dir', cacheDir, '--cache-size', '4GiB'], /ready/);
        return { sock, d };
      };
      try {
        const first = await cloud(1);
        try {
          const wire = () => relay.stats.bytesFromTarget;
          report('spillway cold, no profile', await replay(`unix:${first.sock}`, 'boot', trace, wire));
          report('spillway warm', await replay(`unix:${first.sock}`, 'boot', trace));
        } finally {
          await first.d.stop();
          console.log(first.d.out().split('\n').filter((l) => /stats/.test(l)).join('\n'));
        }
        const second = await cloud(2);
        try {
          report('spillway cold, profile streamed', await replay(`unix:${second.sock}`, 'boot', trace, () => relay.stats.bytesFromTarget));
        } finally {
          await second.d.stop();
          console.log(second.d.out().split('\n').filter((l) => /stats/.test(l)).join('\n'));
        }
        console.log(`relay bytes: to on-prem ${relay.stats.bytesToTarget}, from on-prem ${relay.stats.bytesFromTarget}`);
      } finally {
        await relay.close();
        await onprem.stop();
      }
    }
    console.log(`load average at the end ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
