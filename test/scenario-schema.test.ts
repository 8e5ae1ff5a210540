import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { z } from 'zod';
import { scenarioJsonSchema } from '../src/scenario/json-schema.js';
import { fieldReference, referenceIn } from './helpers/scenario-reference.js';

/**
 * schemas/scenario.schema.json is generated from the declarations in src/scenario
 * (`node bin/spillway.js validate --schema > schemas/scenario.schema.json`): it must be
 * current, accept every shipped scenario as written and refuse what the loader refuses by
 * shape, and every shipped scenario points editors at it.
 */
const file = 'schemas/scenario.schema.json';
const shipped = readdirSync('scenarios').filter((f) => f.endsWith('.yaml')).sort();
const HEADER = '# yaml-language-server: $schema=../schemas/scenario.schema.json';

describe('the published JSON Schema of the scenario format', () => {
  it('is current (regenerate: node bin/spillway.js validate --schema > schemas/scenario.schema.json)', () => {
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(scenarioJsonSchema());
  });

  const schema = z.fromJSONSchema(JSON.parse(readFileSync(file, 'utf8')));

  it.each(shipped)('accepts scenarios/%s and the file points editors at it', (f) => {
    const text = readFileSync(`scenarios/${f}`, 'utf8');
    expect(text.split('\n')[0]).toBe(HEADER);
    const result = schema.safeParse(parse(text));
    expect(result.error?.issues ?? []).toEqual([]);
  });

  it('accepts the every-field fixture and refuses an unknown key, a bad enum and a missing field', () => {
    const every = parse(readFileSync('test/fixtures/scenario-parsed/every-field.yaml', 'utf8')) as Record<string, any>;
    expect(schema.safeParse(every).success).toBe(true);
    expect(schema.safeParse({ ...every, hostz: 1 }).success).toBe(false);
    expect(schema.safeParse({ ...every, policies: { burst: { order: 'random' } } }).success).toBe(false);
    const { datacenter: _dc, ...noDatacenter } = every;
    expect(schema.safeParse(noDatacenter).success).toBe(false);
  });

  it('docs/scenarios.md lists every field once, as the schema declares it (regenerate: node --import tsx test/helpers/scenario-reference.ts --write)', () => {
    const page = readFileSync('docs/scenarios.md', 'utf8');
    expect(referenceIn(page)).toBe(fieldReference());
    const rows = fieldReference().split('\n').filter((l) => l.startsWith('| `')).map((l) => l.split(' | ')[0]);
    expect(new Set(rows).size).toBe(rows.length);
    for (const f of ['datacenter.vms[].ramGiB', 'policies.migrate.cutover.window.start', 'cloud.faults[].zone', 'timeline[].reset (event: wan-outage)', 'expect[].value']) {
      expect(rows).toContain(`| \`${f}\``);
    }
  });
});
