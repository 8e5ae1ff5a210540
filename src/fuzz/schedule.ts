import { InputError } from '../errors.js';
import { createRng } from '../world/rng.js';

/**
 * One fuzz run, drawn whole from its seed before anything runs: the system's
 * shape (disk, journal, cache, WAN, write-behind settings) and a list of
 * steps, guest I/O and faults interleaved. Drawing everything first makes a
 * run a plain list that can be replayed and shrunk: removing a fault step
 * leaves every other step (and the bytes it writes) exactly as it was.
 */

/** Every fault the fuzzer can inject, with what it models. */
export const FAULT_KINDS = {
  'link-drop': 'a WAN connection reset, from either side, possibly with a group on the wire',
  partition: 'the WAN goes away for a while (connections stall, then reset)',
  'cloud-crash': 'kill -9 of the cloud proxy; its stores keep a random prefix of unflushed writes; restart over them (the cache reopens from its index)',
  'cloud-restart': 'SIGTERM of the cloud proxy (drain, detach) and a restart over the same cache',
  'cloud-new-session': 'SIGTERM, then a new cloud proxy with an empty cache (a new host, a wiped cache dir)',
  'fresh-after-crash': 'kill -9, then a new cloud proxy with an empty cache: must be refused until the old cache ships',
  'second-writer': 'a second cloud proxy of the same disk while the first serves: must be refused',
  'onprem-crash': 'kill -9 of the on-prem proxy; its disk and apply journal keep a random prefix of unflushed writes; restart',
  'journal-flip': 'one flipped bit in the cloud journal, then a crash and restart: recovery must keep every record or refuse loudly',
  'cache-flip': 'one flipped bit in the encrypted cache: a read must return the right bytes or an error, never wrong bytes',
  'disk-error': 'I/O errors on the on-prem disk while groups are applied (retried)',
  'cloud-io-error': 'an I/O error on the cloud stores under a guest write (the write fails; its range is indeterminate until rewritten)',
} as const;

export type FaultKind = keyof typeof FAULT_KINDS;
export const ALL_FAULTS = Object.keys(FAULT_KINDS) as FaultKind[];

export type Step =
  | { kind: 'read'; offset: number; length: number }
  | { kind: 'write'; offset: number; length: number; fill: number }
  | { kind: 'zero'; offset: number; length: number }
  | { kind: 'flush' }
  | { kind: 'sleep'; us: number }
  | { kind: 'fault'; fault: FaultKind; arg: number };

export interface FuzzPlan {
  seed: number;
  diskBytes: number;
  journalBytes: number;
  cacheBytes: number;
  rpoUs: number;
  shipThresholdBytes: number;
  rttUs: number;
  bytesPerS: number;
  /** A region that never goes on-prem (swap, /tmp): its writes are kept in the cloud only. */
  nonPersistent: { offset: number; length: number } | null;
  steps: Step[];
}

export interface PlanOptions {
  steps?: number;
  faults?: readonly FaultKind[];
}

const KiB = 1024;
const MiB = 1024 * KiB;

export function parseFaultKinds(value: string | undefined): FaultKind[] {
  if (value === undefined || value === 'all') return [...ALL_FAULTS];
  if (value === 'none') return [];
  const kinds = value.split(',').map((s) => s.trim()).filter(Boolean);
  for (const k of kinds) {
    if (!(k in FAULT_KINDS)) throw new InputError('E_BAD_ARGUMENT', `--faults: unknown fault "${k}"; allowed: all, none, or a comma list of ${ALL_FAULTS.join(', ')}`);
  }
  return kinds as FaultKind[];
}

export function drawPlan(seed: number, options: PlanOptions = {}): FuzzPlan {
  const rng = createRng(seed, 'fuzz/plan');
  const diskBytes = rng.pick([1, 2, 4]) * MiB;
  const faults = options.faults ?? ALL_FAULTS;
  const stepCount = options.steps ?? rng.int(80, 200);
  const G = 4 * KiB;
  const np = rng.chance(0.3) ? { offset: rng.int(0, diskBytes / G / 2) * G, length: rng.int(1, 64) * G } : null;
  const plan: FuzzPlan = {
    seed,
    diskBytes,
    // Small journals fill up and force shipping under load; large ones rarely do.
    journalBytes: rng.pick([256 * KiB, 1 * MiB, 4 * MiB]),
    cacheBytes: rng.pick([256 * KiB, 1 * MiB, 4 * MiB]),
    rpoUs: rng.pick([50_000, 500_000, 5_000_000]),
    shipThresholdBytes: rng.pick([16 * KiB, 256 * KiB, 2 * MiB]),
    rttUs: rng.pick([2_000, 20_000, 80_000]),
    bytesPerS: rng.pick([5e6, 50e6, 500e6]),
    nonPersistent: np,
    steps: [],
  };
  // Faults are rarer than I/O, and cluster: some runs are calm, some are storms.
  const faultRate = faults.length === 0 ? 0 : rng.pick([0.03, 0.08, 0.2]);
  for (let i = 0; i < stepCount; i++) {
    if (rng.chance(faultRate)) {
      plan.steps.push({ kind: 'fault', fault: rng.pick(faults), arg: rng.u32() });
      continue;
    }
    const r = rng.next();
    // Unaligned offsets and lengths too: the write-behind's partial granules are where bugs hide.
    const offset = rng.chance(0.7) ? rng.int(0, diskBytes / 512) * 512 : rng.int(0, diskBytes - 1);
    const length = Math.max(1, Math.min(diskBytes - offset, rng.chance(0.85) ? rng.int(1, 33) * 512 : rng.int(1, 128 * KiB)));
    if (r < 0.38) plan.steps.push({ kind: 'read', offset, length });
    else if (r < 0.7) plan.steps.push({ kind: 'write', offset, length, fill: rng.u32() });
    else if (r < 0.78) plan.steps.push({ kind: 'zero', offset, length });
    else if (r < 0.88) plan.steps.push({ kind: 'flush' });
    else plan.steps.push({ kind: 'sleep', us: rng.pick([1_000, 50_000, 400_000, 3_000_000]) });
  }
  return plan;
}

/** The plan with some fault steps left out (shrinking). */
export function withoutSteps(plan: FuzzPlan, drop: ReadonlySet<number>): FuzzPlan {
  return { ...plan, steps: plan.steps.filter((_, i) => !drop.has(i)) };
}
