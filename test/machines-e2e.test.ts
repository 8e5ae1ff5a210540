import { describe, expect, it } from 'vitest';
import { MachineRuntime, MemorySnapshotStore } from '../src/machines/runtime.js';
import type { FlowConfig } from '../src/machines/flow.js';
import type { MachineEnv } from '../src/machines/env.js';
import { wireMachines } from '../src/machines/wiring.js';
import { parseCloudConfig } from '../src/scenario/cloud.js';
import { createEmulatedCloud } from '../src/providers/emulated/ec2/emulated-cloud.js';
import { EmulatedHypervisor } from '../src/providers/emulated/hypervisor/hypervisor.js';
import { SimWorld } from '../src/world/sim-world.js';
import type { TraceEvent } from '../src/world/types.js';
import { FakeContainers, FakeDirectory, FakeProxy, Faults, sampleGuest } from './machines-doubles.js';

/**
 * The machines against the real emulated hypervisor and the real EC2 adapter
 * talking to the emulated EC2 through msw. The proxy control port is still a
 * double: the proxy core has no control-port adapter yet. Swapping it in is
 * building a different MachineEnv.
 */
const S = 1_000_000;
const config: FlowConfig = {
  timeoutsUs: { loadStagingImage: 600 * S, stageBoot: 120 * S, targetBoot: 300 * S, deactivateRemote: 600 * S, releaseRemote: 300 * S },
  defaultTimeoutUs: 180 * S,
  retry: { maxAttempts: 5, backoffBaseUs: 2 * S, backoffMaxUs: 60 * S, backoffFactor: 2 },
};

describe('machines on the emulated hypervisor and emulated EC2', () => {
  it('transfers a VM O2C and reverses it: the guest config is the original again and nothing is left in the cloud', async () => {
    const world = new SimWorld(11);
    const events: TraceEvent[] = [];
    world.trace.subscribe((e) => events.push(e));
    const hypervisor = new EmulatedHypervisor(world, { hosts: [{ id: 'h1', cpuCores: 32, ramMiB: 262144 }, { id: 'h2', cpuCores: 32, ramMiB: 262144 }] });
    const guest = sampleGuest('web');
    hypervisor.addVm({
      id: 'web', name: 'web', vcpus: 4, ramMiB: 8192, workload: 'web', batch: false, guest, dirtyRateBytesPerS: 10 * 1024 ** 2,
      disks: ['web-d0', 'web-d1', 'web-d2'].map((id) => ({ id, sizeBytes: 1 << 30, tier: 'ssd', imageId: 'img-web' })),
    });
    hypervisor.placeRunning('web', 'h1');
    const cloud = createEmulatedCloud(world, parseCloudConfig({}), 'run-e2e');
    const faults = new Faults();
    const env: MachineEnv = {
      world, hypervisor, cloud, proxy: new FakeProxy(world, hypervisor, faults),
      directory: new FakeDirectory(world, faults), containers: new FakeContainers(world, faults), pollEveryUs: 5 * S,
    };
    const machines = wireMachines(env);
    const rt = new MachineRuntime(world, new MemorySnapshotStore());
    const staging = 'ami-0a5ba6e0c57a9e001';
    try {
      const t = rt.start({ machine: machines.transfer, id: 'web-transfer', src: 'vm/web' }, {
        id: 'web-transfer', config, transfer: { vmId: 'web', kind: 'stateless', direction: 'O2C', stagingImageId: staging, homeHostId: 'h1' },
      });
      await world.run({ maxEvents: 2_000_000 });
      const out = await t.done;
      expect(out.failure).toBeNull();
      expect(out.outcome).toBe('ok');
      expect(hypervisor.vm('web').hostId).toBeNull();
      expect(hypervisor.vm('web').guest.drivers).toEqual(expect.arrayContaining(['nvme', 'ena']));
      expect(cloud.model.liveResourceIds()).toContain(out.data.instanceId);
      // The staging image got its provisioning data (which VM to boot) through the real adapter.
      expect(cloud.model.instanceUserData(out.data.instanceId!)).toContain('"vmId":"web"');
      // Errors on the way (EC2's eventual consistency: NotFound for an instance not yet visible) were retried, not fatal.
      expect(events.filter((e) => e.type === 'machine.error').every((e) => e.data.code === 'InvalidInstanceID.NotFound')).toBe(true);

      const r = rt.start({ machine: machines.reverse, id: 'web-reverse', src: 'vm/web' }, {
        id: 'web-reverse', config,
        reverse: {
          vmId: 'web', preMoveSnapshotId: out.data.snapshotId!, originalGuest: out.data.originalGuest!, instanceId: out.data.instanceId!,
          targetHostId: 'h1', exports: out.data.exports!, persistence: out.data.persistence!, leaseOwner: 'web-transfer', powerOn: true,
        },
      });
      await world.run({ maxEvents: 2_000_000 });
      const rout = await r.done;
      expect(rout.failure).toBeNull();
      expect(rout.outcome).toBe('ok');
      expect(hypervisor.vm('web').guest).toEqual(guest);
      expect(hypervisor.vm('web')).toMatchObject({ hostId: 'h1', power: 'running' });
      expect(cloud.model.liveResourceIds()).not.toContain(out.data.instanceId);
      console.log(`O2C transfer + reverse on emulated providers: ${events.filter((e) => e.type === 'machine.state').length} state entries, ${events.filter((e) => e.type === 'cloud.call').length} cloud calls, ended at ${(world.nowUs / S).toFixed(1)} s virtual`);
    } finally {
      cloud.dispose();
    }
  });
});
