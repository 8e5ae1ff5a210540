import { readFileSync } from 'node:fs';
import { InputError } from '../src/errors.js';
import type { TraceEvent } from '../src/world/types.js';

/** Where a trace file stopped being valid, and why. */
export interface TraceProblem {
  /** 1-based line number of the first bad line. */
  line: number;
  message: string;
  /** True when the file ends in the middle of a line (a run cut short while writing). */
  truncated: boolean;
}

export interface ParsedTrace {
  events: TraceEvent[];
  /** Set when the file has a bad line; `events` then holds the valid prefix before it. */
  problem: TraceProblem | null;
  /** Non-empty lines read, up to and including a bad one. */
  lines: number;
}

/**
 * Parse a JSONL trace (docs/trace.md). Parsing stops at the first bad line:
 * later lines cannot be trusted to be in order, and a replay must never show
 * events out of time. The valid prefix is kept so the caller may still show
 * it, with a warning.
 */
export function parseTraceText(text: string): ParsedTrace {
  const events: TraceEvent[] = [];
  const rawLines = text.split('\n');
  const endsClean = text.length === 0 || text.endsWith('\n');
  let lastT = -Infinity;
  let lineCount = 0;
  for (let i = 0; i < rawLines.length; i++) {
    const raw = rawLines[i]!;
    const lineNo = i + 1;
    const isLast = i === rawLines.length - 1;
    if (raw.trim() === '') continue;
    lineCount++;
    const cutShort = isLast && !endsClean;
    const problem = (message: string): ParsedTrace => ({
      events,
      lines: lineCount,
      problem: { line: lineNo, message: cutShort ? `the file ends in the middle of line ${lineNo} (truncated): ${message}` : message, truncated: cutShort },
    });
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (err) {
      return problem(`not valid JSON (${err instanceof Error ? err.message : String(err)})`);
    }
    if (!value || typeof value !== 'object' || Array.isArray(value)) return problem('expected a JSON object {"t","src","type","data"}');
    const v = value as Record<string, unknown>;
    if (typeof v.t !== 'number' || !Number.isInteger(v.t) || v.t < 0) {
      return problem(`"t" must be a non-negative integer (microseconds), got ${JSON.stringify(v.t)}`);
    }
    if (v.t < lastT) return problem(`"t" goes backwards (${v.t} after ${lastT}); trace lines must be in time order`);
    if (typeof v.src !== 'string' || v.src.length === 0) return problem(`"src" must be a non-empty string, got ${JSON.stringify(v.src)}`);
    if (typeof v.type !== 'string' || !/^[a-z][a-z0-9]*(\.[a-z][a-zA-Z0-9]*)*$/.test(v.type)) {
      return problem(`"type" must be a dotted event name such as "vm.placed", got ${JSON.stringify(v.type)}`);
    }
    const data = v.data === undefined ? {} : v.data;
    if (!data || typeof data !== 'object' || Array.isArray(data)) return problem(`"data" must be an object, got ${JSON.stringify(v.data)}`);
    lastT = v.t;
    events.push({ t: v.t, src: v.src, type: v.type, data: data as Record<string, unknown> });
  }
  return { events, problem: null, lines: lineCount };
}

/** Read and parse a trace file; an unreadable file is bad input that names the path. */
export function readTraceFile(path: string): ParsedTrace {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory, expected a .jsonl trace file' : String((err as Error).message);
    throw new InputError('E_TRACE_UNREADABLE', `${path}: ${why}`, { cause: err });
  }
  return parseTraceText(text);
}

/** The message a user sees for a problem, naming the file and line. */
export function describeProblem(path: string, problem: TraceProblem): string {
  return `${path}:${problem.line}: ${problem.message}`;
}
