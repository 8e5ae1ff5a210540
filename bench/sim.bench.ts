/**
 * Simulator throughput: raw scheduler events per second, and the wall time
 * to simulate 24 h of a 1,000-VM data center at control-plane level (load
 * curves every 5 min, samples every 5 min, a batch peak, a host failure).
 * Wall times are medians of a few runs.
 */
import type { BenchFigure } from './run.js';
import { parseScenario } from '../src/sim/scenario-file.js';
import { createSimulation } from '../src/sim/simulation.js';
import { SimWorld } from '../src/world/sim-world.js';
import { wallMs } from '../src/world/live-world.js';

export const title = 'simulator: scheduler throughput and a 1,000-VM day';

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function schedulerEventsPerSecond(events: number): Promise<number> {
  const world = new SimWorld(1);
  // A few hundred timers in flight at once, each re-arming itself: the heap stays realistically full.
  let left = events;
  const fire = (): void => {
    if (--left > 0) world.clock.schedule(1 + (left % 997), fire);
  };
  for (let i = 0; i < 512; i++) world.clock.schedule(i, fire);
  const t0 = wallMs();
  const result = await world.run();
  const ms = wallMs() - t0;
  return result.events / (ms / 1000);
}

/** 40 hosts × 64 cores; 1,000 VMs; about 10% headroom at the daily peak; a batch peak at 09:00. */
export function bigDatacenterYaml(): string {
  return `
name: dc-1000
duration: 1d
sampleEvery: 5m
tickEvery: 5m
datacenter:
  hosts: [{ id: "esx-{001..040}", cpuCores: 64, ramGiB: 1024 }]
  images:
    - { id: rhel, size: 60GiB, os: { family: linux, distro: rhel, version: "8.9" } }
    - { id: win, size: 120GiB, os: { family: windows, distro: windows-server, version: "2019" } }
  vms:
    - { name: "db-{001..100}", image: win, vcpus: 8, ramGiB: 64, workload: db }
    - { name: "app-{001..300}", image: rhel, vcpus: 4, ramGiB: 16, workload: app }
    - { name: "web-{001..350}", image: rhel, vcpus: 2, ramGiB: 8, workload: web }
    - { name: "fx-{001..050}", image: rhel, vcpus: 4, ramGiB: 32, workload: fx }
    - { name: "batch-{001..200}", image: rhel, vcpus: 4, ramGiB: 16, workload: close }
workloads:
  db: { kind: database, base: 0.55 }
  app: { kind: database, base: 0.5 }
  web: { kind: web, base: 0.45 }
  fx: { kind: trading, base: 0.35 }
  close: { kind: batch, work: 16, start: 9h, parallelism: 0.9 }
timeline:
  - { at: 9h, event: load, workload: app, factor: 1.1, for: 8h }
  - { at: 12h, event: host-fail, host: esx-007, for: 2h }
`;
}

export async function run(): Promise<BenchFigure[]> {
  const eps: number[] = [];
  for (let i = 0; i < 5; i++) eps.push(await schedulerEventsPerSecond(2_000_000));

  const scenario = parseScenario(bigDatacenterYaml(), 'dc-1000');
  const walls: number[] = [];
  let events = 0;
  let traceLines = 0;
  let hash = '';
  for (let i = 0; i < 3; i++) {
    const t0 = wallMs();
    const sim = await createSimulation(scenario);
    const report = await sim.runToEnd();
    walls.push(wallMs() - t0);
    events = report.events;
    traceLines = sim.world.trace.count;
    if (hash && hash !== report.traceHash) throw new Error('the 1,000-VM run is not deterministic');
    hash = report.traceHash;
  }
  const wall = median(walls);
  return [
    { name: 'scheduler events per second (median of 5 × 2M)', value: median(eps), unit: 'events/s', target: { op: '>=', value: 1_000_000 } },
    { name: '1,000 VMs × 24 h: wall time (median of 3)', value: wall / 1000, unit: 's', target: { op: '<=', value: 10 }, note: `${events} events, ${traceLines} trace lines` },
    { name: '1,000 VMs × 24 h: virtual hours per wall second', value: 24 / (wall / 1000), unit: 'h/s' },
  ];
}
