import type { ReportInput } from '../types.js';
import { US_PER_H } from '../../util/units.js';
import type { CloneRecord, ScaleOutController } from '../../controller/scale-out/scale-out.js';
import type { ScaleOutPolicy } from '../../scenario/policies/scale-out.js';

/** The no-scale-out run of the same scenario and seed. */
export interface ScaleOutBaseline {
  steadyServedPct: number | null;
  tierServedPct: number | null;
  peakUtilization: number;
  hoursAnyHostSaturated: number;
}

/** What the section builder reads from the running simulation (ScenarioSimulation). */
interface ScaleOutSim {
  scaleOut: ScaleOutController | null;
  scaleOutBaseline?: ScaleOutBaseline | null;
}

const r3 = (x: number): number => Math.round(x * 1000) / 1000;
const r2 = (x: number): number => Math.round(x * 100) / 100;

function percentile(xs: number[], p: number): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

/** The tier's served share: on-prem members' grant from the hypervisor plus what the clones' vCPUs granted. */
export function tierServedPct(input: ReportInput, tier: string, clones: { demandVcpuUs: number; grantedVcpuUs: number }): number | null {
  const members = new Set(input.scenario.datacenter.vms.filter((v) => v.workload === tier).map((v) => v.name));
  let demand = clones.demandVcpuUs;
  let granted = clones.grantedVcpuUs;
  for (const v of input.vms) {
    if (!members.has(v.id)) continue;
    demand += v.demandVcpuUs;
    granted += v.grantedVcpuUs;
  }
  return demand > 0 ? r2((100 * granted) / demand) : null;
}

/**
 * `report.scaleOut`: what cloning the web tier into the cloud did. Same keys
 * for an empty run (zeros and nulls), so `expect:` clauses can name them;
 * per-clone rows are a list (not addressable by `expect:`).
 */
export function buildScaleOutSection(input: ReportInput): Record<string, unknown> {
  const policy = (input.scenario.policies.scaleOut as ScaleOutPolicy | undefined) ?? null;
  const sim = (input.sim ?? null) as ScaleOutSim | null;
  const ctl = sim?.scaleOut ?? null;
  const nowUs = input.endUs;
  const records = ctl ? ctl.clones : [];
  const launched = records.filter((c) => c.servingUs !== null);
  const toServeS = launched.map((c) => r3((c.servingUs! - c.decidedUs) / 1e6));
  let demand = 0;
  let granted = 0;
  let sibling = 0;
  let remote = 0;
  let pushed = 0;
  let wan = 0;
  let bootSibling = 0;
  let bootRemote = 0;
  let guestRead = 0;
  let guestWritten = 0;
  let hits = 0;
  let lookups = 0;
  const rows = records.map((c: CloneRecord) => {
    const t = ctl!.trafficOf(c);
    const served = ctl!.servedOf(c, nowUs);
    demand += served.demandVcpuUs;
    granted += served.grantedVcpuUs;
    sibling += t.siblingBlocks;
    remote += t.remoteBlocks;
    pushed += t.pushedBlocks;
    wan += t.wanBytes;
    bootSibling += c.atServing?.siblingBlocks ?? 0;
    bootRemote += c.atServing?.remoteBlocks ?? 0;
    const written = c.io?.written ?? 0;
    guestRead += t.guestBytesRead;
    guestWritten += written;
    hits += t.cacheHits;
    lookups += t.cacheHits + t.cacheMisses;
    return {
      vm: c.vmId, state: ctl!.statusOf(c), instanceType: c.instanceType, decidedHours: r3(c.decidedUs / US_PER_H),
      decisionToServingSeconds: c.servingUs === null ? null : r3((c.servingUs - c.decidedUs) / 1e6),
      servingHours: c.servingUs === null ? 0 : r3(((c.droppedUs ?? nowUs) - c.servingUs) / US_PER_H),
      bootWanBytes: c.atServing?.wanBytes ?? 0, wanBytes: t.wanBytes, siblingBlocks: t.siblingBlocks, remoteBlocks: t.remoteBlocks,
      servedVcpuHours: r3(served.grantedVcpuUs / US_PER_H),
      guestBytesRead: t.guestBytesRead, guestBytesWritten: written,
      cacheHitRatio: t.cacheHits + t.cacheMisses > 0 ? r3(t.cacheHits / (t.cacheHits + t.cacheMisses)) : null,
      meanReadLatencyMs: c.io && c.io.meanReadLatencyUs() > 0 ? r3(c.io.meanReadLatencyUs() / 1000) : null,
      error: c.error,
    };
  });
  const first = launched[0] ?? null;
  const later = launched.slice(1);
  const bootOf = (c: CloneRecord): number => c.atServing?.wanBytes ?? 0;
  const laterMean = later.length ? Math.round(later.reduce((a, c) => a + bootOf(c), 0) / later.length) : null;
  const cost = ctl?.cloudCost(nowUs) ?? { cloudUsd: 0, instanceHours: 0 };
  const base = sim?.scaleOutBaseline ?? null;
  const blocks = sibling + remote;
  const bootBlocks = bootSibling + bootRemote;
  return {
    enabled: policy?.enabled ?? false,
    workload: policy?.tier ?? null,
    template: ctl?.template ?? policy?.template ?? null,
    decisions: ctl?.decisions ?? 0,
    clonesLaunched: launched.length,
    clonesFailed: records.filter((c) => ctl!.statusOf(c) === 'failed').length,
    clonesDropped: records.filter((c) => ctl!.statusOf(c) === 'dropped').length,
    // Cloning, serving or being dropped when the run ended: instances still billed.
    clonesLeft: records.filter((c) => ['cloning', 'serving', 'dropping'].includes(ctl!.statusOf(c))).length,
    peakClones: ctl?.peakClones ?? 0,
    timeToServe: { p50Seconds: percentile(toServeS, 50), p95Seconds: percentile(toServeS, 95), maxSeconds: toServeS.length ? Math.max(...toServeS) : null },
    // All reads that missed a clone's own cache, and (boot*) those up to serving: FIG 14 is about the boot.
    reads: {
      siblingBlocks: sibling, remoteBlocks: remote, pushedBlocks: pushed, siblingShare: blocks > 0 ? r3(sibling / blocks) : null,
      bootSiblingBlocks: bootSibling, bootRemoteBlocks: bootRemote, bootSiblingShare: bootBlocks > 0 ? r3(bootSibling / bootBlocks) : null,
    },
    // The clones' guests: boot plus application I/O (policies.burst.io) through their storage targets.
    io: { guestBytesRead: guestRead, guestBytesWritten: guestWritten, cacheHitRatio: lookups > 0 ? r3(hits / lookups) : null },
    wan: {
      bytes: wan,
      // Boot traffic (decision to serving) of the first clone against the mean of the later ones.
      firstCloneBootBytes: first ? bootOf(first) : null,
      laterClonesMeanBootBytes: laterMean,
      laterToFirstRatio: first && laterMean !== null && bootOf(first) > 0 ? r3(laterMean / bootOf(first)) : null,
    },
    tier: {
      members: ctl?.members.length ?? 0,
      peakDemandPerMember: r3(ctl?.peakPerMember ?? 0),
      peakDemandPerMemberWithoutClones: r3(ctl?.peakPerMemberWithoutClones ?? 0),
      servedPct: policy?.tier ? tierServedPct(input, policy.tier, { demandVcpuUs: demand, grantedVcpuUs: granted }) : null,
      cloneServedVcpuHours: r3(granted / US_PER_H),
    },
    cost: { cloudUsd: r2(cost.cloudUsd), instanceHours: r3(cost.instanceHours) },
    baseline: {
      steadyServedPct: base?.steadyServedPct ?? null,
      tierServedPct: base?.tierServedPct ?? null,
      peakUtilization: base?.peakUtilization ?? null,
      hoursAnyHostSaturated: base?.hoursAnyHostSaturated ?? null,
    },
    clones: rows,
  };
}
