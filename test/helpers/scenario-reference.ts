import { readFileSync, writeFileSync } from 'node:fs';
import { scenarioJsonSchema } from '../../src/scenario/json-schema.js';

/**
 * The field reference of docs/scenarios.md, made from the JSON Schema of the format, so the
 * page lists every field once, with its type, default and meaning as declared in src/scenario.
 * test/scenario-schema.test.ts checks the page holds the current one; to rewrite it:
 *   node --import tsx test/helpers/scenario-reference.ts --write
 */
type Schema = Record<string, any>;

const BEGIN = '<!-- field reference: generated from src/scenario by test/helpers/scenario-reference.ts; do not edit -->';
const END = '<!-- end of field reference -->';

const code = (v: unknown): string => `\`${typeof v === 'string' ? v : JSON.stringify(v)}\``;
const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function typeOf(s: Schema): string {
  if (s['x-unit']) return s['x-unit'];
  if (s.const !== undefined) return code(s.const);
  if (s.enum) return s.enum.map(code).join(' | ');
  const alts: Schema[] | undefined = s.oneOf ?? s.anyOf;
  if (alts) return alts.map((a) => typeOf(a)).join(' or ');
  const bound = (x?: number): number | undefined => (x === undefined || Math.abs(x) >= Number.MAX_SAFE_INTEGER ? undefined : x);
  const range = (l?: number, h?: number): string => {
    const [lo, hi] = [bound(l), bound(h)];
    return lo !== undefined && hi !== undefined ? ` ${lo}..${hi}` : lo !== undefined ? ` >= ${lo}` : hi !== undefined ? ` <= ${hi}` : '';
  };
  switch (s.type) {
    case 'integer': return `integer${range(s.minimum, s.maximum)}`;
    case 'number': return `number${range(s.minimum, s.maximum)}`;
    case 'string': return s.pattern ? `string \`${s.pattern}\`` : 'string';
    case 'boolean': return 'bool';
    case 'null': return 'null';
    case 'array': return `list of ${typeOf(s.items ?? {})}`;
    case 'object': return s.additionalProperties && typeof s.additionalProperties === 'object' ? 'mapping name →' : 'mapping';
    default: return Array.isArray(s.type) ? s.type.join(' or ') : 'any';
  }
}

interface Row { path: string; type: string; fallback: string; meaning: string }

function walk(s: Schema, path: string, required: boolean, rows: Row[], variant = ''): void {
  const fallback = s.default !== undefined ? code(s.default) : required ? 'required' : '—';
  const alts: Schema[] = (s.oneOf ?? s.anyOf ?? []).filter((a: Schema) => a.type === 'object' || a.type === 'array');
  if (path) rows.push({ path: path + variant, type: typeOf(s), fallback, meaning: s.description ?? '' });
  if (s.type === 'object' && s.properties) {
    for (const [k, v] of Object.entries<Schema>(s.properties)) walk(v, path ? `${path}.${k}` : k, (s.required ?? []).includes(k), rows);
  } else if (s.type === 'object' && typeof s.additionalProperties === 'object') {
    walkInto(s.additionalProperties, `${path}.<name>`, rows);
  } else if (s.type === 'array' && s.items) {
    walkInto(s.items, `${path}[]`, rows);
  }
  for (const alt of alts) if (!s.type) walkInto(alt, path, rows);
}

/** The fields inside a value (its own row is its container's). */
function walkInto(s: Schema, path: string, rows: Row[]): void {
  const alts: Schema[] = s.oneOf ?? s.anyOf ?? [];
  if (s.type === 'object' && s.properties) {
    const tag = Object.entries<Schema>(s.properties).find(([, v]) => v.const !== undefined);
    const when = tag ? ` (${tag[0]}: ${tag[1].const})` : '';
    for (const [k, v] of Object.entries<Schema>(s.properties)) {
      if (v.const !== undefined) continue;
      walk(v, `${path}.${k}`, (s.required ?? []).includes(k), rows, when);
    }
  } else if (s.type === 'array' && s.items) {
    walkInto(s.items, `${path}[]`, rows);
  }
  for (const alt of alts) walkInto(alt, path, rows);
}

export function fieldReference(): string {
  const rows: Row[] = [];
  walk(scenarioJsonSchema(), '', true, rows);
  const seen = new Set<string>();
  const lines = ['| field | type | default | meaning |', '|---|---|---|---|'];
  for (const r of rows) {
    if (seen.has(r.path)) continue;
    seen.add(r.path);
    lines.push(`| \`${r.path}\` | ${cell(r.type)} | ${cell(r.fallback)} | ${cell(r.meaning)} |`);
  }
  return `${BEGIN}\n${lines.join('\n')}\n${END}`;
}

/** The reference block of a page, or null when it has none. */
export function referenceIn(page: string): string | null {
  const i = page.indexOf(BEGIN);
  const j = page.indexOf(END);
  return i < 0 || j < 0 ? null : page.slice(i, j + END.length);
}

if (process.argv.includes('--write')) {
  const page = readFileSync('docs/scenarios.md', 'utf8');
  const old = referenceIn(page);
  if (old === null) throw new Error(`docs/scenarios.md has no "${BEGIN}" … "${END}" block`);
  writeFileSync('docs/scenarios.md', page.replace(old, () => fieldReference()));
}
