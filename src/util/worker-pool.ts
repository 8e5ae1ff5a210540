import { Worker } from 'node:worker_threads';

/** What a pool worker posts back: a result for an item, or progress on it. */
export type WorkerMessage<R> = { index: number; result: R } | { index: number; progress: unknown };

export interface WorkerPoolOptions<I, R> {
  /** Worker threads (at most one per item). */
  jobs: number;
  /** The result that stands for an item whose worker died. */
  crashed(item: I, message: string): R;
  /** Called as each item finishes, in completion order. */
  onResult?(result: R, item: I, done: number, total: number): void;
  onProgress?(progress: unknown, item: I): void;
}

/**
 * Runs items on worker threads started from `entry` (a module that answers
 * `{ index, item }` messages with `{ index, result }`), handing each idle
 * worker the next item, and returns results in item order: completion order
 * varies with the machine, reports must not. A worker that dies takes only
 * its current item with it.
 */
export async function runInWorkers<I, R>(entry: URL, items: readonly I[], options: WorkerPoolOptions<I, R>): Promise<R[]> {
  const results = new Map<number, R>();
  if (items.length === 0) return [];
  let nextIndex = 0;
  const jobs = Math.max(1, Math.min(options.jobs, items.length));
  const finish = (index: number, result: R): void => {
    results.set(index, result);
    options.onResult?.(result, items[index]!, results.size, items.length);
  };
  await Promise.all(Array.from({ length: jobs }, () => new Promise<void>((resolve) => {
    const worker = new Worker(entry);
    let current = -1;
    let ended = false;
    const next = (): void => {
      if (nextIndex < items.length) {
        current = nextIndex++;
        worker.postMessage({ index: current, item: items[current] });
      } else {
        current = -1;
        ended = true;
        void worker.terminate().then(() => resolve());
      }
    };
    worker.on('message', (message: WorkerMessage<R>) => {
      if ('progress' in message) {
        if (current >= 0) options.onProgress?.(message.progress, items[current]!);
        return;
      }
      finish(message.index, message.result);
      next();
    });
    const die = (message: string): void => {
      if (ended) return;
      ended = true;
      if (current >= 0 && !results.has(current)) finish(current, options.crashed(items[current]!, message));
      resolve();
    };
    worker.on('error', (err) => die(`worker failed: ${err.message}`));
    worker.on('exit', (code) => die(`worker exited with code ${code}`));
    next();
  })));
  // Items never handed out because every worker died.
  return items.map((item, i) => results.get(i) ?? options.crashed(item, 'not run: every worker died'));
}
