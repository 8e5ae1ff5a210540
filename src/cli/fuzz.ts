import { availableParallelism } from 'node:os';
import { readFileSync, writeFileSync } from 'node:fs';
import { InputError } from '../errors.js';
import { runPlan, type FuzzResult } from '../fuzz/run.js';
import { ALL_FAULTS, FAULT_KINDS, drawPlan, parseFaultKinds, type FaultKind, type FuzzPlan, type PlanOptions } from '../fuzz/schedule.js';
import { shrinkPlan } from '../fuzz/shrink.js';
import { runInWorkers } from '../util/worker-pool.js';
import { wallMs } from '../world/live-world.js';
import type { LogLine } from '../world/sim-world.js';
import { EXIT_EXPECTATION_FAILED, EXIT_OK, parseCount, parseFlags, parseSeed, type Command, type CommandIo } from './command.js';

const usage = `Usage: spillway fuzz [--seeds N] [--from S] [--seed S] [--faults KINDS] [--steps N] [--jobs N] [--json]
       spillway fuzz --replay FILE [--verbose]

A seeded fault fuzzer (VOPR) of the proxy pair: each seed draws a system (disk,
journal, cache, WAN, write-behind settings) and a schedule of guest I/O and
faults, and runs it against the real proxy core in a simulation, checking:
every read returns the latest acknowledged write or an error, never other
bytes; a second writer is never admitted; no step hangs; after a drain the
on-prem disk equals the acknowledged writes and every group applied once.

  --seeds N      run N seeds (default 100), starting at --from (default 1)
  --seed S       run one seed and print what it did
  --faults KINDS all (default), none, or a comma list of:
${Object.entries(FAULT_KINDS).map(([k, v]) => `                   ${k}: ${v}`).join('\n')}
  --steps N      steps per seed (default: drawn, 80-200)
  --jobs N       worker threads (default: the machine's cores)
  --json         one JSON object on stdout
  --replay FILE  run the plan a violation wrote (fuzz-SEED.json) again
  --verbose      with --replay: print each step, what every fault did to
                 which store, and the proxies' log, in virtual time (stderr)

A violation prints its seed, the invariant, the shrunk schedule (written to
fuzz-SEED.json) and the command that replays it. Exit status: 0 no violation,
1 a violation, 2 bad input.`;

interface Item {
  seed: number;
  options: PlanOptions;
}

export const fuzzCommand: Command = {
  name: 'fuzz',
  summary: 'fault-fuzz the proxy pair against a model of acknowledged writes (VOPR)',
  usage,
  async run(args: string[], io: CommandIo): Promise<number> {
    const { values } = parseFlags(args, {
      seeds: { type: 'string' }, from: { type: 'string' }, seed: { type: 'string' }, faults: { type: 'string' },
      steps: { type: 'string' }, jobs: { type: 'string' }, json: { type: 'boolean' }, replay: { type: 'string' },
      verbose: { type: 'boolean' },
    }, usage, false);
    if (values.verbose && !values.replay) throw new InputError('E_BAD_ARGUMENT', '--verbose needs --replay FILE (one plan at a time; every violation writes its plan)');
    if (values.replay) return replay(values.replay, io, values.verbose === true);
    const faults = parseFaultKinds(values.faults);
    const steps = parseCount(values.steps, '--steps', 1, 100_000);
    const options: PlanOptions = { faults, ...(steps !== undefined ? { steps } : {}) };
    const one = parseSeed(values.seed);
    const from = parseSeed(values.from, '--from') ?? 1;
    const n = one !== undefined ? 1 : parseCount(values.seeds, '--seeds', 1, 10_000_000) ?? 100;
    const items: Item[] = Array.from({ length: n }, (_, i) => ({ seed: (one ?? from) + i, options }));
    const jobs = Math.min(parseCount(values.jobs, '--jobs', 1, 256) ?? availableParallelism(), n);
    io.err(`spillway fuzz: ${n} seed(s) from ${items[0]!.seed}, faults ${faults.length === ALL_FAULTS.length ? 'all' : faults.join(',') || 'none'}, on ${jobs} worker thread(s)`);

    const started = wallMs();
    let lastReport = started;
    const results = await runInWorkers<Item, FuzzResult>(new URL('../fuzz/worker-entry.mjs', import.meta.url), items, {
      jobs,
      crashed: (item, message) => crashedResult(item.seed, message),
      onResult: (r, _item, done, total) => {
        if (r.verdict === 'violation') io.err(`  VIOLATION seed ${r.seed}: ${r.violation!.invariant}: ${r.violation!.message}`);
        const now = wallMs();
        if (now - lastReport > 10_000 || done === total) {
          lastReport = now;
          io.err(`  … ${done}/${total} seeds, ${perMinute(done, now - started)} seeds/min`);
        }
      },
    });
    const elapsedMs = wallMs() - started;
    const summary = summarize(results, elapsedMs);
    const violations = results.filter((r) => r.verdict === 'violation');
    const shrunk: Array<{ seed: number; file: string; steps: number; faults: string[] }> = [];
    for (const v of violations.slice(0, 3)) {
      const plan = drawPlan(v.seed, options);
      const s = await shrinkPlan(plan, v);
      const file = `fuzz-${v.seed}.json`;
      writeFileSync(file, JSON.stringify({ plan: s.plan, result: s.result }, null, 1));
      shrunk.push({ seed: v.seed, file, steps: s.plan.steps.length, faults: faultSteps(s.plan) });
    }
    if (values.json) io.out(JSON.stringify({ ...summary, violatingSeeds: violations.map((v) => ({ seed: v.seed, ...v.violation })), shrunk }, null, 2));
    else {
      if (one !== undefined) io.out(describeOne(results[0]!));
      io.out(renderSummary(summary));
      for (const s of shrunk) {
        io.out(`seed ${s.seed}: shrunk to ${s.steps} steps, faults: ${s.faults.join(', ') || 'none'}; schedule in ${s.file}`);
        io.out(`  replay: spillway fuzz --replay ${s.file}`);
      }
    }
    return violations.length > 0 ? EXIT_EXPECTATION_FAILED : EXIT_OK;
  },
};

/** One log line of a verbose run: virtual time in ms, level, source, message. */
function logLineOut(io: CommandIo): (line: LogLine) => void {
  return (l) => io.err(`${(l.t / 1000).toFixed(3).padStart(10)} ms ${l.level.padEnd(5)} ${l.src}: ${l.message}`);
}

async function replay(file: string, io: CommandIo, verbose: boolean): Promise<number> {
  let plan: FuzzPlan;
  try {
    plan = (JSON.parse(readFileSync(file, 'utf8')) as { plan: FuzzPlan }).plan;
  } catch (err) {
    throw new InputError('E_BAD_ARGUMENT', `--replay ${file}: cannot read a fuzz plan: ${(err as Error).message}`, { cause: err });
  }
  if (!plan || !Array.isArray(plan.steps)) throw new InputError('E_BAD_ARGUMENT', `--replay ${file}: no "plan" with "steps" in it (write one with spillway fuzz)`);
  const r = await runPlan(plan, verbose ? logLineOut(io) : undefined);
  io.out(describeOne(r));
  return r.verdict === 'violation' ? EXIT_EXPECTATION_FAILED : EXIT_OK;
}

function faultSteps(plan: FuzzPlan): string[] {
  return plan.steps.flatMap((s, i) => (s.kind === 'fault' ? [`${i}:${s.fault}`] : []));
}

function crashedResult(seed: number, message: string): FuzzResult {
  return {
    seed, verdict: 'violation', violation: { step: -1, invariant: 'no-crash', message }, detected: null,
    faults: Object.fromEntries(ALL_FAULTS.map((k) => [k, 0])) as Record<FaultKind, number>, readErrors: 0, writeErrors: 0, traceHash: '', virtualUs: 0,
  };
}

interface Summary {
  seeds: number;
  ok: number;
  detected: number;
  violations: number;
  wallS: number;
  seedsPerMinute: number;
  faultsByKind: Record<string, number>;
  detectedByCode: Record<string, number>;
  readErrors: number;
  writeErrors: number;
}

function summarize(results: FuzzResult[], elapsedMs: number): Summary {
  const faultsByKind: Record<string, number> = Object.fromEntries(ALL_FAULTS.map((k) => [k, 0]));
  const detectedByCode: Record<string, number> = {};
  for (const r of results) {
    for (const [k, v] of Object.entries(r.faults)) faultsByKind[k]! += v;
    if (r.detected) detectedByCode[r.detected] = (detectedByCode[r.detected] ?? 0) + 1;
  }
  return {
    seeds: results.length,
    ok: results.filter((r) => r.verdict === 'ok').length,
    detected: results.filter((r) => r.verdict === 'detected').length,
    violations: results.filter((r) => r.verdict === 'violation').length,
    wallS: Math.round(elapsedMs / 100) / 10,
    seedsPerMinute: perMinute(results.length, elapsedMs),
    faultsByKind,
    detectedByCode,
    readErrors: results.reduce((n, r) => n + r.readErrors, 0),
    writeErrors: results.reduce((n, r) => n + r.writeErrors, 0),
  };
}

function renderSummary(s: Summary): string {
  const faults = Object.entries(s.faultsByKind).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v}`).join(', ');
  const detected = Object.entries(s.detectedByCode).map(([k, v]) => `${k} ${v}`).join(', ');
  return [
    `${s.seeds} seeds: ${s.ok} ok, ${s.detected} stopped on detected damage${detected ? ` (${detected})` : ''}, ${s.violations} violation(s)`,
    `${s.wallS} s, ${s.seedsPerMinute} seeds/min; reads that failed ${s.readErrors}, writes that failed ${s.writeErrors}`,
    `faults injected: ${faults || 'none'}`,
  ].join('\n');
}

function describeOne(r: FuzzResult): string {
  const faults = Object.entries(r.faults).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v}`).join(', ');
  return [
    `seed ${r.seed}: ${r.verdict}${r.violation ? ` at step ${r.violation.step}: ${r.violation.invariant}: ${r.violation.message}` : ''}${r.detected ? ` (${r.detected})` : ''}`,
    `  faults ${faults || 'none'}; ${(r.virtualUs / 1e6).toFixed(1)} s of virtual time; trace ${r.traceHash}`,
  ].join('\n');
}

function perMinute(n: number, ms: number): number {
  return ms > 0 ? Math.round((n / ms) * 60_000) : 0;
}
