import { describe, expect, it } from 'vitest';
import { createCloudProxy, memoryCloudStores, type CloudProxy } from '../src/proxy/cloud/index.js';
import { createOnpremProxy } from '../src/proxy/onprem/index.js';
import { SparseStore } from '../src/proxy/stores/sparse-store.js';
import { WanLink, wanConfig } from '../src/providers/emulated/wan/wan-link.js';
import { SimWorld } from '../src/world/sim-world.js';
import type { Rng } from '../src/world/types.js';
import { simulate } from './proxy-link-helpers.js';

const KEY = '5a'.repeat(32);
const DISK_BYTES = 1024 * 1024;

function randomBytes(rng: Rng, n: number): Buffer {
  const b = Buffer.allocUnsafe(n + 4);
  for (let i = 0; i < n; i += 4) b.writeUInt32LE(rng.u32(), i);
  return b.subarray(0, n);
}

/** Fill the on-prem disk with a mix: zeros, random bytes, repeated blocks and text. */
function seedDisk(disk: SparseStore, rng: Rng): void {
  const block = 4096;
  const pool = Array.from({ length: 4 }, () => randomBytes(rng, block));
  for (let off = 0; off < DISK_BYTES; off += block) {
    const kind = rng.int(0, 4);
    if (kind === 0) continue;
    const data = kind === 1 ? randomBytes(rng, block)
      : kind === 2 ? rng.pick(pool)
      : Buffer.from('the quick brown fox jumps over the lazy dog '.repeat(94).slice(0, block));
    disk.writeSync(off, data);
  }
}


async function runModel(seed: number, steps: number): Promise<{ crashes: number; drops: number; duplicates: number; traceHash: string; endUs: number }> {
  const world = new SimWorld(seed);
  const rng = world.rng('test/model');
  world.net.setLink('onprem:7000', new WanLink(world, wanConfig({ name: 'wan', rttUs: 20_000, downBytesPerS: 50e6, upBytesPerS: 20e6 })));
  const disk = new SparseStore('onprem-disk', DISK_BYTES);
  seedDisk(disk, rng);
  const model = disk.readSync(0, DISK_BYTES);
  const onprem = await createOnpremProxy(world, {
    address: 'onprem:7000', pairingKey: KEY,
    disks: [{ id: 'vm1-disk0', device: disk, bootFiles: [{ path: '/boot/vmlinuz', ranges: [{ offset: 0, length: 256 * 1024 }], firstAccess: 0 }] }],
  });
  const stores = memoryCloudStores('vm1', DISK_BYTES, { journalBytes: 32 * 1024 * 1024 });
  const open = (): Promise<CloudProxy> => createCloudProxy(world, {
    name: 'vm1', onprem: 'onprem:7000', pairingKey: KEY, disk: { id: 'vm1-disk0' }, stores,
    cacheCapacityBytes: rng.chance(0.5) ? 256 * 1024 : 4 * 1024 * 1024,
    rpoUs: 50_000 + rng.int(0, 200_000), shipThresholdBytes: 64 * 1024 + rng.int(0, 256 * 1024),
    reconnectMinUs: 10_000, reconnectMaxUs: 200_000,
  });
  let crashes = 0;
  let drops = 0;
  let duplicates = 0;
  await simulate(world, async () => {
    let proxy = await open();
    for (let step = 0; step < steps; step++) {
      const dev = proxy.device;
      const op = rng.next();
      const offset = rng.int(0, DISK_BYTES / 512) * 512;
      const length = Math.min(DISK_BYTES - offset, rng.int(1, 64) * 512);
      if (op < 0.35) {
        const got = await dev.read(offset, length);
        const want = model.subarray(offset, offset + length);
        if (!got.equals(want)) throw new Error(`seed ${seed} step ${step}: read ${offset}+${length} differs from the model`);
      } else if (op < 0.6) {
        const data = rng.chance(0.3) ? Buffer.alloc(length, rng.int(0, 3)) : randomBytes(rng, length);
        await dev.write(offset, data);
        data.copy(model, offset);
      } else if (op < 0.67) {
        await dev.trim(offset, length);
        model.fill(0, offset, offset + length);
      } else if (op < 0.72) {
        await dev.writeZeroes(offset, length);
        model.fill(0, offset, offset + length);
      } else if (op < 0.8) {
        await dev.flush();
      } else if (op < 0.86) {
        await world.clock.sleepUs(rng.int(0, 400_000));
      } else if (op < 0.92) {
        // Kill the cloud proxy between acknowledged ops; the journal must carry every acknowledged write.
        duplicates += proxy.remote.stats.groupsDuplicate;
        proxy.crash();
        crashes++;
        await world.clock.sleepUs(rng.int(0, 100_000));
        proxy = await open();
      } else {
        // Drop the link mid-flight, from either side, possibly while a group is on the wire.
        drops++;
        if (rng.chance(0.5)) proxy.link.dropConnection();
        else onprem.dropConnections();
        if (rng.chance(0.5)) {
          const data = randomBytes(rng, length);
          await dev.write(offset, data);
          data.copy(model, offset);
        }
      }
    }
    await proxy.drain();
    duplicates += proxy.remote.stats.groupsDuplicate;
    const whole = await proxy.device.read(0, DISK_BYTES);
    if (!whole.equals(model)) throw new Error(`seed ${seed}: the cloud view differs from the model at the end`);
    await proxy.close();
  });
  const onpremBytes = disk.readSync(0, DISK_BYTES);
  if (!onpremBytes.equals(model)) {
    let at = 0;
    while (onpremBytes[at] === model[at]) at++;
    throw new Error(`seed ${seed}: on-prem disk differs from the model first at byte ${at}`);
  }
  const applier = onprem.appliers.get('vm1-disk0')!;
  for (const [seq, n] of applier.applications) expect(n, `group ${seq} applied ${n} times`).toBe(1);
  await onprem.close();
  return { crashes, drops, duplicates, traceHash: world.trace.hash(), endUs: world.nowUs };
}

describe('cloud + on-prem proxies against an in-memory model', () => {
  it('reads return the latest acknowledged write and on-prem equals the model after drain (24 seeds, crash/restart and link drops)', async () => {
    let crashes = 0;
    let drops = 0;
    for (let seed = 1; seed <= 24; seed++) {
      const r = await runModel(seed, 50);
      crashes += r.crashes;
      drops += r.drops;
    }
    // The mix must really exercise crash/restart and link drops.
    expect(crashes).toBeGreaterThan(15);
    expect(drops).toBeGreaterThan(15);
  });

  it('is deterministic: the same seed gives the same trace hash and end time', async () => {
    const a = await runModel(7, 30);
    const b = await runModel(7, 30);
    expect(b.traceHash).toBe(a.traceHash);
    expect(b.endUs).toBe(a.endUs);
    const c = await runModel(8, 30);
    expect(c.traceHash).not.toBe(a.traceHash);
  });
});
