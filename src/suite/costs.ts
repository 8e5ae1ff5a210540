import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import type { SuiteResult } from './result.js';

/**
 * Measured cost of each scenario's run (wall seconds of one run, recorded by
 * `spillway test --record-costs` with one job on a quiet machine): what
 * `--shard` balances. A file of measurements, not a model: the same file on
 * every CI machine gives every machine the same split.
 *
 *   { "version": 1, "unit": "wall seconds of one run", "scenarios": { "quarter-end": 41.2, ... } }
 */
export interface SuiteCosts {
  /** Seconds per run of each scenario, by scenario name. */
  scenarios: Record<string, number>;
}

/** The name of the costs file `spillway test` reads from a scenario folder it is given. */
export const COSTS_FILE = 'costs.json';

export function readCosts(path: string, field = '--costs'): SuiteCosts {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new InputError('E_BAD_COSTS', `${field}: cannot read ${path} as JSON: ${(err as Error).message}`, { cause: err });
  }
  const scenarios = (raw as { scenarios?: unknown } | null)?.scenarios;
  if (!scenarios || typeof scenarios !== 'object' || Array.isArray(scenarios)) {
    throw new InputError('E_BAD_COSTS', `${field}: ${path} must hold { "scenarios": { "<scenario name>": <seconds>, ... } }`);
  }
  const out: Record<string, number> = {};
  for (const [name, v] of Object.entries(scenarios)) {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      throw new InputError('E_BAD_COSTS', `${field}: ${path}: scenarios["${name}"] must be a number of seconds >= 0, got ${JSON.stringify(v)}`);
    }
    out[name] = v;
  }
  return { scenarios: out };
}

/** The costs files found in the given scenario folders (a `costs.json` directly inside one), merged. */
export function costsInFolders(folders: readonly string[]): SuiteCosts | null {
  const found = folders.map((f) => join(f, COSTS_FILE)).filter((p) => existsSync(p));
  if (found.length === 0) return null;
  return { scenarios: Object.assign({}, ...found.map((p) => readCosts(p, COSTS_FILE).scenarios)) };
}

/**
 * What a run costs by the file: its scenario's measure, or, for a scenario
 * not measured yet, the median of the measured ones (1 s if none is).
 */
export function costModel(costs: SuiteCosts): (scenario: string) => number {
  const known = Object.values(costs.scenarios).sort((a, b) => a - b);
  const fallback = known.length ? known[Math.floor(known.length / 2)]! : 1;
  return (scenario) => costs.scenarios[scenario] ?? fallback;
}

/** Merge this suite's runs into the costs at `path` (a scenario's seeds averaged) and write it. */
export function recordCosts(path: string, results: readonly SuiteResult[]): SuiteCosts {
  const before = existsSync(path) ? readCosts(path, '--record-costs').scenarios : {};
  const sums = new Map<string, { s: number; n: number }>();
  for (const r of results) {
    if (r.status === 'error') continue;
    const e = sums.get(r.item.scenario) ?? { s: 0, n: 0 };
    e.s += r.wallMs / 1000;
    e.n++;
    sums.set(r.item.scenario, e);
  }
  const scenarios: Record<string, number> = { ...before };
  for (const [name, { s, n }] of sums) scenarios[name] = Math.round((s / n) * 10) / 10;
  const sorted = Object.fromEntries(Object.entries(scenarios).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  try {
    writeFileSync(path, `${JSON.stringify({ version: 1, unit: 'wall seconds of one run', scenarios: sorted }, null, 2)}\n`);
  } catch (err) {
    throw new InputError('E_BAD_OUTPUT_FILE', `--record-costs: cannot write ${path}: ${(err as Error).message}`, { cause: err });
  }
  return { scenarios: sorted };
}
