import { SpillwayError } from '../errors.js';
import type { Inbox, SimWorld } from './sim-world.js';

/**
 * Where an operator action landed in a simulation: its virtual time and the
 * scheduler sequence number its event got. The pair names one point of the
 * run whatever the run was sliced into, so a replay puts the action back
 * exactly there (same due time, same tie-break) and the trace hash matches.
 */
export interface ActionSlot {
  t: number;
  seq: number;
}

export interface RecordedAction<A> extends ActionSlot {
  action: A;
}

export type ApplyAction<A, R> = (action: A, slot: ActionSlot) => R;

interface Pending<A, R> {
  action: A;
  resolve: (result: R) => void;
  reject: (err: unknown) => void;
}

/**
 * Feeds operator actions into a SimWorld between events (see Inbox).
 *
 * Live: `submit` queues an action from outside the simulation (an HTTP
 * request, at a real moment); at the next advance of virtual time it is
 * scheduled at `virtualNowUs()` (the pacer's idea of now) kept within
 * (nowUs, limitUs], so it never lands in the past nor jumps an event.
 *
 * Replay: recorded actions are scheduled at the boundary whose interval
 * holds their time while the queue's sequence counter equals theirs.
 */
export class ActionInbox<A, R> implements Inbox {
  private readonly waiting: Array<Pending<A, R>> = [];
  private readonly replay: Array<RecordedAction<A>>;
  private closedReason: string | null = null;

  constructor(
    private readonly world: SimWorld,
    private readonly apply: ApplyAction<A, R>,
    options: { virtualNowUs?: () => number | undefined; recorded?: ReadonlyArray<RecordedAction<A>> } = {},
  ) {
    this.virtualNowUs = options.virtualNowUs ?? (() => undefined);
    this.replay = [...(options.recorded ?? [])].sort((a, b) => a.seq - b.seq);
  }

  private readonly virtualNowUs: () => number | undefined;

  /** Recorded actions not yet put back (a replay that ended early leaves some). */
  get replayLeft(): number {
    return this.replay.length;
  }

  /** Queue an action; resolves with what applying it returned, at its virtual time. */
  submit(action: A): Promise<R> {
    if (this.closedReason !== null) return Promise.reject(new SpillwayError('E_RUN_ENDED', this.closedReason));
    return new Promise<R>((resolve, reject) => this.waiting.push({ action, resolve, reject }));
  }

  /** Refuse further actions and fail the waiting ones (the run ended). */
  close(reason: string): void {
    this.closedReason = reason;
    for (const p of this.waiting.splice(0)) p.reject(new SpillwayError('E_RUN_ENDED', reason));
  }

  boundary(nowUs: number, limitUs: number): boolean {
    let scheduled = false;
    for (;;) {
      const head = this.replay[0];
      if (!head || head.seq !== this.world.queue.scheduledTotal || head.t <= nowUs || head.t > limitUs) break;
      this.replay.shift();
      this.schedule(nowUs, head.t, head.action, null);
      scheduled = true;
    }
    if (this.waiting.length > 0) {
      const wanted = this.virtualNowUs() ?? nowUs + 1;
      const t = Math.min(limitUs, Math.max(nowUs + 1, Math.floor(wanted)));
      for (const p of this.waiting.splice(0)) this.schedule(nowUs, t, p.action, p);
      scheduled = true;
    }
    return scheduled;
  }

  private schedule(nowUs: number, t: number, action: A, pending: Pending<A, R> | null): void {
    const slot: ActionSlot = { t, seq: this.world.queue.scheduledTotal };
    this.world.clock.schedule(t - nowUs, () => {
      try {
        const result = this.apply(action, slot);
        if (pending) pending.resolve(result);
        // A replayed action has no one waiting for it: its refusal was traced, and is not an error of the run.
        else if (result instanceof Promise) result.catch(() => undefined);
      } catch (err) {
        if (!pending) throw err;
        pending.reject(err);
      }
    });
  }
}
