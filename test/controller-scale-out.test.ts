import { describe, expect, it } from 'vitest';
import { InputError } from '../src/errors.js';
import { parseScenario } from '../src/sim/scenario-file.js';
import { ScenarioSimulation } from '../src/sim/simulation.js';
import { reportMetricPaths } from '../src/report/expectations.js';
import { buildReport, emptyReportInput, type Report } from '../src/report/report.js';
import type { TraceEvent } from '../src/world/types.js';

/**
 * Web-tier scale-out by cloning (src/controller/scale-out/scale-out.ts) through the
 * scenario loader and ScenarioSimulation: the clone machine against the
 * emulated EC2 and the real proxy core over the emulated WAN.
 */

/** A small tier: four 4-vCPU web VMs on one 16-core host, 3x for 2 h from 01:00. */
function yaml(scaleOut: string, extra = ''): string {
  return `
name: small-web
seed: 77
duration: 5h
sampleEvery: 5m
tickEvery: 5m
datacenter:
  hosts:
    - { id: h1, cpuCores: 16, ramGiB: 128 }
  storage:
    - { name: ssd, preset: ssd }
  images:
    - { id: web-img, size: 4GiB, os: { family: linux, distro: ubuntu, version: "22.04" }, tier: ssd, app: web, bootProfile: minimal }
  vms:
    - { name: "web-{1..4}", image: web-img, vcpus: 4, ramGiB: 8, workload: shop }
    - { name: db, image: web-img, vcpus: 4, ramGiB: 16, workload: db }
workloads:
  shop: { kind: web, base: 0.35, daily: [{ hour: 0, factor: 1 }] }
  db: { kind: database, base: 0.5 }
wan: { rtt: 30ms, bandwidth: 1Gbit }
cloud: { region: us-east-1 }
policies:
  scaleOut:
${scaleOut.split('\n').map((l) => `    ${l}`).join('\n')}
timeline:
  - { at: 1h, event: load, workload: shop, factor: 3, for: 2h }
${extra}`;
}

const ON = `enabled: true
tier: shop
template: web-2
trigger: { demandPerMemberAbove: 0.6, for: 10m }
release: { demandPerMemberBelow: 0.45, for: 20m }
maxClones: 2
clonesPerStep: 2
cooldown: 10m`;

function parseError(text: string): InputError {
  try {
    parseScenario(text, 'test.yaml');
  } catch (err) {
    if (err instanceof InputError) return err;
    throw err;
  }
  throw new Error('the scenario parsed');
}

async function run(seed?: number): Promise<{ report: Report; events: TraceEvent[]; sim: ScenarioSimulation }> {
  const events: TraceEvent[] = [];
  const sim = new ScenarioSimulation(parseScenario(yaml(ON), 'small-web.yaml'), { ...(seed === undefined ? {} : { seed }), noBaseline: true, onTrace: (e) => events.push(e) });
  const report = await sim.runToEnd();
  return { report, events, sim };
}

type Section = {
  clonesLaunched: number; clonesDropped: number; clonesLeft: number; clonesFailed: number; peakClones: number;
  reads: { siblingBlocks: number; remoteBlocks: number; bootSiblingBlocks: number; bootRemoteBlocks: number };
  io: { guestBytesRead: number; guestBytesWritten: number; cacheHitRatio: number | null };
  wan: { firstCloneBootBytes: number | null; laterClonesMeanBootBytes: number | null };
  timeToServe: { p50Seconds: number | null; p95Seconds: number | null };
  tier: { servedPct: number | null; cloneServedVcpuHours: number; peakDemandPerMemberWithoutClones: number; peakDemandPerMember: number };
  cost: { cloudUsd: number; instanceHours: number };
  clones: Array<{
    vm: string; state: string; bootWanBytes: number; siblingBlocks: number; servingHours: number; error: string | null;
    guestBytesRead: number; guestBytesWritten: number; cacheHitRatio: number | null; meanReadLatencyMs: number | null;
  }>;
};

describe('policies.scaleOut', () => {
  it('is off when the block is absent, and the report section has the same keys with zeros and nulls', () => {
    const s = parseScenario(yaml(ON).replace(/ {2}scaleOut:[\s\S]*?\ntimeline:/, 'timeline:'), 't.yaml');
    expect(s.policies.scaleOut).toMatchObject({ enabled: false, maxClones: 4, clonesPerStep: 2, persistence: 'cloud-only', siblingReads: true });
    // Defaults written in code are microseconds already (a document's bare number is seconds).
    expect(s.policies.scaleOut).toMatchObject({ cooldownUs: 15 * 60e6 });
    const noDurations = parseScenario(yaml(ON.replace('cooldown: 10m', '').replace('0.6, for: 10m', '0.6').replace('0.45, for: 20m', '0.45')), 't.yaml');
    const so = noDurations.policies.scaleOut as { cooldownUs: number; trigger: { sustainedUs: number }; release: { sustainedUs: number } };
    expect(so.cooldownUs).toBe(15 * 60e6);
    expect(so.trigger.sustainedUs).toBeLessThan(24 * 3600e6);
    expect(so.release.sustainedUs).toBeLessThan(24 * 3600e6);
    const empty = buildReport(emptyReportInput(s)).scaleOut as Section;
    expect(empty).toMatchObject({ clonesLaunched: 0, clonesLeft: 0, timeToServe: { p50Seconds: null }, wan: { firstCloneBootBytes: null }, clones: [] });
    const paths = reportMetricPaths(s);
    for (const p of ['scaleOut.clonesLaunched', 'scaleOut.wan.laterToFirstRatio', 'scaleOut.tier.servedPct', 'scaleOut.baseline.tierServedPct', 'scaleOut.cost.cloudUsd']) expect(paths.has(p)).toBe(true);
  });

  it('names the field and what is allowed for bad input', () => {
    expect(parseError(yaml(ON.replace('tier: shop', 'tier: db'))).message).toMatch(/: policies\.scaleOut\.tier: expected a workload of kind web .*shop/);
    expect(parseError(yaml(ON.replace('tier: shop', 'tier: nope'))).message).toMatch(/: policies\.scaleOut\.tier: expected a web workload name: shop/);
    expect(parseError(yaml(ON.replace('template: web-2', 'template: db'))).message).toMatch(/: policies\.scaleOut\.template: expected a VM of the shop workload: web-1, web-2, web-3, web-4/);
    expect(parseError(yaml(ON.replace('demandPerMemberBelow: 0.45', 'demandPerMemberBelow: 0.7'))).message)
      .toMatch(/: policies\.scaleOut\.release\.demandPerMemberBelow: expected a value below trigger\.demandPerMemberAbove \(0\.6\)/);
    expect(parseError(yaml(ON.replace('clonesPerStep: 2', 'clonesPerStep: 3'))).message).toMatch(/: policies\.scaleOut\.clonesPerStep: expected at most maxClones \(2\)/);
    expect(parseError(yaml(ON.replace('maxClones: 2', 'maxClones: 0'))).message).toMatch(/: policies\.scaleOut\.maxClones/);
    expect(parseError(yaml(`${ON}\npersistence: tape`)).message).toMatch(/: policies\.scaleOut\.persistence: .*cloud-only.*on-prem/);
    expect(parseError(yaml(ON.replace('cooldown: 10m', 'cooldown: soon'))).message).toMatch(/: policies\.scaleOut\.cooldown/);
    const unknown = parseError(yaml(`${ON}\nmaxClone: 3`));
    expect(unknown.code).toBe('E_UNKNOWN_FIELD');
    expect(unknown.message).toMatch(/: policies\.scaleOut\.maxClone: unknown field; allowed here: .*maxClones/);
    expect(parseError(yaml(ON.replace('for: 10m', 'for: 10m, over: 1'))).message).toMatch(/: policies\.scaleOut\.trigger\.over: unknown field/);
    // The clones stream over the WAN: a scenario without one is refused before the run.
    const noWan = parseScenario(yaml(ON).replace('wan: { rtt: 30ms, bandwidth: 1Gbit }\n', ''), 't.yaml');
    expect(() => new ScenarioSimulation(noWan)).toThrow(/policies\.scaleOut\.enabled: .*needs a wan: section/);
    // expect: clauses may name the section's metrics; a misspelt one is refused before the run.
    expect(parseError(yaml(ON, 'expect:\n  - { id: x, metric: scaleOut.clonesLaunchd, op: ">=", value: 1 }')).message).toMatch(/scaleOut\.clonesLaunchd/);
    expect(() => parseScenario(yaml(ON, 'expect:\n  - { id: x, metric: scaleOut.wan.laterToFirstRatio, op: "<", value: 1 }'), 't.yaml')).not.toThrow();
  });
});

describe('scale-out by cloning (FIG 12-14)', () => {
  it('clones at the peak, spreads the tier over the clones, reads siblings, and drops every clone after it; same seed, same trace', async () => {
    const { report, events, sim } = await run();
    const so = report.scaleOut as Section;
    expect(so.clonesLaunched).toBe(2);
    expect(so.clonesFailed).toBe(0);
    expect(so.peakClones).toBe(2);

    // One clone machine per clone, every FIG 12 step in the trace under the clone's own source.
    for (const vm of ['web-2-c1', 'web-2-c2']) {
      const states = events.filter((e) => e.src === `vm/${vm}` && e.type === 'machine.state').map((e) => (e.data as { state: string }).state);
      expect(states).toEqual(expect.arrayContaining(['snapshot', 'cloneVolumes', 'adapt.regenerateIdentity', 'provision', 'startCacheFill', 'stageBoot', 'targetBoot', 'joinDomain', 'running']));
      expect(states.indexOf('joinDomain')).toBeLessThan(states.indexOf('running'));
      expect(events.some((e) => e.src === `vm/${vm}` && e.type === 'machine.done' && (e.data as { outcome: string }).outcome === 'ok')).toBe(true);
    }
    const decisions = events.filter((e) => e.type === 'controller.decision').map((e) => e.data as { action: string; vm: string });
    expect(decisions.filter((d) => d.action === 'clone').map((d) => d.vm)).toEqual(['web-2-c1', 'web-2-c2']);
    expect(decisions.filter((d) => d.action === 'drop').map((d) => d.vm).sort()).toEqual(['web-2-c1', 'web-2-c2']);

    // FIG 14: the second clone boots after the first and reads its cache instead of the WAN.
    const [c1, c2] = so.clones;
    expect(c2!.siblingBlocks).toBeGreaterThan(0);
    expect(so.reads.bootSiblingBlocks).toBeGreaterThan(so.reads.bootRemoteBlocks);
    expect(so.reads.siblingBlocks).toBeGreaterThanOrEqual(so.reads.bootSiblingBlocks);
    expect(c2!.bootWanBytes).toBeLessThan(c1!.bootWanBytes / 4);
    expect(so.wan.laterClonesMeanBootBytes).toBe(c2!.bootWanBytes);
    expect(so.timeToServe.p50Seconds).toBeGreaterThan(0);

    // The clones carried tier load while they served; per-member demand fell below what the members alone would carry.
    expect(so.tier.cloneServedVcpuHours).toBeGreaterThan(0);
    expect(so.tier.peakDemandPerMemberWithoutClones).toBeGreaterThan(0.6);
    expect(so.tier.servedPct).toBeGreaterThanOrEqual(99);
    for (const c of so.clones) expect(c.servingHours).toBeGreaterThan(1);
    // While they served, the clones' guests did application I/O through their storage targets.
    for (const c of so.clones) {
      expect(c.guestBytesRead).toBeGreaterThan(0);
      expect(c.guestBytesWritten).toBeGreaterThan(0);
      expect(c.cacheHitRatio).toBeGreaterThan(0);
      expect(c.meanReadLatencyMs).toBeGreaterThan(0);
    }
    expect(so.io.guestBytesRead).toBe(so.clones.reduce((n, c) => n + c.guestBytesRead, 0));
    expect(so.cost.cloudUsd).toBeGreaterThan(0);

    // After the peak every clone is gone: instance terminated, target and clone disks dropped, domain left.
    expect(so.clonesDropped).toBe(2);
    expect(so.clonesLeft).toBe(0);
    expect(so.clones.every((c) => c.state === 'dropped')).toBe(true);
    const m = await sim.machineEnv();
    for (const vm of ['web-2-c1', 'web-2-c2']) expect(m.proxy.proxyIds(vm)).toEqual([]);
    const instances = events.filter((e) => e.type === 'cloud.instance').map((e) => e.data as { id: string; state: string });
    const launched = new Set(instances.map((i) => i.id));
    expect(launched.size).toBe(2);
    for (const id of launched) expect(instances.filter((i) => i.id === id).at(-1)!.state).toMatch(/terminated|shutting-down/);
    const leaves = events.filter((e) => e.type === 'directory.leave').map((e) => e.data as { machine: string; removed: boolean });
    expect(leaves.length).toBe(2);
    expect(leaves.every((l) => l.removed)).toBe(true);
    // The template keeps running on-prem and no disk of it is leased (clones take no lease).
    expect(sim.hypervisor.vm('web-2')).toMatchObject({ power: 'running' });
    expect(sim.hypervisor.diskLeaseOwner('web-2-disk0')).toBeNull();

    const again = await run();
    expect(again.report.traceHash).toBe(report.traceHash);
    expect(again.report.scaleOut).toEqual(report.scaleOut);
  }, 120_000);

  it('a clone whose launch fails is rolled back and reported; the next step after the cool-down serves', async () => {
    // EC2 has no capacity for RunInstances from 01:05 to 01:25: the first step (01:10) and the one after its cool-down (01:20) fail.
    const text = yaml(ON).replace('cloud: { region: us-east-1 }', 'cloud: { region: us-east-1, faults: [{ at: 1h5m, until: 1h25m, error: InsufficientInstanceCapacity, api: RunInstances }] }');
    const events: TraceEvent[] = [];
    const sim = new ScenarioSimulation(parseScenario(text, 'faults.yaml'), { noBaseline: true, onTrace: (e) => events.push(e) });
    const so = (await sim.runToEnd()).scaleOut as Section;
    expect(so.clonesFailed).toBeGreaterThanOrEqual(1);
    expect(so.clonesLaunched).toBe(2);
    expect(so.clonesLeft).toBe(0);
    const m = await sim.machineEnv();
    const failed = so.clones.filter((c) => c.state === 'failed');
    expect(failed.length).toBe(so.clonesFailed);
    for (const c of failed) {
      const done = events.find((e) => e.src === `vm/${c.vm}` && e.type === 'machine.done')!.data as { outcome: string };
      expect(done.outcome).not.toBe('ok');
      expect(m.proxy.proxyIds(c.vm)).toEqual([]);
      expect(c.error).toMatch(/InsufficientInstanceCapacity/);
    }
    // Only the clones that served ever had an instance, and none is left.
    const instances = events.filter((e) => e.type === 'cloud.instance').map((e) => e.data as { id: string; state: string });
    const ids = new Set(instances.map((i) => i.id));
    expect(ids.size).toBe(2);
    for (const id of ids) expect(instances.filter((i) => i.id === id).at(-1)!.state).toMatch(/terminated|shutting-down/);
  }, 120_000);

  it('a drop whose TerminateInstances keeps failing rolls back through the clone-drop machine: the clone serves again and a later drop removes it', async () => {
    // The release drops the clones at about 03:25; EC2 refuses TerminateInstances from 03:00 to 03:40.
    const text = yaml(ON).replace('cloud: { region: us-east-1 }', 'cloud: { region: us-east-1, faults: [{ at: 3h, until: 3h40m, error: InternalError, api: TerminateInstances }] }');
    const events: TraceEvent[] = [];
    const sim = new ScenarioSimulation(parseScenario(text, 'drop-faults.yaml'), { noBaseline: true, onTrace: (e) => events.push(e) });
    const so = (await sim.runToEnd()).scaleOut as Section;
    expect(so).toMatchObject({ clonesLaunched: 2, clonesDropped: 2, clonesLeft: 0, clonesFailed: 0 });
    for (const c of so.clones) {
      const done = events.filter((e) => e.src === `vm/${c.vm}` && e.type === 'machine.done' && e.data.machine === 'cloneDrop');
      expect(done.map((e) => e.data.outcome)).toEqual(['rolled-back', 'ok']);
      // The terminate was retried, then the target reopened on the same instance and the clone served on.
      const states = events.filter((e) => e.src === `vm/${c.vm}` && e.type === 'machine.state' && e.data.machine === 'cloneDrop').map((e) => e.data.state);
      expect(states.filter((s) => s === 'terminate.backoff').length).toBeGreaterThan(0);
      expect(states).toContain('rolledBack');
      const placed = events.filter((e) => e.src === `vm/${c.vm}` && e.type === 'vm.placed').map((e) => e.data.where);
      expect(placed).toEqual(['cloud', 'none']);
      expect(c.error).toMatch(/^InternalError: drop rolled-back at terminate/);
      expect(c.state).toBe('dropped');
    }
    const m = await sim.machineEnv();
    for (const vm of ['web-2-c1', 'web-2-c2']) expect(m.proxy.proxyIds(vm)).toEqual([]);
  }, 120_000);

  it('without the policy the tier runs short at the peak (the baseline the scenario compares with)', async () => {
    const sim = new ScenarioSimulation(parseScenario(yaml(ON.replace('enabled: true', 'enabled: false')), 'off.yaml'), { noBaseline: true });
    const report = await sim.runToEnd();
    const so = report.scaleOut as Section;
    expect(so.clonesLaunched).toBe(0);
    expect(so.tier.servedPct).toBeLessThan(97);
    expect(sim.scaleOut).toBeNull();
  }, 60_000);
});
