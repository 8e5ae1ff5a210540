import { describe, expect, it } from 'vitest';
import type { FlowConfig } from '../src/machines/flow.js';
import type { MachineEnv } from '../src/machines/env.js';
import { MachineRuntime, MemorySnapshotStore } from '../src/machines/runtime.js';
import { wireMachines } from '../src/machines/wiring.js';
import { EmulatedContainerPlatform } from '../src/providers/emulated/container-platform.js';
import { EmulatedDirectory } from '../src/providers/emulated/directory.js';
import { parseCloudConfig } from '../src/scenario/cloud.js';
import { createEmulatedCloud } from '../src/providers/emulated/ec2/emulated-cloud.js';
import { EmulatedHypervisor } from '../src/providers/emulated/hypervisor/hypervisor.js';
import { GuestImage } from '../src/providers/emulated/guest/image.js';
import { StorageTier, TIER_PRESETS } from '../src/providers/emulated/hypervisor/storage-tier.js';
import { idealTransferUs, wanConfig, WanLink } from '../src/providers/emulated/wan/wan-link.js';
import { SimWorld } from '../src/world/sim-world.js';
import type { TraceEvent } from '../src/world/types.js';
import type { Hypervisor } from '../src/ports/hypervisor.js';
import { FakeProxy, Faults, sampleGuest } from './machines-doubles.js';

/**
 * The clone, containerize and container-transfer machines through
 * wireMachines against the emulated hypervisor, the real EC2 adapter on the
 * emulated EC2, the emulated directory and the emulated container platform,
 * with image bytes crossing an emulated WAN. The proxy control port is still
 * the test double (FakeProxy): its adapter over the proxy core is built
 * elsewhere.
 */
const S = 1_000_000;
const GiB = 1024 ** 3;
const config: FlowConfig = {
  timeoutsUs: { loadStagingImage: 600 * S, stageBoot: 120 * S, targetBoot: 300 * S, loadImage: 1800 * S, provision: 600 * S },
  defaultTimeoutUs: 180 * S,
  retry: { maxAttempts: 5, backoffBaseUs: 2 * S, backoffMaxUs: 60 * S, backoffFactor: 2 },
};
const TEMPLATES = [
  { family: 'linux', distro: 'ubuntu', version: '22.04', sizeBytes: 80 * 1024 ** 2 },
  { family: 'linux', distro: 'alpine', version: '3.19', sizeBytes: 8 * 1024 ** 2, sites: ['local' as const] },
];

/**
 * The proxy double, with clone exports that only check the disk exists: the
 * double's own clone model reads FakeHypervisor's snapshots, which the
 * emulated hypervisor does not expose through the port.
 */
class CloningProxy extends FakeProxy {
  readonly cloneExports = new Map<string, string[]>();
  constructor(private readonly sim: SimWorld, private readonly hvPort: Hypervisor, faults: Faults) {
    super(sim, hvPort, faults);
  }
  override async cloneDisk(req: { snapshotId: string; diskId: string; cloneId: string }): Promise<{ exportName: string }> {
    await this.sim.clock.sleepUs(50_000);
    this.hvPort.disk(req.diskId);
    const name = `clone-${req.cloneId}-${req.diskId}`;
    const list = this.cloneExports.get(req.cloneId) ?? [];
    if (!list.includes(name)) list.push(name);
    this.cloneExports.set(req.cloneId, list);
    return { exportName: name };
  }
  override async dropClone(req: { cloneId: string }): Promise<void> {
    await this.sim.clock.sleepUs(50_000);
    this.cloneExports.delete(req.cloneId);
  }
}

/** Await a provider call outside a machine: the simulation has to run for its modeled latency to pass. */
async function settle<T>(world: SimWorld, p: Promise<T>): Promise<T> {
  await world.run({ maxEvents: 100_000 });
  return p;
}

/** Let `us` of virtual time pass even when nothing else is scheduled (steady demand schedules no events). */
async function advance(world: SimWorld, us: number): Promise<void> {
  world.clock.schedule(us, () => undefined);
  await world.run({ untilUs: world.nowUs + us });
}

function build(seed: number) {
  const world = new SimWorld(seed);
  const events: TraceEvent[] = [];
  world.trace.subscribe((e) => events.push(e));
  const hypervisor = new EmulatedHypervisor(world, { hosts: [{ id: 'h1', cpuCores: 32, ramMiB: 262144 }, { id: 'h2', cpuCores: 32, ramMiB: 262144 }] });
  const image = new GuestImage({ seed, imageId: 'ubuntu-web', sizeBytes: 2 * GiB, os: 'linux', version: '22.04', app: 'web' });
  const tiers = new Map<string, StorageTier>();
  hypervisor.addVm({
    id: 'web', name: 'web', vcpus: 4, ramMiB: 2048, workload: 'web', batch: false, guest: sampleGuest('web'), dirtyRateBytesPerS: 10 * 1024 ** 2,
    disks: ['web-d0', 'web-d1', 'web-d2'].map((id) => ({
      id, sizeBytes: 2 * GiB, tier: 'ssd', imageId: 'ubuntu-web', create: () => image.disk(id),
      layers: (below) => { const t = new StorageTier(world, below, TIER_PRESETS.ssd!); tiers.set(id, t); return t; },
    })),
  });
  // The storage of the on-prem framework host that the 'api' container uses (FIG 27 step 2707 mounts it).
  hypervisor.addVm({
    id: 'apihost', name: 'apihost', vcpus: 2, ramMiB: 1024, workload: 'none', batch: false, guest: sampleGuest('apihost'), dirtyRateBytesPerS: 0,
    disks: [{ id: 'api-vol', sizeBytes: GiB, tier: 'ssd', imageId: 'api-vol' }],
  });
  hypervisor.placeRunning('web', 'h1');
  hypervisor.setDemand('web', 1.5);
  const cloud = createEmulatedCloud(world, parseCloudConfig({}), `run-ctr-${seed}`);
  const faults = new Faults();
  const directory = new EmulatedDirectory(world, { domains: ['corp.example'] });
  directory.enrolFrom(hypervisor);
  const wan = new WanLink(world, wanConfig({ rttUs: 40_000, downBytesPerS: 12_500_000 }));
  world.net.setLink('onprem:image-store', wan);
  const containers = new EmulatedContainerPlatform(world, {
    hypervisor,
    frameworks: [
      { id: 'lxd-local', hostId: 'h2', site: 'local', kind: 'system', vcpus: 16, ramMiB: 65536 },
      { id: 'lxd-cloud-a', hostId: 'i-host-a', site: 'remote', kind: 'system', vcpus: 4, ramMiB: 8192 },
      { id: 'lxd-cloud-b', hostId: 'i-host-b', site: 'remote', kind: 'system', vcpus: 16, ramMiB: 65536 },
    ],
    templates: TEMPLATES,
    containers: [
      {
        id: 'api', frameworkId: 'lxd-local', diskIds: ['api-vol'], demandVcpus: 1.2,
        manifest: { template: 'linux/alpine:3.19', vcpus: 2, ramMiB: 1024, network: { hostname: 'api', ipAddress: '10.0.0.40', dns: ['10.0.0.2'] }, mounts: [], runStateBytes: 0 },
      },
      {
        id: 'cron', frameworkId: 'lxd-cloud-b', diskIds: [], demandVcpus: 0,
        manifest: { template: 'linux/alpine:3.19', vcpus: 1, ramMiB: 256, network: { hostname: 'cron', ipAddress: '10.9.0.5', dns: ['10.9.0.2'] }, mounts: [], runStateBytes: 0 },
      },
    ],
    fileViewOf: (vmId) => (vmId === 'web' ? image.files : undefined),
    diskOps: (diskId) => { const s = tiers.get(diskId)?.stats; return s ? s.reads + s.writes + s.other : 0; },
    storeAddress: 'onprem:image-store',
  });
  const env: MachineEnv = { world, hypervisor, cloud, proxy: new CloningProxy(world, hypervisor, faults), directory, containers, pollEveryUs: 5 * S };
  return { world, events, hypervisor, cloud, directory, containers, wan, env, machines: wireMachines(env), rt: new MachineRuntime(world, new MemorySnapshotStore()) };
}

/** Some guest I/O, so the run-time statistics have disk operations to count. */
async function guestReads(h: ReturnType<typeof build>, n: number): Promise<void> {
  const disk = h.hypervisor.openDisk('web-d0');
  for (let i = 0; i < n; i++) {
    await disk.read((i * 7919 % 4096) * 4096, 4096);
    await h.world.clock.sleepUs(100_000);
  }
}

describe('container and clone machines on the emulated providers', () => {
  it('clones a running VM: new identity, the clone joins the domain through the emulated directory, the source keeps running', async () => {
    const h = build(21);
    try {
      const staging = 'ami-0a5ba6e0c57a9e001';
      const runs = [1, 2].map((cloneIndex) => h.rt.start({ machine: h.machines.clone, id: `web-clone-${cloneIndex}`, src: 'vm/web' }, {
        id: `web-clone-${cloneIndex}`, config,
        clone: { sourceVmId: 'web', cloneIndex, stagingImageId: staging, persistence: 'cloud-only', siblingReads: false, siblingSources: [] },
      }));
      await h.world.run({ maxEvents: 3_000_000 });
      const outs = await Promise.all(runs.map((r) => r.done));
      for (const out of outs) {
        expect(out.failure).toBeNull();
        expect(out.outcome).toBe('ok');
        expect(out.data.domainJoined).toBe(true);
      }
      const [a, b] = outs.map((o) => o.data.identity!);
      expect(a!.machineName).toBe('web-c1');
      expect(a!.machineId).not.toBe(b!.machineId);
      // Seed 001: the directory pinned each clone's id; the clone authenticates with it, an impostor with the source's id does not.
      expect(await settle(h.world, h.directory.authenticate({ machineName: 'web-c1', machineId: a!.machineId, domain: 'corp.example' }))).toBe(true);
      expect(await settle(h.world, h.directory.authenticate({ machineName: 'web-c1', machineId: 'id-web', domain: 'corp.example' }))).toBe(false);
      expect(h.directory.accounts('corp.example').map((x) => x.machineName)).toEqual(['apihost', 'web', 'web-c1', 'web-c2']);
      expect(h.hypervisor.vm('web')).toMatchObject({ power: 'running', hostId: 'h1' });
      expect(h.hypervisor.vm('web').guest.identity).toEqual(sampleGuest('web').identity);
      expect(h.events.filter((e) => e.type === 'directory.join').map((e) => e.data.machine)).toEqual(expect.arrayContaining(['web-c1', 'web-c2']));
    } finally {
      h.cloud.dispose();
    }
  });

  it('a clone whose directory refuses the join rolls back: it leaves no instance and no account', async () => {
    const h = build(22);
    try {
      // Someone else already holds the name the clone will take.
      await settle(h.world, h.directory.join({ machineName: 'web-c1', machineId: 'feedface', domain: 'corp.example' }));
      const r = h.rt.start({ machine: h.machines.clone, id: 'web-clone-1', src: 'vm/web' }, {
        id: 'web-clone-1', config,
        clone: { sourceVmId: 'web', cloneIndex: 1, stagingImageId: 'ami-0a5ba6e0c57a9e001', persistence: 'cloud-only', siblingReads: false, siblingSources: [] },
      });
      await h.world.run({ maxEvents: 3_000_000 });
      const out = await r.done;
      expect(out.outcome).toBe('rolled-back');
      expect(out.failure).toMatchObject({ step: 'joinDomain', code: 'E_DIR_NAME_TAKEN' });
      expect(h.directory.account('corp.example', 'web-c1')?.machineId).toBe('feedface');
      expect(h.cloud.model.liveResourceIds()).not.toContain(out.data.instanceId);
    } finally {
      h.cloud.dispose();
    }
  });

  it('containerizes a running VM by snapshot (FIG 25): sized from its measured demand, rootfs from its file view, its memory as run state', async () => {
    const h = build(23);
    try {
      await advance(h.world, 600 * S);
      const io = guestReads(h, 50);
      await advance(h.world, 600 * S);
      await io;
      const r = h.rt.start({ machine: h.machines.containerize, id: 'web-ctr', src: 'vm/web' }, { id: 'web-ctr', config, containerize: { vmId: 'web', mode: 'snapshot' } });
      await h.world.run({ maxEvents: 1_000_000 });
      const out = await r.done;
      expect(out.failure).toBeNull();
      expect(out.outcome).toBe('ok');
      expect(out.data.stats).toMatchObject({ vcpus: 4, cpuUsed: 1.5, ramMiB: 2048 });
      expect(out.data.stats!.iops).toBeGreaterThan(0);
      const img = h.containers.image(out.data.imageId!);
      expect(img.manifest).toMatchObject({ template: 'linux/ubuntu:22.04', vcpus: 2, ramMiB: 2048, runStateBytes: 2048 * 1024 ** 2 });
      expect(img.manifest.mounts.map((m) => m.mountPoint)).toEqual(['/data', 'swap']);
      const rootfs = img.layers.find((l) => l.kind === 'rootfs')!;
      const kept = new GuestImage({ seed: 23, imageId: 'ubuntu-web', sizeBytes: 2 * GiB, os: 'linux', version: '22.04', app: 'web' }).files.files
        .filter((f) => !['loader', 'kernel', 'initrd', 'module', 'driver', 'swap'].includes(f.role));
      expect(rootfs.files).toBe(kept.length);
      expect(rootfs.bytes).toBe(kept.reduce((s, f) => s + f.sizeBytes, 0));
      expect(img.guest).toMatchObject({ hostname: 'web', domain: 'corp.example' });
      // Snapshot mode: the VM never stopped.
      expect(h.hypervisor.vm('web').power).toBe('running');
    } finally {
      h.cloud.dispose();
    }
  });

  it('moves a VM into a remote container (FIG 26): the image crosses the emulated WAN, lands on the idlest framework with room, the workload runs there', async () => {
    const h = build(24);
    try {
      await h.containers.listen();
      await advance(h.world, 300 * S);
      // 2 h of work at 1.5 vCPUs: it pauses while the VM is moved and finishes in the container.
      let finishedUs: number | null = null;
      h.hypervisor.startTask('web', { name: 'report', workVcpuUs: 1.5 * 7200 * S, maxRate: 1.5 }, (t) => { finishedUs = t.finishedUs; });
      const r = h.rt.start({ machine: h.machines.containerTransfer, id: 'web-move', src: 'vm/web' }, { id: 'web-move', config, transfer: { kind: 'vm', vmId: 'web', site: 'remote' } });
      await advance(h.world, 4 * 3600 * S);
      const out = await r.done;
      expect(out.failure).toBeNull();
      expect(out.outcome).toBe('ok');
      const pausedUs = h.events.find((e) => e.type === 'container.state' && e.data.state === 'running' && e.src === `container/${out.data.containerId}`)!.t - h.events.find((e) => e.type === 'vm.power' && e.data.power === 'stopped')!.t;
      expect(finishedUs).toBe(300 * S + 7200 * S + pausedUs);
      // Both remote frameworks have room and no busy container; lxd-cloud-b holds an idle one, so it wins the §7.4 idle ratio.
      expect(out.data.frameworkId).toBe('lxd-cloud-b');
      const img = h.containers.image(out.data.imageId!);
      expect(img.manifest.runStateBytes).toBe(0);
      const [t] = h.containers.transfers;
      expect(t!.bytes).toBe(img.bytesWithoutTemplate);
      // The bytes rode the WAN: at least the model's ideal time for them, and the link counted them.
      expect(t!.durationUs).toBeGreaterThanOrEqual(idealTransferUs(t!.bytes, h.wan.config));
      expect(h.wan.stats().down.deliveredBytes).toBeGreaterThanOrEqual(t!.bytes);
      const c = h.containers.container(out.data.containerId!);
      expect(c).toMatchObject({ state: 'running', vmId: 'web', frameworkId: 'lxd-cloud-b' });
      expect(h.hypervisor.vm('web').hostId).toBeNull();
      const placements = h.hypervisor.stats().vms.find((v) => v.id === 'web')!.placements;
      expect(placements.at(-1)?.where).toBe('cloud');
      console.log(`FIG 26 on emulated providers: image ${(t!.bytes / 1024 ** 2).toFixed(1)} MiB over the WAN in ${(t!.durationUs / S).toFixed(1)} s (ideal ${(idealTransferUs(t!.bytes, h.wan.config) / S).toFixed(1)} s), done at ${(h.world.nowUs / S).toFixed(1)} s virtual`);
    } finally {
      h.cloud.dispose();
    }
  });

  it('is deterministic: the same seed gives the same trace hash for a FIG 27 move', async () => {
    const hashes: string[] = [];
    for (let i = 0; i < 2; i++) {
      const h = build(26);
      try {
        await h.containers.listen();
        const r = h.rt.start({ machine: h.machines.containerTransfer, id: 'api-move', src: 'container/api' }, {
          id: 'api-move', config, transfer: { kind: 'container', containerId: 'api', diskIds: ['api-vol'], site: 'remote' },
        });
        await h.world.run({ maxEvents: 1_000_000 });
        expect((await r.done).outcome).toBe('ok');
        hashes.push(h.world.trace.hash());
      } finally {
        h.cloud.dispose();
      }
    }
    expect(hashes[0]).toBe(hashes[1]);
  });

  it('moves a container to the remote site (FIG 27): checkpoint, mounts remapped to proxied exports, DNS rewritten, the template fetched only where missing', async () => {
    const h = build(25);
    try {
      await h.containers.listen();
      const r = h.rt.start({ machine: h.machines.containerTransfer, id: 'api-move', src: 'container/api' }, {
        id: 'api-move', config, transfer: { kind: 'container', containerId: 'api', diskIds: ['api-vol'], site: 'remote' },
      });
      await h.world.run({ untilUs: 3600 * S });
      const out = await r.done;
      expect(out.failure).toBeNull();
      expect(out.outcome).toBe('ok');
      expect(h.containers.container('api').state).toBe('checkpointed');
      const moved = h.containers.container(out.data.containerId!);
      expect(moved.state).toBe('running');
      expect(out.data.manifest!.mounts).toEqual([{ mountPoint: '/srv/vol0', source: `nbd:${out.data.exports![0]!.exportName}`, persistence: 'persistent' }]);
      expect(out.data.manifest!.network.dns).not.toEqual(['10.0.0.2']);
      const img = h.containers.image(out.data.imageId!);
      // The alpine template is only in the local registry, so it travelled with the run state (1 GiB of memory).
      expect(h.containers.transfers[0]!.bytes).toBe(img.bytesWithoutTemplate + 8 * 1024 ** 2);
      expect(img.bytesWithoutTemplate).toBeGreaterThan(1024 ** 3);
    } finally {
      h.cloud.dispose();
    }
  });
});
