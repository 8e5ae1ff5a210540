import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadScenarioFile, parseScenario } from '../src/sim/scenario-file.js';

/**
 * The parsed form of every shipped scenario, of the docs' complete example and of a file that
 * sets every field (fixtures/scenario-parsed/every-field.yaml) is pinned in
 * fixtures/scenario-parsed/*.json, written by the hand-written parser before the format was
 * declared with zod. A change to the format that changes what a file means shows up here
 * (and would change trace hashes); compare key order too, since traces serialize objects.
 */
const dir = 'test/fixtures/scenario-parsed';
const pinned = (name: string): string => readFileSync(`${dir}/${name}.json`, 'utf8');
const check = (parsed: unknown, name: string): void => {
  const want = pinned(name);
  expect(parsed).toStrictEqual(JSON.parse(want));
  expect(JSON.stringify(parsed, null, 1) + '\n').toBe(want);
};

describe('the parsed scenarios stay as pinned', () => {
  const shipped = readdirSync('scenarios').filter((f) => f.endsWith('.yaml')).sort();

  it('pins every shipped scenario', () => {
    expect(shipped.length).toBeGreaterThanOrEqual(7);
    for (const f of shipped) expect(readdirSync(dir)).toContain(f.replace(/\.yaml$/, '.json'));
  });

  it.each(shipped)('scenarios/%s', (f) => {
    check(loadScenarioFile(`scenarios/${f}`), f.replace(/\.yaml$/, ''));
  });

  it('every field set', () => {
    check(loadScenarioFile(`${dir}/every-field.yaml`), 'every-field');
  });

  it("the docs' complete example", () => {
    const md = readFileSync('docs/scenarios.md', 'utf8');
    const example = /## A complete example\n\n```yaml\n([\s\S]*?)```/.exec(md)![1]!;
    check(parseScenario(example, 'docs/scenarios.md'), 'docs-example');
  });
});
