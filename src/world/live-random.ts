import { randomBytes } from 'node:crypto';

/**
 * Real randomness for secrets (pairing keys). Live only: simulations draw from
 * world.rng, which is seeded and therefore never a secret.
 */
export function secretBytes(n: number): Buffer {
  return randomBytes(n);
}
