import type { ReportInput } from '../types.js';
import { US_PER_H } from '../../util/units.js';
import type { MigrationWave, WaveVmRecord } from '../../controller/migration-wave/migration-wave.js';
import { migrationWavePolicyOf, selectVms } from '../../scenario/policies/migration-wave.js';

const r3 = (x: number): number => Math.round(x * 1000) / 1000;

function percentile(xs: number[], p: number): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

const seconds = (us: number | null): number | null => (us === null ? null : r3(us / 1e6));
const hours = (us: number | null): number | null => (us === null ? null : r3(us / US_PER_H));

/**
 * `report.migration`: what the permanent migration wave did. Same keys for
 * a run without a wave (zeros and nulls), so `expect:` clauses can name them
 * before the run.
 *
 * Bytes: `allocated` is the 256 KiB chunks holding data on-prem when the
 * wave began (what the sync must move), `fetched` what the migration layers
 * read from below them, `reSent` the bytes fetched for a chunk already in
 * the log (fetched + chunks moved without a fetch − synced: each chunk enters
 * the log once). Guest writes in migration mode land on the volume only, so
 * no chunk goes dirty behind the sync and fetched ≤ allocated.
 */
export function buildMigrationSection(input: ReportInput): Record<string, unknown> {
  const policy = migrationWavePolicyOf(input.scenario.policies);
  const wave = ((input.sim ?? null) as { migrationWave?: MigrationWave | null } | null)?.migrationWave ?? null;
  const selected = policy.enabled ? selectVms(input.scenario.datacenter.vms, policy.vms, policy.workloads).map((v) => v.name) : [];
  const recs: Array<WaveVmRecord | null> = selected.map((name) => wave?.records.get(name) ?? null);
  const done = recs.filter((r): r is WaveVmRecord => r !== null);
  // The wave's word for each VM, read from its machines (queued before the wave reached it).
  const status = (r: WaveVmRecord | null | undefined): string => (r && wave ? wave.statusOf(r) : 'queued');
  const migrated = done.filter((r) => status(r) === 'migrated');
  const downtimes = migrated.filter((r) => r.cutoverStartUs !== null && r.cutoverEndUs !== null).map((r) => r3((r.cutoverEndUs! - r.cutoverStartUs!) / 1e6));
  const sum = (f: (r: WaveVmRecord) => number): number => done.reduce((s, r) => s + f(r), 0);
  const allocated = sum((r) => r.bytes.allocatedBytes);
  const fetched = sum((r) => r.bytes.fetchedBytes);
  const wan = wave?.wanBytes() ?? { down: 0, up: 0, wire: 0 };
  const stalls = wave?.outageStalls() ?? [];
  const stallSeconds = stalls.reduce((s, o) => s + (o.stallUs ?? 0), 0) / 1e6;
  const endUs = wave?.endedUs ?? null;
  const vms: Record<string, unknown> = {};
  selected.forEach((name, i) => {
    const r = recs[i];
    vms[name] = {
      state: status(r),
      migrated: status(r) === 'migrated',
      retired: r?.retired ?? false,
      runsFromVolumes: r?.runsFromVolumes ?? false,
      error: r?.error ?? null,
      startedHours: hours(r?.startedUs ?? null),
      inCloudHours: hours(r?.inCloudUs ?? null),
      syncedHours: hours(r?.syncedUs ?? null),
      migratedHours: status(r) === 'migrated' ? hours(r!.endUs) : null,
      durationSeconds: r && r.startedUs !== null && r.endUs !== null ? seconds(r.endUs - r.startedUs) : null,
      downtimeSeconds: r && r.cutoverStartUs !== null && r.cutoverEndUs !== null ? seconds(r.cutoverEndUs - r.cutoverStartUs) : null,
      instanceId: r?.instanceId ?? null,
      volumes: Object.keys(r?.volumes ?? {}).length,
      rounds: r?.rounds ?? 0,
      stepErrors: r?.stepErrors ?? 0,
      bytes: {
        disk: r?.bytes.diskBytes ?? 0, allocated: r?.bytes.allocatedBytes ?? 0, synced: r?.bytes.syncedBytes ?? 0,
        fetched: r?.bytes.fetchedBytes ?? 0, copyOnRead: r?.bytes.copyOnReadBytes ?? 0, background: r?.bytes.backgroundBytes ?? 0,
        reSent: r?.bytes.reSentBytes ?? 0,
      },
      timeline: (r?.timeline ?? []).map((t) => ({ atHours: hours(t.atUs), state: t.state })),
    };
  });
  return {
    enabled: policy.enabled,
    selected: selected.length,
    waveSize: policy.waveSize,
    migrated: migrated.length,
    failed: done.filter((r) => status(r) === 'failed').length,
    unfinished: selected.length - done.filter((r) => status(r) === 'migrated' || status(r) === 'failed').length,
    retired: migrated.filter((r) => r.retired).length,
    runningFromVolumes: migrated.filter((r) => r.runsFromVolumes).length,
    startedHours: hours(wave?.startedUs ?? null),
    finishedHours: hours(endUs),
    durationHours: wave?.startedUs != null && endUs !== null ? hours(endUs - wave.startedUs) : null,
    downtime: { p50Seconds: percentile(downtimes, 50), p95Seconds: percentile(downtimes, 95), maxSeconds: downtimes.length ? Math.max(...downtimes) : null },
    bytes: {
      disk: sum((r) => r.bytes.diskBytes),
      allocated,
      synced: sum((r) => r.bytes.syncedBytes),
      fetched,
      copyOnRead: sum((r) => r.bytes.copyOnReadBytes),
      background: sum((r) => r.bytes.backgroundBytes),
      reSent: sum((r) => r.bytes.reSentBytes),
      fetchedPerAllocated: allocated > 0 ? r3(fetched / allocated) : null,
    },
    wan: { downBytes: wan.down, upBytes: wan.up, wireBytes: wan.wire, downPerFetched: fetched > 0 ? r3(wan.down / fetched) : null },
    outage: {
      count: stalls.length,
      stallSeconds: r3(stallSeconds),
      roundsCaught: stalls.reduce((s, o) => s + o.roundsCaught, 0),
      stepErrors: sum((r) => r.stepErrors),
    },
    vms,
  };
}
