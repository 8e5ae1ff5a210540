import { describe, expect, it } from 'vitest';
import { renderJUnit } from '../src/suite/junit.js';
import { deriveSeeds, parseShard, planSuite, shardItems } from '../src/suite/plan.js';
import type { SuiteResult } from '../src/suite/result.js';
import { findAll, parseMarkup, textOf } from './markup-check.js';

const scenarios = [
  { file: 'scenarios/c.yaml', name: 'c', seed: 3 },
  { file: 'scenarios/a.yaml', name: 'a', seed: 1 },
  { file: 'scenarios/b.yaml', name: 'b', seed: 2 },
];

describe('suite plan', () => {
  it('derives seeds deterministically: the scenario seed first, then distinct derived ones', () => {
    const s = deriveSeeds(7, 20);
    expect(s[0]).toBe(7);
    expect(new Set(s).size).toBe(20);
    expect(deriveSeeds(7, 20)).toEqual(s);
    expect(deriveSeeds(8, 5)).not.toEqual(deriveSeeds(7, 5));
    for (const x of s) expect(x >= 0 && x <= 2 ** 32 - 1 && Number.isInteger(x)).toBe(true);
  });

  it('orders the plan by file regardless of input order, with --seed as the sweep base', () => {
    const p = planSuite(scenarios, { seeds: 2 });
    expect(p.map((i) => `${i.scenario}:${i.sweep}`)).toEqual(['a:0', 'a:1', 'b:0', 'b:1', 'c:0', 'c:1']);
    expect(p.map((i) => i.index)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(planSuite([...scenarios].reverse(), { seeds: 2 })).toEqual(p);
    const over = planSuite(scenarios, { seed: 99 });
    expect(over.map((i) => i.seed)).toEqual([99, 99, 99]);
  });

  it('shards cover every (scenario, seed) exactly once for every shard count', () => {
    const plan = planSuite(scenarios, { seeds: 7 });
    for (let n = 1; n <= 25; n++) {
      const seen = new Map<number, number>();
      for (let i = 1; i <= n; i++) {
        for (const it of shardItems(plan, { index: i, count: n })) seen.set(it.index, (seen.get(it.index) ?? 0) + 1);
      }
      expect(seen.size).toBe(plan.length);
      expect([...seen.values()].every((c) => c === 1)).toBe(true);
    }
    // Balanced: shard sizes differ by at most one.
    const sizes = [1, 2, 3, 4].map((i) => shardItems(plan, { index: i, count: 4 }).length);
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
  });

  it('refuses malformed shards, naming the flag', () => {
    expect(parseShard('2/4')).toEqual({ index: 2, count: 4 });
    for (const bad of ['0/4', '5/4', '1/0', '2', 'a/b', '1/4/2', '-1/3']) {
      expect(() => parseShard(bad)).toThrow(/--shard: expected i\/n/);
    }
  });
});

describe('JUnit XML', () => {
  const item = (scenario: string, seed: number, index: number) => ({ index, file: `s/${scenario}.yaml`, scenario, seed, sweep: 0 });
  const results: SuiteResult[] = [
    { item: item('ok', 1, 0), status: 'pass', traceHash: 'ab', wallMs: 1200, simulatedHours: 1, error: null,
      expectations: [{ id: 'a', metric: 'x', op: '==', value: 0, actual: 0, pass: true }] },
    { item: item('bad & <odd>', 2, 1), status: 'fail', traceHash: 'cd', wallMs: 300, simulatedHours: 1, error: null,
      expectations: [
        { id: 'fine', metric: 'x', op: '==', value: 0, actual: 0, pass: true },
        { id: 'too "fast" <&>', metric: 'totals.batch.completionHours', op: '<', value: 0.5, actual: 1, pass: false },
      ] },
    { item: item('crash', 3, 2), status: 'error', traceHash: null, wallMs: 5, simulatedHours: null, error: { code: 'E_BOOM', message: 'it broke\u0007 <here>' }, expectations: [] },
  ];
  const xml = renderJUnit(results, { replay: (r) => `npx spillway run ${r.item.file} --seed ${r.item.seed}` });

  it('is well-formed XML with counts, a failure carrying the replay command, and an error', () => {
    const root = parseMarkup(xml);
    expect(root.name).toBe('testsuites');
    expect(root.attrs).toMatchObject({ tests: '4', failures: '1', errors: '1' });
    const suites = findAll(root, 'testsuite');
    expect(suites.map((s) => s.attrs.name)).toEqual(['ok', 'bad & <odd>', 'crash']);
    const failures = findAll(root, 'failure');
    expect(failures).toHaveLength(1);
    expect(failures[0]!.attrs.message).toBe('totals.batch.completionHours < 0.5: actual 1');
    expect(textOf(failures[0]!)).toContain('replay: npx spillway run s/bad & <odd>.yaml --seed 2');
    const errors = findAll(root, 'error');
    expect(errors[0]!.attrs.type).toBe('E_BOOM');
    expect(xml).not.toContain('\u0007');
    const names = findAll(root, 'testcase').map((c) => c.attrs.name);
    expect(names).toContain('seed 2: too "fast" <&>');
  });
});
