import { availableParallelism } from 'node:os';
import { accessSync, constants, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { InputError } from '../errors.js';
import { loadScenarioFile } from '../sim/scenario-file.js';
import { costModel, costsInFolders, readCosts, recordCosts } from '../suite/costs.js';
import { renderJUnit } from '../suite/junit.js';
import { parseShard, planSuite, shardItems, type SuiteScenario } from '../suite/plan.js';
import { runPool } from '../suite/pool.js';
import { passedCount, type SuiteResult } from '../suite/result.js';
import { wallMs } from '../world/live-world.js';
import { EXIT_EXPECTATION_FAILED, EXIT_OK, parseFlags, parseSeed, type Command, type CommandIo } from './command.js';
import { replayCommand } from './run.js';

const usage = `Usage: spillway test <dir|file.yaml...> [--seeds N] [--seed S] [--shard i/n] [--costs FILE] [--record-costs FILE]
                     [--jobs N] [--junit FILE] [--json]

Run every scenario (*.yaml, *.yml; folders are searched recursively) with its
expect: clauses, in parallel worker threads, and print a pass/fail table.

  --seeds N      run each scenario with N seeds: its own, then N-1 derived from it (default 1)
  --seed S       use S instead of each scenario's seed as the base of the sweep
  --shard i/n    run only the i-th of n deterministic slices of the (scenario, seed) list (CI fan-out),
                 split so the slices' measured costs are even (see --costs); round-robin without costs
  --costs FILE   measured seconds per scenario run (default: costs.json in a scenario folder given)
  --record-costs FILE  write this suite's wall seconds per run into FILE (merged with what it holds);
                 record with --jobs 1 on a quiet machine
  --jobs N       worker threads (default: the machine's cores)
  --junit FILE   write JUnit XML (one testcase per seed and expectation) for CI
  --json         print one JSON object on stdout instead of the table

Exit status: 0 every run passed, 1 an expectation failed or a run crashed, 2 bad input
(every invalid scenario is named before anything runs). Each failure prints its replay command.`;

export const testCommand: Command = {
  name: 'test',
  summary: 'run every scenario in a folder against its expectations',
  usage,
  async run(args: string[], io: CommandIo): Promise<number> {
    const { values, positionals } = parseFlags(args, {
      seeds: { type: 'string' }, seed: { type: 'string' }, shard: { type: 'string' }, jobs: { type: 'string' },
      junit: { type: 'string' }, json: { type: 'boolean' }, costs: { type: 'string' }, 'record-costs': { type: 'string' },
    }, usage);
    if (positionals.length === 0) throw new InputError('E_MISSING_ARGUMENT', `missing a scenario folder or file\n\n${usage}`);
    const seeds = count(values.seeds, '--seeds', 1, 10_000) ?? 1;
    const jobs = count(values.jobs, '--jobs', 1, 256);
    const seed = parseSeed(values.seed);
    const shard = values.shard === undefined ? null : parseShard(values.shard);

    // Fail on an unwritable --junit path now, not after the whole suite has run.
    if (values.junit) writeJUnit(values.junit, '');
    if (values['record-costs'] !== undefined) checkWritableFolder(values['record-costs'], '--record-costs');
    const files = positionals.flatMap(scenarioFiles);
    if (files.length === 0) throw new InputError('E_NO_SCENARIOS', `no scenario files (*.yaml, *.yml) in ${positionals.join(', ')}`);
    // Validate everything before running anything: a typo in one file must not cost a CI run of the rest.
    const scenarios: SuiteScenario[] = [];
    const bad: string[] = [];
    for (const file of files) {
      try {
        const s = loadScenarioFile(file);
        scenarios.push({ file, name: s.name, seed: s.seed });
      } catch (err) {
        if (!(err instanceof InputError)) throw err;
        bad.push(err.message);
      }
    }
    if (bad.length > 0) throw new InputError('E_BAD_SCENARIO', `${bad.length} invalid scenario(s); nothing was run:\n  ${bad.join('\n  ')}`);

    const all = planSuite(scenarios, { seeds, ...(seed !== undefined ? { seed } : {}) });
    const costs = values.costs !== undefined ? readCosts(values.costs) : costsInFolders(positionals.filter(isFolder));
    const cost = costs ? costModel(costs) : null;
    const items = shard ? shardItems(all, shard, cost ? (it) => cost(it.scenario) : undefined) : all;
    const threads = Math.min(jobs ?? availableParallelism(), Math.max(1, items.length));
    io.err(`spillway test: ${scenarios.length} scenario(s) × ${seeds} seed(s) = ${all.length} run(s)` +
      (shard ? `; shard ${shard.index}/${shard.count} takes ${items.length}` +
        (cost ? ` (${secs(1000 * items.reduce((n, it) => n + cost(it.scenario), 0))} of ${secs(1000 * all.reduce((n, it) => n + cost(it.scenario), 0))} measured)` : ' (round-robin: no costs file)') : '') +
      ` on ${threads} worker thread(s)`);

    const started = wallMs();
    const width = String(items.length).length;
    const results = await runPool(items, {
      jobs: threads,
      onProgress: (item, pct, ms) => io.err(`  … ${item.scenario} seed ${item.seed}: ${pct}% of its virtual time after ${secs(ms)}`),
      onResult: (r, done, total) => {
        io.err(`  [${String(done).padStart(width)}/${total}] ${status(r).padEnd(5)} ${r.item.scenario} seed ${r.item.seed} (${r.status === 'error' ? r.error!.code : `${passedCount(r)}/${r.expectations.length}`}, ${secs(r.wallMs)})`);
      },
    });
    const elapsedMs = wallMs() - started;
    const failed = results.filter((r) => r.status !== 'pass');
    const replay = (r: SuiteResult): string => replayCommand(r.item.file, r.item.seed);

    if (values.junit) writeJUnit(values.junit, renderJUnit(results, { replay }));
    if (values['record-costs'] !== undefined) recordCosts(values['record-costs'], results);
    if (values.json) {
      io.out(JSON.stringify({
        passed: failed.length === 0,
        runs: results.length,
        failed: failed.length,
        ...(shard ? { shard: `${shard.index}/${shard.count}`, plannedRuns: all.length } : {}),
        results: results.map((r) => ({ ...r.item, status: r.status, passed: passedCount(r), expectations: r.expectations, traceHash: r.traceHash, wallMs: r.wallMs, error: r.error, ...(r.status === 'pass' ? {} : { replay: replay(r) }) })),
      }));
    } else {
      io.out(renderTable(results));
      io.out('');
      io.out(`${results.length - failed.length} of ${results.length} run(s) passed in ${secs(elapsedMs)} wall` + (values.junit ? `; JUnit written to ${values.junit}` : ''));
      if (failed.length > 0) {
        io.out('');
        io.out('Failures:');
        for (const r of failed) {
          io.out(`  ${r.item.scenario} seed ${r.item.seed} (${r.item.file})`);
          if (r.error) io.out(`    ${r.error.code}: ${r.error.message}`);
          for (const e of r.expectations.filter((x) => !x.pass)) io.out(`    FAIL ${e.id}: ${e.metric} ${e.op} ${JSON.stringify(e.value)} (actual ${JSON.stringify(e.actual)})`);
          io.out(`    replay: ${replay(r)}`);
        }
      }
    }
    return failed.length > 0 ? EXIT_EXPECTATION_FAILED : EXIT_OK;
  },
};

const status = (r: SuiteResult): string => (r.status === 'pass' ? 'PASS' : r.status === 'fail' ? 'FAIL' : 'ERROR');
const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

export function renderTable(results: readonly SuiteResult[]): string {
  const rows = results.map((r) => [
    status(r), r.item.scenario, String(r.item.seed),
    r.status === 'error' ? r.error!.code : `${passedCount(r)}/${r.expectations.length}`,
    secs(r.wallMs), r.traceHash ? r.traceHash.slice(0, 12) : '—',
  ]);
  const head = ['', 'scenario', 'seed', 'expect', 'wall', 'trace'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const right = new Set([2, 3, 4]);
  const line = (cells: string[]): string => `  ${cells.map((c, i) => (right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ')}`.trimEnd();
  return [line(head), ...rows.map(line)].join('\n');
}

function count(value: string | undefined, field: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new InputError('E_BAD_ARGUMENT', `${field}: expected an integer from ${min} to ${max}, got "${value}"`);
  }
  return Number(value);
}

function checkWritableFolder(path: string, field: string): void {
  try {
    accessSync(dirname(resolve(path)), constants.W_OK);
  } catch (err) {
    throw new InputError('E_BAD_OUTPUT_FILE', `${field}: cannot write ${path}: ${(err as Error).message}`, { cause: err });
  }
}

function isFolder(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** A file as given, or every *.yaml / *.yml under a folder, sorted so the plan is the same everywhere. */
function scenarioFiles(path: string): string[] {
  let st;
  try {
    st = statSync(path);
  } catch (err) {
    throw new InputError('E_SCENARIO_READ', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (!st.isDirectory()) return [path];
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const child = join(dir, name);
      if (statSync(child).isDirectory()) walk(child);
      else if (/\.ya?ml$/.test(name)) out.push(child);
    }
  };
  walk(path);
  return out;
}

function writeJUnit(path: string, xml: string): void {
  try {
    writeFileSync(path, xml);
  } catch (err) {
    throw new InputError('E_BAD_OUTPUT_FILE', `--junit: cannot write ${path}: ${(err as Error).message}`, { cause: err });
  }
}
