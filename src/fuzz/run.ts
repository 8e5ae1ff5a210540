import { errorCode, SpillwayError } from '../errors.js';
import { SimWorld } from '../world/sim-world.js';
import { createRng } from '../world/rng.js';
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
const WRITER_REFUSALS: ReadonlySet<string> = new Set(['E_LEASE_HELD', 'E_WRITER_UNFINISHED', 'E_LINK_DOWN', 'E_LINK_TIMEOUT', 'ECONNREFUSED', 'ECONNRESET']);

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

/**
 * Run one plan against the real proxy core in a simulation and check, as it
 * goes and at the end: every read returns the latest acknowledged write (or
 * an error, never other bytes); a second writer is never admitted; no step
 * hangs; after a drain the on-prem disk equals the acknowledged writes and
 * every group was applied once.
 */
export async function runPlan(plan: FuzzPlan): Promise<FuzzResult> {
  const world = new SimWorld(plan.seed);
  world.logLevel = 'error';
  const original = originalDisk(plan.seed, plan.diskBytes);
  const model = new WriteModel(original);
  const faults = Object.fromEntries(ALL_FAULTS.map((k) => [k, 0])) as Record<FaultKind, number>;
  const counters = { readErrors: 0, writeErrors: 0 };
  const sys = new ProxySystem(world, plan, original);
  const np = plan.nonPersistent;
  let unhandled: unknown = null;
  const onUnhandled = (reason: unknown): void => { unhandled ??= reason; };
  process.on('unhandledRejection', onUnhandled);

  const body = async (): Promise<void> => {
    await sys.startOnprem();
    await sys.startCloud();
    for (const [i, step] of plan.steps.entries()) {
      await withDeadline(world, i, step.kind === 'fault' ? `fault ${step.fault}` : step.kind, runStep(i, step));
      if (unhandled) throw violation(i, 'no-unhandled-rejection', `an unhandled promise rejection: ${describe(unhandled)}`);
    }
    await withDeadline(world, -1, 'final drain', finish());
  };

  const runStep = async (i: number, step: Step): Promise<void> => {
    const dev = sys.cloud!.device;
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
        await world.clock.sleepUs(step.us);
        return;
      case 'fault':
        faults[step.fault]++;
        await injectFault(i, step.fault, step.arg);
    }
  };

  const injectFault = async (i: number, fault: FaultKind, arg: number): Promise<void> => {
    const rng = createRng(arg, 'fuzz/fault');
    switch (fault) {
      case 'link-drop':
        if (arg & 1) sys.cloud!.link.dropConnection();
        else sys.onprem.dropConnections();
        return;
      case 'partition':
        sys.wan.scheduleOutage(world.nowUs, rng.int(50_000, 5_000_000), (arg & 1) === 1);
        return;
      case 'cloud-crash':
        sys.crashCloud();
        if (np) model.forget(np.offset, np.length); // cloud-only bytes since the last flush may be gone
        await world.clock.sleepUs(rng.int(0, 200_000));
        await sys.startCloud();
        return;
      case 'cloud-restart':
        await sys.stopCloud();
        await sys.startCloud();
        return;
      case 'cloud-new-session':
        await sys.stopCloud();
        sys.stores = sys.freshStores();
        await sys.startCloud();
        // A new cache has none of the old one's cloud-only bytes: that region reads as on-prem holds it.
        if (np) model.reset(np.offset, original.subarray(np.offset, np.offset + np.length));
        return;
      case 'fresh-after-crash': {
        sys.crashCloud();
        if (np) model.forget(np.offset, np.length);
        const code = await sys.openCloud(sys.freshStores()).then(async (c) => { await c.close(); return null; }, (err: unknown) => errorCode(err) ?? 'E_UNKNOWN');
        if (code === null) throw violation(i, 'one-writer-per-disk', 'a cloud proxy with an empty cache was admitted while the crashed writer still held unshipped writes');
        if (!WRITER_REFUSALS.has(code)) throw violation(i, 'refusals-say-why', `the new writer was refused with ${code}, not a writer refusal or a link failure`);
        await sys.startCloud();
        return;
      }
      case 'second-writer': {
        const code = await sys.secondWriter();
        if (code === null) throw violation(i, 'one-writer-per-disk', 'a second cloud proxy was admitted as writer while the first served');
        if (!WRITER_REFUSALS.has(code)) throw violation(i, 'refusals-say-why', `the second writer was refused with ${code}, not a writer refusal or a link failure`);
        return;
      }
      case 'onprem-crash':
        await sys.crashOnprem();
        await world.clock.sleepUs(rng.int(0, 500_000));
        await sys.startOnprem();
        return;
      case 'journal-flip': {
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
          // the damage keeps the damaged record from being the last one.
          const at = persistentOffset(rng);
          const data = fillBytes(rng.u32(), 512);
          try {
            await sys.cloud!.device.write(at, data);
            model.acknowledged(at, data, 512);
          } catch {
            model.failed(at, 512);
          }
        }
        sys.crashCloud();
        if (np) model.forget(np.offset, np.length);
        try {
          await sys.startCloud();
        } catch (err) {
          if (errorCode(err) === 'E_JOURNAL_CORRUPT') throw new Stop('detected', 'E_JOURNAL_CORRUPT');
          throw err;
        }
        return;
      }
      case 'cache-flip': {
        const extents = sys.stores.cache.writtenExtents();
        if (extents.length === 0) return;
        const e = rng.pick(extents);
        sys.stores.cache.flipBit(e.offset + rng.int(0, e.length), rng.int(0, 8));
        return;
      }
      case 'disk-error':
        sys.disk.failNext(1 + rng.int(0, 3));
        return;
      case 'cloud-io-error':
        rng.pick([sys.stores.journal, sys.stores.writeStore, sys.stores.writeMap]).failNext(1);
    }
  };

  const persistentOffset = (rng: ReturnType<typeof createRng>): number => {
    for (;;) {
      const at = rng.int(0, plan.diskBytes / 512) * 512;
      if (!np || at + 512 <= np.offset || at >= np.offset + np.length) return at;
    }
  };

  const finish = async (): Promise<void> => {
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
    if (np) original.copy(expected, np.offset, np.offset, np.offset + np.length);
    if (!onprem.equals(expected)) {
      let first = 0;
      while (onprem[first] === expected[first]) first++;
      throw violation(-1, 'on-prem-equals-acknowledged-writes', `after the drain the on-prem disk differs from the acknowledged writes first at byte ${first}`);
    }
    const applier = sys.onprem.appliers.get('vm-disk0')!;
    for (const [seq, n] of applier.applications) {
      if (n !== 1) throw violation(-1, 'groups-apply-once', `group ${seq} of the last session was applied ${n} times`);
    }
  };

  let outcome: { verdict: Verdict; violation: Violation | null; detected: string | null } = { verdict: 'ok', violation: null, detected: null };
  try {
    const r = await drive(world, body);
    if (r === 'idle') outcome = { verdict: 'violation', violation: { step: -1, invariant: 'no-hang', message: `the simulation went idle at ${world.nowUs} us with a step still waiting (a wait that nothing will end)` }, detected: null };
  } catch (err) {
    if (err instanceof Stop) {
      outcome = err.verdict === 'detected'
        ? { verdict: 'detected', violation: null, detected: err.detail as string }
        : { verdict: 'violation', violation: err.detail as Violation, detected: null };
    } else {
      outcome = { verdict: 'violation', violation: { step: -1, invariant: 'no-unexpected-error', message: describe(err) }, detected: null };
    }
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
  return { seed: plan.seed, ...outcome, faults, ...counters, traceHash: world.trace.hash(), virtualUs: world.nowUs };
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

function describe(err: unknown): string {
  if (err instanceof Error) return `${err.name}${errorCode(err) ? ` ${errorCode(err)}` : ''}: ${err.message}`;
  return String(err);
}
