import { describe, expect, it } from 'vitest';
import { createCloudProxy, memoryCloudStores } from '../src/proxy/cloud/index.js';
import { createOnpremProxy } from '../src/proxy/onprem/index.js';
import { SparseStore } from '../src/proxy/stores/sparse-store.js';
import { SimWorld } from '../src/world/sim-world.js';
import { directLink } from '../src/world/sim-net.js';
import { PAIRING_KEY, randomBytes, simulate } from './proxy-link-helpers.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Streams of 16 KiB reads, 96 KiB each, at the given MiB offsets (a boot reading a few files). */
async function readStreams(device: { read(offset: number, length: number): Promise<Buffer> }, at: number[]): Promise<void> {
  for (const m of at) for (let o = 0; o < 96 * KiB; o += 16 * KiB) await device.read(m * MiB + o, 16 * KiB);
}

describe('read-ahead beside a profile stream (FIG 22)', () => {
  it('asks for nothing while the guest reads what the profile covers, and again once it leaves the profile', async () => {
    const world = new SimWorld(5);
    world.net.setLink('onprem:7000', directLink(world.clock, 20_000));
    const disk = new SparseStore('disk', 64 * MiB);
    disk.writeSync(0, randomBytes(world.rng('content'), 32 * MiB));
    await createOnpremProxy(world, { address: 'onprem:7000', pairingKey: PAIRING_KEY, disks: [{ id: 'boot', device: disk }] });
    const open = (name: string) => createCloudProxy(world, {
      name, onprem: 'onprem:7000', pairingKey: PAIRING_KEY, disk: { id: 'boot' },
      stores: memoryCloudStores(name, 64 * MiB), cacheCapacityBytes: 64 * MiB,
      readAhead: { firstWindowBytes: 256 * KiB, minWindowBytes: 256 * KiB, maxWindowBytes: 256 * KiB },
    });
    const streams = [1, 5, 9, 13];
    await simulate(world, async () => {
      // The first VM boots with read-ahead (its windows run 256 KiB past each 96 KiB stream) and its first reads are recorded.
      const first = await open('vm-1');
      await readStreams(first.device, streams);
      expect(first.readPath.counters.pushRequests).toBeGreaterThan(0);
      await first.close();

      // A second VM of the image: the profile is streamed, and read-ahead past it would only add bytes nobody reads.
      const second = await open('vm-2');
      expect(second.remote.profileBlocks).toBe(streams.length * 96 * KiB / 4096);
      await readStreams(second.device, streams);
      await world.clock.sleepUs(1_000_000);
      // At most the first read's window, issued before the profile's order arrived.
      expect(second.readPath.counters.pushRequests).toBeLessThanOrEqual(1);
      const wire = second.link.stats.pushBytes + second.remote.stats.readBytes;
      expect(wire).toBeLessThan(streams.length * 96 * KiB + 256 * KiB + 16 * KiB);

      // Off the profile, read-ahead works as before.
      const before = second.readPath.counters.pushRequests;
      await readStreams(second.device, [20]);
      expect(second.readPath.counters.pushRequests).toBeGreaterThan(before);
      await second.close();
    });
  });
});
