import { createOnpremProxy } from '../src/proxy/onprem/index.js';
import { SparseStore } from '../src/proxy/stores/sparse-store.js';
import { directLink } from '../src/world/sim-net.js';
import { SimWorld } from '../src/world/sim-world.js';
import type { Rng } from '../src/world/types.js';

export const PAIRING_KEY = '5a'.repeat(32);
export const OTHER_KEY = 'c3'.repeat(32);

export function randomBytes(rng: Rng, n: number): Buffer {
  const b = Buffer.allocUnsafe(n + 4);
  for (let i = 0; i < n; i += 4) b.writeUInt32LE(rng.u32(), i);
  return b.subarray(0, n);
}

/** Run `body` inside the simulation until it settles; fail loudly if it waits with nothing scheduled. */
export async function simulate<T>(world: SimWorld, body: () => Promise<T>): Promise<T> {
  let settled = false;
  const p = body().finally(() => { settled = true; });
  p.catch(() => undefined);
  while (!settled) {
    const r = await world.run({ maxEvents: 50_000_000 });
    if (!settled && r.reason === 'idle') {
      await Promise.race([p, new Promise((resolve) => { void Promise.resolve().then(resolve); })]);
      if (!settled) throw new Error(`simulation went idle at ${world.nowUs}us with the test body still waiting`);
    }
  }
  return p;
}

/** A simulated on-prem proxy at onprem:7000 (20 ms link) serving disk vm1 of `diskBytes`, its first 2 MiB random. */
export async function onpremBed(seed: number, diskBytes: number) {
  const world = new SimWorld(seed);
  world.net.setLink('onprem:7000', directLink(world.clock, 20_000));
  const disk = new SparseStore('disk', diskBytes);
  disk.writeSync(0, randomBytes(world.rng('content'), 1 << 21));
  const onprem = await createOnpremProxy(world, { address: 'onprem:7000', pairingKey: PAIRING_KEY, disks: [{ id: 'vm1', device: disk, image: 'img' }] });
  return { world, disk, onprem };
}
