import { describe, expect, it } from 'vitest';
import { bestFit } from '../src/controller/burst/best-fit.js';
import { cloudCostUsd, onpremCostUsd } from '../src/controller/cost.js';
import { DEFAULT_SELECTION, bringBack, fig19Select, predictDemand, scoreCandidates, volatility, type BurstCandidate } from '../src/controller/burst/selection.js';
import { scoreTargets, type CloudTarget } from '../src/controller/burst/target-scoring.js';
import type { InstanceTypeInfo } from '../src/ports/cloud.js';

/** A week of hourly demand: flat `base`, with `peak` during hours [from, to) of every day. */
function week(base: number, peak = base, from = 0, to = 0): number[] {
  return Array.from({ length: 168 }, (_, h) => (h % 24 >= from && h % 24 < to ? peak : base));
}

const vm = (over: Partial<BurstCandidate> & { vmId: string }): BurstCandidate => ({
  addedAtUs: 0, vcpus: 8, cpuDemand: 2, history: week(2), iops: 100, transferable: true, ...over,
});

describe('selection (§5, FIG 19)', () => {
  it('predicts a VM that was hot at these hours last week', () => {
    const nightly = week(1, 7, 20, 24);
    expect(predictDemand(nightly, 20, 4)).toBe(7);
    expect(predictDemand(nightly, 8, 4)).toBe(1);
    const hot = vm({ vmId: 'batch', history: nightly });
    const flat = vm({ vmId: 'web', history: week(3) });
    expect(fig19Select([hot, flat], { ...DEFAULT_SELECTION, horizonHours: 4 }, 20)).toEqual({ vmIds: ['batch'], path: 'predicted-hot' });
  });

  it('falls back to the clearly busiest transferable VM, then to the last one added', () => {
    const a = vm({ vmId: 'a', cpuDemand: 7, addedAtUs: 1 });
    const b = vm({ vmId: 'b', cpuDemand: 3, addedAtUs: 2 });
    expect(fig19Select([a, b], DEFAULT_SELECTION, 0)).toEqual({ vmIds: ['a'], path: 'clearly-highest' });
    const pinned = { ...a, transferable: false };
    expect(fig19Select([pinned, b], DEFAULT_SELECTION, 0)).toEqual({ vmIds: ['b'], path: 'last-added' });
    const close = vm({ vmId: 'c', cpuDemand: 6.5, addedAtUs: 3 });
    expect(fig19Select([a, close], DEFAULT_SELECTION, 0).path).toBe('last-added');
  });

  it('combines strategies by weight and never picks untransferable VMs', () => {
    const old = vm({ vmId: 'old', addedAtUs: 1 });
    const young = vm({ vmId: 'young', addedAtUs: 9 });
    const pinned = vm({ vmId: 'pinned', addedAtUs: 5, transferable: false });
    const fifo = scoreCandidates([young, old, pinned], { ...DEFAULT_SELECTION, weights: { fifo: 1 } }, 0);
    expect(fifo.map((s) => s.vmId)).toEqual(['old', 'young']);
    const lifo = scoreCandidates([young, old], { ...DEFAULT_SELECTION, weights: { lifo: 1 } }, 0);
    expect(lifo.map((s) => s.vmId)).toEqual(['young', 'old']);
    const busy = vm({ vmId: 'busy', cpuDemand: 7.5, addedAtUs: 1 });
    const mixed = scoreCandidates([young, busy], { ...DEFAULT_SELECTION, weights: { lifo: 1, threshold: 3 } }, 0);
    expect(mixed[0]).toMatchObject({ vmId: 'busy', parts: { threshold: 1, lifo: 0 } });
    expect(mixed[0]!.score).toBeCloseTo(0.75);
  });

  it('ranks predictable workloads before volatile and experimental ones', () => {
    expect(volatility(week(4))).toBe(0);
    const steady = vm({ vmId: 'steady', history: week(4) });
    const spiky = vm({ vmId: 'spiky', history: week(2, 5, 9, 17) });
    const lab = vm({ vmId: 'lab', history: week(4), experimental: true });
    const ranked = scoreCandidates([lab, spiky, steady], { ...DEFAULT_SELECTION, weights: { predictable: 1 } }, 0);
    expect(ranked.map((s) => s.vmId)).toEqual(['steady', 'spiky', 'lab']);
  });

  it('brings back cloud VMs whose storage latency passed the threshold', () => {
    expect(bringBack([{ vmId: 'x', storageLatencyUs: 9000 }, { vmId: 'y', storageLatencyUs: 900 }], 5000)).toEqual(['x']);
  });
});

describe('target scoring (§6 A–I)', () => {
  const base: CloudTarget = {
    id: 'a', storageLatencyUs: 800, workloadsOnHost: 0, workloadKinds: [], expandableGiB: 1000, storageUsdPerGiBMonth: 0.08,
    allowedDataClasses: ['public', 'pii'], storageTransformations: 0, managementComplexity: 0.2, supportsHa: true,
  };
  it('excludes targets that break compliance or HA, and prefers the better one', () => {
    const slow = { ...base, id: 'slow', storageLatencyUs: 4000 };
    const noPii = { ...base, id: 'eu-only', allowedDataClasses: ['public'] };
    const noHa = { ...base, id: 'single', supportsHa: false };
    const needs = { workloadKind: 'batch', diskGiB: 100, dataClass: 'pii', needsHa: true };
    const scores = scoreTargets([slow, noPii, noHa, base], needs);
    expect(scores.map((s) => s.targetId)).toEqual(['a', 'slow']);
    expect(scores[0]!.factors.storageLatency).toBe(1);
    expect(scores[1]!.factors.storageLatency).toBe(0);
  });
  it('follows the weights', () => {
    const cheapSlow = { ...base, id: 'cheap', storageLatencyUs: 4000, storageUsdPerGiBMonth: 0.02 };
    const needs = { workloadKind: 'batch', diskGiB: 100, dataClass: 'public', needsHa: false };
    expect(scoreTargets([base, cheapSlow], needs, { storageCost: 1 })[0]!.targetId).toBe('cheap');
    expect(scoreTargets([base, cheapSlow], needs, { storageLatency: 1 })[0]!.targetId).toBe('a');
  });
});

describe('best fit (FIG 7 step 721)', () => {
  const t = (name: string, vcpus: number, gib: number, price: number, iops = 10_000): InstanceTypeInfo =>
    ({ name, vcpus, memoryMiB: gib * 1024, ebsIops: iops, networkGbit: 10, pricePerHourUsd: price });
  const catalog = [t('m6i.large', 2, 8, 0.096), t('m6i.xlarge', 4, 16, 0.192), t('c6i.xlarge', 4, 8, 0.17), t('r6i.xlarge', 4, 32, 0.252), t('m6i.2xlarge', 8, 32, 0.384, 20_000)];
  it('picks the cheapest type that meets vCPU, RAM and IOPS', () => {
    expect(bestFit(catalog, { vcpus: 4, memoryMiB: 8 * 1024, iops: 5000, licences: [] })!.type.name).toBe('c6i.xlarge');
    expect(bestFit(catalog, { vcpus: 4, memoryMiB: 20 * 1024, iops: 5000, licences: [] })!.type.name).toBe('r6i.xlarge');
    expect(bestFit(catalog, { vcpus: 4, memoryMiB: 8 * 1024, iops: 15_000, licences: [] })!.type.name).toBe('m6i.2xlarge');
    expect(bestFit(catalog, { vcpus: 64, memoryMiB: 1024, iops: 0, licences: [] })).toBeUndefined();
  });
  it('honours licence rules', () => {
    const rules = { oracle: { families: ['r6i'], maxVcpus: 4 } };
    expect(bestFit(catalog, { vcpus: 2, memoryMiB: 4096, iops: 0, licences: ['oracle'] }, rules)!.type.name).toBe('r6i.xlarge');
  });
});

describe('cost (§7.0)', () => {
  it('prices cloud compute, storage and egress, and on-prem core-hours', () => {
    const usd = cloudCostUsd({ instanceHours: [{ pricePerHourUsd: 0.2, hours: 10 }], storageGiBHours: 730 * 100, egressBytes: 10 * 1024 ** 3 },
      { onpremUsdPerCoreHour: 0.05, cloudStorageUsdPerGiBMonth: 0.1, egressUsdPerGiB: 0.09 });
    expect(usd).toBeCloseTo(2 + 10 + 0.9);
    expect(onpremCostUsd(400, 4, { onpremUsdPerCoreHour: 0.05, cloudStorageUsdPerGiBMonth: 0, egressUsdPerGiB: 0 })).toBeCloseTo(5);
  });
});
