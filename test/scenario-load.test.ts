import { readFileSync } from 'node:fs';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { InputError } from '../src/errors.js';
import { loadScenarioFile, parseScenario } from '../src/sim/scenario-file.js';
import { expandNames } from '../src/scenario/names.js';
import { policyNames } from '../src/scenario/policies/index.js';
import { reportMetricPaths } from '../src/report/expectations.js';
import { US_PER_H } from '../src/util/units.js';

/** A valid scenario as plain data; each bad variant below breaks one field. */
function base(): Record<string, any> {
  return {
    name: 'mini',
    duration: '6h',
    datacenter: {
      hosts: [{ id: 'h-{1..2}', cpuCores: 8, ramGiB: 64 }],
      images: [{ id: 'img', size: '10GiB', os: { family: 'linux', distro: 'rhel', version: '8.9' } }],
      vms: [
        { name: 'app-{01..03}', image: 'img', vcpus: 2, ramGiB: 4, workload: 'app' },
        { name: 'job-1', image: 'img', vcpus: 4, ramGiB: 8, workload: 'job', host: 'h-2' },
      ],
    },
    workloads: { app: { kind: 'database', base: 0.5 }, job: { kind: 'batch', work: 4, start: '1h' } },
    expect: [{ metric: 'totals.batch.completionHours', op: '<=', value: 5 }],
  };
}

function parse(doc: Record<string, any>) {
  return parseScenario(stringify(doc), 'mini.yaml');
}

function errorOf(fn: () => unknown): InputError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InputError);
    return err as InputError;
  }
  throw new Error('expected an InputError');
}

describe('scenario loading', () => {
  it('fills defaults, expands name patterns and places every VM', () => {
    const s = parse(base());
    expect(s.seed).toBe(1);
    expect(s.durationUs).toBe(6 * US_PER_H);
    expect(s.sampleEveryUs).toBe(5 * 60_000_000);
    expect(s.datacenter.hosts.map((h) => h.id)).toEqual(['h-1', 'h-2']);
    expect(s.datacenter.vms.map((v) => v.name)).toEqual(['app-01', 'app-02', 'app-03', 'job-1']);
    expect(s.datacenter.vms[3]!.host).toBe('h-2');
    expect(s.datacenter.vms[0]!.disks[0]).toMatchObject({ id: 'app-01-disk0', sizeBytes: 10 * 1024 ** 3, persistence: 'on-prem', imageId: 'img' });
    expect(s.policies.burst.enabled).toBe(false);
    expect(s.cloud.region).toBe('us-east-1');
    expect(s.wan).toBeNull();
    expect(s.expect[0]!.id).toBe('totals.batch.completionHours <= 5');
  });

  it('loads the shipped scenarios', () => {
    const q = loadScenarioFile('scenarios/quarter-end.yaml');
    expect(q.datacenter.vms.length).toBeGreaterThanOrEqual(24);
    expect(q.datacenter.hosts.length).toBeGreaterThanOrEqual(3);
    expect(q.wan?.rttUs).toBe(40_000);
    expect(loadScenarioFile('scenarios/host-failure.yaml').timeline).toHaveLength(5);
  });

  it('accepts the complete example in docs/scenarios.md', () => {
    const md = readFileSync('docs/scenarios.md', 'utf8');
    const example = /## A complete example\n\n```yaml\n([\s\S]*?)```/.exec(md)![1]!;
    const s = parseScenario(example, 'docs/scenarios.md');
    expect(s.datacenter.vms).toHaveLength(24);
    expect(s.datacenter.storage.map((t) => t.name)).toEqual(['ssd', 'capacity']);
  });

  it('expands ranges keeping the width of the first bound', () => {
    expect(expandNames('batch-{08..10}', 'p')).toEqual(['batch-08', 'batch-09', 'batch-10']);
    expect(expandNames('n{1..3}', 'p')).toEqual(['n1', 'n2', 'n3']);
    expect(() => expandNames('a.b', 'p')).toThrow(/letters, digits/);
  });

  const bad: Array<[string, (d: Record<string, any>) => void, RegExp]> = [
    ['unknown top-level field', (d) => { d.hostz = 1; }, /^mini\.yaml line \d+: hostz: unknown field; allowed here: name, description/],
    ['missing name', (d) => { delete d.name; }, /name: expected a non-empty string, got nothing/],
    ['bad duration', (d) => { d.duration = 'soon'; }, /duration: "soon" is not a duration/],
    ['negative vcpus', (d) => { d.datacenter.vms[0].vcpus = -2; }, /datacenter\.vms\[0\]\.vcpus: expected an integer >= 1 <= 512, got -2/],
    ['unknown image', (d) => { d.datacenter.vms[1].image = 'nope'; }, /datacenter\.vms\[1\]\.image: expected one of img, got "nope"/],
    ['unknown workload', (d) => { d.datacenter.vms[0].workload = 'ap'; }, /datacenter\.vms\[0\]\.workload: expected one of app, job/],
    ['unknown host', (d) => { d.datacenter.vms[1].host = 'h-9'; }, /datacenter\.vms\[1\]\.host: expected one of auto, h-1, h-2/],
    ['unknown VM field', (d) => { d.datacenter.vms[0].cpus = 2; }, /datacenter\.vms\[0\]\.cpus: unknown field/],
    ['bad workload kind', (d) => { d.workloads.app.kind = 'olap'; }, /workloads\.app\.kind: expected one of batch, database, web, trading/],
    ['batch without work', (d) => { delete d.workloads.job.work; }, /workloads\.job\.work: expected a number/],
    ['bad persistence', (d) => { d.datacenter.vms[0].persistence = 'cloud'; }, /datacenter\.vms\[0\]\.persistence: expected one of on-prem, cloud-only/],
    ['duplicate VM names', (d) => { d.datacenter.vms[1].name = 'app-02'; }, /datacenter\.vms\[1\]\.name: expected VM names that are unique/],
    ['VM too big for any host', (d) => { d.datacenter.vms[0].ramGiB = 100; }, /datacenter\.vms\[0\]\.ramGiB: VM app-01 does not fit/],
    ['timeline event unknown', (d) => { d.timeline = [{ at: '1h', event: 'meteor' }]; }, /timeline\[0\]\.event: expected one of load, host-fail/],
    ['timeline after the end', (d) => { d.timeline = [{ at: '7h', event: 'host-fail', host: 'h-1' }]; }, /timeline\[0\]\.at: expected a time within the scenario's duration/],
    ['load change on batch', (d) => { d.timeline = [{ at: '1h', event: 'load', workload: 'job', factor: 2 }]; }, /timeline\[0\]\.workload: expected a steady workload/],
    ['wan outage without wan', (d) => { d.timeline = [{ at: '1h', event: 'wan-outage', for: '1m' }]; }, /timeline\[0\]\.event: .*no wan: section/],
    ['bad wan field', (d) => { d.wan = { rtt: '40ms', bandwidth: 'fast' }; }, /wan\.bandwidth/],
    ['bad cloud field', (d) => { d.cloud = { region: 'moon' }; }, /cloud\.region/],
    ['unknown burst strategy', (d) => { d.policies = { burst: { enabled: true, selection: { weights: { random: 1 } } } }; }, /policies\.burst\.selection\.weights\.random: unknown field; allowed here: fifo, lifo/],
    ['burst typo', (d) => { d.policies = { burst: { enabled: false, maxVm: 3 } }; }, /policies\.burst\.maxVm: unknown field; allowed here: enabled, trigger/],
    ['unknown policy', (d) => { d.policies = { bursting: {} }; }, /policies\.bursting: unknown field/],
    ['bad expect op', (d) => { d.expect[0].op = '=~'; }, /expect\[0\]\.op: expected one of <, <=, >, >=, ==, !=/],
    ['numeric op on a string', (d) => { d.expect[0] = { metric: 'vms.job-1.host', op: '<', value: 'h-1' }; }, /expect\[0\]\.op: expected == or !=/],
    ['near-miss key', (d) => { d.datacenter.vms[0].vcpu = 2; }, /datacenter\.vms\[0\]\.vcpu: unknown field; allowed here: name, image, vcpus, .* \(did you mean vcpus\?\)/],
    ['misspelt required key: the typo, not the missing field', (d) => { delete d.datacenter.vms[0].vcpus; d.datacenter.vms[0].vcpu = 2; }, /datacenter\.vms\[0\]\.vcpu: unknown field/],
    ['unknown key far from any', (d) => { d.zzzzzz = 1; }, /zzzzzz: unknown field; allowed here: name, description, seed, duration, sampleEvery, tickEvery, workloads, datacenter, wan, cloud, policies, timeline, expect$/],
    ['missing workload kind', (d) => { delete d.workloads.app.kind; }, /workloads\.app\.kind: expected one of batch, database, web, trading, got nothing/],
    ['bad workload name', (d) => { d.workloads['a b'] = { kind: 'web', base: 0.1 }; }, /workloads\.a b: expected a workload name of letters, digits, - and _/],
    ['boot profile field', (d) => { d.datacenter.images[0].bootProfile = { files: 0 }; }, /datacenter\.images\[0\]\.bootProfile\.files: expected an integer >= 1 <= 100000, got 0/],
    ['boot profile preset', (d) => { d.datacenter.images[0].bootProfile = 'fast'; }, /datacenter\.images\[0\]\.bootProfile: expected a preset \(default, linux-systemd, windows-server, minimal, heavy\) or a mapping/],
    ['content mix', (d) => { d.datacenter.images[0].content = { zeros: 0.9, random: 0.9 }; }, /datacenter\.images\[0\]\.content: the fractions zeros \+ random \+ repeated \+ text must add up to about 1, got 1\.8/],
    ['storage tier preset', (d) => { d.datacenter.storage = ['floppy']; }, /datacenter\.storage\[0\]: expected a tier preset \(nvme, ssd, hdd, archive\)/],
    ['image on an unknown tier', (d) => { d.datacenter.images[0].tier = 'tape'; }, /datacenter\.images\[0\]\.tier: expected one of nvme, ssd, hdd, archive, got "tape"/],
    ['data disk on an unknown tier', (d) => { d.datacenter.vms[0].disks = [{ size: '1GiB', tier: 'tape' }]; }, /datacenter\.vms\[0\]\.disks\[0\]\.tier: expected one of nvme/],
    ['bad size', (d) => { d.datacenter.images[0].size = 'big'; }, /datacenter\.images\[0\]\.size: expected a size such as "4KiB"/],
    ['timeline without event', (d) => { d.timeline = [{ at: '1h', host: 'h-1' }]; }, /timeline\[0\]\.event: expected one of load, host-fail, host-recover, wan-outage, power-off, power-on, snapshot, transfer, reverse, clone, cutover, migrate, resize, containerize, rollback, got nothing/],
    ['timeline VM typo', (d) => { d.timeline = [{ at: '1h', event: 'power-off', vm: 'app-1' }]; }, /timeline\[0\]\.vm: expected a VM name \(closest: app-01/],
    ['timeline unknown host', (d) => { d.timeline = [{ at: '1h', event: 'host-recover', host: 'h-3' }]; }, /timeline\[0\]\.host: expected one of h-1, h-2, got "h-3"/],
    ['burst instance type', (d) => { d.policies = { burst: { instanceType: 'x9.huge' } }; }, /policies\.burst\.instanceType: expected one of auto, m6i\.large/],
    ['burst workloads', (d) => { d.policies = { burst: { workloads: ['nope'] } }; }, /policies\.burst\.workloads\[0\]: expected a workload name: app, job/],
    ['burst release above trigger', (d) => { d.policies = { burst: { release: { hostUtilizationBelow: 0.99 } } }; }, /policies\.burst\.release\.hostUtilizationBelow: expected a value below trigger\.hostUtilizationAbove \(0\.95\)/],
    ['prefetch', (d) => { d.policies = { burst: { prefetch: 'maybe' } }; }, /policies\.burst\.prefetch: expected true, false or "recorded", got "maybe"/],
    ['scale-out tier not web', (d) => { d.policies = { scaleOut: { enabled: true, tier: 'app' } }; }, /policies\.scaleOut\.tier: expected a workload of kind web \(app is database\)/],
    ['migration glob matching nothing', (d) => { d.policies = { migrate: { vms: ['db-*'] } }; }, /policies\.migrate\.vms\[0\]: expected a glob matching some VM in datacenter\.vms/],
    ['migration window missing', (d) => { d.policies = { migrate: { cutover: { when: 'window' } } }; }, /policies\.migrate\.cutover\.window: expected a window \{ start, length \}/],
    ['wan jitter', (d) => { d.wan = { rtt: '40ms', bandwidth: '1Gbit', jitter: { dist: 'gauss' } }; }, /wan\.jitter\.dist: expected "normal" \(with sd\) or "pareto"/],
    ['cloud fault type', (d) => { d.cloud = { faults: [{ at: '1h', until: '2h', error: 'InternalError', type: 'x1.huge' }] }; }, /cloud\.faults\[0\]\.type: expected one of m6i\.large/],
  ];

  it.each(bad)('refuses %s and names the field', (_what, breakIt, message) => {
    const d = base();
    breakIt(d);
    const err = errorOf(() => parse(d));
    expect(err.message).toMatch(message);
    expect(err.message).toMatch(/^mini\.yaml( line \d+)?: /);
  });

  it('reads a key with no value as left out, except an expectation\'s value: null', () => {
    const text = stringify(base()).replace('name: mini\n', 'name: mini\nseed:\ntimeline:\n') + 'wan:\n';
    const s = parse({ ...base(), expect: [{ metric: 'totals.batch.completionHours', op: '!=', value: null }] });
    expect(s.expect[0]).toEqual({ id: 'totals.batch.completionHours != null', metric: 'totals.batch.completionHours', op: '!=', value: null });
    const t = parseScenario(text, 'nulls.yaml');
    expect(t.seed).toBe(1);
    expect(t.timeline).toEqual([]);
    expect(t.wan).toBeNull();
  });

  it('lists close matches for an unknown metric', () => {
    const d = base();
    d.expect[0].metric = 'totals.batch.completionHour';
    const err = errorOf(() => parse(d));
    expect(err.code).toBe('E_UNKNOWN_METRIC');
    expect(err.message).toMatch(/expect\[0\]\.metric: "totals\.batch\.completionHour" is not a report metric; close matches: totals\.batch\.completionHours/);
  });

  it('gives the line of the bad field', () => {
    const text = [
      'name: mini', 'datacenter:', '  hosts:', '    - { id: h1, cpuCores: 8, ramGiB: 64 }', '  images:',
      '    - { id: img, size: 10GiB, os: { family: linux, distro: rhel, version: "9" } }', '  vms:',
      '    - name: a', '      image: img', '      vcpus: lots', '      ramGiB: 2', '      workload: w',
      'workloads:', '  w: { kind: web, base: 0.5 }',
    ].join('\n');
    const err = errorOf(() => parseScenario(text, 's.yaml'));
    expect(err.message).toMatch(/^s\.yaml line 10: datacenter\.vms\[0\]\.vcpus: expected an integer/);
    expect(err.details).toMatchObject({ path: 'datacenter.vms[0].vcpus', line: 10 });
  });

  it('reports YAML syntax errors with their line', () => {
    const err = errorOf(() => parseScenario('name: x\ndatacenter: [\n', 'broken.yaml'));
    expect(err.code).toBe('E_BAD_YAML');
    expect(err.message).toMatch(/broken\.yaml \(line \d+, column \d+\): not valid YAML/);
  });

  it('derives metric paths from the scenario: per-VM task metrics only for batch VMs', () => {
    const paths = reportMetricPaths(parse(base()));
    expect(paths.has('vms.job-1.task.delayHours')).toBe(true);
    expect(paths.has('vms.app-01.task.delayHours')).toBe(false);
    expect(paths.has('vms.app-01.cpu.servedPct')).toBe(true);
    expect(paths.has('hosts.h-2.hoursSaturated')).toBe(true);
    expect(paths.has('baseline.batchCompletionHours')).toBe(true);
    expect([...paths].some((p) => p.startsWith('series.'))).toBe(false);
  });

  it('lists every policy block explicitly, in the registration order of before (burst, sla, scaleOut, migrate)', () => {
    expect(policyNames()).toEqual(['burst', 'sla', 'scaleOut', 'migrate']);
    expect(Object.keys(parse(base()).policies)).toEqual(['burst', 'sla', 'scaleOut', 'migrate']);
  });
});
