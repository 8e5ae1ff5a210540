import type { AnyMachineSnapshot } from 'xstate';
import { SpillwayError, errorCode } from '../../errors.js';
import type { FlowConfig, StepError } from '../../machines/flow.js';
import type { InstanceState } from '../../machines/instance.js';
import type { HostMonitor } from '../../ports/host-monitor.js';
import type { Hypervisor } from '../../ports/hypervisor.js';
import type { MigrationProgress, ProxyControl } from '../../ports/proxy-control.js';
import type { RunningMachine } from '../../machines/runtime.js';
import type { TransferData } from '../../machines/transfer.js';
import { wireMachines, type WiredMachines } from '../../machines/wiring.js';
import type { Scenario } from '../../scenario/schema.js';
import type { World } from '../../world/types.js';
import { endOf, followStates } from '../instance-tracker.js';
import type { MachineKit } from '../machine-kit.js';
import { migrationWavePolicyOf, selectVms, type MigrationWavePolicy } from '../../scenario/policies/migration-wave.js';
import { untilCutoverAllowedUs } from '../../scenario/policies/cutover-window.js';

/**
 * The permanent migration wave (FIG 17/18) on the World clock. At
 * `policy.startUs` the selected VMs are queued in data center order and
 * `waveSize` of them move at a time. Each one:
 *
 *   1. transfer machine, O2C stateless: the VM runs in the cloud from the
 *      staging image, its disks streamed through the two proxies;
 *   2. migration machine: cloud volumes, migration mode (copy-on-read plus a
 *      background sync driven by the proxy's persistent log, rounds of
 *      `syncChunkBytes` at shortening intervals), then — when the cut-over
 *      rule allows — stop, attach the volumes, reboot from them, detach the
 *      proxies;
 *   3. retire machine: the on-prem VM's disk leases are released and the
 *      transfer's snapshot is deleted; it stays deactivated and powered off.
 *
 * Where each VM is, is its instance machine (goal `migrated`): the flows
 * report to it as they go (`statusOf`).
 *
 * A WAN flap stalls the link: pending reads are sent again after the link
 * client reconnects, and a step that fails or times out is retried by its
 * machine with backoff. A sync round always starts from the persistent log,
 * so nothing already in a volume is fetched again.
 */

/**
 * The report's word for a VM of the wave: its instance machine's state, or
 * `queued` before it started, `retiring` while the on-prem copy is retired
 * (the instance is migrated then, the wave not yet done with it), `failed`
 * once a flow failed it.
 */
export type WaveVmStatus = 'queued' | 'retiring' | 'failed' | InstanceState;

/** Per-disk figures of the proxy's migration layer, summed over a VM's disks. */
export interface WaveBytes {
  /** Bytes of the VM's disks. */
  diskBytes: number;
  /** Bytes in 256 KiB chunks holding any data on-prem when the wave started (what the sync must move). */
  allocatedBytes: number;
  /** Bytes in the volumes per the persistent log (moved chunks and holes). */
  syncedBytes: number;
  /** Bytes read from below the migration layer (over the WAN unless the cloud cache held them). */
  fetchedBytes: number;
  copyOnReadBytes: number;
  backgroundBytes: number;
  /** Chunks in the log without a fetch (holes, whole-chunk guest writes). */
  chunksWithoutFetch: number;
  /**
   * Bytes fetched more than once: fetched + chunks without fetch × chunk − synced.
   * Each chunk enters the log once, so any re-sent chunk shows up here.
   */
  reSentBytes: number;
}

export interface WaveVmRecord {
  vmId: string;
  diskIds: string[];
  /** The machines' states, in order ("instance.migrating", "migration.awaitWindow", "retire.verify"…; a sync loop is one "migration.sync"). */
  timeline: Array<{ atUs: number; state: string }>;
  startedUs: number | null;
  /** The transfer reached `running`: the VM runs in the cloud through the proxies. */
  inCloudUs: number | null;
  /** First time the machine found every disk synced (step 1713). */
  syncedUs: number | null;
  cutoverStartUs: number | null;
  /** The instance runs again, from its volumes. */
  cutoverEndUs: number | null;
  endUs: number | null;
  instanceId: string | null;
  volumes: Record<string, string>;
  rounds: number;
  /** Step errors the machines retried or gave up on. */
  stepErrors: number;
  bytes: WaveBytes;
  /** The retire machine finished: the on-prem VM is deactivated, powered off, its leases released, its snapshot deleted. */
  retired: boolean;
  /** After the cut-over the cloud says: the instance runs, every volume is attached to it. */
  runsFromVolumes: boolean;
  error: string | null;
}

/** One sync round as the wave saw it: when it ran and whether it moved anything. */
interface RoundRecord {
  vmId: string;
  startUs: number;
  endUs: number;
  syncedBefore: number;
  syncedAfter: number;
}

/** One direction of the WAN as its counters give it (the emulated link's stats(), a real link's interface counters). */
interface WanDirection {
  /** Payload bytes delivered. */
  deliveredBytes: number;
  /** Bytes on the wire, framing included. */
  wireBytes: number;
}

/** The WAN the disks are copied over, as far as the wave measures it. */
export interface WanCounters {
  stats(): { down: WanDirection; up: WanDirection };
}

export interface MigrationWaveHost {
  world: World;
  hypervisor: Hypervisor & HostMonitor;
  scenario: Scenario;
  wan: WanCounters | null;
  /** The run's shared lifecycle machines (proxies, cloud). */
  machineKit(): Promise<MachineKit>;
}

/** CoreProxyControl's default migration chunk: the unit of the persistent log. */
export const WAVE_CHUNK_BYTES = 256 * 1024;
const DAY_US = 24 * 3_600_000_000;

const zeroBytes = (diskBytes = 0, allocatedBytes = 0): WaveBytes => ({
  diskBytes, allocatedBytes, syncedBytes: 0, fetchedBytes: 0, copyOnReadBytes: 0, backgroundBytes: 0, chunksWithoutFetch: 0, reSentBytes: 0,
});

export class MigrationWave {
  readonly policy: MigrationWavePolicy;
  readonly records = new Map<string, WaveVmRecord>();
  readonly rounds: RoundRecord[] = [];
  startedUs: number | null = null;
  endedUs: number | null = null;
  private wanAtStart: { down: number; up: number; wire: number } | null = null;
  private wanAtEnd: { down: number; up: number; wire: number } | null = null;
  private queue: string[] = [];
  private active = 0;
  private sme: MachineKit | null = null;
  private machines: WiredMachines | null = null;
  private flow: FlowConfig | null = null;
  private finished: Promise<void> | null = null;
  private resolveFinished: (() => void) | null = null;

  constructor(private readonly host: MigrationWaveHost) {
    this.policy = migrationWavePolicyOf(host.scenario.policies);
    if (!this.policy.enabled) throw new SpillwayError('E_MIGRATE_DISABLED', 'policies.migrate.enabled is false: there is no wave to run');
    if (!host.wan) throw new SpillwayError('E_NO_WAN', `scenario ${host.scenario.name}: policies.migrate needs a wan: section (the link the disks are copied over)`);
    for (const vm of selectVms(host.scenario.datacenter.vms, this.policy.vms, this.policy.workloads)) {
      const diskIds = vm.disks.map((d) => d.id);
      const diskBytes = vm.disks.reduce((s, d) => s + d.sizeBytes, 0);
      this.records.set(vm.name, {
        vmId: vm.name, diskIds, timeline: [], startedUs: null, inCloudUs: null, syncedUs: null,
        cutoverStartUs: null, cutoverEndUs: null, endUs: null, instanceId: null, volumes: {}, rounds: 0, stepErrors: 0,
        bytes: zeroBytes(diskBytes), retired: false, runsFromVolumes: false, error: null,
      });
    }
    host.world.clock.schedule(this.policy.startUs, () => {
      this.start().catch((err: unknown) => {
        for (const rec of this.records.values()) this.fail(rec, `the wave could not start: ${errorCode(err) ?? 'E_UNKNOWN'}: ${(err as Error).message}`);
        if (this.active === 0) this.finish();
      });
    });
  }

  private get world(): World {
    return this.host.world;
  }

  /** Resolves when every selected VM is migrated or failed. */
  whenFinished(): Promise<void> {
    this.finished ??= new Promise((resolve) => {
      this.resolveFinished = resolve;
      if (this.endedUs !== null) resolve();
    });
    return this.finished;
  }

  private wanNow(): { down: number; up: number; wire: number } {
    const s = this.host.wan!.stats();
    return { down: s.down.deliveredBytes, up: s.up.deliveredBytes, wire: s.down.wireBytes + s.up.wireBytes };
  }

  /** WAN bytes since the wave started (to its end, or to now while it runs). */
  wanBytes(): { down: number; up: number; wire: number } {
    if (!this.wanAtStart) return { down: 0, up: 0, wire: 0 };
    const end = this.wanAtEnd ?? this.wanNow();
    return { down: end.down - this.wanAtStart.down, up: end.up - this.wanAtStart.up, wire: end.wire - this.wanAtStart.wire };
  }

  private async start(): Promise<void> {
    this.startedUs = this.world.clock.nowUs();
    this.wanAtStart = this.wanNow();
    this.world.trace.emit('controller/migrate', 'migrate.wave', { phase: 'start', vms: this.records.size, waveSize: this.policy.waveSize });
    try {
      this.sme = await this.host.machineKit();
    } catch (err) {
      for (const rec of this.records.values()) this.fail(rec, `the machine environment did not start: ${(err as Error).message}`);
      this.finish();
      return;
    }
    const p = this.policy;
    this.flow = {
      ...this.sme.flow,
      // The sync and cut-over steps share the policy's step timeout; the window wait never times out back into syncing.
      timeoutsUs: { ...this.sme.flow.timeoutsUs, sync: p.stepTimeoutUs, awaitWindow: 2 * DAY_US },
      defaultTimeoutUs: Math.max(this.sme.flow.defaultTimeoutUs, p.stepTimeoutUs),
      retry: { maxAttempts: p.retry.maxAttempts, backoffBaseUs: p.retry.backoffUs, backoffMaxUs: p.retry.backoffMaxUs, backoffFactor: 2 },
    };
    this.machines = wireMachines({ ...this.sme.env, proxy: this.observedProxy(this.sme.proxy) });
    const hv = this.host.hypervisor;
    for (const rec of this.records.values()) {
      try {
        let allocated = 0;
        for (const diskId of rec.diskIds) allocated += await allocatedChunkBytes(hv, diskId);
        rec.bytes.allocatedBytes = allocated;
      } catch (err) {
        // A disk that cannot be opened (e.g. its image does not fit its file tree) fails its VM, not the wave.
        this.fail(rec, `${errorCode(err) ?? 'E_UNKNOWN'}: ${(err as Error).message}`);
      }
    }
    this.queue = [...this.records.values()].filter((r) => r.error === null).map((r) => r.vmId);
    if (this.queue.length === 0) this.finish();
    for (let i = 0; i < p.waveSize && this.queue.length > 0; i++) this.next();
  }

  /** Watch the sync rounds the migration machines make (for the stall figure); everything else goes straight to the proxy. */
  private observedProxy(base: ProxyControl): ProxyControl {
    const rounds = this.rounds;
    const world = this.world;
    const syncRound = async (req: { vmId: string; maxBytes: number }): Promise<MigrationProgress> => {
      const startUs = world.clock.nowUs();
      const before = this.progressOf(req.vmId)?.syncedBytes ?? 0;
      const p = await base.syncRound(req);
      rounds.push({ vmId: req.vmId, startUs, endUs: world.clock.nowUs(), syncedBefore: before, syncedAfter: p.syncedBytes });
      return p;
    };
    return new Proxy(base, {
      get(target, key) {
        if (key === 'syncRound') return syncRound;
        const v = Reflect.get(target, key, target) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  }

  private progressOf(vmId: string): { syncedBytes: number } | null {
    const disks = this.sme?.proxy.migrationProgressOf(vmId) ?? [];
    if (disks.length === 0) return null;
    return { syncedBytes: disks.reduce((s, d) => s + d.transferredBytes, 0) };
  }

  private next(): void {
    const vmId = this.queue.shift();
    if (vmId === undefined) return;
    this.active++;
    const rec = this.records.get(vmId)!;
    this.migrate(rec)
      .catch((err: unknown) => this.fail(rec, `${errorCode(err) ?? 'E_UNKNOWN'}: ${(err as Error).message}`))
      .finally(() => {
        this.active--;
        if (this.queue.length > 0) this.next();
        else if (this.active === 0) this.finish();
      });
  }

  private note(rec: WaveVmRecord, state: string): void {
    rec.timeline.push({ atUs: this.world.clock.nowUs(), state });
  }

  /** Where the VM is in the wave (see WaveVmStatus), read from its machines. */
  statusOf(rec: WaveVmRecord): WaveVmStatus {
    if (rec.error !== null) return 'failed';
    const instance = this.sme?.instances.stateOf(rec.vmId) ?? null;
    if (instance === null) return 'queued';
    return instance === 'migrated' && !rec.retired ? 'retiring' : instance;
  }

  private fail(rec: WaveVmRecord, error: string): void {
    if (rec.endUs !== null) return;
    rec.error = error;
    rec.endUs = this.world.clock.nowUs();
  }

  private finish(): void {
    if (this.endedUs !== null) return;
    this.endedUs = this.world.clock.nowUs();
    this.wanAtEnd = this.wanNow();
    const migrated = [...this.records.values()].filter((r) => this.statusOf(r) === 'migrated').length;
    this.world.trace.emit('controller/migrate', 'migrate.wave', { phase: 'end', migrated, failed: this.records.size - migrated });
    this.resolveFinished?.();
  }

  /** One VM through the wave: transfer, migration, retirement; its instance machine's goal is `migrated` throughout. */
  private async migrate(rec: WaveVmRecord): Promise<void> {
    const kit = this.sme!;
    rec.startedUs = this.world.clock.nowUs();
    const instance = kit.instances.want(rec.vmId, 'migrated');
    followStates(instance, (state) => this.note(rec, `instance.${state}`));
    const transfer = await this.transferOut(rec);
    if (!transfer) return;
    if (!(await this.migrateVolumes(rec, transfer.instanceId))) return;
    await this.retire(rec, transfer);
  }

  /** Step 1: the VM runs in the cloud, streamed through the proxies (FIG 7, stateless O2C). */
  private async transferOut(rec: WaveVmRecord): Promise<{ transferId: string; instanceId: string; data: TransferData } | null> {
    const kit = this.sme!;
    const p = this.policy;
    const hv = this.host.hypervisor;
    const vmId = rec.vmId;
    const transferId = `migrate-${vmId}-transfer`;
    const staging = this.host.scenario.cloud.images[0]?.id;
    const t = kit.runtime.start({ machine: this.machines!.transfer, id: transferId, src: `vm/${vmId}` }, {
      id: transferId, config: this.flow!,
      transfer: {
        vmId, kind: 'stateless', direction: 'O2C',
        ...(hv.vm(vmId).hostId ? { homeHostId: hv.vm(vmId).hostId! } : {}),
        ...(staging ? { stagingImageId: staging } : {}),
        ...(p.instanceType !== 'auto' ? { instanceTypes: [p.instanceType] } : {}),
      },
    });
    const reporting = kit.instances.followTransfer(vmId, t);
    followStates(t, (state) => this.note(rec, `transfer.${state}`));
    const out = await t.done;
    reporting();
    rec.stepErrors += errorsOf(t);
    kit.instances.ended(vmId, endOf(out, 'cloud', 'onprem'));
    if (out.outcome !== 'ok') {
      // It stays where the rollback left it: on-prem.
      if (out.outcome === 'rolled-back') kit.instances.want(vmId, 'onprem');
      this.fail(rec, `transfer ${out.outcome}: ${out.failure ? `${out.failure.step}: ${out.failure.code}: ${out.failure.message}` : 'no failure recorded'}`);
      return null;
    }
    rec.inCloudUs = this.world.clock.nowUs();
    rec.instanceId = out.data.instanceId!;
    rec.diskIds = (out.data.exports ?? []).map((e) => e.diskId);
    return { transferId, instanceId: out.data.instanceId!, data: out.data };
  }

  /** Step 2: cloud volumes filled behind the proxies, then the cut-over onto them (FIG 17/18). */
  private async migrateVolumes(rec: WaveVmRecord, instanceId: string): Promise<boolean> {
    const kit = this.sme!;
    const p = this.policy;
    const vmId = rec.vmId;
    const [inst] = await kit.env.cloud.describeInstances({ ids: [instanceId] });
    if (!inst) throw new SpillwayError('E_INSTANCE_LOST', `instance ${instanceId} of ${vmId} is not visible after its transfer`);
    const migrationId = `migrate-${vmId}`;
    kit.instances.send(vmId, { type: 'MIGRATING' });
    const m = kit.runtime.start({ machine: this.machines!.migration, id: migrationId, src: `vm/${vmId}` }, {
      id: migrationId, config: this.flow!,
      migration: {
        vmId, instanceId, zone: inst.zone, diskIds: rec.diskIds, volumeType: p.volumeType, syncChunkBytes: p.syncChunkBytes,
        initialIntervalUs: p.syncInterval.initialUs, minIntervalUs: p.syncInterval.minUs, intervalFactor: p.syncInterval.factor,
      },
    });
    let phase = '';
    const stop = followStates(m, (path) => {
      // A sync loop is one phase in the timeline; the trace has every round.
      const now = path.startsWith('sync') ? 'sync' : path;
      if (now !== phase) this.note(rec, `migration.${now}`);
      phase = now;
      this.onMigrationState(rec, m, path);
    });
    const out = await m.done;
    stop();
    rec.stepErrors += errorsOf(m);
    rec.rounds = out.data.rounds ?? 0;
    rec.volumes = out.data.volumes ?? {};
    kit.instances.ended(vmId, endOf(out, 'migrated', 'cloud'));
    if (out.outcome !== 'ok') {
      // Rolled back, it streams from on-prem in the cloud again: that is where the wave leaves it.
      if (out.outcome === 'rolled-back') kit.instances.want(vmId, 'cloud');
      this.fail(rec, `migration ${out.outcome}: ${out.failure ? `${out.failure.step}: ${out.failure.code}: ${out.failure.message}` : 'no failure recorded'}`);
      return false;
    }
    return true;
  }

  /** Step 3: the proxies have left the data path; the on-prem copy is retired, and the cloud asked whether the VM runs from its volumes. */
  private async retire(rec: WaveVmRecord, transfer: { transferId: string; instanceId: string; data: TransferData }): Promise<void> {
    const kit = this.sme!;
    const vmId = rec.vmId;
    const retireId = `migrate-${vmId}-retire`;
    const r = kit.runtime.start({ machine: this.machines!.retire, id: retireId, src: `vm/${vmId}` }, {
      id: retireId, config: this.flow!,
      retire: { vmId, exports: transfer.data.exports ?? [], leaseOwner: transfer.transferId, snapshotId: transfer.data.snapshotId ?? null },
    });
    followStates(r, (state) => this.note(rec, `retire.${state}`));
    const out = await r.done;
    rec.stepErrors += errorsOf(r);
    if (out.outcome !== 'ok') {
      this.fail(rec, `retire ${out.outcome}: ${out.failure ? `${out.failure.step}: ${out.failure.code}: ${out.failure.message}` : 'no failure recorded'}`);
      return;
    }
    rec.retired = true;
    const volumeIds = rec.diskIds.map((d) => rec.volumes[d]).filter((v): v is string => v !== undefined);
    const [after] = await kit.env.cloud.describeInstances({ ids: [transfer.instanceId] });
    const attached = await kit.env.cloud.describeVolumes({ ids: volumeIds });
    rec.runsFromVolumes = after?.state === 'running' && volumeIds.length === rec.diskIds.length && attached.length === volumeIds.length && attached.every((v) => v.attachedTo === transfer.instanceId);
    rec.endUs = this.world.clock.nowUs();
  }

  private onMigrationState(rec: WaveVmRecord, m: RunningMachine<WiredMachines['migration']>, path: string): void {
    const now = this.world.clock.nowUs();
    if (path === 'awaitWindow') {
      rec.syncedUs ??= now;
      this.capture(rec);
      const delayUs = this.untilCutoverAllowedUs(now);
      this.world.clock.schedule(delayUs, () => {
        if (m.state === 'awaitWindow') m.send({ type: 'MAINTENANCE_WINDOW' });
      });
    } else if (path === 'cutover.stopInstance') {
      rec.cutoverStartUs ??= now;
      this.capture(rec);
    } else if (path === 'cutover.detachProxies') {
      rec.cutoverEndUs ??= now;
      this.capture(rec);
    }
  }

  /** The cut-over rule: now when synced, or at the next opening of the daily window. */
  untilCutoverAllowedUs(nowUs: number): number {
    return untilCutoverAllowedUs(this.policy.cutover, nowUs);
  }

  /** Copy the proxy's per-disk migration figures into the record (they go away with the target at detachProxies). */
  private capture(rec: WaveVmRecord): void {
    const disks = this.sme?.proxy.migrationProgressOf(rec.vmId) ?? [];
    if (disks.length === 0) return;
    const b = rec.bytes;
    b.syncedBytes = 0; b.fetchedBytes = 0; b.copyOnReadBytes = 0; b.backgroundBytes = 0; b.chunksWithoutFetch = 0;
    let moved = 0;
    for (const d of disks) {
      b.syncedBytes += d.transferredBytes;
      b.fetchedBytes += d.bytesFetched;
      b.copyOnReadBytes += d.copyOnReadBytes;
      b.backgroundBytes += d.backgroundBytes;
      b.chunksWithoutFetch += d.chunksWithoutFetch;
      // A short tail chunk moved without a fetch counts a whole chunk above: take its slack off.
      const slack = Math.ceil(d.totalBytes / WAVE_CHUNK_BYTES) * WAVE_CHUNK_BYTES - d.totalBytes;
      moved += d.bytesFetched + d.chunksWithoutFetch * WAVE_CHUNK_BYTES - slack;
    }
    b.reSentBytes = Math.max(0, moved - b.syncedBytes);
  }

  /**
   * How long the flap stalled the wave, per WAN outage: from its start until
   * the first sync round that moved bytes ended after it (null when no sync
   * was running or waiting then).
   */
  outageStalls(): Array<{ atUs: number; forUs: number; stallUs: number | null; roundsCaught: number }> {
    const out: Array<{ atUs: number; forUs: number; stallUs: number | null; roundsCaught: number }> = [];
    for (const ev of this.host.scenario.timeline) {
      if (ev.event !== 'wan-outage') continue;
      const end = ev.atUs + ev.forUs;
      const caught = this.rounds.filter((r) => r.startUs < end && r.endUs > ev.atUs);
      const resumed = this.rounds.filter((r) => r.endUs >= end && r.syncedAfter > r.syncedBefore).sort((a, b) => a.endUs - b.endUs)[0];
      const during = this.startedUs !== null && this.startedUs <= end && (this.endedUs === null || this.endedUs >= ev.atUs);
      out.push({ atUs: ev.atUs, forUs: ev.forUs, stallUs: during && resumed ? resumed.endUs - ev.atUs : null, roundsCaught: caught.length });
    }
    return out;
  }
}

function errorsOf(m: { snapshot: AnyMachineSnapshot }): number {
  const errors = (m.snapshot.context as { errors?: StepError[] }).errors;
  return errors?.length ?? 0;
}

/** Bytes of the 256 KiB chunks of a disk that hold any data (what a sync has to fetch). */
async function allocatedChunkBytes(hv: Pick<Hypervisor, 'openDisk'>, diskId: string): Promise<number> {
  const dev = hv.openDisk(diskId);
  const size = dev.size();
  let bytes = 0;
  let lastChunk = -1;
  for (const e of await dev.extents(0, size)) {
    if (e.type !== 'data' || e.length === 0) continue;
    const first = Math.max(Math.floor(e.offset / WAVE_CHUNK_BYTES), lastChunk + 1);
    const last = Math.floor((e.offset + e.length - 1) / WAVE_CHUNK_BYTES);
    for (let c = first; c <= last; c++) bytes += Math.min(WAVE_CHUNK_BYTES, size - c * WAVE_CHUNK_BYTES);
    lastChunk = Math.max(lastChunk, last);
  }
  return bytes;
}
