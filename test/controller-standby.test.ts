import { describe, expect, it } from 'vitest';
import { parseScenario } from '../src/sim/scenario-file.js';
import { createSimulation } from '../src/sim/simulation.js';
import type { TraceEvent } from '../src/world/types.js';

/**
 * Three 8-core hosts with RAM for all VMs on three but not on two: when one
 * fails, HA restarts what fits and the controller runs the rest in the cloud
 * as standby, through the transfer machine, until the host recovers.
 */
const SCENARIO = `
name: mini-standby
duration: 6h
sampleEvery: 5m
tickEvery: 5m
datacenter:
  ha: { enabled: true, restartAfter: 2m }
  hosts: [{ id: "h{1..3}", cpuCores: 8, ramGiB: 24 }]
  images: [{ id: img, size: 2GiB, os: { family: linux, distro: rhel, version: "8.9" }, bootProfile: minimal }]
  vms:
    - { name: "app-{1..3}", image: img, vcpus: 4, ramGiB: 16, workload: app }
    - { name: "job-{1..3}", image: img, vcpus: 2, ramGiB: 4, workload: job }
workloads:
  app: { kind: database, base: 0.5 }
  job: { kind: batch, work: 4, start: 30m, parallelism: 1 }
wan: { rtt: 20ms, bandwidth: 1Gbit }
cloud: { region: us-east-1 }
policies:
  burst:
    enabled: true
    maxVms: 0
    standby: { after: 5m }
    io: { every: 10m, ops: 8 }
timeline:
  - { at: 1h, event: host-fail, host: h2, for: 2h }
expect:
  - { id: standby, metric: burst.standby.vms, op: ">=", value: 1 }
`;

describe('standby for a failed host', () => {
  it('runs the VMs HA could not restart in the cloud through the transfer machine and brings them back to their host when it recovers', async () => {
    const events: TraceEvent[] = [];
    const sim = await createSimulation(parseScenario(SCENARIO, 'mini-standby.yaml'), {
      noBaseline: true, onTrace: (e) => { if (e.type === 'machine.state' || e.type === 'controller.decision' || e.type === 'host.failed' || e.type === 'host.recovered') events.push(e); },
    });
    const report = await sim.runToEnd();
    const b = report.burst as any;
    expect(b.standby.vms).toBeGreaterThanOrEqual(1);
    expect(b.standby.returned).toBe(b.standby.vms);
    expect(b.standby.stillInCloud).toBe(0);
    expect(b.vmsFailed).toBe(0);
    // Found down 5 min after the failure at the first tick, running in the cloud within minutes of that.
    expect(b.standby.maxDowntimeMinutes).toBeLessThan(15);
    const failedAt = events.find((e) => e.type === 'host.failed')!.t;
    const recoveredAt = events.find((e) => e.type === 'host.recovered')!.t;
    const standby = Object.entries(b.vms).filter(([, v]: [string, any]) => v.cause === 'standby') as Array<[string, any]>;
    expect(standby.length).toBe(b.standby.vms);
    for (const [name, v] of standby) {
      const decision = events.find((e) => e.type === 'controller.decision' && (e.data as any).vm === name && (e.data as any).action === 'standby')!;
      expect(decision.t).toBeGreaterThanOrEqual(failedAt + 5 * 60e6);
      const states = events.filter((e) => e.src === `vm/${name}`).map((e) => `${(e.data as any).machine}.${(e.data as any).state}`);
      expect(states).toContain('transfer.targetBoot');
      expect(states).toContain('transfer.running');
      // The reverse restored it, then its instance machine heard it is back on-prem.
      expect(states.slice(-2)).toEqual(['reverse.restored', 'instance.onpremRunning']);
      expect(states).toContain('instance.returning');
      // Home only after the host came back, and onto it.
      const home = v.timeline.findLast((t: any) => t.state === 'instance.onpremRunning');
      expect(home.atHours * 3600e6).toBeGreaterThanOrEqual(recoveredAt);
      expect(sim.hypervisor.vm(name)).toMatchObject({ hostId: 'h2', power: 'running' });
      expect(sim.hypervisor.diskLeaseOwner(`${name}-disk0`)).toBeNull();
    }
    // HA restarted the others on the survivors; nobody is left down.
    for (const vm of sim.hypervisor.vms()) expect(vm.power, vm.id).toBe('running');
  }, 300_000);
});
