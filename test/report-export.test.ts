import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.js';
import { renderHtml } from '../src/report/html.js';
import { collectSamples, type ExportSamples } from '../src/report/samples.js';
import { hoursLabel, renderSvg } from '../src/report/svg.js';
import { parseScenario } from '../src/sim/scenario-file.js';
import type { Report } from '../src/report/report.js';
import { createSimulation } from '../src/sim/simulation.js';
import { findAll, parseMarkup, textOf } from './markup-check.js';

const dir = mkdtempSync(join(tmpdir(), 'spillway-report-'));

const SCENARIO = `
name: export-mini
seed: 21
duration: 12h
sampleEvery: 15m
tickEvery: 15m
datacenter:
  ha: { restartAfter: 5m }
  hosts: [{ id: "h{1..3}", cpuCores: 8, ramGiB: 64 }]
  images: [{ id: img, size: 10GiB, os: { family: linux, distro: rhel, version: "8.9" } }]
  vms:
    - { name: "db-{1..3}", image: img, vcpus: 4, ramGiB: 8, workload: db }
    - { name: "job-{1..3}", image: img, vcpus: 4, ramGiB: 8, workload: job }
workloads:
  db: { kind: database, base: 0.8 }
  job: { kind: batch, work: 10, start: 2h }
wan: { rtt: 30ms, bandwidth: 100Mbit }
timeline:
  - { at: 4h, event: host-fail, host: h2, for: 2h }
  - { at: 5h, event: wan-outage, for: 10m }
  - { at: 7h, event: power-off, vm: db-1 }
  - { at: 8h, event: power-on, vm: db-1 }
expect:
  - { metric: totals.batch.unfinished, op: "==", value: 0 }
`;

async function runOnce(): Promise<{ report: Report; samples: ExportSamples }> {
  const { onTrace, samples } = collectSamples();
  const sim = await createSimulation(parseScenario(SCENARIO, 'export-mini.yaml'), { onTrace });
  const report = await sim.runToEnd();
  return { report, samples };
}

/** Samples a burst run would add: WAN traffic, cost ticks, machine states. */
function withBurstSamples(s: ExportSamples): ExportSamples {
  const H = 3_600_000_000;
  return {
    ...s,
    wan: [1, 2, 3, 4].map((k) => ({ tUs: k * H, upBps: 1e6 * k, downBps: 5e6 * k, up: true })),
    cost: [1, 2, 3].map((k) => ({ tUs: k * H, cloudUsd: 0.5 * k, onpremUsd: 0.2 * k })),
    states: [
      { tUs: 2 * H, vm: 'job-1', machine: 'transfer', state: 'prepare' },
      { tUs: 2.2 * H, vm: 'job-1', machine: 'transfer', state: '<boot & "run">' },
      { tUs: 3 * H, vm: 'job-1', machine: 'transfer', state: 'done:ok' },
    ],
  };
}

describe('report export', () => {
  it('writes well-formed SVG with a load, demand and capacity series per host, a lane per VM, WAN outage and failure bands', async () => {
    const { report, samples } = await runOnce();
    const svg = renderSvg({ report, samples });
    const root = parseMarkup(svg);
    expect(root.name).toBe('svg');
    expect(root.attrs.xmlns).toBe('http://www.w3.org/2000/svg');
    const hosts = findAll(root, 'g').filter((g) => g.attrs.class === 'host').map((g) => g.attrs['data-host']);
    expect(hosts).toEqual(['all hosts', 'h1', 'h2', 'h3']);
    const series = findAll(root, 'path').map((p) => p.attrs['data-series']);
    for (const name of ['demand', 'granted', 'capacity']) expect(series.filter((x) => x === name)).toHaveLength(4);
    const paths = findAll(root, 'path').filter((p) => p.attrs['data-series'] === 'demand');
    for (const p of paths) expect(p.attrs.d!.split('L').length).toBeGreaterThanOrEqual(36);
    const vms = findAll(root, 'g').filter((g) => g.attrs.class === 'vm').map((g) => g.attrs['data-vm']);
    expect(vms).toEqual(['db-1', 'db-2', 'db-3', 'job-1', 'job-2', 'job-3']);
    // db-1 was powered off for an hour, so its lane has a stopped segment; h2's VMs moved.
    const db1 = findAll(root, 'g').find((g) => g.attrs['data-vm'] === 'db-1')!;
    expect(findAll(db1, 'rect').some((r) => r.attrs['data-where'] === 'none')).toBe(true);
    expect(findAll(root, 'line').filter((l) => l.attrs.class === 'task')).toHaveLength(3);
    // The host failure (2 h at 15 min samples) and the WAN outage are shaded.
    expect(findAll(root, 'rect').filter((r) => r.attrs.class === 'failed').length).toBeGreaterThanOrEqual(8 + 1);
    expect(samples.wanOutages.map((o) => o.start)).toEqual([true, false]);
    expect(textOf(root)).toContain('no cloud cost: this run did not burst');
  }, 60_000);

  it('draws WAN, cost and lifecycle series from burst samples, escaping every text', async () => {
    const { report, samples } = await runOnce();
    // The controller's section keeps a lifecycle timeline per burst VM; it fills in VMs the trace had no states for.
    const odd = { ...report, scenario: 'odd <&> "name"', burst: { vms: { 'job-2': { timeline: [{ atHours: 3, state: 'cloud-running' }, { atHours: 5, state: 'home' }] } } } };
    const input = { report: odd, samples: withBurstSamples(samples) };
    for (const [markup, html] of [[renderSvg(input), false], [renderHtml(input), true]] as const) {
      const root = parseMarkup(markup, { html });
      const series = findAll(root, 'path').map((p) => p.attrs['data-series']);
      expect(series).toEqual(expect.arrayContaining(['wan-up', 'wan-down', 'cost-cloud', 'cost-onprem']));
      const states = findAll(root, 'rect').map((r) => r.attrs['data-state']).filter(Boolean);
      expect(states).toEqual(['prepare', '<boot & "run">', 'done:ok', 'cloud-running', 'home']);
      expect(textOf(root)).toContain('odd <&> "name"');
      expect(markup).not.toContain('<boot');
    }
  }, 60_000);

  it('is a self-contained HTML page: no scripts, no external references, expectations and totals included', async () => {
    const { report, samples } = await runOnce();
    const html = renderHtml({ report, samples });
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    const root = parseMarkup(html.replace(/^<!DOCTYPE html>\n/, ''), { html: true });
    expect(root.name).toBe('html');
    expect(findAll(root, 'script')).toHaveLength(0);
    expect(html).not.toMatch(/(src|href)\s*=|@import|url\(/);
    expect(findAll(root, 'svg').map((s) => s.attrs['aria-label'])).toEqual(['Load vs capacity per host', 'WAN throughput', 'Where each VM ran', 'Cost']);
    const text = textOf(root);
    expect(text).toContain('PASS');
    expect(text).toContain('totals.batch.unfinished == 0');
    expect(text).toContain('completionHours');
  }, 60_000);

  it('is deterministic: two runs export the same bytes', async () => {
    const a = await runOnce();
    const b = await runOnce();
    expect(renderSvg(b)).toBe(renderSvg(a));
    expect(renderHtml(b)).toBe(renderHtml(a));
  }, 60_000);

  it('labels time like the scenario format', () => {
    expect([0, 6, 24, 30, 36.5, 48].map(hoursLabel)).toEqual(['0h', '6h', '1d', '1d6h', '1d12.5h', '2d']);
  });

  it('spillway run --report writes .svg and .html, and refuses other names with exit 2', async () => {
    const file = join(dir, 'mini.yaml');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(file, SCENARIO);
    const io = { out: () => undefined, err: () => undefined, errIsTty: false };
    for (const ext of ['svg', 'html']) {
      const out = join(dir, `r.${ext}`);
      expect(await main(['run', file, '--report', out], io)).toBe(0);
      parseMarkup(readFileSync(out, 'utf8').replace(/^<!DOCTYPE html>\n/, ''), { html: ext === 'html' });
    }
    let err = '';
    expect(await main(['run', file, '--report', join(dir, 'r.pdf')], { ...io, err: (t) => { err += t; } })).toBe(2);
    expect(err).toMatch(/--report: expected a file name ending in \.html or \.svg/);
    expect(existsSync(join(dir, 'r.pdf'))).toBe(false);
  }, 60_000);
});
