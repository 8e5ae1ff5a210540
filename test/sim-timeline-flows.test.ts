import { describe, expect, it } from 'vitest';
import { parseScenario } from '../src/sim/scenario-file.js';
import { createSimulation } from '../src/sim/simulation.js';

const base = (timeline: string, wan = 'wan: { rtt: 20ms, bandwidth: 1Gbit }'): string => `
name: flows
duration: 2h
sampleEvery: 5m
tickEvery: 5m
datacenter:
  hosts: [{ id: "h{1..2}", cpuCores: 16, ramGiB: 64 }]
  images: [{ id: img, size: 2GiB, os: { family: linux, distro: rhel, version: "8.9" }, bootProfile: minimal }]
  vms:
    - { name: db, image: img, vcpus: 2, ramGiB: 1, workload: db }
    - { name: web, image: img, vcpus: 2, ramGiB: 1, workload: web }
workloads:
  db: { kind: database, base: 0.3 }
  web: { kind: web, base: 0.3 }
${wan}
cloud: { region: us-east-1 }
timeline:
${timeline}
`;

interface Flows {
  started: number;
  refused: number;
  byKind: Record<string, { started: number; ok: number; refused: number }>;
  timeline: Record<string, { outcome: string; state: string | null }>;
  list: Array<{ id: string; outcome: string; code?: string }>;
}

async function run(timeline: string) {
  const sim = await createSimulation(parseScenario(base(timeline), 'flows.yaml'));
  const lines: string[] = [];
  // The trace's own line: data keys sorted.
  sim.world.trace.subscribe((e, line) => { if (e.type.startsWith('timeline.')) lines.push(`${e.type} ${JSON.stringify(JSON.parse(line).data)}`); });
  const report = await sim.runToEnd();
  return { flows: report.flows as Flows, lines, report };
}

describe('timeline flow events', () => {
  it('a stateful transfer captures the memory, deactivates, snapshots the disks and runs in the cloud; reverse brings it home', async () => {
    // Before: the snapshot step asked for the memory of the VM it had just deactivated and rolled back.
    const { flows, report } = await run(`
  - { at: 10m, event: transfer, vm: db, kind: stateful }
  - { at: 1h, event: reverse, vm: db }`);
    expect(flows.timeline['0']).toMatchObject({ outcome: 'ok', state: 'running' });
    expect(flows.timeline['1']).toMatchObject({ outcome: 'ok' });
    expect(flows.byKind.transfer).toMatchObject({ started: 1, ok: 1 });
    expect((report.resourcesLeft as { instances: number }).instances).toBe(0);
  }, 300_000);

  it('a flow the run refuses is traced with its code and counted, and the run goes on; rollback undoes a running transfer', async () => {
    const { flows, lines } = await run(`
  - { at: 5m, event: reverse, vm: web }
  - { at: 10m, event: transfer, vm: db }
  - { at: 10m5s, event: rollback, vm: db }
  - { at: 30m, event: rollback, vm: web }`);
    expect(flows.timeline['0']!.outcome).toBe('refused');
    expect(flows.list.find((f) => f.id === 'timeline-0-reverse-web')).toMatchObject({ code: 'E_NOT_IN_CLOUD' });
    expect(flows.timeline['1']).toMatchObject({ outcome: 'rolled-back', state: 'rolledBack' });
    expect(flows.timeline['2']!.outcome).toBe('ok');
    expect(flows.timeline['3']!.outcome).toBe('refused');
    expect(flows.refused).toBe(2);
    expect(lines[0]).toBe('timeline.flow {"id":"timeline-0-reverse-web","index":0,"kind":"reverse","vm":"web"}');
    expect(lines[1]).toMatch(/^timeline\.refused \{"code":"E_NOT_IN_CLOUD","id":"timeline-0-reverse-web","index":0,"message":"web was not moved to the cloud/);
  }, 300_000);

  it('validation names the bad field and what is allowed', () => {
    const bad = (timeline: string, wan?: string) => () => parseScenario(base(timeline, wan), 'flows.yaml');
    expect(bad('  - { at: 10m, event: transfer, vm: dbx }')).toThrow(/timeline\[0\]\.vm: expected a VM name \(closest: db/);
    expect(bad('  - { at: 10m, event: transfer, vm: db, to: onprem }')).toThrow(/timeline\[0\]\.host: expected the on-prem host to move the VM to/);
    expect(bad('  - { at: 10m, event: resize, vm: db, cache: 4KiB }')).toThrow(/timeline\[0\]\.cache: expected a cache of at least 1MiB/);
    expect(bad('  - { at: 10m, event: transfer, vm: db, kind: hot }')).toThrow(/timeline\[0\]\.kind: expected one of stateless, stateful, run-time/);
    expect(bad('  - { at: 10m, event: clone, vm: db }', '')).toThrow(/timeline\[0\]\.event: expected an event that moves no VM \(clone streams disks over the wan: section/);
    expect(bad('  - { at: 10m, event: teleport, vm: db }')).toThrow(/expected one of load, .*transfer, reverse, clone, cutover, migrate, resize, containerize, rollback/);
  });
});
