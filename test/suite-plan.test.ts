import { describe, expect, it } from 'vitest';
import { renderJUnit } from '../src/suite/junit.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { costModel, costsInFolders, readCosts, recordCosts } from '../src/suite/costs.js';
import { assignShards, deriveSeeds, parseShard, planSuite, shardItems } from '../src/suite/plan.js';
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

  it('with measured costs, shards come out even by cost, not by count, and the same on every machine', () => {
    const many = ['big', 'mid', 'a', 'b', 'c', 'd', 'e', 'f'].map((name, i) => ({ file: `s/${i}-${name}.yaml`, name, seed: i }));
    const plan = planSuite(many);
    const seconds: Record<string, number> = { big: 160, mid: 90, a: 40, b: 35, c: 30, d: 25, e: 20 };
    const cost = costModel({ scenarios: seconds });
    // f was never measured: it counts as the median of the measured ones.
    expect(cost('f')).toBe(35);
    const totals = [1, 2].map((i) => shardItems(plan, { index: i, count: 2 }, (it) => cost(it.scenario)).reduce((n, it) => n + cost(it.scenario), 0));
    expect(totals[0]! + totals[1]!).toBe(435);
    expect(Math.abs(totals[0]! - totals[1]!)).toBeLessThanOrEqual(25);
    // Round-robin by position would have put big and mid... anywhere; by cost they are apart.
    const first = shardItems(plan, { index: 1, count: 2 }, (it) => cost(it.scenario)).map((it) => it.scenario);
    expect(first.includes('big') !== first.includes('mid')).toBe(true);
    for (let n = 1; n <= 9; n++) {
      const seen = new Set<number>();
      for (let i = 1; i <= n; i++) for (const it of shardItems(plan, { index: i, count: n }, (x) => cost(x.scenario))) seen.add(it.index);
      expect(seen.size).toBe(plan.length);
    }
    expect(assignShards(plan, 3, (it) => cost(it.scenario))).toEqual(assignShards([...plan].reverse(), 3, (it) => cost(it.scenario)));
  });

  it('reads and records costs files, refusing a malformed one with its path', () => {
    const dir = mkdtempSync(join(tmpdir(), 'spillway-costs-'));
    const path = join(dir, 'costs.json');
    const r = (scenario: string, wallMs: number, status: SuiteResult['status'] = 'pass'): SuiteResult => ({
      item: { index: 0, file: `${scenario}.yaml`, scenario, seed: 1, sweep: 0 }, status, expectations: [], traceHash: null, wallMs, simulatedHours: null, error: null,
    });
    recordCosts(path, [r('a', 2000), r('a', 4000), r('b', 1500), r('c', 9000, 'error')]);
    expect(readCosts(path).scenarios).toEqual({ a: 3, b: 1.5 });
    recordCosts(path, [r('b', 500)]);
    expect(readCosts(path).scenarios).toEqual({ a: 3, b: 0.5 });
    expect(costsInFolders([dir])?.scenarios).toEqual({ a: 3, b: 0.5 });
    expect(costsInFolders([tmpdir() + '/no-such-folder'])).toBeNull();
    writeFileSync(path, '{"scenarios": {"a": "slow"}}');
    expect(() => readCosts(path)).toThrow(/--costs: .*costs.json: scenarios\["a"\] must be a number of seconds/);
    writeFileSync(path, 'nope');
    expect(() => readCosts(path)).toThrow(expect.objectContaining({ code: 'E_BAD_COSTS' }));
    rmSync(dir, { recursive: true, force: true });
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
