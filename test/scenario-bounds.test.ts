import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.js';
import { SCENARIO_LIMITS } from '../src/scenario/bounds.js';

/**
 * Issue 14, defect 9: a scenario that would grow without bound (a huge file, alias bombs,
 * name ranges of millions, a run of millions of samples) is a bad input: `spillway validate`
 * exits 2 with a message that names the field, before anything large is built.
 */
const dir = mkdtempSync(join(tmpdir(), 'spillway-bounds-'));

const mini = (over: { hosts?: string; vms?: string; top?: string } = {}): string => `name: bounds
${over.top ?? ''}
datacenter:
  hosts:
${over.hosts ?? '    - { id: "h{1..2}", cpuCores: 8, ramGiB: 64 }'}
  images: [{ id: img, size: 10GiB, os: { family: linux, distro: rhel, version: "8.9" } }]
  vms:
${over.vms ?? '    - { name: v, image: img, vcpus: 1, ramGiB: 1, workload: db }'}
workloads:
  db: { kind: database, base: 0.1 }
`;

async function validate(name: string, text: string): Promise<{ code: number; err: string }> {
  const path = join(dir, name);
  writeFileSync(path, text);
  const err: string[] = [];
  const code = await main(['validate', path], { out: () => {}, err: (t) => err.push(t), errIsTty: false });
  return { code, err: err.join('\n') };
}

describe('scenario bounds (exit 2, the field named)', () => {
  it('accepts the mini scenario the cases below break', async () => {
    expect((await validate('ok.yaml', mini())).code).toBe(0);
  });

  it('refuses a file over the size cap before parsing it', async () => {
    const text = mini({ top: `description: "${'x'.repeat(SCENARIO_LIMITS.fileBytes)}"` });
    const r = await validate('huge.yaml', text);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/huge\.yaml: a scenario file may hold at most 1048576 bytes, this one has \d+/);
  });

  it('refuses one range of a million names', async () => {
    const r = await validate('range.yaml', mini({ hosts: '    - { id: "h{1..1000000}", cpuCores: 8, ramGiB: 64 }' }));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/line 5: datacenter\.hosts\[0\]\.id: expected a range \{a\.\.b\} with a <= b and at most 10000 names, got "h\{1\.\.1000000\}"/);
  });

  it('refuses ranges that add up to millions of hosts or VMs, counted before they are made', async () => {
    const hosts = Array.from({ length: 300 }, (_, i) => `    - { id: "h${i}-{1..9999}", cpuCores: 8, ramGiB: 64 }`).join('\n');
    const r = await validate('hosts.yaml', mini({ hosts }));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/datacenter\.hosts: expected at most 1000 hosts once \{a\.\.b\} ranges are expanded, got 2999700/);
    const vms = Array.from({ length: 20 }, (_, i) => `    - { name: "v${i}-{1..9999}", image: img, vcpus: 1, ramGiB: 1, workload: db }`).join('\n');
    const v = await validate('vms.yaml', mini({ vms }));
    expect(v.code).toBe(2);
    expect(v.err).toMatch(/datacenter\.vms: expected at most 10000 vms once \{a\.\.b\} ranges are expanded, got 199980/);
  });

  it('finds a name used twice across entries (a set, not a scan per name)', async () => {
    const hosts = '    - { id: "h{1..900}", cpuCores: 8, ramGiB: 64 }\n    - { id: "h{900..950}", cpuCores: 8, ramGiB: 64 }';
    const r = await validate('dup.yaml', mini({ hosts }));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/datacenter\.hosts\[1\]\.id: expected host ids that are unique, got "h900"/);
  });

  it('refuses a duration virtual time cannot count, and one with too many samples or ticks', async () => {
    const r = await validate('forever.yaml', mini({ top: 'duration: 100000000d' }));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/line 2: duration: expected a duration of at most 285 years .*, got "100000000d"/);
    const s = await validate('samples.yaml', mini({ top: 'duration: 1000d\nsampleEvery: 1s' }));
    expect(s.code).toBe(2);
    expect(s.err).toMatch(/line 2: duration: expected at most 100000 × sampleEvery \(1s\): 27h46m; raise sampleEvery for a longer run, got "24000h00m"/);
    const t = await validate('ticks.yaml', mini({ top: 'duration: 10000d\nsampleEvery: 1d\ntickEvery: 1s' }));
    expect(t.code).toBe(2);
    expect(t.err).toMatch(/duration: expected at most 1000000 × tickEvery \(1s\)/);
  });

  it('refuses an alias bomb, naming the field where it goes off', async () => {
    let bomb = 'a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n';
    'bcdefghi'.split('').reduce((prev, n) => {
      bomb += `${n}: &${n} [${Array(9).fill(`*${prev}`).join(', ')}]\n`;
      return n;
    }, 'a');
    const r = await validate('bomb.yaml', `name: bomb\n${bomb}`);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/bomb\.yaml line \d+: [a-i]\[\d\]: YAML aliases that expand to more than 200000 nodes/);
  });

  it('refuses more than 100 aliases', async () => {
    const many = Array.from({ length: 101 }, (_, i) => `  - { id: "x${i}", v: *one }`).join('\n');
    const r = await validate('aliases.yaml', `name: many\nshared: &one 1\nlist:\n${many}\n`);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/aliases\.yaml line 104: list\[100\]\.v: more than 100 YAML aliases \(\*one\) in one file/);
  });
});
