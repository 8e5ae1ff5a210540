import type { SimWorld } from '../src/world/sim-world.js';
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
