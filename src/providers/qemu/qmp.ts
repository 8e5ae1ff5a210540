import { SpillwayError } from '../../errors.js';
import type { Timer, Transport, World } from '../../world/types.js';

/**
 * A QMP client (the QEMU Machine Protocol: one JSON object per line over a
 * unix socket). It reads the greeting, enters command mode, and matches each
 * answer to its command by `id`; events are passed to `onEvent`. A command
 * QEMU refuses rejects with E_QMP_ERROR carrying QEMU's class and text.
 */
export class QmpClient {
  private buffered = '';
  private nextId = 1;
  private readonly pending = new Map<string, { resolve: (value: unknown) => void; reject: (err: Error) => void; command: string }>();
  private readonly greeted: Promise<void>;
  private eventSink: (event: string, data: unknown) => void = () => undefined;

  private constructor(private readonly transport: Transport) {
    let greet: () => void = () => undefined;
    this.greeted = new Promise<void>((resolve) => { greet = resolve; });
    transport.onData((chunk) => {
      this.buffered += chunk.toString('utf8');
      for (let nl = this.buffered.indexOf('\n'); nl >= 0; nl = this.buffered.indexOf('\n')) {
        const line = this.buffered.slice(0, nl).trim();
        this.buffered = this.buffered.slice(nl + 1);
        if (line) this.dispatch(JSON.parse(line) as Record<string, unknown>, greet);
      }
    });
    transport.onClose((err) => {
      for (const [id, p] of this.pending) {
        this.pending.delete(id);
        p.reject(new SpillwayError('E_QMP_CLOSED', `QMP connection closed before QEMU answered ${p.command}`, { cause: err }));
      }
    });
  }

  /**
   * Connect to `socketPath`, read the greeting and enter command mode. QEMU
   * accepts a second client on a busy QMP socket but greets it only when the
   * first leaves: a greeting that does not come in `timeoutUs` is an error.
   */
  static async connect(world: World, socketPath: string, timeoutUs = 10_000_000): Promise<QmpClient> {
    const client = new QmpClient(await world.net.connect(`unix:${socketPath}`));
    let timer: Timer | undefined;
    const silent = new Promise<never>((_, reject) => {
      timer = world.clock.schedule(timeoutUs, () => reject(new SpillwayError('E_QMP_TIMEOUT', `QEMU at ${socketPath} sent no QMP greeting within ${timeoutUs / 1e6} s (another client holds the monitor?)`)));
    });
    try {
      await Promise.race([client.greeted, silent]);
    } catch (err) {
      client.close();
      throw err;
    } finally {
      timer?.cancel();
    }
    await client.execute('qmp_capabilities');
    return client;
  }

  onEvent(sink: (event: string, data: unknown) => void): void {
    this.eventSink = sink;
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (this.transport.closed) return Promise.reject(new SpillwayError('E_QMP_CLOSED', `QMP connection is closed; cannot send ${command}`));
    const id = `spillway-${this.nextId++}`;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject, command });
      this.transport.write(Buffer.from(`${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id })}\n`));
    });
  }

  close(): void {
    this.transport.destroy();
  }

  private dispatch(msg: Record<string, unknown>, greet: () => void): void {
    if ('QMP' in msg) { greet(); return; }
    if (typeof msg.event === 'string') { this.eventSink(msg.event, msg.data); return; }
    const id = typeof msg.id === 'string' ? msg.id : '';
    const waiter = this.pending.get(id);
    if (!waiter) return;
    this.pending.delete(id);
    if ('error' in msg) {
      const e = msg.error as { class?: string; desc?: string };
      waiter.reject(new SpillwayError('E_QMP_ERROR', `QEMU refused ${waiter.command}: ${e.desc ?? 'no reason given'}`, { details: { qmpClass: e.class, command: waiter.command } }));
    } else {
      waiter.resolve(msg.return);
    }
  }
}
