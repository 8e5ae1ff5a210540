import { describe, expect, it } from 'vitest';
import type { ContainerManifest } from '../src/ports/container-platform.js';
import { EmulatedContainerPlatform, type ContainerPlatformOptions } from '../src/providers/emulated/container-platform.js';
import { EmulatedHypervisor } from '../src/providers/emulated/hypervisor/hypervisor.js';
import { GuestImage } from '../src/providers/emulated/guest/image.js';
import { idealTransferUs, wanConfig, WanLink } from '../src/providers/emulated/wan/wan-link.js';
import { SimWorld } from '../src/world/sim-world.js';
import { sampleGuest } from './machines-doubles.js';

const S = 1_000_000;
const GiB = 1024 ** 3;

async function settle<T>(world: SimWorld, p: Promise<T>): Promise<{ value?: T; error?: { code?: string; retryable?: boolean; message: string } }> {
  const out = p.then((value) => ({ value }), (error: { code?: string; retryable?: boolean; message: string }) => ({ error }));
  await world.run({ maxEvents: 1_000_000 });
  return out;
}

async function advance(world: SimWorld, us: number): Promise<void> {
  world.clock.schedule(us, () => undefined);
  await world.run({ untilUs: world.nowUs + us });
}

const manifest = (over: Partial<ContainerManifest> = {}): ContainerManifest => ({
  template: 'linux/ubuntu:22.04', vcpus: 2, ramMiB: 1024, network: { hostname: 'vm1', ipAddress: '10.0.0.7', dns: ['10.0.0.2'] }, mounts: [], runStateBytes: 0, ...over,
});

function setup(over: Partial<ContainerPlatformOptions> = {}, seed = 7) {
  const world = new SimWorld(seed);
  const hv = new EmulatedHypervisor(world, { hosts: [{ id: 'h1', cpuCores: 16, ramMiB: 131072 }] });
  const image = new GuestImage({ seed, imageId: 'ubuntu', sizeBytes: GiB, os: 'linux', version: '22.04', app: 'generic' });
  for (const id of ['vm1', 'vm2']) {
    hv.addVm({
      id, name: id, vcpus: 4, ramMiB: 256, workload: 'w', batch: false, guest: sampleGuest(id), dirtyRateBytesPerS: 0,
      disks: [{ id: `${id}-d0`, sizeBytes: GiB, tier: 'ssd', imageId: 'ubuntu', create: () => image.disk(`${id}-d0`) }],
    });
  }
  const ops = new Map<string, number>();
  const wan = new WanLink(world, wanConfig({ rttUs: 20_000, downBytesPerS: 50_000_000 }));
  world.net.setLink('store', wan);
  const platform = new EmulatedContainerPlatform(world, {
    hypervisor: hv,
    frameworks: [
      { id: 'fw-local', hostId: 'h1', site: 'local', kind: 'system', vcpus: 8, ramMiB: 16384 },
      { id: 'fw-r1', hostId: 'i-1', site: 'remote', kind: 'system', vcpus: 4, ramMiB: 4096 },
      { id: 'fw-r2', hostId: 'i-2', site: 'remote', kind: 'application', vcpus: 8, ramMiB: 8192 },
    ],
    templates: [{ family: 'linux', distro: 'ubuntu', version: '22.04', sizeBytes: 50 * 1024 ** 2, sites: ['local'] }],
    fileViewOf: (vmId) => (vmId === 'vm1' ? image.files : undefined),
    diskOps: (d) => ops.get(d) ?? 0,
    storeAddress: 'store',
    latencies: { buildUs: 1 * S, startUs: 1 * S, provisionFrameworkUs: 10 * S },
    ...over,
  });
  return { world, hv, platform, ops, wan, image };
}

describe('emulated container platform', () => {
  it('run-time statistics come from the hypervisor: mean demand over the recent running time, disk ops per second, the RAM allocation', async () => {
    const { world, hv, platform, ops } = setup({ lookbackUs: 600 * S });
    hv.placeRunning('vm1', 'h1');
    hv.setDemand('vm1', 3);
    await advance(world, 900 * S);
    platform.observe();
    ops.set('vm1-d0', 1000);
    hv.setDemand('vm1', 1);
    await advance(world, 200 * S);
    // The window starts at the latest mark at least 600 s old: t=0 (the one at 900 s is too recent).
    const all = await settle(world, platform.collectStats({ vmId: 'vm1' }));
    // (3 × 900 + 1 × 202) / 1102 vCPUs, the 2 s of the call included.
    expect(all.value).toMatchObject({ vcpus: 4, ramMiB: 256, ramUsedMiB: 256, cpuUsed: Math.round(((3 * 900 + 1 * 202) / 1102) * 1000) / 1000 });
    expect(all.value!.iops).toBeCloseTo(1000 / 1102, 3);
    await advance(world, 600 * S);
    platform.observe();
    await advance(world, 600 * S);
    expect((await settle(world, platform.collectStats({ vmId: 'vm1' }))).value!.cpuUsed).toBe(1);
  });

  it('a VM that never ran is sized at its allocation', async () => {
    const { world, platform } = setup();
    expect((await settle(world, platform.collectStats({ vmId: 'vm2' }))).value).toMatchObject({ cpuUsed: 4, iops: 0 });
  });

  it('templates come from the catalogue; a missing one is refused naming what exists', async () => {
    const { world, platform } = setup();
    expect((await settle(world, platform.templateFor({ family: 'linux', distro: 'ubuntu', version: '22.04' }))).value).toEqual({ template: 'linux/ubuntu:22.04' });
    const r = await settle(world, platform.templateFor({ family: 'windows', distro: 'server', version: '2019' }));
    expect(r.error).toMatchObject({ code: 'E_NO_TEMPLATE' });
    expect(r.error!.message).toContain('linux/ubuntu:22.04');
  });

  it('builds an image from the guest config, the file view (host files left out) and the running VM memory; idempotent by token', async () => {
    const { world, hv, platform, image } = setup();
    hv.placeRunning('vm1', 'h1');
    const a = await settle(world, platform.buildImage({ token: 't1', sourceId: 'vm1', manifest: manifest() }));
    const img = platform.image(a.value!.imageId);
    const kept = image.files.files.filter((f) => !['loader', 'kernel', 'initrd', 'module', 'driver', 'swap'].includes(f.role));
    expect(kept.length).toBeLessThan(image.files.files.length);
    expect(img.layers.map((l) => l.kind)).toEqual(['template', 'rootfs', 'run-state', 'manifest']);
    expect(img.layers[1]).toMatchObject({ files: kept.length, bytes: kept.reduce((s, f) => s + f.sizeBytes, 0) });
    expect(img.layers[1]!.ref).toMatch(/^[0-9a-f]{64}$/);
    expect(img.manifest.runStateBytes).toBe(256 * 1024 ** 2);
    expect(img.guest).toMatchObject({ os: { distro: 'ubuntu' }, hostname: 'vm1', machineName: 'vm1' });
    expect(img.bytesWithoutTemplate).toBe(img.layers.slice(1).reduce((s, l) => s + l.bytes, 0));
    const b = await settle(world, platform.buildImage({ token: 't1', sourceId: 'vm1', manifest: manifest() }));
    expect(b.value!.imageId).toBe(a.value!.imageId);
    expect((await settle(world, platform.buildImage({ token: 't2', sourceId: 'vm2', manifest: manifest() }))).error).toMatchObject({ code: 'E_NO_FILE_VIEW' });
    expect((await settle(world, platform.buildImage({ token: 't3', sourceId: 'vm1', manifest: manifest({ template: 'linux/nope:1' }) }))).error).toMatchObject({ code: 'E_NO_TEMPLATE' });
  });

  it('a remote run pulls the image over the WAN in the model time (template included where missing), then from the remote cache', async () => {
    const { world, hv, platform, wan } = setup();
    await platform.listen();
    hv.placeRunning('vm1', 'h1');
    const { value } = await settle(world, platform.buildImage({ token: 't1', sourceId: 'vm1', manifest: manifest({ vcpus: 2, ramMiB: 1024 }) }));
    await settle(world, hv.powerOff('vm1'));
    const r1 = await settle(world, platform.run({ token: 'r1', frameworkId: 'fw-r2', imageId: value!.imageId, storageAddress: 'nbd:x' }));
    expect(r1.error).toBeUndefined();
    const img = platform.image(value!.imageId);
    const [t] = platform.transfers;
    expect(t!.bytes).toBe(img.bytesWithoutTemplate + 50 * 1024 ** 2);
    // Request one way, the image back: the header line, then the image bytes, one write per MiB.
    expect(t!.durationUs).toBeGreaterThanOrEqual(idealTransferUs(t!.bytes, wan.config));
    expect(t!.durationUs).toBeLessThan(idealTransferUs(t!.bytes, wan.config) * 1.01 + 2 * wan.config.rttUs);
    expect(img.sites).toEqual(['local', 'remote']);
    expect(platform.container(r1.value!.containerId)).toMatchObject({ state: 'running', vmId: 'vm1', frameworkId: 'fw-r2', storageAddress: 'nbd:x' });
    // The same token returns the same container; another run of the image does not cross the WAN again.
    expect((await settle(world, platform.run({ token: 'r1', frameworkId: 'fw-r2', imageId: value!.imageId, storageAddress: 'nbd:x' }))).value).toEqual(r1.value);
    await settle(world, platform.stop({ containerId: r1.value!.containerId }));
    await settle(world, platform.run({ token: 'r2', frameworkId: 'fw-r1', imageId: value!.imageId, storageAddress: 'nbd:x' }));
    expect(platform.transfers).toHaveLength(1);
  });

  it('a WAN outage with reset breaks the pull with a retryable E_LINK_DOWN; no store is E_NO_IMAGE_STORE', async () => {
    const { world, hv, platform, wan } = setup();
    hv.placeRunning('vm1', 'h1');
    const { value } = await settle(world, platform.buildImage({ token: 't1', sourceId: 'vm1', manifest: manifest() }));
    expect((await settle(world, platform.run({ token: 'r0', frameworkId: 'fw-r2', imageId: value!.imageId, storageAddress: '' }))).error).toMatchObject({ code: 'E_NO_IMAGE_STORE' });
    await platform.listen();
    wan.scheduleOutage(world.nowUs + 2 * S, 10 * S, true);
    const r = await settle(world, platform.run({ token: 'r1', frameworkId: 'fw-r2', imageId: value!.imageId, storageAddress: '' }));
    expect(r.error).toMatchObject({ code: 'E_LINK_DOWN', retryable: true });
    expect(platform.image(value!.imageId).sites).toEqual(['local']);
  });

  it('framework load: idle and busy containers from the workload demand; full frameworks refuse; a new framework is provisioned once per token', async () => {
    const { world, hv, platform } = setup();
    await platform.listen();
    hv.placeRunning('vm1', 'h1');
    const { value } = await settle(world, platform.buildImage({ token: 't1', sourceId: 'vm1', manifest: manifest({ vcpus: 2, ramMiB: 1024 }) }));
    await settle(world, hv.powerOff('vm1'));
    hv.setDemand('vm1', 0);
    const { value: run } = await settle(world, platform.run({ token: 'r1', frameworkId: 'fw-local', imageId: value!.imageId, storageAddress: '' }));
    expect(platform.transfers).toHaveLength(0);
    const justStarted = (await settle(world, platform.frameworks({ site: 'local' }))).value![0]!;
    expect(justStarted).toMatchObject({ busyContainers: 1, idleContainers: 0, freeVcpus: 6, freeRamMiB: 15360 });
    await advance(world, 60 * S);
    expect((await settle(world, platform.frameworks({ site: 'local' }))).value![0]).toMatchObject({ busyContainers: 0, idleContainers: 1 });
    expect((await settle(world, platform.run({ token: 'r2', frameworkId: 'fw-r1', imageId: value!.imageId, storageAddress: '' }))).error).toMatchObject({ code: 'E_WORKLOAD_RUNNING' });
    await settle(world, platform.stop({ containerId: run!.containerId }));
    const big = await settle(world, platform.buildImage({ token: 't2', sourceId: 'vm1', manifest: manifest({ vcpus: 3, ramMiB: 1024 }) }));
    expect((await settle(world, platform.run({ token: 'r3', frameworkId: 'fw-r1', imageId: big.value!.imageId, storageAddress: '' }))).error).toBeUndefined();
    expect((await settle(world, platform.run({ token: 'r4', frameworkId: 'fw-r1', imageId: value!.imageId, storageAddress: '' }))).error).toMatchObject({ code: 'E_FRAMEWORK_FULL' });
    const p1 = await settle(world, platform.provisionFramework({ token: 'p', site: 'remote', vcpus: 12, ramMiB: 4096 }));
    const p2 = await settle(world, platform.provisionFramework({ token: 'p', site: 'remote', vcpus: 12, ramMiB: 4096 }));
    expect(p1.value).toMatchObject({ freeVcpus: 12, freeRamMiB: 32768 });
    expect(p2.value!.id).toBe(p1.value!.id);
    expect((await settle(world, platform.frameworks({ site: 'remote' }))).value!.map((f) => f.id)).toEqual(['fw-r1', 'fw-r2', p1.value!.id]);
    expect(run!.containerId).toBeDefined();
  });

  it('checkpoint persists a running container with its memory and storage; restart resumes it; a stopped one cannot be checkpointed', async () => {
    const { world, platform } = setup({
      containers: [{ id: 'c1', frameworkId: 'fw-local', diskIds: ['vm2-d0'], demandVcpus: 0.5, manifest: manifest({ ramMiB: 2048 }) }],
    });
    const ck = await settle(world, platform.checkpoint({ containerId: 'c1' }));
    expect(ck.value!.manifest).toMatchObject({ runStateBytes: 2048 * 1024 ** 2, mounts: [{ mountPoint: '/srv/vol0', source: 'disk:vm2-d0', persistence: 'persistent' }] });
    expect(platform.container('c1').state).toBe('checkpointed');
    expect((await settle(world, platform.checkpoint({ containerId: 'c1' }))).value!.imageId).toBe(ck.value!.imageId);
    await settle(world, platform.restart({ containerId: 'c1' }));
    expect(platform.container('c1').state).toBe('running');
    await settle(world, platform.stop({ containerId: 'c1' }));
    expect((await settle(world, platform.checkpoint({ containerId: 'c1' }))).error).toMatchObject({ code: 'E_CONTAINER_STATE' });
    expect((await settle(world, platform.stop({ containerId: 'nope' }))).error).toMatchObject({ code: 'E_NO_CONTAINER' });
  });

  it('refuses bad configuration by field', () => {
    expect(() => setup({ idleBelow: 2 })).toThrow(/idleBelow/);
    expect(() => setup({ latencies: { loadBytesPerS: 0 } })).toThrow(/latencies.loadBytesPerS/);
    expect(() => setup({ frameworks: [{ id: 'a', hostId: 'h', site: 'local', kind: 'system', vcpus: 1, ramMiB: 1 }, { id: 'a', hostId: 'h', site: 'local', kind: 'system', vcpus: 1, ramMiB: 1 }] })).toThrow(/defined twice/);
  });
});
