import { describe, expect, it } from 'vitest';
import type { FlowConfig } from '../src/machines/flow.js';
import type { MachineEnv } from '../src/machines/env.js';
import { MachineRuntime, MemorySnapshotStore } from '../src/machines/runtime.js';
import { wireMachines } from '../src/machines/wiring.js';
import { bootModelFromImages, createProxyControl, type CoreProxyControl } from '../src/providers/proxy-control/index.js';
import { parseCloudConfig } from '../src/scenario/cloud.js';
import { createEmulatedCloud } from '../src/providers/emulated/ec2/emulated-cloud.js';
import { EmulatedHypervisor } from '../src/providers/emulated/hypervisor/hypervisor.js';
import { GuestImage } from '../src/providers/emulated/guest/image.js';
import { wanConfig, WanLink } from '../src/providers/emulated/wan/wan-link.js';
import { SimWorld } from '../src/world/sim-world.js';
import type { TraceEvent } from '../src/world/types.js';
import { FakeContainers, FakeDirectory, Faults, sampleGuest } from './machines-doubles.js';

/**
 * The lifecycle machines through wireMachines + MachineRuntime against the
 * emulated hypervisor, the EC2 adapter on the emulated EC2 and the real proxy
 * core behind CoreProxyControl: every block a cloud instance reads or writes
 * crosses the emulated WAN between the on-prem proxy and a cloud proxy.
 */
const S = 1_000_000;
const MiB = 1024 ** 2;
const KEY = '7f'.repeat(32);
const DISK1 = 128 * MiB;
const STAGING = 'ami-0a5ba6e0c57a9e001';
const config: FlowConfig = {
  timeoutsUs: { loadStagingImage: 600 * S, stageBoot: 300 * S, targetBoot: 600 * S, deactivateRemote: 600 * S, releaseRemote: 300 * S, flushWrites: 600 * S, sync: 600 * S },
  defaultTimeoutUs: 300 * S,
  retry: { maxAttempts: 5, backoffBaseUs: 2 * S, backoffMaxUs: 60 * S, backoffFactor: 2 },
};

interface Options {
  seed: number;
  diskBytes?: number;
  dirtyRateBytesPerS?: number;
  ramMiB?: number;
  cache?: { capacityBytes?: number; maxCapacityBytes?: number };
  downBytesPerS?: number;
  /** Guest CPU between boot reads. */
  bootThinkUs?: number;
}

async function build(o: Options) {
  const world = new SimWorld(o.seed);
  const events: TraceEvent[] = [];
  world.trace.subscribe((e) => events.push(e));
  const diskBytes = o.diskBytes ?? 256 * MiB;
  const hypervisor = new EmulatedHypervisor(world, { hosts: [{ id: 'h1', cpuCores: 32, ramMiB: 262144 }, { id: 'h2', cpuCores: 32, ramMiB: 262144 }] });
  const image = new GuestImage({ seed: o.seed, imageId: 'ubuntu-web', sizeBytes: diskBytes, os: 'linux', version: '22.04', app: 'web' });
  hypervisor.addVm({
    id: 'web', name: 'web', vcpus: 4, ramMiB: o.ramMiB ?? 512, workload: 'web', batch: false, guest: sampleGuest('web'),
    dirtyRateBytesPerS: o.dirtyRateBytesPerS ?? 4 * MiB,
    disks: ['web-d0', 'web-d1', 'web-d2'].map((id) => ({ id, sizeBytes: diskBytes, tier: 'ssd', imageId: 'ubuntu-web', create: () => image.disk(id) })),
  });
  hypervisor.placeRunning('web', 'h1');
  const cloud = createEmulatedCloud(world, parseCloudConfig({}), `run-proxy-${o.seed}`);
  const wan = new WanLink(world, wanConfig({ rttUs: 30_000, downBytesPerS: o.downBytesPerS ?? 25_000_000 }));
  world.net.setLink('onprem:7000', wan);
  world.net.setLink('onprem:7100', wan);
  const proxyP = createProxyControl(world, {
    hypervisor, pairingKey: KEY, onpremAddress: 'onprem:7000', runStateAddress: 'onprem:7100',
    guest: bootModelFromImages(new Map([['ubuntu-web', image]])),
    cache: o.cache ?? { capacityBytes: 64 * MiB, maxCapacityBytes: 128 * MiB },
    boot: { depth: 4, ...(o.bootThinkUs ? { thinkUs: o.bootThinkUs } : {}) },
  });
  await world.run({ maxEvents: 100_000 });
  const proxy = await proxyP;
  const faults = new Faults();
  const env: MachineEnv = { world, hypervisor, cloud, proxy, directory: new FakeDirectory(world, faults), containers: new FakeContainers(world, faults), pollEveryUs: 5 * S };
  const store = new MemorySnapshotStore();
  return { world, events, hypervisor, cloud, wan, image, proxy, env, store, machines: wireMachines(env), rt: new MachineRuntime(world, store) };
}

type H = Awaited<ReturnType<typeof build>>;

/**
 * Await work outside a machine: the simulation runs in small slices of
 * virtual time until the work is done, so background timers (pollers,
 * write-behind, WAN sampling) do not carry the clock far past it.
 */
async function settle<T>(world: SimWorld, p: Promise<T>, sliceUs = 20_000, maxUs = 3600 * S): Promise<T> {
  let done = false;
  let value: T | undefined;
  let error: unknown;
  p.then((v) => { done = true; value = v; }, (e: unknown) => { done = true; error = e; });
  await world.run({ untilUs: world.nowUs });
  const deadline = world.nowUs + maxUs;
  while (!done && world.nowUs < deadline) {
    world.clock.schedule(sliceUs, () => undefined);
    await world.run({ untilUs: world.nowUs + sliceUs });
  }
  if (!done) throw new Error(`the work did not finish within ${maxUs / S} s of virtual time`);
  if (error) throw error;
  return value as T;
}

async function transferO2C(h: H, id = 'web-transfer') {
  const t = h.rt.start({ machine: h.machines.transfer, id, src: 'vm/web' }, {
    id, config, transfer: { vmId: 'web', kind: 'stateless', direction: 'O2C', stagingImageId: STAGING, homeHostId: 'h1' },
  });
  const out = await settle(h.world, t.done);
  return out;
}

/** A standby instance for a cut-over (what a clone flow would have booted). */
async function standby(h: H, token: string): Promise<string> {
  const [inst] = await settle(h.world, h.cloud.runInstances({ clientToken: token, imageId: STAGING, instanceType: 'm6i.large', count: 1 }));
  for (;;) {
    // EC2 is eventually consistent: a new instance may not be visible yet.
    const found = await settle(h.world, h.cloud.describeInstances({ ids: [inst!.id] }).catch((err: { code?: string }) => {
      if (err.code === 'InvalidInstanceID.NotFound') return [];
      throw err;
    }));
    if (found[0]?.state === 'running') return inst!.id;
    await settle(h.world, h.world.clock.sleepUs(5 * S));
  }
}

async function cutover(h: H, targetId: string, id: string) {
  const c = h.rt.start({ machine: h.machines.cutover, id, src: 'vm/web' }, {
    id, config, cutover: { sourceVmId: 'web', targetId, maxRounds: 8, switchBudgetUs: 400_000, stallRatio: 0.9, stallRounds: 2 },
  });
  return settle(h.world, c.done);
}

const wanDown = (h: H): number => h.wan.stats().down.deliveredBytes;
const wanUp = (h: H): number => h.wan.stats().up.deliveredBytes;

describe('machines over the proxy core (CoreProxyControl)', () => {
  it('O2C transfer, guest writes through the storage target, reverse: the on-prem disk is the original plus every acknowledged write', async () => {
    const h = await build({ seed: 31, diskBytes: DISK1 });
    try {
      const t0 = h.world.nowUs;
      const out = await transferO2C(h);
      expect(out.failure).toBeNull();
      expect(out.outcome).toBe('ok');
      const toRunningUs = h.world.nowUs - t0;
      expect(out.data.persistence).toEqual({ 'web-d0': 'on-prem', 'web-d1': 'on-prem', 'web-d2': 'cloud-only' });
      expect(h.proxy.proxyIds('web')).toEqual(['web/web-d0', 'web/web-d1', 'web/web-d2']);
      const bootDown = wanDown(h);
      expect(bootDown).toBeGreaterThan(0);
      // FIG 21 boot files were prioritized and streamed; both boot phases read through the target.
      expect(out.data.prioritizedBytes).toBeGreaterThan(0);
      expect(out.data.prefetchQueuedBytes).toBeGreaterThan(0);
      expect(out.data.stagingBootBytes).toBeGreaterThan(0);
      expect(out.data.targetBootBytes).toBeGreaterThan(0);

      // The guest writes through the target: some block-aligned, some not, some overlapping.
      const rng = h.world.rng('guest-writes');
      const writes: Array<{ diskId: string; offset: number; data: Buffer }> = [];
      for (let i = 0; i < 60; i++) {
        const diskId = ['web-d0', 'web-d1', 'web-d2'][i % 3]!;
        const length = rng.int(1, 3 * 4096);
        const offset = rng.int(0, DISK1 - length);
        const data = Buffer.from(Array.from({ length }, () => rng.int(0, 256)));
        await settle(h.world, h.proxy.targetDevice('web', diskId).write(offset, data));
        writes.push({ diskId, offset, data });
      }
      // A read through the target sees the writes (read-your-writes through write-behind).
      const last = writes[writes.length - 1]!;
      expect(Buffer.compare(await settle(h.world, h.proxy.targetDevice('web', last.diskId).read(last.offset, last.data.length)), last.data)).toBe(0);

      const r = h.rt.start({ machine: h.machines.reverse, id: 'web-reverse', src: 'vm/web' }, {
        id: 'web-reverse', config,
        reverse: {
          vmId: 'web', preMoveSnapshotId: out.data.snapshotId!, originalGuest: out.data.originalGuest!, instanceId: out.data.instanceId!,
          targetHostId: 'h1', exports: out.data.exports!, persistence: out.data.persistence!, leaseOwner: 'web-transfer', powerOn: true,
        },
      });
      const rout = await settle(h.world, r.done);
      expect(rout.failure).toBeNull();
      expect(rout.outcome).toBe('ok');
      expect(h.hypervisor.vm('web').guest).toEqual(sampleGuest('web'));
      expect(h.hypervisor.vm('web')).toMatchObject({ hostId: 'h1', power: 'running' });
      expect(h.hypervisor.diskLeaseOwner('web-d0')).toBeNull();

      // Expected bytes: the generated original, then every acknowledged on-prem write in order; cloud-only writes are gone.
      const pristine = new GuestImage({ seed: 31, imageId: 'ubuntu-web', sizeBytes: DISK1, os: 'linux', version: '22.04', app: 'web' });
      for (const diskId of ['web-d0', 'web-d1', 'web-d2']) {
        const expected = Buffer.from(await settle(h.world, pristine.disk(diskId).read(0, DISK1)));
        if (diskId !== 'web-d2') for (const w of writes.filter((x) => x.diskId === diskId)) w.data.copy(expected, w.offset);
        const actual = await settle(h.world, h.hypervisor.openDisk(diskId).read(0, DISK1));
        expect(Buffer.compare(actual, expected), `${diskId} differs`).toBe(0);
      }
      const acked = writes.filter((w) => w.diskId !== 'web-d2').reduce((n, w) => n + w.data.length, 0);
      expect(wanUp(h)).toBeGreaterThanOrEqual(acked);
      console.log(`O2C over the proxy core: running after ${(toRunningUs / S).toFixed(2)} s virtual, ${(bootDown / MiB).toFixed(1)} MiB down the WAN to boot (profile ${(out.data.prefetchQueuedBytes! / MiB).toFixed(1)} MiB, boot reads ${(out.data.stagingBootBytes! / MiB).toFixed(2)} MiB staging + ${(out.data.targetBootBytes! / MiB).toFixed(2)} MiB target); ${(acked / 1024).toFixed(0)} KiB of on-prem writes acknowledged, ${(wanUp(h) / 1024).toFixed(0)} KiB up the WAN in all`);
    } finally {
      await settle(h.world, h.proxy.close()).catch(() => undefined);
      h.cloud.dispose();
    }
  }, 60_000);

  it('a controller restart during the boot continues the boot replay where it was: each boot read is made once', async () => {
    const h = await build({ seed: 39, diskBytes: DISK1, bootThinkUs: 5_000 });
    try {
      const spec = { machine: h.machines.transfer, id: 'web-transfer', src: 'vm/web' };
      const t = h.rt.start(spec, { id: 'web-transfer', config, transfer: { vmId: 'web', kind: 'stateless', direction: 'O2C', stagingImageId: STAGING, homeHostId: 'h1' } });
      await settle(h.world, (async () => { while (t.state !== 'stageBoot') await h.world.clock.sleepUs(1_000); })());
      // Part of the staging boot is done when the controller goes away.
      await settle(h.world, h.world.clock.sleepUs(30_000));
      expect(t.state).toBe('stageBoot');
      t.crash();
      const restored = new MachineRuntime(h.world, h.store).restore(spec);
      const out = await settle(h.world, restored.done);
      expect(out.outcome).toBe('ok');
      const reads = bootModelFromImages(new Map([['ubuntu-web', h.image]])).bootReads('web', 'ubuntu-web');
      const bytesOf = (phase: string): number => reads.filter((r) => r.phase === phase).reduce((n, r) => n + r.length, 0);
      expect(out.data.stagingBootBytes).toBe(bytesOf('staging'));
      expect(out.data.targetBootBytes).toBe(bytesOf('target'));
    } finally {
      await settle(h.world, h.proxy.close()).catch(() => undefined);
      h.cloud.dispose();
    }
  }, 60_000);

  it('scales out 10 clones of one snapshot: later clones read blocks from their siblings before going on-prem (FIG 14)', async () => {
    const h = await build({ seed: 32, diskBytes: 128 * MiB });
    try {
      const snap = await settle(h.world, h.hypervisor.snapshot('web', 'scale-out'));
      const cloneIds = Array.from({ length: 10 }, (_, i) => `web-c${i + 1}`);
      const start = (i: number) => h.rt.start({ machine: h.machines.clone, id: `web-clone-${i}`, src: 'vm/web' }, {
        id: `web-clone-${i}`, config,
        // The last clone keeps its writes on-prem (a copy-on-write overlay of the snapshot); the others cloud-only.
        clone: { sourceVmId: 'web', cloneIndex: i, stagingImageId: STAGING, persistence: i === 10 ? 'on-prem' : 'cloud-only', siblingReads: true, siblingSources: cloneIds, snapshotId: snap.id },
      });
      // The first clone warms its cache from on-prem; the other nine start together and find it as a sibling.
      const first = await settle(h.world, start(1).done);
      expect(first.failure).toBeNull();
      const firstDown = wanDown(h);
      const t0 = h.world.nowUs;
      const rest = await settle(h.world, Promise.all(cloneIds.slice(1).map((_, k) => start(k + 2).done)));
      for (const out of rest) {
        expect(out.failure).toBeNull();
        expect(out.outcome).toBe('ok');
      }
      const restDown = wanDown(h) - firstDown;
      const siblingBlocks = cloneIds.slice(1).flatMap((vm) => h.proxy.proxyIds(vm)).reduce((n, id) => n + h.proxy.cloudProxy(id).readPath.counters.siblingBlocks, 0);
      const remoteBlocks = cloneIds.slice(1).flatMap((vm) => h.proxy.proxyIds(vm)).reduce((n, id) => n + h.proxy.cloudProxy(id).readPath.counters.remoteBlocks, 0);
      expect(siblingBlocks).toBeGreaterThan(0);
      // With a warm sibling the profile comes from it, not from on-prem: nine clones cost less WAN than two cold ones.
      expect(siblingBlocks).toBeGreaterThan(remoteBlocks);
      expect(restDown).toBeLessThan(2 * firstDown);
      // The source keeps running and its disks stay unleased (clones take no lease).
      expect(h.hypervisor.vm('web')).toMatchObject({ power: 'running', hostId: 'h1' });
      expect(h.hypervisor.diskLeaseOwner('web-d0')).toBeNull();
      // A clone reads the snapshot's bytes.
      const want = await settle(h.world, h.hypervisor.openSnapshotDisk(snap.id, 'web-d0').read(0, 1 * MiB));
      expect(Buffer.compare(await settle(h.world, h.proxy.targetDevice('web-c7', 'web-d0').read(0, 1 * MiB)), want)).toBe(0);
      // The on-prem clone's writes ship into its own overlay: the source disk and the other clones do not see them.
      const mine = Buffer.alloc(3 * 4096 + 100, 0xa5);
      const at = 2 * MiB + 300;
      await settle(h.world, h.proxy.targetDevice('web-c10', 'web-d1').write(at, mine));
      const flushed = await settle(h.world, h.proxy.flushWriteBehind({ vmId: 'web-c10' }));
      expect(flushed.flushedBytes).toBeGreaterThanOrEqual(mine.length);
      expect(flushed.pendingBytes).toBe(0);
      const snapBytes = await settle(h.world, h.hypervisor.openSnapshotDisk(snap.id, 'web-d1').read(at, mine.length));
      expect(Buffer.compare(await settle(h.world, h.proxy.targetDevice('web-c3', 'web-d1').read(at, mine.length)), snapBytes)).toBe(0);
      expect(Buffer.compare(await settle(h.world, h.proxy.targetDevice('web-c10', 'web-d1').read(at, mine.length)), mine)).toBe(0);
      // Dropping a clone removes its exports; closing its target first ships nothing more.
      await settle(h.world, h.proxy.closeTarget({ vmId: 'web-c10' }));
      await settle(h.world, h.proxy.dropClone({ cloneId: 'web-clone-10' }));
      expect(h.proxy.proxyIds('web-c10')).toEqual([]);
      console.log(`10 clones: first ${(firstDown / MiB).toFixed(1)} MiB down; the other nine ${(restDown / MiB).toFixed(1)} MiB down in ${((h.world.nowUs - t0) / S).toFixed(1)} s virtual; sibling blocks ${siblingBlocks}, on-prem blocks ${remoteBlocks}`);
    } finally {
      await settle(h.world, h.proxy.close()).catch(() => undefined);
      h.cloud.dispose();
    }
  }, 60_000);

  it('cut-over mirrors run state over the WAN: a warm VM converges, a hot one fails NOT_CONVERGING and keeps running on-prem', async () => {
    // 128 MiB of RAM over a 25 MB/s WAN: ~5.4 s for the first round.
    const warm = await build({ seed: 33, ramMiB: 128, dirtyRateBytesPerS: 2 * MiB });
    try {
      const target = await standby(warm, 'standby-warm');
      const before = warm.proxy.runState.bytesSent;
      const out = await cutover(warm, target, 'web-cutover');
      expect(out.failure).toBeNull();
      expect(out.outcome).toBe('ok');
      const rounds = out.data.history!;
      expect(rounds.length).toBeGreaterThanOrEqual(1);
      // Each round sends what the last one left dirty, so the rounds shrink.
      for (let i = 1; i < rounds.length; i++) expect(rounds[i]!.sentBytes).toBeLessThan(rounds[i - 1]!.sentBytes);
      const sent = warm.proxy.runState.bytesSent - before;
      expect(out.data.replicatedBytes).toBe(128 * MiB);
      expect(sent).toBe(out.data.replicatedBytes! + rounds.filter((r) => r.round > 0).reduce((n, r) => n + r.sentBytes, 0) + out.data.finalCopyBytes!);
      // What left on-prem arrived at the standby's receiver through the sealed stream.
      expect(warm.proxy.receiver(target)!.bytesReceived).toBe(sent);
      expect(warm.hypervisor.vm('web').hostId).toBeNull();
      console.log(`cut-over (2 MiB/s dirty): ${rounds.length} mirror rounds [${rounds.map((r) => `${(r.sentBytes / MiB).toFixed(2)} MiB`).join(', ')}], final copy ${(out.data.finalCopyBytes! / 1024).toFixed(0)} KiB, ${(sent / MiB).toFixed(1)} MiB of run state over the WAN`);
    } finally {
      await settle(warm.world, warm.proxy.close()).catch(() => undefined);
      warm.cloud.dispose();
    }

    const hot = await build({ seed: 34, ramMiB: 128, dirtyRateBytesPerS: 48 * MiB });
    try {
      const target = await standby(hot, 'standby-hot');
      const out = await cutover(hot, target, 'web-cutover');
      expect(out.outcome).toBe('rolled-back');
      expect(out.failure?.code).toBe('NOT_CONVERGING');
      expect(hot.hypervisor.vm('web')).toMatchObject({ power: 'running', hostId: 'h1' });
      const last = out.data.history!.at(-1)!;
      expect(last.dirtyRateBytesPerS).toBeGreaterThan(0.9 * last.linkRateBytesPerS);
      console.log(`cut-over (48 MiB/s dirty): ${out.data.history!.length} rounds, then ${out.failure!.message}`);
    } finally {
      await settle(hot.world, hot.proxy.close()).catch(() => undefined);
      hot.cloud.dispose();
    }
  }, 60_000);

  it('migration (FIG 17) interrupted by a controller restart resumes from the persisted snapshot and the persistent log without fetching a chunk twice', async () => {
    const h = await build({ seed: 35, diskBytes: DISK1, downBytesPerS: 50_000_000 });
    try {
      const t = await transferO2C(h);
      expect(t.outcome).toBe('ok');
      const instanceId = t.data.instanceId!;
      const [inst] = await settle(h.world, h.cloud.describeInstances({ ids: [instanceId] }));
      // A guest write before migration mode: it must reach the volume.
      const before = Buffer.from(Array.from({ length: 8192 }, (_, i) => (i * 13) & 0xff));
      await settle(h.world, h.proxy.targetDevice('web', 'web-d1').write(5 * MiB + 100, before));
      const diskBytes = DISK1;
      const spec = { machine: h.machines.migration, id: 'web-migration', src: 'vm/web' };
      const m = h.rt.start(spec, {
        id: 'web-migration', config,
        migration: { vmId: 'web', instanceId, zone: inst!.zone, diskIds: ['web-d1'], volumeType: 'gp3', syncChunkBytes: 16 * MiB, initialIntervalUs: 1 * S, minIntervalUs: 200_000, intervalFactor: 0.5 },
      });
      const downAtStart = wanDown(h);
      // Run until part of the disk is in the volume, then the controller goes away mid-flow.
      for (let i = 0; i < 400; i++) {
        await h.world.run({ untilUs: h.world.nowUs + 500_000 });
        const synced = h.proxy.migrationProgressOf('web')[0]?.transferredBytes ?? 0;
        if (synced >= 48 * MiB) break;
      }
      const atCrash = h.proxy.migrationProgressOf('web')[0]!;
      expect(atCrash.transferredBytes).toBeGreaterThan(0);
      expect(atCrash.done).toBe(false);
      const stateAtCrash = m.state;
      m.crash();
      // A new controller process: a new runtime over the same snapshot store.
      const rt2 = new MachineRuntime(h.world, h.store);
      const resumed = rt2.restore(spec);
      expect(resumed.state).toBe(stateAtCrash);
      // Synced: the flow waits for the admin's maintenance window (step 1713).
      await settle(h.world, (async () => { while (resumed.state !== 'awaitWindow') await h.world.clock.sleepUs(100_000); })());
      const synced = h.proxy.migrationProgressOf('web')[0]!;
      expect(synced.transferredBytes).toBe(diskBytes);
      // Every chunk moved once: fetched whole, or without a fetch (a hole, a whole-chunk write). A re-sent chunk would overshoot.
      expect(synced.bytesFetched + synced.chunksWithoutFetch * 256 * 1024).toBe(diskBytes);
      expect(synced.bytesFetched).toBeGreaterThanOrEqual(atCrash.bytesFetched);
      resumed.send({ type: 'MAINTENANCE_WINDOW' });
      const out = await settle(h.world, resumed.done);
      expect(out.failure).toBeNull();
      expect(out.outcome).toBe('ok');
      const volumeId = out.data.volumes!['web-d1']!;
      const vol = h.proxy.volume(volumeId);
      // Nothing was fetched twice: the bytes read from on-prem are at most the disk once.
      const fetched = synced.bytesFetched;
      const downMigration = wanDown(h) - downAtStart;
      expect(downMigration).toBeLessThanOrEqual(diskBytes * 1.05);
      // The volume is the on-prem disk plus the write acknowledged before migration mode.
      const expected = Buffer.from(await settle(h.world, h.hypervisor.openDisk('web-d1').read(0, diskBytes / 2)));
      before.copy(expected, 5 * MiB + 100);
      expect(Buffer.compare(await settle(h.world, vol.read(0, diskBytes / 2)), expected)).toBe(0);
      console.log(`migration: restarted in ${stateAtCrash} with ${(atCrash.transferredBytes / MiB).toFixed(0)} MiB synced; in all ${(fetched / MiB).toFixed(1)} MiB fetched from on-prem, ${synced.chunksWithoutFetch} chunks without a fetch; done after ${out.data.rounds} rounds, ${(downMigration / MiB).toFixed(1)} MiB down the WAN for a ${diskBytes / MiB} MiB disk`);
    } finally {
      await settle(h.world, h.proxy.close()).catch(() => undefined);
      h.cloud.dispose();
    }
  }, 60_000);

  it('a migration rolled back midway carries the writes made in migration mode back into write-behind: they reach the on-prem disk', async () => {
    const h = await build({ seed: 38, diskBytes: DISK1, downBytesPerS: 50_000_000 });
    try {
      const t = await transferO2C(h);
      expect(t.outcome).toBe('ok');
      const instanceId = t.data.instanceId!;
      const [inst] = await settle(h.world, h.cloud.describeInstances({ ids: [instanceId] }));
      const m = h.rt.start({ machine: h.machines.migration, id: 'web-migration', src: 'vm/web' }, {
        id: 'web-migration', config,
        migration: { vmId: 'web', instanceId, zone: inst!.zone, diskIds: ['web-d1'], volumeType: 'gp3', syncChunkBytes: 8 * MiB, initialIntervalUs: 1 * S, minIntervalUs: 200_000, intervalFactor: 0.5 },
      });
      await settle(h.world, (async () => { while ((h.proxy.migrationProgressOf('web')[0]?.transferredBytes ?? 0) < 16 * MiB) await h.world.clock.sleepUs(100_000); })());
      // Guest writes in migration mode terminate on the volume only: one in a synced chunk, one in a chunk not yet synced.
      const dev = h.proxy.targetDevice('web', 'web-d1');
      const w1 = { offset: 1 * MiB + 10, data: Buffer.alloc(5000, 0x3c) };
      const w2 = { offset: 100 * MiB + 4096, data: Buffer.alloc(4096, 0xc3) };
      for (const w of [w1, w2]) await settle(h.world, dev.write(w.offset, w.data));
      expect(h.proxy.migrationProgressOf('web')[0]!.done).toBe(false);
      m.send({ type: 'ROLLBACK' });
      const out = await settle(h.world, m.done);
      expect(out.outcome).toBe('rolled-back');
      expect(h.proxy.migrationProgressOf('web')).toEqual([]);
      for (const w of [w1, w2]) expect(Buffer.compare(await settle(h.world, dev.read(w.offset, w.data.length)), w.data)).toBe(0);
      const flushed = await settle(h.world, h.proxy.flushWriteBehind({ vmId: 'web' }));
      expect(flushed.pendingBytes).toBe(0);
      // Close the target and release the leases: the on-prem disk holds both writes, the rest is the original.
      await settle(h.world, h.proxy.closeTarget({ vmId: 'web' }));
      for (const d of t.data.exports!) await settle(h.world, h.proxy.unmountDisk({ vmId: 'web', diskId: d.diskId, owner: 'web-transfer' }));
      const expected = Buffer.from(await settle(h.world, new GuestImage({ seed: 38, imageId: 'ubuntu-web', sizeBytes: DISK1, os: 'linux', version: '22.04', app: 'web' }).disk('web-d1').read(0, DISK1)));
      for (const w of [w1, w2]) w.data.copy(expected, w.offset);
      expect(Buffer.compare(await settle(h.world, h.hypervisor.openDisk('web-d1').read(0, DISK1)), expected)).toBe(0);
      console.log(`migration rolled back: ${(flushed.flushedBytes / 1024).toFixed(0)} KiB of migration-mode chunks shipped on-prem`);
    } finally {
      await settle(h.world, h.proxy.close()).catch(() => undefined);
      h.cloud.dispose();
    }
  }, 60_000);

  it('resizes a cloud proxy under guest load (§4.4): cache grow and shrink, scale-up with drain/resume, scale-out peers; every read returns the right bytes', async () => {
    const h = await build({ seed: 36, diskBytes: DISK1, cache: { capacityBytes: 8 * MiB, maxCapacityBytes: 32 * MiB } });
    try {
      const t = await transferO2C(h);
      expect(t.outcome).toBe('ok');
      const dev = h.proxy.targetDevice('web', 'web-d1');
      const pristine = new GuestImage({ seed: 36, imageId: 'ubuntu-web', sizeBytes: DISK1, os: 'linux', version: '22.04', app: 'web' }).disk('web-d1');
      const span = 24 * MiB;
      const writes: Array<{ offset: number; data: Buffer }> = [];
      const rng = h.world.rng('resize-load');
      const expected = async (offset: number, length: number): Promise<Buffer> => {
        const out = Buffer.from(await pristine.read(offset, length));
        for (const w of writes) {
          const from = Math.max(offset, w.offset);
          const to = Math.min(offset + length, w.offset + w.data.length);
          if (from < to) w.data.copy(out, from - offset, from - w.offset, to - w.offset);
        }
        return out;
      };
      let reads = 0;
      let bad = 0;
      let stop = false;
      // The guest: reads 64 KiB at random over 24 MiB (three times the cache), with a write now and then.
      const load = (async () => {
        while (!stop) {
          const offset = rng.int(0, span / 4096 - 16) * 4096;
          if (rng.chance(0.05)) {
            const data = Buffer.from(Array.from({ length: 4096 + rng.int(0, 8192) }, () => rng.int(0, 256)));
            await dev.write(offset, data);
            writes.push({ offset, data });
          } else {
            const got = await dev.read(offset, 64 * 1024);
            reads++;
            if (Buffer.compare(got, await expected(offset, 64 * 1024)) !== 0) bad++;
          }
          await h.world.clock.sleepUs(4_000);
        }
      })();
      const resize = async (id: string, capacityBytes: number) => {
        const r = h.rt.start({ machine: h.machines.proxyResize, id, src: 'proxy/web/web-d1' }, {
          id, config, resize: { proxyId: 'web/web-d1', instanceId: t.data.instanceId!, request: { kind: 'cache', capacityBytes } },
        });
        return settle(h.world, r.done);
      };
      await settle(h.world, h.world.clock.sleepUs(6 * S));
      const warm = await settle(h.world, h.proxy.cacheUsage({ proxyId: 'web/web-d1' }));
      expect(warm.usedBytes).toBeGreaterThan(4 * MiB);
      const grow = await resize('grow', 32 * MiB);
      expect(grow.outcome).toBe('ok');
      await settle(h.world, h.world.clock.sleepUs(6 * S));
      const grown = await settle(h.world, h.proxy.cacheUsage({ proxyId: 'web/web-d1' }));
      expect(grown.capacityBytes).toBe(32 * MiB);
      expect(grown.usedBytes).toBeGreaterThan(warm.usedBytes);
      const shrink = await resize('shrink', 4 * MiB);
      expect(shrink.outcome).toBe('ok');
      const shrunk = await settle(h.world, h.proxy.cacheUsage({ proxyId: 'web/web-d1' }));
      expect(shrunk.capacityBytes).toBe(4 * MiB);
      expect(shrunk.usedBytes).toBeLessThanOrEqual(4 * MiB);
      await settle(h.world, h.world.clock.sleepUs(5 * S));
      // Too big for the store the proxy was given: refused, nothing changes.
      const tooBig = await resize('too-big', 64 * MiB);
      expect(tooBig.outcome).toBe('rolled-back');
      expect(tooBig.failure?.code).toBe('E_BAD_FIELD');
      expect((await settle(h.world, h.proxy.cacheUsage({ proxyId: 'web/web-d1' }))).capacityBytes).toBe(4 * MiB);
      // Scale-up: drain (in-flight reads finish, new ones wait), a bigger instance type, resume.
      const up = h.rt.start({ machine: h.machines.proxyResize, id: 'scale-up', src: 'proxy/web/web-d1' }, {
        id: 'scale-up', config, resize: { proxyId: 'web/web-d1', instanceId: t.data.instanceId!, request: { kind: 'scaleUp', instanceType: 'm6i.xlarge' } },
      });
      const readsBeforeUp = reads;
      const upOut = await settle(h.world, up.done);
      expect(upOut.outcome).toBe('ok');
      const [resized] = await settle(h.world, h.cloud.describeInstances({ ids: [t.data.instanceId!] }));
      expect(resized!.type).toBe('m6i.xlarge');
      // Scale-out: two read-only peer proxies join as FIG 14 siblings of the primary.
      const siblingBefore = h.proxy.cloudProxy('web/web-d1').readPath.counters.siblingBlocks;
      const out2 = h.rt.start({ machine: h.machines.proxyResize, id: 'scale-out', src: 'proxy/web/web-d1' }, {
        id: 'scale-out', config, resize: { proxyId: 'web/web-d1', instanceId: t.data.instanceId!, request: { kind: 'scaleOut', count: 2, instanceType: 'm6i.large', imageId: STAGING } },
      });
      const outOut = await settle(h.world, out2.done);
      expect(outOut.outcome).toBe('ok');
      await settle(h.world, h.world.clock.sleepUs(5 * S));
      const peers = h.proxy.peersOf('web/web-d1');
      expect(peers.map((p) => p.instanceId)).toEqual(outOut.data.peerIds);
      const peerHits = h.proxy.cloudProxy('web/web-d1').readPath.counters.siblingBlocks - siblingBefore;
      await settle(h.world, h.proxy.removePeers({ proxyId: 'web/web-d1', instanceIds: outOut.data.peerIds! }));
      expect(h.proxy.peersOf('web/web-d1')).toEqual([]);
      stop = true;
      await settle(h.world, load);
      expect(reads).toBeGreaterThan(readsBeforeUp);
      expect(reads).toBeGreaterThan(500);
      console.log(`scale-up to m6i.xlarge with drain/resume; scale-out: ${peers.length} peers caching ${peers.map((p) => `${(p.cachedBytes / MiB).toFixed(1)} MiB`).join(', ')}, ${peerHits} primary blocks served by peers`);
      expect(bad).toBe(0);
      console.log(`resize under load: ${reads} reads (${writes.length} writes) all correct; cache 8 MiB (${(warm.usedBytes / MiB).toFixed(1)} used) -> 32 MiB (${(grown.usedBytes / MiB).toFixed(1)} used) -> 4 MiB (${(shrunk.usedBytes / MiB).toFixed(1)} used)`);
    } finally {
      await settle(h.world, h.proxy.close()).catch(() => undefined);
      h.cloud.dispose();
    }
  }, 60_000);

  it('same seed, same trace hash (transfer, guest writes and a write-behind flush over the proxy core)', async () => {
    const run = async () => {
      const h = await build({ seed: 37, diskBytes: DISK1 });
      try {
        const t = await transferO2C(h);
        expect(t.outcome).toBe('ok');
        const rng = h.world.rng('hash-writes');
        for (let i = 0; i < 20; i++) {
          const data = Buffer.from(Array.from({ length: rng.int(1, 9000) }, () => rng.int(0, 256)));
          await settle(h.world, h.proxy.targetDevice('web', 'web-d0').write(rng.int(0, DISK1 - data.length), data));
        }
        const flushed = await settle(h.world, h.proxy.flushWriteBehind({ vmId: 'web' }));
        expect(flushed.pendingBytes).toBe(0);
        // The data path traces little, so its counters are compared too.
        const proxies = h.proxy.proxyIds('web').map((id) => ({ id, reads: { ...h.proxy.cloudProxy(id).readPath.counters }, writes: h.proxy.cloudProxy(id).writeBehind.stats(), cache: h.proxy.cloudProxy(id).cache.stats() }));
        return { hash: h.world.trace.hash(), events: h.events.length, proxies, wan: h.wan.stats(), nowUs: h.world.nowUs, down: wanDown(h) };
      } finally {
        await settle(h.world, h.proxy.close()).catch(() => undefined);
        h.cloud.dispose();
      }
    };
    const a = await run();
    const b = await run();
    expect(b).toEqual(a);
    console.log(`same seed twice: ${a.events} trace events, hash ${a.hash.slice(0, 16)}…, ${(a.down / MiB).toFixed(2)} MiB down, ended at ${(a.nowUs / S).toFixed(1)} s virtual`);
  }, 60_000);
});
