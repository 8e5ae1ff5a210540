import { createActor, type Actor, type AnyMachineSnapshot, type AnyStateMachine, type InputFrom, type OutputFrom, type StateValue } from 'xstate';
import { SpillwayError } from '../errors.js';
import type { Timer, World } from '../world/types.js';
import { flowClockActions, type FlowContext, type PendingTimer, type StepError } from './flow.js';

/**
 * Runs lifecycle machines on a World: the World clock drives their timers,
 * each actor has a fixed id, every state entry is traced as `machine.state`
 * (never a sessionId), every snapshot is persisted, and a machine can be
 * restored after a simulated controller restart with its pending deadline
 * re-armed from context.
 */

export interface PersistedRecord {
  id: string;
  machine: string;
  src: string;
  savedAtUs: number;
  snapshot: unknown;
}

/** Where persisted snapshots live. Records must survive a JSON round trip. */
export interface SnapshotStore {
  save(record: PersistedRecord): void;
  load(id: string): PersistedRecord | undefined;
  remove(id: string): void;
  ids(): string[];
}

/** Keeps records as JSON text, so nothing that would not survive a real store (functions, class instances) survives here. */
export class MemorySnapshotStore implements SnapshotStore {
  private readonly records = new Map<string, string>();
  saves = 0;

  save(record: PersistedRecord): void {
    this.records.set(record.id, JSON.stringify(record));
    this.saves++;
  }
  load(id: string): PersistedRecord | undefined {
    const text = this.records.get(id);
    return text === undefined ? undefined : (JSON.parse(text) as PersistedRecord);
  }
  remove(id: string): void {
    this.records.delete(id);
  }
  ids(): string[] {
    return [...this.records.keys()].sort();
  }
}

export interface StartSpec<TMachine extends AnyStateMachine> {
  /** The machine with its actors already provided (see wiring.ts). */
  machine: TMachine;
  /** Fixed actor id: the trace, the store and idempotency tokens use it. */
  id: string;
  /** Trace source, e.g. "vm/web-03". */
  src: string;
}

/** The dotted path of the deepest active state; a step's `.run` leaf is left out ("adapt.installDrivers"). */
export function statePath(value: StateValue): string {
  const parts: string[] = [];
  let v: StateValue = value;
  while (typeof v === 'object') {
    const keys = Object.keys(v);
    if (keys.length !== 1) {
      return [...parts, `{${keys.sort().map((k) => `${k}:${statePath((v as Record<string, StateValue>)[k]!)}`).join(',')}}`].join('.');
    }
    parts.push(keys[0]!);
    v = (v as Record<string, StateValue>)[keys[0]!]!;
  }
  parts.push(v);
  if (parts.length > 1 && parts[parts.length - 1] === 'run') parts.pop();
  return parts.join('.');
}

type AnyContext = Partial<FlowContext<unknown, unknown>> & { goal?: string };

export class RunningMachine<TMachine extends AnyStateMachine> {
  private rearmed: Timer | null = null;
  private lastPath = '';
  private lastGoal: string | undefined;
  /** False while the actor starts: its first snapshots come before `begin` knows the first state. */
  private begun = false;
  private lastError: StepError | undefined;
  private stopped = false;
  readonly done: Promise<OutputFrom<TMachine>>;
  private resolveDone!: (output: OutputFrom<TMachine>) => void;
  private rejectDone!: (err: unknown) => void;
  readonly actor: Actor<TMachine>;

  constructor(
    private readonly world: World,
    private readonly store: SnapshotStore,
    readonly id: string,
    readonly src: string,
    readonly machineName: string,
    create: (inspect: (ev: { type: string; actorRef: unknown; snapshot?: unknown }) => void) => Actor<TMachine>,
  ) {
    this.done = new Promise((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    // A settled-but-unobserved rejection must not crash the process; callers await `done` when they care.
    this.done.catch(() => undefined);
    let root: unknown = null;
    this.actor = create((ev) => {
      if (ev.type === '@xstate.microstep' && root !== null && ev.actorRef === root) this.onState(ev.snapshot as AnyMachineSnapshot);
    });
    root = this.actor;
    this.actor.subscribe({
      next: (snapshot) => this.onSnapshot(snapshot as AnyMachineSnapshot),
      error: (err) => {
        this.cancelRearm();
        this.world.trace.emit(this.src, 'machine.error', { machine: this.machineName, state: this.lastPath, code: 'E_MACHINE_CRASH', message: String((err as Error)?.message ?? err) });
        this.rejectDone(err);
      },
    });
  }

  get snapshot(): AnyMachineSnapshot {
    return (this.actor.getSnapshot() as AnyMachineSnapshot);
  }

  /** The current state's dotted path. */
  get state(): string {
    return statePath((this.actor.getSnapshot() as AnyMachineSnapshot).value as StateValue);
  }

  send(event: Parameters<Actor<TMachine>['send']>[0]): void {
    this.actor.send(event);
  }

  /** Simulate the controller going away: the actor stops, its persisted record stays. */
  crash(): void {
    this.stopped = true;
    this.cancelRearm();
    this.actor.stop();
  }

  /** Begin (or continue) with the state the actor is in now. */
  begin(restored: boolean): void {
    this.actor.start();
    const snapshot = (this.actor.getSnapshot() as AnyMachineSnapshot);
    // A machine whose input was refused never ran: hand the (InputError) back to the caller.
    if (snapshot.status === 'error') throw (snapshot as { error?: unknown }).error;
    const context = snapshot.context as AnyContext;
    this.lastPath = statePath(snapshot.value as StateValue);
    this.lastError = context.errors?.[context.errors.length - 1];
    if (restored) {
      this.lastGoal = context.goal;
      const timer = context.timer ?? null;
      const dueInUs = timer ? this.rearm(timer) : null;
      this.world.trace.emit(this.src, 'machine.restored', { machine: this.machineName, state: this.lastPath, ...(dueInUs === null ? {} : { timerDueInUs: dueInUs }) });
    } else {
      this.traceState(this.lastPath, context);
    }
    this.begun = true;
    this.onSnapshot(snapshot);
  }

  private rearm(timer: PendingTimer): number {
    const dueAtUs = timer.startedAtUs === null ? this.world.clock.nowUs() + timer.durationUs : timer.startedAtUs + timer.durationUs;
    const inUs = Math.max(0, dueAtUs - this.world.clock.nowUs());
    this.rearmed = this.world.clock.schedule(inUs, () => {
      this.rearmed = null;
      if (!this.stopped && (this.actor.getSnapshot() as AnyMachineSnapshot).status === 'active') this.actor.send({ type: 'timer.fired', key: timer.key } as never);
    });
    return inUs;
  }

  private cancelRearm(): void {
    this.rearmed?.cancel();
    this.rearmed = null;
  }

  /** A state entry, or a new goal in the same state (SET_GOAL), is one `machine.state` line. */
  private traceState(path: string, context: AnyContext): void {
    this.lastGoal = context.goal;
    this.world.trace.emit(this.src, 'machine.state', { machine: this.machineName, state: path, ...(context.goal ? { goal: context.goal } : {}) });
  }

  private onState(snapshot: AnyMachineSnapshot): void {
    const path = statePath(snapshot.value as StateValue);
    const context = snapshot.context as AnyContext;
    const last = context.errors?.[context.errors.length - 1];
    if (last && last !== this.lastError) {
      this.lastError = last;
      this.world.trace.emit(this.src, 'machine.error', { machine: this.machineName, state: last.step, code: last.code, message: last.message });
    }
    if (path !== this.lastPath) {
      this.lastPath = path;
      this.traceState(path, context);
    }
  }

  private onSnapshot(snapshot: AnyMachineSnapshot): void {
    if (this.stopped) return;
    const context = snapshot.context as AnyContext;
    if (this.begun && context.goal !== this.lastGoal) this.traceState(this.lastPath, context);
    this.store.save({
      id: this.id, machine: this.machineName, src: this.src, savedAtUs: this.world.clock.nowUs(),
      snapshot: this.actor.getPersistedSnapshot(),
    });
    if (snapshot.status === 'done') {
      this.cancelRearm();
      const output = snapshot.output as OutputFrom<TMachine>;
      const outcome = (output as { outcome?: string } | undefined)?.outcome ?? 'ok';
      this.world.trace.emit(this.src, 'machine.done', { machine: this.machineName, outcome });
      this.resolveDone(output);
    }
  }
}

/** A machine this runtime started or restored, with when (for the management API's flow list). */
export interface StartedMachine {
  running: RunningMachine<AnyStateMachine>;
  startedUs: number;
}

export class MachineRuntime {
  /** Every machine started or restored here, by actor id, in start order (the latest restore of an id wins). */
  readonly started = new Map<string, StartedMachine>();

  constructor(readonly world: World, readonly store: SnapshotStore = new MemorySnapshotStore()) {}

  start<TMachine extends AnyStateMachine>(spec: StartSpec<TMachine>, input: InputFrom<TMachine>): RunningMachine<TMachine> {
    const machine = this.withClock(spec.machine);
    const running = new RunningMachine<TMachine>(this.world, this.store, spec.id, spec.src, spec.machine.id, (inspect) =>
      createActor(machine, { id: spec.id, clock: this.world.clock, input, inspect } as never) as Actor<TMachine>);
    running.begin(false);
    this.started.set(spec.id, { running: running as unknown as RunningMachine<AnyStateMachine>, startedUs: this.world.clock.nowUs() });
    return running;
  }

  /** Continue a machine from its persisted snapshot (after a controller restart). */
  restore<TMachine extends AnyStateMachine>(spec: StartSpec<TMachine>): RunningMachine<TMachine> {
    const record = this.store.load(spec.id);
    if (!record) throw new SpillwayError('E_NO_SNAPSHOT', `no persisted snapshot for machine "${spec.id}"`, { details: { known: this.store.ids() } });
    if (record.machine !== spec.machine.id) {
      throw new SpillwayError('E_SNAPSHOT_MISMATCH', `snapshot "${spec.id}" belongs to machine "${record.machine}", not "${spec.machine.id}"`);
    }
    const machine = this.withClock(spec.machine);
    const running = new RunningMachine<TMachine>(this.world, this.store, spec.id, spec.src, spec.machine.id, (inspect) =>
      createActor(machine, { id: spec.id, clock: this.world.clock, snapshot: record.snapshot, inspect } as never) as Actor<TMachine>);
    running.begin(true);
    this.started.set(spec.id, { running: running as unknown as RunningMachine<AnyStateMachine>, startedUs: record.savedAtUs });
    return running;
  }

  /** Timers record the World time they were armed at, so deadlines survive a restore. */
  private withClock<TMachine extends AnyStateMachine>(machine: TMachine): TMachine {
    return machine.provide({ actions: flowClockActions(() => this.world.clock.nowUs()) } as never) as TMachine;
  }
}
