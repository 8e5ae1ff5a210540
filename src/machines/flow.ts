import { and, assign, type AnyEventObject } from 'xstate';
import { errorCode, InputError } from '../errors.js';
import { RETRYABLE_CLOUD_CODES } from '../ports/cloud.js';

/**
 * The shape every lifecycle machine shares. A flow is a sequence of steps;
 * each step invokes one named actor (a side effect supplied with
 * `machine.provide`), waits for it under a timeout from config, retries
 * retryable errors with exponential backoff on the World clock, and on a
 * non-retryable error, an exhausted retry budget or an operator ROLLBACK it
 * enters `rollingBack`, whose actor undoes what the completed steps did.
 *
 * Persisted snapshots drop pending `after` timers (statelyai/xstate#5331), so
 * the one timer a flow can have pending lives in context (`timer`) with the
 * virtual time it was armed at; the runtime re-arms it after a restore by
 * sending `timer.fired` at the original deadline.
 */

export interface RetryPolicy {
  /** Attempts per step, the first included. */
  maxAttempts: number;
  backoffBaseUs: number;
  backoffMaxUs: number;
  backoffFactor: number;
}

export interface FlowConfig {
  /** Per-step timeout, keyed by step path ("adapt.installDrivers", "rollback"). */
  timeoutsUs: Record<string, number>;
  /** Used for a step without its own entry. */
  defaultTimeoutUs: number;
  retry: RetryPolicy;
}

export interface StepError {
  step: string;
  code: string;
  message: string;
  retryable: boolean;
  attempt: number;
}

export interface PendingTimer {
  /** Unique per arming: a timer re-armed after a restore never fires into a later state. */
  key: string;
  kind: 'timeout' | 'backoff' | 'wait';
  /** Virtual time the timer was armed at; null when the machine ran without a runtime clock. */
  startedAtUs: number | null;
  durationUs: number;
}

export type Outcome = 'ok' | 'rolled-back' | 'failed';

export interface FlowContext<TInput, TData> {
  /** The actor's fixed id; idempotency tokens derive from it. */
  id: string;
  input: TInput;
  config: FlowConfig;
  /** What the steps produced so far (ids of snapshots, instances, leases…): merged step outputs. */
  data: TData;
  step: string;
  attempt: number;
  timerSeq: number;
  timer: PendingTimer | null;
  /** Every error taken as a transition, oldest first (capped). */
  errors: StepError[];
  /** The error that sent the flow into rollback, if any. */
  failure: StepError | null;
  completed: string[];
  phase: 'forward' | 'rollback' | 'finished';
  outcome: Outcome | null;
}

export interface FlowOutput<TData> {
  outcome: Outcome;
  failure: StepError | null;
  data: TData;
}

export interface StepInput<TInput, TData> {
  id: string;
  step: string;
  attempt: number;
  input: TInput;
  data: TData;
  /** Stable across retries and restarts of this step: pass it to provider calls as their idempotency token. */
  token: string;
  completed: string[];
  failure: StepError | null;
}

export type FlowEvent =
  | { type: 'timer.fired'; key: string }
  | { type: 'ROLLBACK'; reason?: string };

export const ERRORS_KEPT = 32;

export const DEFAULT_RETRY: RetryPolicy = {
  maxAttempts: 4, backoffBaseUs: 2_000_000, backoffMaxUs: 60_000_000, backoffFactor: 2,
};

/** Codes a step may retry besides the cloud's own retryable ones. */
export const RETRYABLE_CODES = new Set<string>([
  ...RETRYABLE_CLOUD_CODES, 'E_TIMEOUT', 'E_BUSY', 'E_LINK_DOWN', 'E_IO',
]);

export function isRetryable(err: unknown): boolean {
  if (err && typeof err === 'object' && 'retryable' in err && typeof (err as { retryable: unknown }).retryable === 'boolean') {
    return (err as { retryable: boolean }).retryable;
  }
  const code = errorCode(err);
  return code !== undefined && RETRYABLE_CODES.has(code);
}

export function toStepError(err: unknown, step: string, attempt: number): StepError {
  const code = errorCode(err) ?? (err instanceof Error && err.name !== 'Error' ? err.name : 'E_UNKNOWN');
  const message = err instanceof Error ? err.message : String(err);
  return { step, code, message, retryable: isRetryable(err), attempt };
}

export function timeoutOf(config: FlowConfig, step: string): number {
  return config.timeoutsUs[step] ?? config.defaultTimeoutUs;
}

export function backoffOf(config: FlowConfig, attempt: number): number {
  const { backoffBaseUs, backoffFactor, backoffMaxUs } = config.retry;
  return Math.min(backoffMaxUs, Math.round(backoffBaseUs * backoffFactor ** Math.max(0, attempt - 1)));
}

/** Validate a flow config; errors name the field and what is allowed. */
export function checkFlowConfig(config: FlowConfig, path = 'config'): FlowConfig {
  const positiveInt = (v: unknown, field: string): void => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
      throw new InputError('E_BAD_CONFIG', `${path}.${field}: expected a positive integer of microseconds, got ${JSON.stringify(v)}`);
    }
  };
  positiveInt(config.defaultTimeoutUs, 'defaultTimeoutUs');
  for (const [k, v] of Object.entries(config.timeoutsUs)) positiveInt(v, `timeoutsUs.${k}`);
  const r = config.retry;
  if (!Number.isInteger(r.maxAttempts) || r.maxAttempts < 1 || r.maxAttempts > 100) {
    throw new InputError('E_BAD_CONFIG', `${path}.retry.maxAttempts: expected an integer from 1 to 100, got ${JSON.stringify(r.maxAttempts)}`);
  }
  positiveInt(r.backoffBaseUs, 'retry.backoffBaseUs');
  positiveInt(r.backoffMaxUs, 'retry.backoffMaxUs');
  if (typeof r.backoffFactor !== 'number' || !(r.backoffFactor >= 1)) {
    throw new InputError('E_BAD_CONFIG', `${path}.retry.backoffFactor: expected a number >= 1, got ${JSON.stringify(r.backoffFactor)}`);
  }
  return config;
}

export function initialFlowContext<TInput, TData>(
  id: string, input: TInput, config: FlowConfig, data: TData, firstStep: string,
): FlowContext<TInput, TData> {
  checkFlowConfig(config);
  return {
    id, input, config, data, step: firstStep, attempt: 0, timerSeq: 0, timer: null,
    errors: [], failure: null, completed: [], phase: 'forward', outcome: null,
  };
}

export function stepInput<TInput, TData>(context: FlowContext<TInput, TData>): StepInput<TInput, TData> {
  return {
    id: context.id, step: context.step, attempt: context.attempt, input: context.input, data: context.data,
    token: `${context.id}:${context.step}`, completed: context.completed, failure: context.failure,
  };
}

type Ctx = FlowContext<unknown, Record<string, unknown>>;

/**
 * XState's config and action types are tied to each machine's own generics,
 * so configs generated here (and the shared actions, guards and delays) are
 * typed loosely on purpose. They are checked where it matters: createMachine
 * validates every target and reference at construction, and the
 * path-coverage tests walk every state and transition.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Loose = any;
type Args = { context: Ctx; event: AnyEventObject };

const pushError = (context: Ctx, e: StepError): StepError[] => [...context.errors, e].slice(-ERRORS_KEPT);

function armed(context: Ctx, kind: PendingTimer['kind'], durationUs: number, nowUs: number | null): Partial<Ctx> {
  const timerSeq = context.timerSeq + 1;
  return { timerSeq, timer: { key: `${context.id}/${context.step}/${kind}/${timerSeq}`, kind, startedAtUs: nowUs, durationUs } };
}

/**
 * The timer-arming actions. Machines are pure, so by default a timer records
 * only its duration; the runtime provides these again with its World clock
 * (`flowClockActions(() => world.clock.nowUs())`) so that the absolute
 * deadline is kept in context and survives a restore.
 */
export function flowClockActions(nowUs: () => number | null) {
  return {
    armTimeout: assign(({ context }: Args) => armed(context, 'timeout', timeoutOf(context.config, context.step), nowUs())),
    armBackoff: assign(({ context }: Args) => armed(context, 'backoff', backoffOf(context.config, context.attempt), nowUs())),
    /** A planned pause between rounds; its length is `data.waitUs`, decided by the flow. */
    armWait: assign(({ context }: Args) => armed(context, 'wait', Math.max(1, Number((context.data as { waitUs?: number }).waitUs ?? 1)), nowUs())),
  };
}

/** Shared actions, guards and delays; spread into each machine's `setup()`. */
type FlowActionName =
  | 'armTimeout' | 'armBackoff' | 'armWait' | 'clearTimer' | 'beginStep' | 'beginAttempt' | 'completeStep'
  | 'noteError' | 'noteFailure' | 'noteTimeout' | 'noteTimeoutFailure' | 'noteRollbackRequest' | 'enterRollback' | 'finish';

export const flowActions: Record<FlowActionName, Loose> = {
  ...flowClockActions(() => null),
  beginStep: assign((_: Args, params: { step: string }) => ({ step: params.step, attempt: 0 })),
  clearTimer: assign(() => ({ timer: null })),
  beginAttempt: assign(({ context }: Args) => ({ attempt: context.attempt + 1 })),
  completeStep: assign(({ context, event }: Args) => ({
    data: { ...context.data, ...((event as { output?: Record<string, unknown> }).output ?? {}) },
    completed: [...context.completed, context.step],
    timer: null,
  })),
  noteError: assign(({ context, event }: Args) => {
    const e = toStepError((event as { error?: unknown }).error, context.step, context.attempt);
    return { errors: pushError(context, e), timer: null };
  }),
  noteFailure: assign(({ context, event }: Args) => {
    const e = toStepError((event as { error?: unknown }).error, context.step, context.attempt);
    return { errors: pushError(context, e), failure: context.failure ?? e, timer: null };
  }),
  noteTimeout: assign(({ context }: Args) => {
    const e: StepError = { step: context.step, code: 'E_TIMEOUT', message: `step ${context.step} did not finish within ${timeoutOf(context.config, context.step)}us`, retryable: true, attempt: context.attempt };
    return { errors: pushError(context, e), timer: null };
  }),
  noteTimeoutFailure: assign(({ context }: Args) => {
    const e: StepError = { step: context.step, code: 'E_TIMEOUT', message: `step ${context.step} did not finish within ${timeoutOf(context.config, context.step)}us after ${context.attempt} attempts`, retryable: false, attempt: context.attempt };
    return { errors: pushError(context, e), failure: context.failure ?? e, timer: null };
  }),
  noteRollbackRequest: assign(({ context, event }: Args) => {
    const reason = (event as { reason?: string }).reason ?? 'operator requested rollback';
    const e: StepError = { step: context.step, code: 'E_ROLLBACK_REQUESTED', message: reason, retryable: false, attempt: context.attempt };
    return { errors: pushError(context, e), failure: context.failure ?? e, timer: null };
  }),
  enterRollback: assign(() => ({ phase: 'rollback' as const, step: 'rollback', attempt: 0 })),
  finish: assign((_: Args, params: { outcome: Outcome }) => ({ phase: 'finished' as const, outcome: params.outcome, timer: null })),
};

export const flowGuards: Record<'canRetry' | 'attemptsLeft' | 'timerMatches' | 'inForwardPhase', Loose> = {
  /** The failed attempt may be retried: the error is retryable and the budget is not spent. */
  canRetry: ({ context, event }: Args) =>
    context.attempt < context.config.retry.maxAttempts && isRetryable((event as { error?: unknown }).error),
  attemptsLeft: ({ context }: Args) => context.attempt < context.config.retry.maxAttempts,
  timerMatches: ({ context, event }: Args) => context.timer !== null && (event as { key?: string }).key === context.timer.key,
  inForwardPhase: ({ context }: Args) => context.phase === 'forward',
};

export const flowDelays: Record<'stepTimeout' | 'waitDelay' | 'backoffDelay', Loose> = {
  stepTimeout: ({ context }: Args) => (context.timer?.kind === 'timeout' ? context.timer.durationUs : timeoutOf(context.config, context.step)) / 1000,
  waitDelay: ({ context }: Args) => (context.timer?.kind === 'wait' ? context.timer.durationUs : Math.max(1, Number((context.data as { waitUs?: number }).waitUs ?? 1))) / 1000,
  backoffDelay: ({ context }: Args) => (context.timer?.kind === 'backoff' ? context.timer.durationUs : backoffOf(context.config, context.attempt)) / 1000,
};

/**
 * One step: `<step>.run` invokes the actor (named after the step's last path
 * segment unless `actor` is given) under a timeout; `<step>.backoff` waits
 * before the next attempt. On success the machine moves to `next` (a path from
 * the machine root).
 */
export function step(
  machineId: string, stepPath: string, next: string,
  options: { actor?: string; branches?: ReadonlyArray<{ guard: string; target: string }> } = {},
): Loose {
  const actor = options.actor ?? stepPath.split('.').pop()!;
  const rollback = `#${machineId}.rollingBack`;
  const onDone = [
    ...(options.branches ?? []).map((b) => ({ guard: b.guard, target: `#${machineId}.${b.target}`, actions: 'completeStep' })),
    { target: `#${machineId}.${next}`, actions: 'completeStep' },
  ];
  return {
    initial: 'run' as const,
    entry: { type: 'beginStep' as const, params: { step: stepPath } },
    states: {
      run: {
        entry: ['beginAttempt', 'armTimeout'],
        invoke: {
          id: actor,
          src: actor,
          input: ({ context }: { context: Ctx }) => stepInput(context),
          onDone,
          onError: [
            { guard: 'canRetry', target: 'backoff', actions: 'noteError' },
            { target: rollback, actions: 'noteFailure' },
          ],
        },
        after: {
          stepTimeout: [
            { guard: 'attemptsLeft', target: 'backoff', actions: 'noteTimeout' },
            { target: rollback, actions: 'noteTimeoutFailure' },
          ],
        },
        on: {
          'timer.fired': [
            { guard: and(['timerMatches', 'attemptsLeft']), target: 'backoff', actions: 'noteTimeout' },
            { guard: 'timerMatches', target: rollback, actions: 'noteTimeoutFailure' },
          ],
        },
      },
      backoff: {
        entry: 'armBackoff',
        after: { backoffDelay: 'run' },
        on: { 'timer.fired': { guard: 'timerMatches', target: 'run' } },
      },
    },
  };
}

/**
 * `rollingBack` and the three final states. Rollback is itself retried; if it
 * still fails the flow ends `failed` and says which step it was undoing.
 */
export function rollbackStates(machineId: string, okState = 'done'): Record<string, Loose> {
  return {
    rollingBack: {
      initial: 'run' as const,
      entry: 'enterRollback',
      states: {
        run: {
          entry: ['beginAttempt', 'armTimeout'],
          invoke: {
            id: 'rollback',
            src: 'rollback',
            input: ({ context }: { context: Ctx }) => stepInput(context),
            onDone: { target: `#${machineId}.rolledBack` },
            onError: [
              { guard: 'canRetry', target: 'backoff', actions: 'noteError' },
              { target: `#${machineId}.failed`, actions: 'noteError' },
            ],
          },
          after: {
            stepTimeout: [
              { guard: 'attemptsLeft', target: 'backoff', actions: 'noteTimeout' },
              { target: `#${machineId}.failed`, actions: 'noteTimeout' },
            ],
          },
          on: {
            'timer.fired': [
              { guard: and(['timerMatches', 'attemptsLeft']), target: 'backoff', actions: 'noteTimeout' },
              { guard: 'timerMatches', target: `#${machineId}.failed`, actions: 'noteTimeout' },
            ],
          },
        },
        backoff: {
          entry: 'armBackoff',
          after: { backoffDelay: 'run' },
          on: { 'timer.fired': { guard: 'timerMatches', target: 'run' } },
        },
      },
    },
    [okState]: { type: 'final' as const, entry: { type: 'finish' as const, params: { outcome: 'ok' as const } } },
    rolledBack: { type: 'final' as const, entry: { type: 'finish' as const, params: { outcome: 'rolled-back' as const } } },
    failed: { type: 'final' as const, entry: { type: 'finish' as const, params: { outcome: 'failed' as const } } },
  };
}

/** The root-level ROLLBACK handler: an operator may abort a flow at any forward step. */
export const rollbackOnRequest: Loose = {
  ROLLBACK: { guard: 'inForwardPhase', target: '.rollingBack', actions: 'noteRollbackRequest' },
};

export function flowOutput<TData>({ context }: { context: FlowContext<unknown, TData> }): FlowOutput<TData> {
  return { outcome: context.outcome ?? 'failed', failure: context.failure, data: context.data };
}

