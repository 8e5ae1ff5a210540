/**
 * The World seam (ARCHITECTURE.md §3). Everything nondeterministic — time,
 * randomness, sockets — is reached through a World, so one code base runs both
 * as a seeded simulation (SimWorld) and for real (LiveWorld).
 */

/** A handle to a scheduled callback. */
export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Time since the world started, integer microseconds. */
  nowUs(): number;
  /** Run `fn` once, `delayUs` from now. */
  schedule(delayUs: number, fn: () => void): Timer;
  /** Resolve after `delayUs`. */
  sleepUs(delayUs: number): Promise<void>;
  /** XState's clock contract (milliseconds), so machines run on this clock. */
  setTimeout(fn: (...args: unknown[]) => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
}

/** A seeded random stream owned by one component. */
export interface Rng {
  readonly label: string;
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform integer in [lo, hiExclusive). */
  int(lo: number, hiExclusive: number): number;
  /** Uniform real in [lo, hi). */
  range(lo: number, hi: number): number;
  chance(p: number): boolean;
  normal(mean: number, sd: number): number;
  /** Exponential with the given mean. */
  exp(mean: number): number;
  pick<T>(items: readonly T[]): T;
  shuffle<T>(items: T[]): T[];
  /** A raw 32-bit unsigned value. */
  u32(): number;
}

/** A reliable, ordered byte stream between two endpoints. */
export interface Transport {
  readonly localAddress: string;
  readonly remoteAddress: string;
  /**
   * Queue bytes; returns false when the caller should wait for `onDrain`. The transport may hold
   * `data` by reference until it is sent, as sockets do: do not change it after writing unless
   * `onWritten` has fired. `onWritten`, when the
   * transport supports it, fires once the bytes no longer need `data` (the caller may reuse it);
   * a transport that cannot tell never calls it.
   */
  write(data: Uint8Array, onWritten?: () => void): boolean;
  /**
   * True when `onWritten` fires for every write that succeeds (real sockets): a caller may then
   * lend buffers it must not change until that callback. Absent: never count on `onWritten`.
   */
  readonly confirmsWritten?: boolean;
  /** Queue several buffers as one batch (one writev where the platform has it); `onWritten` as for write. */
  writev?(chunks: readonly Uint8Array[], onWritten?: () => void): boolean;
  /** Stop delivering data (and let the peer's window fill) until `resume`: receiver backpressure. */
  pause?(): void;
  resume?(): void;
  onData(cb: (chunk: Buffer) => void): void;
  /**
   * Instead of onData: deliver incoming bytes as views of one reused buffer of `bufferBytes`, not
   * a fresh Buffer per read. A chunk is valid only until the callback returns (copy what must
   * outlive it). Call before any data has arrived (when the transport is handed over); returns
   * false when the transport cannot, and then onData must be used.
   */
  onDataLent?(cb: (chunk: Buffer) => void, bufferBytes: number): boolean;
  onDrain(cb: () => void): void;
  /** Fires once, with an error when the stream was reset rather than ended. */
  onClose(cb: (err?: Error) => void): void;
  /** Half-close after queued bytes are sent, then close. */
  end(): void;
  /** Close now; pending bytes are dropped. */
  destroy(err?: Error): void;
  readonly closed: boolean;
}

export interface Listener {
  readonly address: string;
  close(): Promise<void>;
}

export interface Net {
  /** Serve `address` ("host:port", "unix:/path", or a simulated name). */
  listen(address: string, onConnection: (transport: Transport) => void): Promise<Listener>;
  connect(address: string): Promise<Transport>;
}

export type TraceData = Record<string, unknown>;

export interface TraceEvent {
  /** Virtual (or real) time, microseconds. */
  t: number;
  src: string;
  type: string;
  data: TraceData;
}

export interface Trace {
  emit(src: string, type: string, data?: TraceData): void;
  /** sha256 over the canonical lines so far, hex. */
  hash(): string;
  readonly count: number;
  /** Be told of every event (TUI, reports, file sinks). Returns an unsubscribe function. */
  subscribe(cb: (event: TraceEvent, line: string) => void): () => void;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface World {
  readonly kind: 'sim' | 'live';
  readonly seed: number;
  readonly clock: Clock;
  /** The seeded stream for one component; the same label always returns the same stream. */
  rng(label: string): Rng;
  /**
   * Bytes no peer can predict (nonces, session tokens): the operating
   * system's CSPRNG when live; in a simulation the next bytes of the labelled
   * seeded stream, so a run stays reproducible.
   */
  unpredictable(label: string, bytes: number): Buffer;
  readonly net: Net;
  readonly trace: Trace;
  log(level: LogLevel, src: string, message: string, data?: TraceData): void;
  /**
   * Run a real asynchronous operation (an SDK call, a file write). In a
   * simulation virtual time stands still while it is in flight and the result
   * is delivered at issue time + `latencyUs`, ordered by issue.
   */
  external<T>(op: () => Promise<T>, latencyUs: number): Promise<T>;
}
