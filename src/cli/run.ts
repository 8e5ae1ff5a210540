import { closeSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { renderHtml } from '../report/html.js';
import { collectSamples } from '../report/samples.js';
import { renderSvg } from '../report/svg.js';
import { loadScenarioFile } from '../sim/scenario-file.js';
import { renderReport } from '../report/text/render.js';
import type { Report } from '../report/report.js';
import { createSimulation } from '../sim/simulation.js';
import { runComparisonInWorker } from '../sim/comparison-in-worker.js';
import { formatDurationUs, parseDurationUs } from '../util/units.js';
import { fileRecorder } from '../providers/aws/recorder.js';
import { createEmulatedCloud } from '../providers/emulated/ec2/emulated-cloud.js';
import { openLiveCloud } from '../providers/open-cloud.js';
import { realTimePacer } from '../world/live-pacer.js';
import { wallMs } from '../world/live-world.js';
import { cleanUpLiveRun, cleanUpOnSignal, cleaningUpOnFailure, prepareLiveRun } from './run-live.js';
import { EXIT_EXPECTATION_FAILED, EXIT_OK, parseFlags, parseSeed, requirePositional, type Command, type CommandIo } from './command.js';
import { InputError } from '../errors.js';
import { apiFlagSpec, apiUsage, parseApiFlags } from './api-flags.js';
import { parsePace, readRecordedActions, startRunApi } from './run-api.js';
import { exitForSignal, stoppable } from './signals.js';

const usage = `Usage: spillway run <scenario.yaml> [--seed N] [--until DURATION] [--json] [--trace FILE]
                    [--report FILE] [--cloud emulated|aws [--region R] [--profile P] [--record FILE]]
                    [--image AMI] [--subnet ID]... [--security-group ID]... [--instance-profile NAME|ARN]
                    [--api ADDR [--api-token-file F] ...] [--pace X] [--actions TRACE]

Run a scenario in virtual time and print its report.

  --seed N          use this seed instead of the scenario's (0..4294967295)
  --until DURATION  stop at this virtual time (e.g. 6h, 1d12h) instead of the scenario's duration
  --json            print exactly one JSON object on stdout (banner and progress go to stderr)
  --trace FILE      write the JSONL trace to FILE
  --report FILE     write the report with charts as a self-contained FILE.html or FILE.svg
  --cloud aws       burst into live AWS EC2 instead of the emulated one (the same adapter code);
                    uses the SDK's default credential chain, is paced to real time, and tags
                    everything it creates spillway:run=<id> for \`spillway cloud cleanup --run <id>\`
  --region R        AWS region (default: the scenario's cloud.region)
  --profile P       AWS profile for the credential chain
  --record FILE     write the EC2 calls' request/response shapes (no secrets) as a replayable fixture
  --image AMI       live: the staging AMI (default: this account's one image tagged spillway:role=staging);
                    it is checked before the run, and only instance types that can boot it are offered
  --subnet ID       live, repeatable, one per zone: launch there (the run's zones are the subnets' zones;
                    without it, the region's zones and default subnets)
  --security-group ID  live, repeatable: security groups of the launched instances
  --instance-profile NAME|ARN  live: the IAM instance profile of the launched instances
  A live run ends by cleaning up everything tagged with its run id (also after --until, on
  Ctrl-C or SIGTERM, and when it fails), and prints what is left and the command that removes it.

  --pace X          run at X virtual seconds per real second (to watch it, or act on it through --api)
  --actions TRACE   put back the operator actions (api.action lines) a run with --api recorded in TRACE:
                    the same seed then gives the same trace

${apiUsage}

Exit status: 0 every expectation holds, 1 one fails, 2 bad input (the error names the field),
130/143 stopped by SIGINT/SIGTERM (the run stops after the current event; the API's clients get
an event "closed", the trace and the report so far are written; a second signal exits at once;
a live run cleans up its run id first and exits).
A failing run prints the command that replays it exactly.`;

/** The exact command that reproduces a run. */
export function replayCommand(file: string, seed: number, until?: string): string {
  return `npx spillway run ${file} --seed ${seed}${until ? ` --until ${until}` : ''}`;
}

/** A live run could not remove everything it created (the message names it and the command that does). */
const EXIT_CLOUD_LEFT = 3;

export const runCommand: Command = {
  name: 'run',
  summary: 'run a scenario and print its report',
  usage,
  async run(args: string[], io: CommandIo): Promise<number> {
    const { values, positionals } = parseFlags(args, {
      seed: { type: 'string' }, until: { type: 'string' }, json: { type: 'boolean' }, trace: { type: 'string' }, report: { type: 'string' },
      cloud: { type: 'string' }, region: { type: 'string' }, profile: { type: 'string' }, record: { type: 'string' },
      image: { type: 'string' }, subnet: { type: 'string', multiple: true }, 'security-group': { type: 'string', multiple: true },
      'instance-profile': { type: 'string' },
      pace: { type: 'string' }, actions: { type: 'string' }, ...apiFlagSpec,
    }, usage);
    const apiFlags = parseApiFlags(values);
    const pace = parsePace(values.pace);
    const recorded = values.actions === undefined ? undefined : readRecordedActions(values.actions);
    if (values.cloud !== undefined && values.cloud !== 'aws' && values.cloud !== 'emulated') {
      throw new InputError('E_BAD_ARGUMENT', `--cloud: expected "emulated" or "aws", got "${values.cloud}"`);
    }
    const file = requirePositional(positionals, 0, 'the scenario file', usage);
    if (positionals.length > 1) throw new InputError('E_BAD_ARGUMENT', `unexpected argument "${positionals[1]}"\n\n${usage}`);
    const seedFlag = parseSeed(values.seed);
    const untilUs = values.until === undefined ? undefined : parseDurationUs(values.until, '--until');
    if (untilUs !== undefined && untilUs <= 0) throw new InputError('E_BAD_DURATION', `--until: expected a positive duration, got "${values.until}"`);
    const loaded = loadScenarioFile(file);
    const exportFormat = values.report === undefined ? null : reportFormat(values.report);
    const seed = seedFlag ?? loaded.seed;
    const replay = replayCommand(file, seed, values.until);
    const banner = (values.json ? io.err : io.out);
    const live = (values.cloud ?? loaded.cloud.provider) === 'aws';
    if (!live) {
      for (const flag of ['image', 'subnet', 'security-group', 'instance-profile'] as const) {
        if (values[flag] !== undefined) throw new InputError('E_BAD_ARGUMENT', `--${flag}: only with --cloud aws`);
      }
    }
    banner(`spillway run ${file}: scenario ${loaded.name}, seed ${seed}${live ? '' : ` (replay: ${replay})`}`);
    // A live cloud cannot be replayed from a seed; its resources carry a run id of their own.
    const liveRun = live ? await prepareLiveRun(loaded, seed, {
      region: values.region ?? loaded.cloud.region,
      ...(values.profile ? { profile: values.profile } : {}),
      ...(values.image ? { image: values.image } : {}),
      ...(values.subnet ? { subnets: values.subnet } : {}),
      ...(values['security-group'] ? { securityGroups: values['security-group'] } : {}),
      ...(values['instance-profile'] ? { instanceProfile: values['instance-profile'] } : {}),
      ...(values.record ? { recordFile: values.record } : {}),
    }, banner) : null;
    const scenario = liveRun?.scenario ?? loaded;

    const traceFd = values.trace ? openTrace(values.trace) : null;
    const exportSamples = exportFormat ? collectSamples() : null;
    let pending: string[] = [];
    let pendingBytes = 0;
    const flushTrace = (): void => {
      if (traceFd === null || pending.length === 0) return;
      writeSync(traceFd, pending.join(''));
      pending = [];
      pendingBytes = 0;
    };
    const sim = await createSimulation(scenario, {
      seed,
      // The no-burst baseline runs on another core while the main run goes.
      runComparison: runComparisonInWorker,
      ...(live || values.record ? {
        makeCloud: (world, config) => (liveRun
          ? openLiveCloud(world, config, liveRun.runId, liveRun.cloudOptions)
          : createEmulatedCloud(world, config, `sim-${seed}`, { record: fileRecorder(values.record!, { fixture: 'spillway-ec2-wire', version: 1, source: 'emulator', region: config.region }) })),
      } : {}),
      ...(untilUs !== undefined ? { untilUs } : {}),
      ...(traceFd !== null || exportSamples ? {
        onTrace: (e, line) => {
          exportSamples?.onTrace(e);
          if (traceFd === null) return;
          pending.push(line, '\n');
          pendingBytes += line.length + 1;
          if (pendingBytes > 1 << 20) flushTrace();
        },
      } : {}),
    });

    if (live) sim.world.pacer = realTimePacer();
    const api = await startRunApi(sim, io, { api: apiFlags, pace, recorded });
    const progress = progressLine(io);
    // A live run cleans up its cloud first and exits on a signal (run-live.ts); any other run stops where
    // it is: the API tells its clients, the trace is flushed, the report so far printed.
    const offSignals = liveRun ? cleanUpOnSignal(liveRun, io) : () => undefined;
    const work = (): Promise<Report> => cleaningUpOnFailure(liveRun, io, () => sim.runToEnd(progress.show));
    const { result: ranReport, signal: caught } = liveRun
      ? { result: await work().finally(offSignals), signal: null }
      : await stoppable(work, () => sim.stop(), io, 'the run');
    progress.clear();
    // A signal while the finished run waited for its baseline stops nothing. A stopped run's expectations are not judged: they speak of the whole run.
    const signal = caught !== null && !sim.done ? caught : null;
    const report = signal ? { ...ranReport, expectations: [] } : ranReport;
    await api?.close();
    if (api && api.replayLeft() > 0) io.err(`--actions: ${api.replayLeft()} recorded action(s) were not reached (the run ended first or took another path)`);
    flushTrace();
    if (traceFd !== null) closeSync(traceFd);

    if (exportFormat && exportSamples) {
      const input = { report, samples: exportSamples.samples };
      writeExport(values.report!, exportFormat === 'svg' ? renderSvg(input) : renderHtml(input));
      io.err(`report written to ${values.report}`);
    }
    const clean = liveRun ? await cleanUpLiveRun(liveRun, io) : true;
    const failed = report.expectations.filter((e) => !e.pass);
    if (values.json) {
      io.out(JSON.stringify({ ...report, passed: signal ? null : failed.length === 0, replay, ...(signal ? { stoppedBy: signal } : {}) }));
    } else {
      io.out(renderReport(report, { width: process.stdout.columns ?? 100 }));
      if (values.trace) io.out(`trace written to ${values.trace}`);
    }
    if (signal) {
      io.err(`stopped by ${signal} at T+${formatDurationUs(sim.world.nowUs)} of ${formatDurationUs(sim.endUs)}: the report is the run so far; expectations not judged`);
      return clean ? exitForSignal(signal) : EXIT_CLOUD_LEFT;
    }
    if (failed.length > 0) {
      io.err(`${failed.length} expectation(s) failed: ${failed.map((e) => e.id).join(', ')}`);
      if (!live) io.err(`replay: ${replay}`);
    }
    // Resources left running in a live account outweigh a failed expectation.
    if (!clean) return EXIT_CLOUD_LEFT;
    return failed.length > 0 ? EXIT_EXPECTATION_FAILED : EXIT_OK;
  },
};

/** Short runs stay quiet; long ones redraw a progress line in place on a terminal, or log each quarter otherwise. */
function progressLine(io: CommandIo): { show(nowUs: number, endUs: number): void; clear(): void } {
  const startedMs = wallMs();
  let shown = false;
  let lastQuarter = -1;
  return {
    show(nowUs, endUs) {
      const elapsedMs = wallMs() - startedMs;
      if (elapsedMs < 3000) return;
      const pct = Math.floor((100 * nowUs) / endUs);
      const text = `  ${formatDurationUs(nowUs)} of ${formatDurationUs(endUs)} virtual (${pct}%), ${(elapsedMs / 1000).toFixed(1)} s`;
      if (io.errIsTty) {
        process.stderr.write(`\r${text}\x1b[K`);
        shown = true;
      } else if (Math.floor(pct / 25) > lastQuarter) {
        lastQuarter = Math.floor(pct / 25);
        io.err(text);
      }
    },
    clear() {
      if (shown && io.errIsTty) process.stderr.write('\r\x1b[K');
    },
  };
}

function reportFormat(path: string): 'html' | 'svg' {
  const m = /\.(html?|svg)$/i.exec(path);
  if (!m) throw new InputError('E_BAD_OUTPUT_FILE', `--report: expected a file name ending in .html or .svg, got "${path}"`);
  // Fail now rather than after the run: the file must be writable.
  writeExport(path, '');
  return m[1]!.toLowerCase() === 'svg' ? 'svg' : 'html';
}

function writeExport(path: string, text: string): void {
  try {
    writeFileSync(path, text);
  } catch (err) {
    throw new InputError('E_BAD_OUTPUT_FILE', `--report: cannot write ${path}: ${(err as Error).message}`, { cause: err });
  }
}

function openTrace(path: string): number {
  try {
    return openSync(path, 'w');
  } catch (err) {
    throw new InputError('E_BAD_OUTPUT_FILE', `--trace: cannot write ${path}: ${(err as Error).message}`, { cause: err });
  }
}
