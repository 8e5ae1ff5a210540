/**
 * The management API under load, on loopback: `spillway run
 * scenarios/quarter-end.yaml --pace 600 --api` in its own process, 200 SSE
 * clients following /events, and 500 requests/s over the read routes for
 * 60 s. Reports what the clients got (requests answered, latency, events)
 * and the server process's resident memory over the run: the event ring is
 * fixed and each client holds only a cursor, so memory must level off.
 *
 * SPILLWAY_BENCH_API_SECONDS shortens the run (default 60).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BenchFigure } from './run.js';

export const title = 'management API: 200 SSE clients + 500 requests/s for 60 s against a paced quarter-end';

const ROOT = join(import.meta.dirname, '..');
const CLIENTS = 200;
const RATE = 500;
const SECONDS = Number(process.env.SPILLWAY_BENCH_API_SECONDS ?? 60);
const ROUTES = ['/health', '/vms', '/flows', '/proxies', '/wan', '/cloud', '/cost', '/vms/batch-01', '/metrics'];

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

const pct = (xs: number[], q: number): number => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};

export async function run(): Promise<BenchFigure[]> {
  const dir = mkdtempSync(join(tmpdir(), 'spillway-bench-api-'));
  const tokenPath = join(dir, 'token');
  const token = 'bench-token-0123456789abcdefghij';
  writeFileSync(tokenPath, token, { mode: 0o600 });
  const server = spawn(process.execPath, ['bin/spillway.js', 'run', 'scenarios/quarter-end.yaml', '--pace', '600', '--api', '127.0.0.1:0', '--api-token-file', tokenPath],
    { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  const url = await new Promise<string>((resolve, reject) => {
    server.stderr!.on('data', (c: Buffer) => {
      err += c.toString();
      const m = /api listening on (http:\/\/\S+)/.exec(err);
      if (m) resolve(m[1]!);
    });
    server.on('exit', (code) => reject(new Error(`spillway run exited ${code}: ${err}`)));
  });
  const base = new URL(url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const headers = { authorization: `Bearer ${token}` };

  // 200 event-stream clients, each counting what it receives.
  let sseBytes = 0;
  let sseEvents = 0;
  let sseDropped = 0;
  const streams: http.ClientRequest[] = [];
  for (let i = 0; i < CLIENTS; i++) {
    const req = http.get({ host: base.hostname, port: base.port, path: i % 4 === 0 ? '/events?type=machine.*' : '/events', headers }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        sseBytes += c.length;
        for (let k = c.indexOf('\nid: '); k >= 0; k = c.indexOf('\nid: ', k + 1)) sseEvents++;
        if (c.includes('event: dropped')) sseDropped++;
      });
    });
    req.on('error', () => undefined);
    streams.push(req);
  }

  const latencies: number[] = [];
  let sent = 0;
  let ok = 0;
  let failed = 0;
  const rss: Array<{ s: number; mib: number }> = [];
  let nextSampleS = 0;
  const started = performance.now();
  const fire = (): void => {
    const path = ROUTES[sent % ROUTES.length]!;
    sent++;
    const t0 = performance.now();
    const req = http.get({ host: base.hostname, port: base.port, path, headers, agent }, (res) => {
      res.resume();
      res.on('end', () => {
        latencies.push(performance.now() - t0);
        if (res.statusCode === 200) ok++; else failed++;
      });
    });
    req.on('error', () => { failed++; });
  };
  // 500/s as 5 every 10 ms; a timer that falls behind catches up by the clock, not by its ticks.
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      const elapsed = (performance.now() - started) / 1000;
      const due = Math.min(SECONDS, elapsed) * RATE;
      while (sent < due) fire();
      if (elapsed >= nextSampleS) {
        rss.push({ s: nextSampleS, mib: rssMiB(server.pid!) });
        nextSampleS += 5;
      }
      if (elapsed >= SECONDS) {
        clearInterval(tick);
        resolve();
      }
    }, 10);
  });
  await new Promise((r) => setTimeout(r, 2000));
  const metrics = await new Promise<string>((resolve) => {
    http.get({ host: base.hostname, port: base.port, path: '/metrics', headers }, (res) => {
      let t = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { t += c; });
      res.on('end', () => resolve(t));
    }).on('error', () => resolve(''));
  });
  const connected = Number(/^spillway_sse_clients (\d+)/m.exec(metrics)?.[1] ?? NaN);
  const droppedServer = Number(/^spillway_sse_dropped_total (\d+)/m.exec(metrics)?.[1] ?? NaN);
  const virtualH = Number(/^spillway_time_seconds (\S+)/m.exec(metrics)?.[1] ?? NaN) / 3600;
  for (const s of streams) s.destroy();
  agent.destroy();
  server.kill('SIGTERM');
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
  const warm = rss.filter((r) => r.s >= 15).map((r) => r.mib);
  console.log(`  server RSS (MiB) by second: ${rss.map((r) => `${r.s}s ${r.mib.toFixed(0)}`).join(', ')}; load average ${load}`);
  return [
    { name: 'requests answered per second', value: ok / SECONDS, unit: 'req/s', target: { op: '>=', value: RATE * 0.95 } },
    { name: 'requests failed', value: failed, unit: '', target: { op: '<=', value: 0 } },
    { name: 'request latency p50', value: pct(latencies, 0.5), unit: 'ms' },
    { name: 'request latency p99', value: pct(latencies, 0.99), unit: 'ms' },
    { name: 'SSE clients still connected at the end', value: connected, unit: '', note: `${sseDropped} saw a dropped event; server counted ${droppedServer}` },
    { name: 'SSE events delivered (all clients)', value: sseEvents, unit: 'events', note: `${(sseBytes / 1024 ** 2).toFixed(0)} MiB` },
    { name: 'virtual time covered', value: virtualH, unit: 'h' },
    { name: 'server RSS peak', value: Math.max(...rss.map((r) => r.mib)), unit: 'MiB' },
    // Growth, not the collector's swings: where the run ends against the lowest it was after warming up.
    { name: 'server RSS growth after 15 s (last - lowest)', value: warm.length ? warm.at(-1)! - Math.min(...warm) : NaN, unit: 'MiB', target: { op: '<=', value: 50 } },
  ];
}
