import type { ReportInput } from '../types.js';
import type { BaselineFigures } from '../types.js';
import type { SlaPolicy } from '../../scenario/policies/burst-extras.js';
import { US_PER_H } from '../../util/units.js';
import type { BurstController } from '../../controller/burst/controller.js';

/** What the section builder reads from the running simulation (ScenarioSimulation). */
interface BurstSim {
  controller: BurstController | null;
  baseline: BaselineFigures | null;
  world: { clock: { nowUs(): number } };
}

const r3 = (x: number): number => Math.round(x * 1000) / 1000;
const r2 = (x: number): number => Math.round(x * 100) / 100;
const ratio = (a: number, b: number): number | null => (b > 0 ? r3(a / b) : null);

function percentile(xs: number[], p: number): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

/**
 * `report.burst`: per burst-eligible VM and in total, what bursting did and
 * what it bought. Same keys for an empty run (nulls and zeros), so `expect:`
 * clauses can name them before the run.
 */
export function buildBurstSection(input: ReportInput): Record<string, unknown> {
  const { scenario } = input;
  const policy = scenario.policies.burst;
  const sla = (scenario.policies as { sla?: SlaPolicy }).sla ?? { batchWithinUs: null };
  const sim = (input.sim ?? null) as BurstSim | null;
  const ctl = sim?.controller ?? null;
  const nowUs = input.endUs;
  // Standby may send any VM whose host failed; demand bursts only the listed workloads.
  const eligible = scenario.datacenter.vms.filter((v) => policy.enabled && (policy.standby !== null || policy.workloads.length === 0 || policy.workloads.includes(v.workload)));
  // FIG 22: per image, the first VM's boot against the later ones (the on-prem proxy streams the recorded read order to later cold caches).
  const boots = new Map<string, Array<{ startUs: number; bootUs: number }>>();
  for (const image of new Set(eligible.map((v) => v.image))) boots.set(image, []);
  const vms: Record<string, unknown> = {};
  const toCloudS: number[] = [];
  let wire = 0;
  let guest = 0;
  let unshipped = 0;
  let shipped = 0;
  for (const vm of eligible) {
    const rec = ctl?.records.get(vm.name) ?? null;
    const f = rec && ctl ? ctl.figures(rec) : null;
    const decisionToRunningSeconds = rec && rec.runningUs !== null ? r3((rec.runningUs - rec.decidedUs) / 1e6) : null;
    if (decisionToRunningSeconds !== null) toCloudS.push(decisionToRunningSeconds);
    if (f && rec?.bootStartedUs != null) boots.get(vm.image)!.push({ startUs: rec.bootStartedUs, bootUs: f.bootUs });
    wire += f?.wireBytes ?? 0;
    unshipped += f?.writeBack.backlogBytes ?? 0;
    shipped += f?.writeBack.bytesShipped ?? 0;
    guest += (f?.guestBytesRead ?? 0) + (f?.guestBytesWritten ?? 0);
    const blocksRead = (f?.cacheHits ?? 0) + (f?.cacheMisses ?? 0);
    vms[vm.name] = {
      burst: rec !== null && rec.runningUs !== null,
      // The VM's instance machine: where it is and where the controller wants it (never moved: on-prem).
      state: ctl?.statusOf(vm.name)?.current ?? 'onpremRunning',
      goal: ctl?.statusOf(vm.name)?.goal ?? 'onprem',
      cause: rec?.cause ?? null,
      timeline: (rec?.timeline ?? []).map((t) => ({ atHours: r3(t.atUs / US_PER_H), state: t.state })),
      instanceType: rec?.instanceType ?? null,
      zone: rec?.zone ?? null,
      launchAttempts: rec?.launchAttempts ?? 0,
      error: rec?.error ?? null,
      decisionToRunningSeconds,
      bootSeconds: f ? r3(f.bootUs / 1e6) : null,
      bootWorkingSetBytes: f?.bootWorkingSetBytes ?? 0,
      prefetchHitRatio: f ? ratio(f.prefetchHits, f.cacheHits + f.cacheMisses) : null,
      cacheHitRatio: f ? ratio(f.cacheHits, blocksRead) : null,
      cloudHours: rec && rec.runningUs !== null ? r3(((rec.homeUs ?? nowUs) - rec.runningUs) / US_PER_H) : 0,
      writeBack: {
        lagSeconds: f ? r3(f.writeBack.lagUs / 1e6) : null,
        backlogBytes: f?.writeBack.backlogBytes ?? 0,
        etaSeconds: f && f.writeBack.etaUs !== null ? r3(f.writeBack.etaUs / 1e6) : null,
        shippedBytes: f?.writeBack.bytesShipped ?? 0,
      },
    };
  }
  const cost = ctl?.cloudCost(nowUs) ?? { cloudUsd: 0, instanceHours: 0, egressBytes: 0 };
  const onpremUsd = ctl?.onpremCost(nowUs) ?? 0;
  const baseline = sim?.baseline ?? null;
  const batch = input.vms.length ? batchCompletionHours(input) : null;
  const records = ctl ? [...ctl.records.values()] : [];
  const standbyRecs = records.filter((r) => r.cause === 'standby');
  const downtimes = standbyRecs.filter((r) => r.runningUs !== null && r.downSinceUs !== null).map((r) => (r.runningUs! - r.downSinceUs!) / 60e6);
  const bootByImage: Record<string, unknown> = {};
  for (const [image, list] of boots) {
    const sorted = [...list].sort((a, b) => a.startUs - b.startUs);
    const first = sorted[0]?.bootUs ?? null;
    const later = sorted.slice(1).map((b) => b.bootUs);
    const laterMean = later.length ? later.reduce((a, b) => a + b, 0) / later.length : null;
    bootByImage[image] = {
      vms: sorted.length,
      firstSeconds: first === null ? null : r3(first / 1e6),
      laterMeanSeconds: laterMean === null ? null : r3(laterMean / 1e6),
      laterOverFirst: first !== null && laterMean !== null && first > 0 ? r3(laterMean / first) : null,
    };
  }
  return {
    enabled: policy.enabled,
    bootByImage,
    vmsBurst: records.filter((r) => r.runningUs !== null).length,
    // Standby for failed hosts: VMs HA could not restart, run in the cloud until their host recovered.
    standby: {
      vms: standbyRecs.filter((r) => r.runningUs !== null).length,
      returned: standbyRecs.filter((r) => r.runningUs !== null && r.homeUs !== null).length,
      stillInCloud: standbyRecs.filter((r) => r.runningUs !== null && r.homeUs === null).length,
      // From the tick that saw the host failed to running in the cloud.
      maxDowntimeMinutes: downtimes.length ? r3(Math.max(...downtimes)) : null,
    },
    vmsReturned: records.filter((r) => r.homeUs !== null && r.runningUs !== null).length,
    vmsFailed: records.filter((r) => r.runningUs === null && r.homeUs !== null).length,
    decisions: ctl?.decisions ?? 0,
    launchFaults: ctl?.launchFaults ?? 0,
    timeToCloud: { p50Seconds: percentile(toCloudS, 50), p95Seconds: percentile(toCloudS, 95), maxSeconds: toCloudS.length ? Math.max(...toCloudS) : null },
    wan: { bytes: wire, guestBytes: guest, bytesPerGuestByte: ratio(wire, guest) },
    // Acknowledged to a guest in the cloud but not yet applied on-prem when the run ended (lost if the cloud went away now).
    writeBack: { unshippedBytes: unshipped, shippedBytes: shipped },
    cost: { cloudUsd: r2(cost.cloudUsd), onpremUsd: r2(onpremUsd), instanceHours: r3(cost.instanceHours), egressBytes: cost.egressBytes },
    baseline: {
      batchCompletionHours: baseline?.batchCompletionHours ?? null,
      peakUtilization: baseline?.peakUtilization ?? null,
      hoursAnyHostSaturated: baseline?.hoursAnyHostSaturated ?? null,
    },
    batch: {
      completionHours: batch,
      savedHours: batch !== null && baseline?.batchCompletionHours != null ? r3(baseline.batchCompletionHours - batch) : null,
      speedup: batch !== null && baseline?.batchCompletionHours != null && batch > 0 ? r3(baseline.batchCompletionHours / batch) : null,
    },
    sla: {
      batchWithinHours: sla.batchWithinUs === null ? null : r3(sla.batchWithinUs / US_PER_H),
      met: sla.batchWithinUs === null ? null : batch !== null && batch * US_PER_H <= sla.batchWithinUs,
      baselineMet: sla.batchWithinUs === null || baseline === null ? null : baseline.batchCompletionHours !== null && baseline.batchCompletionHours * US_PER_H <= sla.batchWithinUs,
    },
    vms,
  };
}

function batchCompletionHours(input: ReportInput): number | null {
  let first = Infinity;
  let last = -Infinity;
  let any = false;
  for (const v of input.vms) {
    if (!v.task) continue;
    any = true;
    if (v.task.finishedUs === null) return null;
    first = Math.min(first, v.task.startedUs);
    last = Math.max(last, v.task.finishedUs);
  }
  return any ? Math.round(((last - first) / US_PER_H) * 1e4) / 1e4 : null;
}
