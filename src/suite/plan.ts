import { createHash } from 'node:crypto';
import { InputError } from '../errors.js';

/**
 * A suite is a list of (scenario file, seed) runs. The list is a pure function
 * of the files, their seeds and the flags, so every CI machine that runs one
 * shard of it computes the same list and takes a disjoint part.
 */
export interface SuiteScenario {
  file: string;
  name: string;
  seed: number;
}

export interface SuiteItem {
  /** Position in the whole (unsharded) plan: stable across machines. */
  index: number;
  file: string;
  scenario: string;
  seed: number;
  /** 0 for the scenario's own seed, k for the k-th derived seed of a sweep. */
  sweep: number;
}

/**
 * `count` seeds starting at `base`: the first is `base` itself (so a sweep of
 * one is the plain run), the rest are sha256-derived so neighbouring bases do
 * not share seeds.
 */
export function deriveSeeds(base: number, count: number): number[] {
  const out = [base];
  const seen = new Set(out);
  for (let k = 1; out.length < count; k++) {
    const digest = createHash('sha256').update(`spillway-sweep/${base}/${k}`).digest();
    const seed = digest.readUInt32BE(0);
    if (seen.has(seed)) continue;
    seen.add(seed);
    out.push(seed);
  }
  return out;
}

export function planSuite(scenarios: readonly SuiteScenario[], options: { seeds?: number; seed?: number } = {}): SuiteItem[] {
  const sorted = [...scenarios].sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
  const items: SuiteItem[] = [];
  for (const s of sorted) {
    deriveSeeds(options.seed ?? s.seed, options.seeds ?? 1).forEach((seed, sweep) => {
      items.push({ index: items.length, file: s.file, scenario: s.name, seed, sweep });
    });
  }
  return items;
}

export interface Shard {
  /** 1-based, as written on the command line. */
  index: number;
  count: number;
}

export function parseShard(text: string, field = '--shard'): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(text);
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || count < 1 || index < 1 || index > count || count > 10_000) {
    throw new InputError('E_BAD_ARGUMENT', `${field}: expected i/n with 1 <= i <= n <= 10000 (e.g. 2/4), got "${text}"`);
  }
  return { index, count };
}

/**
 * This shard's runs. With a cost per run (measured, see costs.ts) the plan
 * is split so the shards' total costs come out as even as they can: the
 * costliest run first, each to the shard with the least so far (ties: the
 * lower shard, then plan order), the same split on every machine. Without
 * costs, round-robin by plan position: every item lands in exactly one
 * shard, and a scenario's seeds spread over the machines.
 */
export function shardItems(items: readonly SuiteItem[], shard: Shard, cost?: (item: SuiteItem) => number): SuiteItem[] {
  if (!cost) return items.filter((it) => it.index % shard.count === shard.index - 1);
  const assigned = assignShards(items, shard.count, cost);
  return items.filter((it) => assigned.get(it.index) === shard.index);
}

/** Plan index -> 1-based shard, by longest run first onto the least loaded shard. */
export function assignShards(items: readonly SuiteItem[], count: number, cost: (item: SuiteItem) => number): Map<number, number> {
  const order = [...items].sort((a, b) => cost(b) - cost(a) || a.index - b.index);
  const load = new Array<number>(count).fill(0);
  const out = new Map<number, number>();
  for (const it of order) {
    let best = 0;
    for (let s = 1; s < count; s++) if (load[s]! < load[best]!) best = s;
    load[best]! += cost(it);
    out.set(it.index, best + 1);
  }
  return out;
}
