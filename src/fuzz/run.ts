import { errorCode, SpillwayError } from '../errors.js';
import { SimWorld } from '../world/sim-world.js';
import { createRng } from '../world/rng.js';
import type { Rng } from '../world/types.js';
import type { LogLine } from '../world/sim-world.js';
import { WriteModel } from './model.js';
import { ALL_FAULTS, type FaultKind, type FuzzPlan, type Step } from './schedule.js';
import { ProxySystem, retry } from './system.js';

export type Verdict = 'ok' | 'violation' | 'detected';

export interface Violation {
  /** Index into plan.steps, or -1 for the end-of-run checks. */
  step: number;
  invariant: string;
  message: string;
}

export interface FuzzResult {
  seed: number;
  verdict: Verdict;
  violation: Violation | null;
  /** What stopped the run on purpose: damage the system refused to run with (e.g. E_JOURNAL_CORRUPT). */
  detected: string | null;
  faults: Record<FaultKind, number>;
  readErrors: number;
  writeErrors: number;
  traceHash: string;
  virtualUs: number;
}

/** How a would-be writer may be kept out: refused by on-prem, or unable to reach it (a partition). */
const WRITER_REFUSALS: ReadonlySet<string> = new Set(['E_LEASE_HELD', 'E_WRITER_UNFINISHED', 'E_LINK_DOWN', 'E_LINK_TIMEOUT', 'E_CONNECT', 'ECONNRESET']);

/** No single step may take longer than this much virtual time: a wait without end is a hang. */
const STEP_DEADLINE_US = 20 * 60 * 1_000_000;

class Stop extends Error {
  constructor(readonly verdict: Exclude<Verdict, 'ok'>, readonly detail: Violation | string) {
    super(typeof detail === 'string' ? detail : detail.message);
  }
}

function violation(step: number, invariant: string, message: string): Stop {
  return new Stop('violation', { step, invariant, message });
}

function fillBytes(fill: number, length: number): Buffer {
  const rng = createRng(fill, 'fuzz/bytes');
  const b = Buffer.allocUnsafe(length + 4);
  // Runs of one byte and runs of noise: both compress differently on the link.
  for (let i = 0; i < length;) {
    const run = Math.min(length - i, rng.int(1, 4096));
    if (rng.chance(0.3)) b.fill(rng.int(0, 256), i, i + run);
    else for (let j = 0; j < run; j += 4) b.writeUInt32LE(rng.u32(), i + j);
    i += run;
  }
  return b.subarray(0, length);
}

function originalDisk(seed: number, bytes: number): Buffer {
  const b = Buffer.alloc(bytes);
  const rng = createRng(seed, 'fuzz/disk');
  for (let off = 0; off < bytes; off += 4096) {
    const kind = rng.int(0, 3);
    if (kind === 0) continue; // zeros
    if (kind === 1) for (let i = 0; i < 4096; i += 4) b.writeUInt32LE(rng.u32(), off + i);
    else b.fill(rng.int(1, 256), off, off + 4096);
  }
  return b;
}

type Outcome = Pick<FuzzResult, 'verdict' | 'violation' | 'detected'>;

/** One plan's run: the system under test, the model of acknowledged writes, and the fault and error counts. */
class PlanRun {
  readonly world: SimWorld;
  readonly original: Buffer;
  readonly model: WriteModel;
  readonly faults: Record<FaultKind, number>;
  readonly counters = { readErrors: 0, writeErrors: 0 };
  readonly sys: ProxySystem;
  readonly np: FuzzPlan['nonPersistent'];
  unhandled: unknown = null;
  readonly onUnhandled = (reason: unknown): void => { this.unhandled ??= reason; };

  constructor(readonly plan: FuzzPlan, log?: (line: LogLine) => void) {
    this.world = new SimWorld(plan.seed);
    this.world.logLevel = log ? 'debug' : 'error';
    this.world.logSink = log;
    this.original = originalDisk(plan.seed, plan.diskBytes);
    this.model = new WriteModel(this.original);
    this.faults = Object.fromEntries(ALL_FAULTS.map((k) => [k, 0])) as Record<FaultKind, number>;
    this.sys = new ProxySystem(this.world, plan, this.original);
    this.np = plan.nonPersistent;
  }

  async body(): Promise<void> {
    await this.sys.startOnprem();
    await this.sys.startCloud();
    for (const [i, step] of this.plan.steps.entries()) {
      await withDeadline(this.world, i, step.kind === 'fault' ? `fault ${step.fault}` : step.kind, this.runStep(i, step));
      if (this.unhandled) throw violation(i, 'no-unhandled-rejection', `an unhandled promise rejection: ${describe(this.unhandled)}`);
    }
    await withDeadline(this.world, -1, 'final drain', this.finish());
  }

  async runStep(i: number, step: Step): Promise<void> {
    const { model, counters } = this;
    this.world.log('info', 'fuzz', `step ${i}: ${describeStep(step)}`);
    const dev = this.sys.cloud!.device;
    switch (step.kind) {
      case 'read': {
        let got: Buffer;
        try {
          got = await dev.read(step.offset, step.length);
        } catch {
          counters.readErrors++;
          return;
        }
        const at = model.mismatch(step.offset, got);
        if (at >= 0) throw violation(i, 'reads-see-acknowledged-writes', `read ${step.offset}+${step.length}: byte ${at} is ${got[at - step.offset]}, the last acknowledged write made it ${model.bytes[at]}`);
        return;
      }
      case 'write':
      case 'zero': {
        const data = step.kind === 'write' ? fillBytes(step.fill, step.length) : null;
        try {
          if (data) await dev.write(step.offset, data);
          else await dev.writeZeroes(step.offset, step.length);
          model.acknowledged(step.offset, data, step.length);
        } catch {
          counters.writeErrors++;
          model.failed(step.offset, step.length);
        }
        return;
      }
      case 'flush':
        await dev.flush().catch(() => { counters.writeErrors++; });
        return;
      case 'sleep':
        await this.world.clock.sleepUs(step.us);
        return;
      case 'fault':
        this.faults[step.fault]++;
        await this.injectFault(i, step.fault, step.arg);
    }
  }

  /** Not async: it returns the handler's own promise, so a fault takes the same microtask ticks as before the table. */
  injectFault(i: number, fault: FaultKind, arg: number): Promise<void> {
    return FAULT_HANDLERS[fault](this, i, createRng(arg, 'fuzz/fault'), arg);
  }

  /** The cloud proxy dies: cloud-only bytes written since the last flush may be gone with it. */
  crashCloud(): void {
    this.sys.crashCloud();
    if (this.np) this.model.forget(this.np.offset, this.np.length);
  }

  /** A 512-byte offset outside the cloud-only range. */
  persistentOffset(rng: Rng): number {
    const np = this.np;
    for (;;) {
      const at = rng.int(0, this.plan.diskBytes / 512) * 512;
      if (!np || at + 512 <= np.offset || at >= np.offset + np.length) return at;
    }
  }

  async finish(): Promise<void> {
    const { model, plan, sys, np } = this;
    const dev = sys.cloud!.device;
    // Unknown ranges (failed writes) are written again so the model is exact.
    for (const r of model.unknownRanges()) {
      const bytes = Buffer.from(model.bytes.subarray(r.offset, r.offset + r.length));
      await retry(() => dev.write(r.offset, bytes));
      model.acknowledged(r.offset, bytes, r.length);
    }
    await retry(() => dev.flush());
    const whole = await retry(() => dev.read(0, plan.diskBytes));
    const at = model.mismatch(0, whole);
    if (at >= 0) throw violation(-1, 'reads-see-acknowledged-writes', `after the run the cloud view differs at byte ${at}`);
    await sys.stopCloud();
    const onprem = sys.disk.readSync(0, plan.diskBytes);
    const expected = Buffer.from(model.bytes);
    if (np) this.original.copy(expected, np.offset, np.offset, np.offset + np.length);
    if (!onprem.equals(expected)) {
      let first = 0;
      while (onprem[first] === expected[first]) first++;
      throw violation(-1, 'on-prem-equals-acknowledged-writes', `after the drain the on-prem disk differs from the acknowledged writes first at byte ${first}`);
    }
    const applier = sys.onprem.appliers.get('vm-disk0')!;
    for (const [seq, n] of applier.applications) {
      if (n !== 1) throw violation(-1, 'groups-apply-once', `group ${seq} of the last session was applied ${n} times`);
    }
  }
}

/** A refused would-be writer must be refused as a writer, or fail to reach on-prem: never admitted. */
function checkWriterRefused(i: number, code: string | null, who: string, admitted: string): void {
  if (code === null) throw violation(i, 'one-writer-per-disk', admitted);
  if (!WRITER_REFUSALS.has(code)) throw violation(i, 'refusals-say-why', `${who} was refused with ${code}, not a writer refusal or a link failure`);
}

/** One handler per fault kind: what the fault does to the system, and how the model follows it. */
const FAULT_HANDLERS: Record<FaultKind, (run: PlanRun, i: number, rng: Rng, arg: number) => Promise<void>> = {
  'link-drop': async ({ sys }, _i, _rng, arg) => {
    if (arg & 1) sys.cloud!.link.dropConnection();
    else sys.onprem.dropConnections();
  },
  partition: async ({ sys, world }, _i, rng, arg) => {
    sys.wan.scheduleOutage(world.nowUs, rng.int(50_000, 5_000_000), (arg & 1) === 1);
  },
  'cloud-crash': async (run, _i, rng) => {
    run.crashCloud();
    await run.world.clock.sleepUs(rng.int(0, 200_000));
    await run.sys.startCloud();
  },
  'cloud-restart': async ({ sys }) => {
    await sys.stopCloud();
    await sys.startCloud();
  },
  'cloud-new-session': async ({ sys, np, model, original }) => {
    await sys.stopCloud();
    sys.stores = sys.freshStores();
    await sys.startCloud();
    // A new cache has none of the old one's cloud-only bytes: that region reads as on-prem holds it.
    if (np) model.reset(np.offset, original.subarray(np.offset, np.offset + np.length));
  },
  'fresh-after-crash': async (run, i) => {
    const { sys } = run;
    run.crashCloud();
    const code = await sys.openCloud(sys.freshStores()).then(async (c) => { await c.close(); return null; }, (err: unknown) => errorCode(err) ?? 'E_UNKNOWN');
    checkWriterRefused(i, code, 'the new writer', 'a cloud proxy with an empty cache was admitted while the crashed writer still held unshipped writes');
    await sys.startCloud();
  },
  'second-writer': async ({ sys }, i) => {
    const code = await sys.secondWriter();
    checkWriterRefused(i, code, 'the second writer', 'a second cloud proxy was admitted as writer while the first served');
  },
  'onprem-crash': async ({ sys, world }, _i, rng) => {
    await sys.crashOnprem();
    await world.clock.sleepUs(rng.int(0, 500_000));
    await sys.startOnprem();
  },
  'journal-flip': async (run, _i, rng) => {
    const { sys, model } = run;
    const extents = sys.stores.journal.writtenExtents();
    if (extents.length === 0) return;
    const e = rng.pick(extents);
    if (rng.chance(0.5)) {
      // The process died and the kernel wrote its page cache back (the seal after the last commit included):
      // damage anywhere, the last commit too, must be refused or survived.
      await sys.stores.journal.flush();
      sys.stores.journal.flipBit(e.offset + rng.int(0, e.length), rng.int(0, 8));
    } else {
      sys.stores.journal.flipBit(e.offset + rng.int(0, e.length), rng.int(0, 8));
      // The machine died: the seal may not have landed, and damage to the last commit before a machine
      // crash cannot be told from a torn write (docs/reliability.md). One more acknowledged commit after
      // the damage keeps the damaged record from being the last one. An injected I/O error is a moment's
      // fault, so the write is tried again: if it stayed unacknowledged, the damaged commit would be the last.
      const at = run.persistentOffset(rng);
      const data = fillBytes(rng.u32(), 512);
      try {
        await retry(() => sys.cloud!.device.write(at, data));
        model.acknowledged(at, data, 512);
      } catch {
        model.failed(at, 512);
      }
    }
    run.crashCloud();
    try {
      await sys.startCloud();
    } catch (err) {
      if (errorCode(err) === 'E_JOURNAL_CORRUPT') throw new Stop('detected', 'E_JOURNAL_CORRUPT');
      throw err;
    }
  },
  'cache-flip': async ({ sys }, _i, rng) => {
    const extents = sys.stores.cache.writtenExtents();
    if (extents.length === 0) return;
    const e = rng.pick(extents);
    sys.stores.cache.flipBit(e.offset + rng.int(0, e.length), rng.int(0, 8));
  },
  'disk-error': async ({ sys }, _i, rng) => {
    sys.disk.failNext(1 + rng.int(0, 3));
  },
  'cloud-io-error': async ({ sys }, _i, rng) => {
    rng.pick([sys.stores.journal, sys.stores.writeStore, sys.stores.writeMap]).failNext(1);
  },
};

/**
 * Run one plan against the real proxy core in a simulation and check, as it
 * goes and at the end: every read returns the latest acknowledged write (or
 * an error, never other bytes); a second writer is never admitted; no step
 * hangs; after a drain the on-prem disk equals the acknowledged writes and
 * every group was applied once.
 */
export async function runPlan(plan: FuzzPlan, log?: (line: LogLine) => void): Promise<FuzzResult> {
  const run = new PlanRun(plan, log);
  process.on('unhandledRejection', run.onUnhandled);
  let outcome: Outcome;
  try {
    const r = await drive(run.world, () => run.body());
    outcome = r === 'idle'
      ? { verdict: 'violation', violation: { step: -1, invariant: 'no-hang', message: `the simulation went idle at ${run.world.nowUs} us with a step still waiting (a wait that nothing will end)` }, detected: null }
      : { verdict: 'ok', violation: null, detected: null };
  } catch (err) {
    outcome = outcomeOfError(err);
  } finally {
    process.off('unhandledRejection', run.onUnhandled);
  }
  return { seed: plan.seed, ...outcome, faults: run.faults, ...run.counters, traceHash: run.world.trace.hash(), virtualUs: run.world.nowUs };
}

function outcomeOfError(err: unknown): Outcome {
  if (!(err instanceof Stop)) return { verdict: 'violation', violation: { step: -1, invariant: 'no-unexpected-error', message: describe(err) }, detected: null };
  return err.verdict === 'detected'
    ? { verdict: 'detected', violation: null, detected: err.detail as string }
    : { verdict: 'violation', violation: err.detail as Violation, detected: null };
}

/** Run `body` on the world's virtual time until it settles; 'idle' when it waits with nothing scheduled. */
async function drive(world: SimWorld, body: () => Promise<void>): Promise<'done' | 'idle'> {
  let settled = false;
  const p = body().finally(() => { settled = true; world.stop(); });
  p.catch(() => undefined);
  while (!settled) {
    const r = await world.run({ maxEvents: 200_000_000 });
    if (settled) break;
    if (r.reason === 'idle') {
      await Promise.race([p.catch(() => undefined), Promise.resolve()]);
      if (!settled) return 'idle';
    }
    if (r.reason === 'max-events') throw new SpillwayError('E_FUZZ_RUNAWAY', `more than 200 million events by ${world.nowUs} us`);
  }
  await p;
  return 'done';
}

function withDeadline<T>(world: SimWorld, step: number, what: string, work: Promise<T>): Promise<T> {
  let timer: { cancel(): void } | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = world.clock.schedule(STEP_DEADLINE_US, () => reject(violation(step, 'no-hang', `${what} did not finish within ${STEP_DEADLINE_US / 60e6} min of virtual time`)));
  });
  return Promise.race([work, deadline]).finally(() => timer?.cancel());
}

function describeStep(step: Step): string {
  switch (step.kind) {
    case 'write': return `write ${step.offset}+${step.length}`;
    case 'zero': return `zero ${step.offset}+${step.length}`;
    case 'read': return `read ${step.offset}+${step.length}`;
    case 'flush': return 'flush';
    case 'sleep': return `sleep ${step.us} us`;
    case 'fault': return `fault ${step.fault}`;
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) return `${err.name}${errorCode(err) ? ` ${errorCode(err)}` : ''}: ${err.message}`;
  return String(err);
}
