import { describe, expect, it } from 'vitest';
import { createProxyControl } from '../src/providers/proxy-control/index.js';
import { EmulatedHypervisor } from '../src/providers/emulated/hypervisor/hypervisor.js';
import { GuestImage } from '../src/providers/emulated/guest/image.js';
import { SecureCache } from '../src/proxy/layers/secure-cache.js';
import { SparseStore } from '../src/proxy/stores/sparse-store.js';
import { SimWorld } from '../src/world/sim-world.js';
import { sampleGuest } from './machines-doubles.js';

const MiB = 1024 ** 2;
const B = 4096;

/** Runs the simulation in small slices until `p` settles. */
async function settle<T>(world: SimWorld, p: Promise<T>): Promise<T> {
  let done = false;
  p.then(() => { done = true; }, () => { done = true; });
  while (!done) {
    world.clock.schedule(10_000, () => undefined);
    await world.run({ untilUs: world.nowUs + 10_000 });
  }
  return p;
}

async function primaryWithPeers(seed: number) {
  const world = new SimWorld(seed);
  const hypervisor = new EmulatedHypervisor(world, { hosts: [{ id: 'h1', cpuCores: 8, ramMiB: 65536 }] });
  const image = new GuestImage({ seed, imageId: 'img', sizeBytes: 256 * MiB, os: 'linux', version: '22.04', app: 'web' });
  hypervisor.addVm({
    id: 'web', name: 'web', vcpus: 2, ramMiB: 512, workload: 'web', batch: false, guest: sampleGuest('web'), dirtyRateBytesPerS: 0,
    disks: [{ id: 'd0', sizeBytes: 256 * MiB, tier: 'ssd', imageId: 'img', create: () => image.disk('d0') }],
  });
  const pc = await settle(world, createProxyControl(world, {
    hypervisor, pairingKey: '7f'.repeat(32), onpremAddress: 'onprem:7000', runStateAddress: 'onprem:7100', cache: { capacityBytes: 8 * MiB },
  }));
  const { exportName } = await settle(world, pc.mountDisk({ vmId: 'web', diskId: 'd0', owner: 'web-transfer' }));
  await settle(world, pc.openTarget({ vmId: 'web', instanceId: 'i-1', disks: [{ diskId: 'd0', exportName, policy: 'on-prem' }], siblingSources: [] }));
  return { world, pc };
}

describe('scale-out peers of a disk proxy (CoreProxyControl.addPeers)', () => {
  it('seal under key epochs of their own: no peer cache shares the primary\'s or another peer\'s, and a re-added peer gets a fresh one', async () => {
    const { world, pc } = await primaryWithPeers(3);
    const primary = pc.cloudProxy('web/d0').remote;
    await settle(world, pc.addPeers({ proxyId: 'web/d0', instanceIds: ['i-2', 'i-3'] }));
    const first = pc.peersOf('web/d0');
    expect(first.map((p) => p.instanceId)).toEqual(['i-2', 'i-3']);
    const epochs = [primary.keyEpoch, ...first.map((p) => p.keyEpoch)];
    expect(new Set(epochs).size).toBe(3);

    await settle(world, pc.removePeers({ proxyId: 'web/d0', instanceIds: ['i-2'] }));
    await settle(world, pc.addPeers({ proxyId: 'web/d0', instanceIds: ['i-2'] }));
    const again = pc.peersOf('web/d0').find((p) => p.instanceId === 'i-2')!;
    expect(epochs).not.toContain(again.keyEpoch);
    await settle(world, pc.close());
  });

  it('the same block sealed by two caches with the disk\'s key and those epochs gives different ciphertext', async () => {
    const { world, pc } = await primaryWithPeers(4);
    const primary = pc.cloudProxy('web/d0').remote;
    await settle(world, pc.addPeers({ proxyId: 'web/d0', instanceIds: ['i-2'] }));
    const [peer] = pc.peersOf('web/d0');
    const sealed: Buffer[] = [];
    for (const keyEpoch of [primary.keyEpoch, peer!.keyEpoch]) {
      const store = new SparseStore('cache-store', SecureCache.storeBytes(4 * B, B));
      const cache = await SecureCache.open({ key: primary.cacheKey, keyEpoch, store, capacityBytes: 4 * B, blockBytes: B });
      expect(await cache.put(0, Buffer.alloc(B, 0x42))).toBe(true);
      const raw = store.readSync(0, store.size());
      sealed.push(raw.subarray(4096, 4096 + SecureCache.slotBytes(B)));
    }
    expect(sealed[0]!.equals(Buffer.alloc(SecureCache.slotBytes(B)))).toBe(false);
    expect(sealed[0]!.equals(sealed[1]!)).toBe(false);
    await settle(world, pc.close());
  });
});
