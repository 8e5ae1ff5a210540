import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.js';
import { hashTraceLines } from '../src/world/trace.js';

const root = join(import.meta.dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'spillway-cli-'));

const MINI = `
name: cli-mini
seed: 11
duration: 8h
sampleEvery: 15m
tickEvery: 15m
datacenter:
  hosts: [{ id: "h{1..2}", cpuCores: 8, ramGiB: 32 }]
  images: [{ id: img, size: 10GiB, os: { family: linux, distro: rhel, version: "8.9" } }]
  vms:
    - { name: "db-{1..2}", image: img, vcpus: 4, ramGiB: 8, workload: db }
    - { name: "job-{1..2}", image: img, vcpus: 4, ramGiB: 8, workload: job }
workloads:
  db: { kind: database, base: 0.7 }
  job: { kind: batch, work: 6, start: 1h }
expect:
  - { id: finishes, metric: totals.batch.unfinished, op: "==", value: 0 }
`;

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const good = file('good.yaml', MINI);
const failing = file('failing.yaml', MINI.replace('op: "==", value: 0 }', 'op: "==", value: 0 }\n  - { id: too-fast, metric: totals.batch.completionHours, op: "<", value: 0.5 }'));
const bad = file('bad.yaml', MINI.replace('vcpus: 4, ramGiB: 8, workload: db', 'vcpus: four, ramGiB: 8, workload: db'));

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(args, { out: (t) => { out += t + '\n'; }, err: (t) => { err += t + '\n'; }, errIsTty: false });
  return { code, out, err };
}

function spawnRun(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(root, 'bin/spillway.js'), 'run', ...args], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('spillway run', () => {
  it('gives the same trace hash in two processes, and a different one for another seed', () => {
    const a = spawnRun(good, '--json');
    const b = spawnRun(good, '--json');
    const c = spawnRun(good, '--json', '--seed', '12');
    expect(a.code).toBe(0);
    const ja = JSON.parse(a.stdout);
    const jb = JSON.parse(b.stdout);
    const jc = JSON.parse(c.stdout);
    expect(ja.traceHash).toMatch(/^[0-9a-f]{64}$/);
    expect(jb.traceHash).toBe(ja.traceHash);
    expect(jc.traceHash).not.toBe(ja.traceHash);
    expect(ja.seed).toBe(11);
    expect(jc.seed).toBe(12);
    expect(a.stderr).toMatch(/seed 11 \(replay: npx spillway run .*good\.yaml --seed 11\)/);
  }, 120_000);

  it('--json prints exactly one object with seed, hash, expectations, per-VM and totals metrics', async () => {
    const r = await cli('run', good, '--json');
    expect(r.code).toBe(0);
    const lines = r.out.trim().split('\n');
    expect(lines).toHaveLength(1);
    const j = JSON.parse(lines[0]!);
    expect(j).toMatchObject({ seed: 11, passed: true, expectations: [{ id: 'finishes', pass: true, actual: 0 }] });
    expect(j.vms['job-1'].task.unconstrainedHours).toBe(1.5);
    expect(typeof j.totals.batch.completionHours).toBe('number');
    expect(j.baseline.source).toBe('this-run');
    expect(r.err).toMatch(/seed 11/);
  });

  it('prints the text report and exits 0 when every expectation holds', async () => {
    const r = await cli('run', good);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^spillway run .*seed 11/);
    expect(r.out).toMatch(/Batch: 2 tasks, 2 finished/);
    expect(r.out).toMatch(/PASS {2}finishes/);
  });

  it('exits 1 when an expectation fails and prints the replay command', async () => {
    const r = await cli('run', failing, '--seed', '5');
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/FAIL {2}too-fast/);
    expect(r.err).toContain(`replay: npx spillway run ${failing} --seed 5`);
  });

  it('exits 2 on a bad scenario and names the field and line', async () => {
    const r = await cli('run', bad);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/bad\.yaml line \d+: datacenter\.vms\[0\]\.vcpus: expected an integer >= 1 <= 512, got "four"/);
  });

  const variants: Array<[string, string, string, RegExp]> = [
    ['unknown field', 'duration: 8h', 'duration: 8h\nduraton: 9h', /duraton: unknown field/],
    ['bad seed', 'seed: 11', 'seed: -1', /seed: expected an integer >= 0/],
    ['bad duration', 'duration: 8h', 'duration: 8 hours', /duration: "8 hours" is not a duration/],
    ['zero cores', 'cpuCores: 8', 'cpuCores: 0', /datacenter\.hosts\[0\]\.cpuCores: expected an integer >= 1/],
    ['bad os family', 'family: linux', 'family: bsd', /datacenter\.images\[0\]\.os\.family: expected one of linux, windows/],
    ['unknown image', 'image: img, vcpus: 4, ramGiB: 8, workload: job', 'image: im, vcpus: 4, ramGiB: 8, workload: job', /datacenter\.vms\[1\]\.image: expected one of img/],
    ['bad host', 'workload: db }', 'workload: db, host: h7 }', /datacenter\.vms\[0\]\.host: expected one of auto, h1, h2/],
    ['bad kind', 'kind: database', 'kind: db', /workloads\.db\.kind: expected one of batch, database, web, trading/],
    ['base over 1', 'base: 0.7', 'base: 7', /workloads\.db\.base: expected a number >= 0 <= 1/],
    ['bad parallelism', 'work: 6, start: 1h', 'work: 6, start: 1h, parallelism: 2', /workloads\.job\.parallelism: expected a number >= 0\.01 <= 1/],
    ['unknown metric', 'metric: totals.batch.unfinished', 'metric: totals.batch.unfinishd', /expect\[0\]\.metric: .*close matches: totals\.batch\.unfinished/],
    ['bad op', 'op: "=="', 'op: "="', /expect\[0\]\.op: expected one of/],
    ['not yaml', 'workloads:', 'workloads: [', /not valid YAML/],
  ];

  it.each(variants)('exits 2 on a scenario with %s, naming the field', async (name, from, to, message) => {
    expect(MINI).toContain(from);
    const path = file(`variant-${name.replace(/\W+/g, '-')}.yaml`, MINI.replace(from, to));
    for (const cmd of ['run', 'validate']) {
      const r = await cli(cmd, path);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(message);
    }
  });

  it('exits 2 on bad flags', async () => {
    expect((await cli('run', good, '--seed', 'x')).code).toBe(2);
    expect((await cli('run', good, '--until', 'later')).err).toMatch(/--until: "later" is not a duration/);
    expect((await cli('run')).err).toMatch(/missing the scenario file/);
    expect((await cli('run', join(dir, 'missing.yaml'))).code).toBe(2);
  });

  it('--until stops early; --trace writes the lines the hash covers', async () => {
    const tracePath = join(dir, 'trace.jsonl');
    const r = await cli('run', good, '--json', '--until', '2h', '--trace', tracePath);
    expect(r.code).toBe(1); // the batch cannot finish in 2 h
    const j = JSON.parse(r.out);
    expect(j.simulatedHours).toBe(2);
    expect(j.replay).toContain('--until 2h');
    const lines = readFileSync(tracePath, 'utf8').split('\n');
    expect(JSON.parse(lines[0]!).type).toBe('run.start');
    expect(hashTraceLines(lines)).toBe(j.traceHash);
  });

  it('--help works for run and validate', async () => {
    for (const name of ['run', 'validate']) {
      const r = await cli(name, '--help');
      expect(r.code).toBe(0);
      expect(r.out).toMatch(new RegExp(`^Usage: spillway ${name} `));
    }
  });
});

describe('spillway validate', () => {
  it('accepts a good file and says what it holds', async () => {
    const r = await cli('validate', good);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^ok .*good\.yaml: cli-mini, 2 hosts \(16 cores\), 4 VMs/);
  });

  it('exits 2 naming the field, and leaves the file untouched', async () => {
    const before = readFileSync(bad, 'utf8');
    const r = await cli('validate', bad);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/datacenter\.vms\[0\]\.vcpus/);
    expect(readFileSync(bad, 'utf8')).toBe(before);
  });

  it('checks several files and fails if any is bad', async () => {
    const r = await cli('validate', good, bad);
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/^ok /);
    expect(r.err).toMatch(/datacenter\.vms\[0\]\.vcpus/);
  });
});
