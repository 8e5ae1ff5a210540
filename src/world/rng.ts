import seedrandom from 'seedrandom';
import type { Rng } from './types.js';

/**
 * Seeded streams: each label gets an independent alea generator derived from
 * the master seed, so adding a component never shifts another's draws.
 */
export function createRng(seed: number, label: string): Rng {
  const prng = seedrandom.alea(`${seed}/${label}`);
  const next = (): number => prng();
  const rng: Rng = {
    label,
    next,
    u32: () => prng.int32() >>> 0,
    int: (lo, hiExclusive) => lo + Math.floor(next() * (hiExclusive - lo)),
    range: (lo, hi) => lo + next() * (hi - lo),
    chance: (p) => next() < p,
    normal: (mean, sd) => {
      // Box–Muller; 1 - u keeps log() away from zero.
      const u = 1 - next();
      const v = next();
      return mean + sd * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    },
    exp: (mean) => -mean * Math.log(1 - next()),
    pick: (items) => items[Math.floor(next() * items.length)]!,
    shuffle: (items) => {
      for (let i = items.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        [items[i], items[j]] = [items[j]!, items[i]!];
      }
      return items;
    },
  };
  return rng;
}

/** Keeps one stream per label, so asking twice continues the same stream. */
export class RngRegistry {
  private readonly streams = new Map<string, Rng>();
  constructor(private readonly seed: number) {}

  get(label: string): Rng {
    let rng = this.streams.get(label);
    if (!rng) {
      rng = createRng(this.seed, label);
      this.streams.set(label, rng);
    }
    return rng;
  }
}

/** `bytes` bytes from a seeded stream, four at a time (what the simulated World calls unpredictable). */
export function rngBytes(rng: Rng, bytes: number): Buffer {
  const b = Buffer.allocUnsafe(Math.ceil(bytes / 4) * 4);
  for (let i = 0; i < b.length; i += 4) b.writeUInt32BE(rng.u32(), i);
  return b.subarray(0, bytes);
}
