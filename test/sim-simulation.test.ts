import { describe, expect, it } from 'vitest';
import { loadScenarioFile, parseScenario } from '../src/sim/scenario-file.js';
import { reportMetricPaths } from '../src/report/expectations.js';
import { createSimulation } from '../src/sim/simulation.js';
import { DailyCurve } from '../src/providers/emulated/workload/load-curve.js';
import { US_PER_H } from '../src/util/units.js';

const MINI = `
name: mini
duration: 12h
sampleEvery: 10m
tickEvery: 10m
datacenter:
  hosts: [{ id: "h{1..2}", cpuCores: 8, ramGiB: 64 }]
  images: [{ id: img, size: 10GiB, os: { family: linux, distro: rhel, version: "8.9" } }]
  vms:
    - { name: "db-{1..2}", image: img, vcpus: 4, ramGiB: 8, workload: db }
    - { name: "web-{1..3}", image: img, vcpus: 2, ramGiB: 4, workload: web }
    - { name: "fx-1", image: img, vcpus: 2, ramGiB: 4, workload: fx }
    - { name: "job-{1..2}", image: img, vcpus: 4, ramGiB: 8, workload: job }
workloads:
  db: { kind: database, base: 0.6 }
  web: { kind: web, base: 0.5 }
  fx: { kind: trading, base: 0.3, spikes: { perHour: 3, factor: 2.5, meanDuration: 15m } }
  job: { kind: batch, work: 8, start: 2h }
timeline:
  - { at: 3h, event: load, workload: db, factor: 1.3, for: 2h }
  - { at: 4h, event: host-fail, host: h2, for: 1h }
expect:
  - { id: done, metric: totals.batch.unfinished, op: "==", value: 0 }
  - { id: impossible, metric: totals.batch.completionHours, op: "<", value: 1 }
`;

async function run(seed?: number) {
  const sim = await createSimulation(parseScenario(MINI, 'mini.yaml'), seed === undefined ? {} : { seed });
  const report = await sim.runToEnd();
  return { sim, report };
}

describe('simulation determinism', () => {
  it('gives the same trace hash for the same seed, twice in one process', async () => {
    const a = await run();
    const b = await run();
    expect(a.report.traceHash).toMatch(/^[0-9a-f]{64}$/);
    expect(b.report.traceHash).toBe(a.report.traceHash);
    expect(b.report).toEqual(a.report);
  });

  it('gives a different hash for a different seed', async () => {
    const a = await run(1);
    const b = await run(2);
    expect(b.report.traceHash).not.toBe(a.report.traceHash);
    expect(b.report.seed).toBe(2);
  });

  it('does not depend on how the run is stepped or on reports taken while it runs', async () => {
    const whole = await run();
    const sim = await createSimulation(parseScenario(MINI, 'mini.yaml'));
    for (let t = 0; !sim.done; t += 17 * 60_000_000 + 3) {
      await sim.step(t);
      if (!sim.done) expect(sim.report().simulatedHours).toBeCloseTo(sim.world.nowUs / 3.6e9, 3);
    }
    expect(sim.report().traceHash).toBe(whole.report.traceHash);
    expect(sim.report()).toEqual(whole.report);
  });
});

describe('simulation run', () => {
  it('starts and ends the trace, places every VM, and evaluates expectations', async () => {
    const sim = await createSimulation(parseScenario(MINI, 'mini.yaml'));
    const types: string[] = [];
    sim.world.trace.subscribe((e) => types.push(e.type));
    const report = await sim.runToEnd();
    expect(types[0]).toBe('run.start');
    expect(types.filter((t) => t === 'vm.placed').length).toBeGreaterThanOrEqual(8);
    expect(types).toContain('host.load');
    expect(types).toContain('vm.progress');
    expect(types).toContain('host.failed');
    expect(types).toContain('host.recovered');
    expect(types.filter((t) => t === 'vm.task.done')).toHaveLength(2);
    expect(types.slice(-3)).toEqual(['run.end', 'expect.result', 'expect.result']);
    expect(report.expectations.map((e) => [e.id, e.pass])).toEqual([['done', true], ['impossible', false]]);
    expect(sim.world.nowUs).toBe(12 * US_PER_H);
    expect(report.hosts.h2!.failedHours).toBe(1);
  });

  it('reports batch delay against the unconstrained time', async () => {
    const { report } = await run();
    const job = report.vms['job-1']!.task!;
    expect(job.unconstrainedHours).toBe(2); // 8 vCPU-hours at 4 vCPUs
    expect(job.startHours).toBe(2);
    expect(job.completionHours!).toBeGreaterThanOrEqual(2);
    expect(job.delayHours).toBeCloseTo(job.completionHours! - 2, 3);
    expect(report.totals.batch.tasks).toBe(2);
  });

  it('stops early with --until semantics and leaves unfinished work unfinished', async () => {
    const sim = await createSimulation(parseScenario(MINI, 'mini.yaml'), { untilUs: 3 * US_PER_H });
    const report = await sim.runToEnd();
    expect(report.simulatedHours).toBe(3);
    expect(report.totals.batch.unfinished).toBe(2);
    expect(report.totals.batch.completionHours).toBeNull();
    expect(report.expectations[0]!.pass).toBe(false);
  });

  it('produces exactly the metric paths the validator accepts', async () => {
    const scenario = parseScenario(MINI, 'mini.yaml');
    const { report } = await run();
    const actual = new Set<string>();
    const walk = (v: unknown, p: string): void => {
      if (Array.isArray(v)) return;
      if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, p ? `${p}.${k}` : k);
      else actual.add(p);
    };
    const { expectations: _e, series: _s, ...rest } = report;
    walk(rest, '');
    expect([...actual].sort()).toEqual([...reportMetricPaths(scenario)].sort());
  });

  it('runs the quarter-end baseline: batch slowed by saturation, steady services served', async () => {
    // The scenario bursts; its no-burst baseline is the same data center with bursting off.
    const scenario = loadScenarioFile('scenarios/quarter-end.yaml');
    const baseline = { ...scenario, policies: { ...scenario.policies, burst: { ...scenario.policies.burst, enabled: false } }, expect: [] };
    const sim = await createSimulation(baseline);
    const report = await sim.runToEnd();
    expect(report.mode).toBe('no-burst');
    expect(report.totals.batch.unfinished).toBe(0);
    expect(report.totals.batch.slowdown!).toBeGreaterThan(2);
    expect(report.totals.saturation.peakDemandRatio).toBeGreaterThan(1.3);
    expect(report.totals.cpu.steadyServedPct).toBeGreaterThanOrEqual(99);
  });
});

describe('simulated disks', () => {
  it('serves an image disk with generated content at its tier\'s speed, and data disks empty', async () => {
    const text = MINI.replace('images: [{ id: img, size: 10GiB, os: { family: linux, distro: rhel, version: "8.9" } }]',
      'storage: [{ name: slow, preset: hdd, readLatency: 8ms }]\n  images: [{ id: img, size: 10GiB, tier: slow, content: { zeros: 0, random: 1 }, os: { family: linux, distro: rhel, version: "8.9" } }]')
      .replace('{ name: "db-{1..2}", image: img, vcpus: 4, ramGiB: 8, workload: db }', '{ name: "db-{1..2}", image: img, vcpus: 4, ramGiB: 8, workload: db, disks: [{ size: 1GiB, tier: slow }] }');
    const sim = await createSimulation(parseScenario(text, 'disks.yaml'));
    await sim.step(0);
    const root = sim.hypervisor.openDisk('db-1-disk0');
    const data = sim.hypervisor.openDisk('db-1-disk1');
    expect(sim.hypervisor.disk('db-1-disk0')).toMatchObject({ tier: 'slow', imageId: 'img', sizeBytes: 10 * 1024 ** 3 });
    let readAt = -1;
    const reads = Promise.all([root.read(1 << 20, 4096), data.read(0, 4096)]).then((r) => { readAt = sim.world.nowUs; return r; });
    await sim.step(1_000_000);
    const [rootBytes, dataBytes] = await reads;
    expect(rootBytes.some((b) => b !== 0)).toBe(true);
    expect(dataBytes.every((b) => b === 0)).toBe(true);
    expect(readAt).toBeGreaterThanOrEqual(8000);
    // Two clones of one image share its base content.
    const other = sim.hypervisor.openDisk('db-2-disk0');
    const p = other.read(1 << 20, 4096);
    await sim.step(2_000_000);
    expect((await p).equals(rootBytes)).toBe(true);
    expect(sim.guestImage('img').boot.reads.length).toBeGreaterThan(0);
  });
});

describe('load curves', () => {
  it('interpolates linearly and wraps around midnight', () => {
    const c = new DailyCurve([{ hour: 6, factor: 1 }, { hour: 18, factor: 2 }]);
    expect(c.at(6 * US_PER_H)).toBe(1);
    expect(c.at(12 * US_PER_H)).toBe(1.5);
    expect(c.at(18 * US_PER_H)).toBe(2);
    expect(c.at(0)).toBe(1.5); // halfway from 18:00 back to 06:00
    expect(c.at(24 * US_PER_H + 12 * US_PER_H)).toBe(1.5);
    expect(c.mean()).toBeCloseTo(1.5, 9);
  });
});
