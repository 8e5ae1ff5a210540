import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.js';
import { loadScenarioFile } from '../src/sim/scenario-file.js';
import { createSimulation } from '../src/sim/simulation.js';
import { findAll, parseMarkup } from './markup-check.js';

const fixtures = join(import.meta.dirname, 'fixtures/scenarios');
const dir = mkdtempSync(join(tmpdir(), 'spillway-suite-'));

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(['test', ...args], { out: (t) => { out += t + '\n'; }, err: (t) => { err += t + '\n'; }, errIsTty: false });
  return { code, out, err };
}

describe('spillway test', () => {
  it('passes a folder of good scenarios: exit 0, a table row per run, progress on stderr, hashes equal to a direct run', async () => {
    const r = await cli(join(fixtures, 'pass'), '--jobs', '2');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/PASS\s+tiny-batch\s+11\s+2\/2\s+[\d.]+ s\s+[0-9a-f]{12}/);
    expect(r.out).toMatch(/PASS\s+tiny-web\s+5\s+1\/1/);
    expect(r.out).toContain('2 of 2 run(s) passed');
    expect(r.err).toMatch(/\[1\/2\] PASS/);
    expect(r.err).toMatch(/\[2\/2\] PASS/);
    const sim = await createSimulation(loadScenarioFile(join(fixtures, 'pass/tiny-batch.yaml')));
    const report = await sim.runToEnd();
    expect(r.out).toContain(report.traceHash.slice(0, 12));
  }, 60_000);

  it('fails with exit 1, prints the replay command and writes JUnit with the failure', async () => {
    const junit = join(dir, 'junit.xml');
    const r = await cli(join(fixtures, 'pass'), join(fixtures, 'fail'), '--junit', junit);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/FAIL\s+tiny-fail\s+3\s+1\/2/);
    expect(r.out).toContain(`replay: npx spillway run ${join(fixtures, 'fail/tiny-fail.yaml')} --seed 3`);
    const root = parseMarkup(readFileSync(junit, 'utf8'));
    expect(root.attrs).toMatchObject({ tests: '5', failures: '1', errors: '0' });
    const failure = findAll(root, 'failure')[0]!;
    expect(failure.attrs.message).toBe('totals.batch.completionHours < 0.5: actual 1');
    const failedCase = findAll(root, 'testcase').find((c) => c.children.length > 0)!;
    expect(failedCase.attrs.name).toBe('seed 3: too-fast <&> "quoted"');
  }, 60_000);

  it('sweeps seeds and splits them across shards that together make the whole plan (JSON output)', async () => {
    const whole = JSON.parse((await cli(join(fixtures, 'pass'), '--seeds', '3', '--json')).out);
    expect(whole).toMatchObject({ passed: true, runs: 6, failed: 0 });
    expect(whole.results.filter((x: { scenario: string }) => x.scenario === 'tiny-batch')[0].seed).toBe(11);
    const shards = [];
    for (const i of [1, 2, 3]) shards.push(JSON.parse((await cli(join(fixtures, 'pass'), '--seeds', '3', '--shard', `${i}/3`, '--jobs', '1', '--json')).out));
    const union = shards.flatMap((s) => s.results.map((x: { scenario: string; seed: number; traceHash: string }) => `${x.scenario}/${x.seed}/${x.traceHash}`)).sort();
    expect(union).toEqual(whole.results.map((x: { scenario: string; seed: number; traceHash: string }) => `${x.scenario}/${x.seed}/${x.traceHash}`).sort());
    expect(shards.map((s) => s.plannedRuns)).toEqual([6, 6, 6]);
  }, 120_000);

  it('records measured costs, and a shard split by them runs what the costs file says it should', async () => {
    const costs = join(dir, 'costs.json');
    const r = await cli(join(fixtures, 'pass'), '--jobs', '1', '--record-costs', costs);
    expect(r.code).toBe(0);
    const recorded = JSON.parse(readFileSync(costs, 'utf8'));
    expect(Object.keys(recorded.scenarios).sort()).toEqual(['tiny-batch', 'tiny-web']);
    // Pretend tiny-web costs ten times more.
    writeFileSync(costs, JSON.stringify({ scenarios: { 'tiny-batch': 1, 'tiny-web': 10 } }));
    const one = JSON.parse((await cli(join(fixtures, 'pass'), '--seeds', '3', '--shard', '1/2', '--costs', costs, '--jobs', '1', '--json')).out);
    const two = JSON.parse((await cli(join(fixtures, 'pass'), '--seeds', '3', '--shard', '2/2', '--costs', costs, '--jobs', '1', '--json')).out);
    const names = (x: { results: Array<{ scenario: string }> }): string[] => x.results.map((y) => y.scenario).sort();
    // Costliest first onto the least loaded shard: two web runs (20 s) on one, the third and every batch run (13 s) on the other.
    expect(names(one)).toEqual(['tiny-web', 'tiny-web']);
    expect(names(two)).toEqual(['tiny-batch', 'tiny-batch', 'tiny-batch', 'tiny-web']);
    expect((await cli(join(fixtures, 'pass'), '--costs', join(dir, 'missing.json'))).err).toMatch(/--costs: cannot read/);
  }, 120_000);

  it('exits 2 on bad input before running anything, naming every bad file and flag', async () => {
    const bad = await cli(fixtures);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/typo\.yaml line 6: datacenter\.vms\[0\]\.vcpus/);
    expect(bad.err).toContain('nothing was run');
    expect((await cli(join(fixtures, 'pass'), '--shard', '4/3')).err).toMatch(/--shard: expected i\/n/);
    expect((await cli(join(fixtures, 'pass'), '--seeds', '0')).code).toBe(2);
    expect((await cli(join(fixtures, 'pass'), '--jobs', 'x')).code).toBe(2);
    expect((await cli(join(dir, 'missing'))).err).toMatch(/cannot read/);
    expect((await cli(dir)).err).toMatch(/no scenario files/);
    expect((await cli(join(fixtures, 'pass'), '--junit', join(dir, 'no/such/dir/j.xml'))).err).toMatch(/--junit: cannot write/);
    expect((await cli()).code).toBe(2);
  }, 60_000);
});
