import { describe, expect, it } from 'vitest';
import { InputError } from '../src/errors.js';
import { parseScenario } from '../src/sim/scenario-file.js';
import { ScenarioSimulation } from '../src/sim/simulation.js';
import { reportMetricPaths } from '../src/report/expectations.js';
import type { Report } from '../src/report/report.js';
import type { TraceEvent } from '../src/world/types.js';

/**
 * The permanent migration wave (src/controller/migration-wave/migration-wave.ts) through the
 * scenario loader and ScenarioSimulation: transfer and migration machines
 * against the emulated EC2 and the real proxy core over the emulated WAN.
 */

const MiB = 2 ** 20;

/** Three thin VMs (2 GiB boot images with ~60 MiB of data, one with an empty data disk), two at a time. */
function yaml(migrate: string, timeline = ''): string {
  return `
name: small-wave
seed: 4242
duration: 2h
sampleEvery: 5m
tickEvery: 5m
datacenter:
  hosts:
    - { id: h1, cpuCores: 32, ramGiB: 128 }
  storage:
    - { name: ssd, preset: ssd }
  images:
    - { id: img, size: 2GiB, os: { family: linux, distro: rhel, version: "8.9" }, tier: ssd, app: generic, bootProfile: minimal,
        content: { zeros: 0.97, random: 0.012, repeated: 0.009, text: 0.009 } }
  vms:
    - { name: "vm-{1..2}", image: img, vcpus: 2, ramGiB: 4, workload: app }
    - { name: vm-3, image: img, vcpus: 2, ramGiB: 4, workload: app, disks: [{ size: 1GiB }] }
    - { name: keep, image: img, vcpus: 2, ramGiB: 4, workload: other }
workloads:
  app: { kind: database, base: 0.3 }
  other: { kind: database, base: 0.3 }
wan: { rtt: 30ms, bandwidth: 200Mbit }
cloud: { region: us-east-1 }
policies:
  burst: { cache: { size: 64MiB }, prefetch: false }
  migrate:
${migrate.split('\n').map((l) => `    ${l}`).join('\n')}
${timeline ? `timeline:\n${timeline}` : ''}`;
}

const ON = `enabled: true
workloads: [app]
start: 5m
waveSize: 2
syncChunk: 4MiB
syncInterval: { initial: 2s, min: 500ms, factor: 0.5 }
retry: { attempts: 10, backoff: 2s, backoffMax: 30s }`;

function parseError(text: string): InputError {
  try {
    parseScenario(text, 'test.yaml');
  } catch (err) {
    if (err instanceof InputError) return err;
    throw err;
  }
  throw new Error('expected the scenario to be refused');
}

interface Run {
  report: Report;
  sim: ScenarioSimulation;
  events: TraceEvent[];
}

async function run(migrate: string, timeline = ''): Promise<Run> {
  const events: TraceEvent[] = [];
  const sim = new ScenarioSimulation(parseScenario(yaml(migrate, timeline), 'test.yaml'), { onTrace: (e) => events.push(e) });
  // Stop once the wave is over: the rest of the run is idle hosts.
  const wave = sim.migrationWave!;
  while (wave.endedUs === null && sim.world.nowUs < sim.endUs) await sim.step(sim.world.nowUs + 300_000_000);
  await sim.step(sim.endUs);
  return { report: sim.report(), sim, events };
}

type VmFigures = { state: string; timeline: Array<{ atHours: number; state: string }>; migrated: boolean; retired: boolean; runsFromVolumes: boolean; inCloudHours: number | null; syncedHours: number | null;
  rounds: number; bytes: { allocated: number; fetched: number; synced: number; disk: number; reSent: number } };
type Section = { migrated: number; failed: number; unfinished: number; retired: number; runningFromVolumes: number; bytes: { reSent: number; fetched: number; allocated: number };
  outage: { count: number; stallSeconds: number; roundsCaught: number }; downtime: { p50Seconds: number | null }; vms: Record<string, VmFigures> };
const section = (r: Report): Section => r.migration as Section;

describe('policies.migrate', () => {
  it('errors name the field and say what is allowed', () => {
    const cases: Array<[string, RegExp]> = [
      [ON.replace('waveSize: 2', 'waveSize: 0'), /policies\.migrate\.waveSize: expected an integer >= 1/],
      [ON.replace('workloads: [app]', 'workloads: [ap]'), /policies\.migrate\.workloads\[0\]: expected a workload name: app, other/],
      [`${ON}\nvms: "web-*"`, /policies\.migrate\.vms(\[0\])?: expected a glob matching some VM in datacenter\.vms/],
      [`${ON}\nvms: ["vm-*", "db-*"]`, /policies\.migrate\.vms\[1\]: expected a glob matching some VM/],
      [`${ON}\ncutover: { when: window }`, /policies\.migrate\.cutover\.window: expected a window \{ start, length \}/],
      [`${ON}\ncutover: { when: later }`, /policies\.migrate\.cutover\.when: expected one of synced, window/],
      [`${ON}\ncutover: { when: window, window: { start: 25h, length: 2h } }`, /policies\.migrate\.cutover\.window\.start: expected a time after midnight below 24h/],
      [ON.replace('min: 500ms', 'min: 5s'), /policies\.migrate\.syncInterval\.min: expected a positive duration no longer than initial/],
      [ON.replace('syncChunk: 4MiB', 'syncChunk: 64KiB'), /policies\.migrate\.syncChunk: expected a size of at least 1MiB/],
      [`${ON}\nvolumeType: magnetic`, /policies\.migrate\.volumeType: expected one of gp3, gp2, io1, io2, standard/],
      [`${ON}\nrate: 10MB/s`, /policies\.migrate\.rate: unknown field; allowed here: enabled, vms, workloads/],
      [ON.replace('backoffMax: 30s', 'backoffMax: 1s'), /policies\.migrate\.retry\.backoffMax: expected a duration no shorter than backoff/],
    ];
    for (const [migrate, message] of cases) expect(parseError(yaml(migrate)).message).toMatch(message);
    // A disabled block still has to be well formed, and its defaults parse.
    expect(parseError(yaml('enabled: false\nwaveSize: -1')).message).toMatch(/policies\.migrate\.waveSize/);
    const s = parseScenario(yaml('enabled: false'), 'test.yaml');
    expect(s.policies.migrate).toMatchObject({ enabled: false, waveSize: 8, syncChunkBytes: 64 * MiB, cutover: { when: 'synced', window: null } });
  });

  it('report.migration.* are metrics expect: clauses can name before the run', () => {
    const paths = reportMetricPaths(parseScenario(yaml(ON), 'test.yaml'));
    for (const p of ['migration.migrated', 'migration.failed', 'migration.bytes.reSent', 'migration.downtime.p95Seconds', 'migration.durationHours',
      'migration.outage.stallSeconds', 'migration.vms.vm-1.bytes.fetched', 'migration.runningFromVolumes']) expect(paths.has(p)).toBe(true);
    expect(paths.has('migration.vms.keep.state')).toBe(false);
  });

  it('the cut-over rule: when synced at once; with a window, at its next opening', () => {
    const H = 3_600_000_000;
    const sim = new ScenarioSimulation(parseScenario(yaml(`${ON}\ncutover: { when: window, window: { start: 22h, length: 4h } }`), 'test.yaml'));
    const wave = sim.migrationWave!;
    expect(wave.untilCutoverAllowedUs(10 * H)).toBe(12 * H);
    expect(wave.untilCutoverAllowedUs(23 * H)).toBe(0);
    // 01:00 the next day is inside the window that opened at 22:00.
    expect(wave.untilCutoverAllowedUs(25 * H)).toBe(0);
    expect(wave.untilCutoverAllowedUs(26 * H + 1)).toBe(20 * H - 1);
    const now = new ScenarioSimulation(parseScenario(yaml(ON), 'test.yaml')).migrationWave!;
    expect(now.untilCutoverAllowedUs(10 * H)).toBe(0);
  });
});

describe('migration wave', () => {
  it('a VM whose disk cannot be opened fails alone; the wave ends and says why', async () => {
    // zeros 0.995 leaves no room for the guest file tree: opening the disk throws E_GUEST_DISK_FULL.
    const text = yaml(ON).replace('content: { zeros: 0.97, random: 0.012, repeated: 0.009, text: 0.009 }', 'content: { zeros: 0.995, random: 0.005 }');
    const sim = new ScenarioSimulation(parseScenario(text, 'test.yaml'));
    await sim.step(sim.endUs);
    const m = section(sim.report());
    expect(m).toMatchObject({ migrated: 0, failed: 3, unfinished: 0 });
    expect((sim.report().migration as { vms: Record<string, { error: string }> }).vms['vm-1']!.error).toMatch(/E_GUEST_DISK_FULL/);
    expect(sim.migrationWave!.endedUs).not.toBeNull();
  });

  it('content.seed pins an image: the same bytes under two run seeds (without it they differ)', async () => {
    const bytes = async (seed: number, pinned: boolean): Promise<Buffer> => {
      // This sparse an image fits its file tree on some seeds only (4242 does); a denser one fits on any.
      const text = pinned ? yaml(ON).replace('text: 0.009 }', 'text: 0.009, seed: 4242 }')
        : yaml(ON).replace('content: { zeros: 0.97, random: 0.012, repeated: 0.009, text: 0.009 }', 'content: { zeros: 0.5, random: 0.5 }');
      const sim = new ScenarioSimulation(parseScenario(text, 'test.yaml'), { seed });
      const disk = sim.guestImage('img').disk('vm-1-disk0');
      const first = (await disk.extents(0, disk.size())).find((e) => e.type === 'data')!;
      return Buffer.from(await disk.read(first.offset, 64 * 1024));
    };
    expect((await bytes(1, true)).equals(await bytes(2, true))).toBe(true);
    expect((await bytes(1, false)).equals(await bytes(2, false))).toBe(false);
  });

  it('migrates every selected VM; across a WAN outage with reset nothing is fetched twice; same seed, same trace', async () => {
    const calm = await run(ON);
    const c = section(calm.report);
    expect(c).toMatchObject({ migrated: 3, failed: 0, unfinished: 0, retired: 3, runningFromVolumes: 3 });
    expect(c.bytes.reSent).toBe(0);
    // The sync moves the allocated chunks and nothing else: holes come from the allocation map.
    expect(c.bytes.fetched).toBe(c.bytes.allocated);
    expect(c.bytes.allocated).toBeGreaterThan(3 * 40 * MiB);
    expect(c.vms.keep).toBeUndefined();
    for (const vm of ['vm-1', 'vm-2', 'vm-3']) {
      const v = c.vms[vm]!;
      expect(v).toMatchObject({ state: 'migrated', migrated: true, retired: true, runsFromVolumes: true });
      expect(v.bytes.synced).toBe(v.bytes.disk);
      expect(v.rounds).toBeGreaterThan(3);
      // Every VM's migration machine went through the FIG 17 states to its final state.
      const states = calm.events.filter((e) => e.src === `vm/${vm}` && e.type === 'machine.state' && e.data.machine === 'migration').map((e) => e.data.state);
      for (const s of ['compatibilityCheck', 'setupStorage', 'enterMigrationMode', 'sync', 'syncWait', 'awaitWindow', 'cutover.stopInstance', 'cutover.attachVolumes', 'cutover.reboot', 'cutover.detachProxies', 'migrated']) {
        expect(states, `${vm} ${s}`).toContain(s);
      }
      expect(calm.events.some((e) => e.src === `vm/${vm}` && e.type === 'machine.done' && e.data.machine === 'migration' && e.data.outcome === 'ok')).toBe(true);
      // Its instance machine followed it out and to migrated (goal migrated throughout); then the retire machine ran.
      const instance = calm.events.filter((e) => e.src === `vm/${vm}` && e.type === 'machine.state' && e.data.machine === 'instance').map((e) => `${e.data.state}/${e.data.goal}`);
      expect(instance).toEqual(['onpremRunning/migrated', 'deactivated/migrated', 'decoupled/migrated', 'cloudStreaming/migrated', 'migrating/migrated', 'migrated/migrated']);
      const timeline = v.timeline.map((t) => t.state);
      expect(timeline.filter((t) => t.startsWith('retire.'))).toEqual(['retire.releaseDisks', 'retire.deleteSnapshot', 'retire.verify', 'retire.retired']);
      expect(timeline.indexOf('retire.releaseDisks')).toBeGreaterThan(timeline.indexOf('instance.migrated'));
    }
    // The on-prem VM is retired; the one not selected still runs on-prem.
    const hv = calm.sim.hypervisor;
    for (const vm of ['vm-1', 'vm-2', 'vm-3']) expect(hv.vm(vm)).toMatchObject({ hostId: null, power: 'stopped' });
    expect(hv.vm('keep').power).toBe('running');
    // The volumes hold the disk: compare the allocated ranges of vm-3's boot disk with the image content.
    const sme = await calm.sim.machineEnv();
    const disk = calm.sim.guestImage('img').disk('vm-3-disk0');
    const volumeId = (calm.sim.migrationWave!.records.get('vm-3')!.volumes)['vm-3-disk0']!;
    let compared = 0;
    for (const e of (await disk.extents(0, disk.size())).filter((x) => x.type === 'data').slice(0, 40)) {
      const want = await disk.read(e.offset, Math.min(e.length, MiB));
      expect(Buffer.compare(await sme.proxy.volume(volumeId).read(e.offset, want.length), want)).toBe(0);
      compared += want.length;
    }
    expect(compared).toBeGreaterThan(MiB);

    // The same wave with a 90 s outage (every connection reset) in the middle of vm-1's sync.
    const v1 = c.vms['vm-1']!;
    const midUs = Math.round(((v1.inCloudHours! + v1.syncedHours!) / 2) * 3_600_000_000);
    const outage = `  - { at: ${midUs / 1e6}s, event: wan-outage, for: 90s, reset: true }`;
    const flap = await run(ON, outage);
    const f = section(flap.report);
    expect(f).toMatchObject({ migrated: 3, failed: 0, retired: 3, runningFromVolumes: 3 });
    expect(f.outage.count).toBe(1);
    expect(f.outage.roundsCaught).toBeGreaterThanOrEqual(1);
    expect(f.outage.stallSeconds).toBeGreaterThanOrEqual(90);
    expect(flap.events.some((e) => e.type === 'wan.outage' && e.data.reset === true)).toBe(true);
    // Nothing synced twice: the same bytes fetched per VM as without the outage, none re-sent.
    expect(f.bytes.reSent).toBe(0);
    for (const vm of ['vm-1', 'vm-2', 'vm-3']) expect(f.vms[vm]!.bytes.fetched).toBe(c.vms[vm]!.bytes.fetched);

    // Same seed, same trace.
    const again = await run(ON, outage);
    expect(again.report.traceHash).toBe(flap.report.traceHash);
    expect(again.report.migration).toEqual(flap.report.migration);
    console.log(`wave of 3: ${(c.bytes.fetched / MiB).toFixed(1)} MiB fetched for ${(c.bytes.allocated / MiB).toFixed(1)} MiB allocated; ` +
      `with a 90 s outage: stalled ${f.outage.stallSeconds} s, ${f.outage.roundsCaught} rounds caught, re-sent ${f.bytes.reSent}; downtime p50 ${c.downtime.p50Seconds} s`);
  }, 300_000);
});
