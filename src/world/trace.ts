import { createHash, type Hash } from 'node:crypto';
import type { Trace, TraceData, TraceEvent } from './types.js';

/**
 * Canonical JSON: object keys sorted, no whitespace, non-finite numbers and
 * undefined dropped the way JSON.stringify drops them. Two runs that emit the
 * same events produce byte-identical lines, whatever order keys were built in.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === 'object' && !(value instanceof Uint8Array)) {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = sortKeys(v);
    }
    return out;
  }
  if (typeof value === 'bigint') return value.toString();
  return value;
}

/** One JSONL line per event; the hash covers every line in order. */
export class TraceRecorder implements Trace {
  private readonly sha: Hash = createHash('sha256');
  private readonly subscribers = new Set<(event: TraceEvent, line: string) => void>();
  private n = 0;

  constructor(private readonly nowUs: () => number) {}

  emit(src: string, type: string, data: TraceData = {}): void {
    const event: TraceEvent = { t: this.nowUs(), src, type, data };
    // Field order is fixed here; data keys are sorted.
    const line = `{"t":${event.t},"src":${JSON.stringify(src)},"type":${JSON.stringify(type)},"data":${canonicalJson(data)}}`;
    this.sha.update(line);
    this.sha.update('\n');
    this.n++;
    for (const cb of this.subscribers) cb(event, line);
  }

  hash(): string {
    return this.sha.copy().digest('hex');
  }

  get count(): number {
    return this.n;
  }

  subscribe(cb: (event: TraceEvent, line: string) => void): () => void {
    this.subscribers.add(cb);
    return () => this.subscribers.delete(cb);
  }
}

/** Hash a JSONL trace file's lines the way TraceRecorder does (for `spillway replay` checks). */
export function hashTraceLines(lines: Iterable<string>): string {
  const sha = createHash('sha256');
  for (const line of lines) {
    if (line.length === 0) continue;
    sha.update(line);
    sha.update('\n');
  }
  return sha.digest('hex');
}
