import { LineCounter, isAlias, isCollection, isPair, isScalar, parseDocument, type Document, type Node } from 'yaml';
import { InputError } from '../errors.js';
import { SCENARIO_LIMITS } from './bounds.js';

/**
 * A scenario file as a YAML document: parsed within the bounds (size, aliases), turned into
 * plain data, and asked for the line of a field path so every error can point into the file.
 */
export interface ScenarioDoc {
  data: unknown;
  lineOf(path: string): number | undefined;
}

export function readScenarioDoc(text: string, sourceName: string): ScenarioDoc {
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > SCENARIO_LIMITS.fileBytes) throw tooLarge(sourceName, bytes);
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const where = e.linePos?.[0] ? ` (line ${e.linePos[0].line}, column ${e.linePos[0].col})` : '';
    throw new InputError('E_BAD_YAML', `${sourceName}${where}: not valid YAML: ${e.message.split('\n')[0]}`);
  }
  checkAliases(doc, lineCounter, sourceName);
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: SCENARIO_LIMITS.aliases });
  } catch (err) {
    // yaml's own guard against alias expansion and unresolved aliases: checkAliases should have
    // named the field first, so this is the backstop.
    if (!(err instanceof ReferenceError)) throw err;
    throw new InputError('E_YAML_ALIASES', `${sourceName}: YAML aliases: ${err.message}`, { cause: err });
  }
  return { data: withoutNulls(data, []), lineOf: (path) => lineOf(doc, lineCounter, path) };
}

export function tooLarge(sourceName: string, bytes: number): InputError {
  return new InputError('E_SCENARIO_TOO_LARGE', `${sourceName}: a scenario file may hold at most ${SCENARIO_LIMITS.fileBytes} bytes, this one has ${bytes}; use {a..b} name ranges instead of listing hosts and VMs one by one`);
}

/**
 * `key:` with nothing after it is YAML's null; the format reads it as the key left out (its
 * default), as the hand-written checks did. The one null that is a value is an expectation's
 * `value: null` (a metric that must be null).
 */
function withoutNulls(value: unknown, path: ReadonlyArray<string | number>): unknown {
  if (Array.isArray(value)) return value.map((v, i) => withoutNulls(v, [...path, i]));
  if (value === null || typeof value !== 'object') return value;
  const keepNull = path.length === 2 && path[0] === 'expect';
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (v === null && !(keepNull && k === 'value')) continue;
    out[k] = withoutNulls(v, [...path, k]);
  }
  return out;
}

/**
 * Refuse alias use that would blow the file up once expanded (a "billion laughs"), naming the
 * first alias past a bound: more than `aliases` of them, or more than `expandedNodes` nodes
 * in the expanded document.
 */
function checkAliases(doc: Document, lc: LineCounter, sourceName: string): void {
  const sizes = new Map<unknown, number>();
  const sizeOf = (node: unknown): number => {
    if (isAlias(node)) return sizeOf(node.resolve(doc));
    const known = sizes.get(node);
    if (known !== undefined) return known;
    sizes.set(node, 1); // a cycle counts once
    let n = 1;
    if (isCollection(node)) for (const item of node.items) n += isPair(item) ? 1 + sizeOf(item.key) + sizeOf(item.value) : sizeOf(item);
    n = Math.min(n, Number.MAX_SAFE_INTEGER);
    sizes.set(node, n);
    return n;
  };
  let aliases = 0;
  let expanded = 0;
  const walk = (node: unknown, path: Array<string | number>): void => {
    if (isAlias(node)) {
      aliases++;
      expanded += sizeOf(node);
      if (aliases > SCENARIO_LIMITS.aliases || expanded > SCENARIO_LIMITS.expandedNodes) {
        const field = pathString(path);
        const line = node.range ? ` line ${lc.linePos(node.range[0]).line}` : '';
        const why = aliases > SCENARIO_LIMITS.aliases
          ? `more than ${SCENARIO_LIMITS.aliases} YAML aliases (*${node.source}) in one file`
          : `YAML aliases that expand to more than ${SCENARIO_LIMITS.expandedNodes} nodes (*${node.source} here makes ${sizeOf(node)})`;
        throw new InputError('E_YAML_ALIASES', `${sourceName}${line}: ${field || '(top level)'}: ${why}; write the values out or use {a..b} name ranges`, { details: { path: field } });
      }
      return;
    }
    if (!isCollection(node)) return;
    node.items.forEach((item, i) => {
      if (isPair(item)) {
        walk(item.key, path);
        walk(item.value, [...path, isScalar(item.key) ? String(item.key.value) : String(i)]);
      } else {
        walk(item, [...path, i]);
      }
    });
  };
  walk(doc.contents, []);
}

const pathString = (segments: ReadonlyArray<string | number>): string =>
  segments.reduce<string>((p, k) => (typeof k === 'number' ? `${p}[${k}]` : p ? `${p}.${k}` : k), '');

/** Line of the deepest node on `path` that exists in the document. */
function lineOf(doc: Document, lc: LineCounter, path: string): number | undefined {
  const segments: Array<string | number> = [];
  for (const m of path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) segments.push(m[2] !== undefined ? Number(m[2]) : m[1]!);
  for (let n = segments.length; n >= 0; n--) {
    const node = (n === 0 ? doc.contents : doc.getIn(segments.slice(0, n), true)) as Node | undefined;
    const range = node?.range;
    if (range) {
      if (n === 0 && !isCollection(node)) return undefined;
      return lc.linePos(range[0]).line;
    }
  }
  return undefined;
}
