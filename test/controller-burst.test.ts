import { describe, expect, it } from 'vitest';
import { parseScenario } from '../src/sim/scenario-file.js';
import { TRANSFER_STEPS } from '../src/machines/transfer.js';
import { createSimulation } from '../src/sim/simulation.js';
import type { TraceEvent } from '../src/world/types.js';
import { miniBurstScenario } from './helpers/mini-burst.js';

const mini = (extra = '', cloud?: string): string => miniBurstScenario({ extra, ...(cloud ? { cloud } : {}) });

/** Disk reads go through the storage tier's latency on the World clock: drive the world until they settle. */
async function drive<T>(world: { run(o: { untilUs: number }): Promise<unknown>; nowUs: number }, p: Promise<T>): Promise<T> {
  let done = false;
  void p.finally(() => { done = true; }).catch(() => undefined);
  while (!done) await world.run({ untilUs: world.nowUs + 1_000_000 });
  return p;
}

async function run(text: string, options: { recordWrites?: boolean } = {}) {
  const events: TraceEvent[] = [];
  const sim = await createSimulation(parseScenario(text, 'mini-burst.yaml'), { ...options, onTrace: (e) => { if (e.type === 'machine.state' || e.type === 'machine.done') events.push(e); } });
  const report = await sim.runToEnd();
  return { sim, report, events };
}

// Where the VM is, as its instance machine says: out through the transfer, home through the reverse.
const INSTANCE = ['onpremRunning', 'deactivated', 'decoupled', 'cloudStreaming', 'returning', 'onpremRunning'].map((s) => `instance.${s}`);

describe('burst controller on a small data center', () => {
  it('bursts the batch jobs through the transfer machine, brings them home through the reverse machine, and beats the no-burst baseline', async () => {
    const { report, events } = await run(mini('  sla: { batchWithin: 3h }'));
    const b = report.burst as any;
    expect(report.mode).toBe('burst');
    expect(b.vmsBurst).toBeGreaterThanOrEqual(1);
    expect(b.vmsReturned).toBe(b.vmsBurst);
    const burst = Object.entries(b.vms).filter(([, v]: [string, any]) => v.burst);
    for (const [name, v] of burst as Array<[string, any]>) {
      expect(v.instanceType).toMatch(/\./);
      const states: string[] = v.timeline.map((t: any) => t.state);
      expect(states.filter((s) => s.startsWith('instance.'))).toEqual(INSTANCE);
      expect(v.state).toBe('onpremRunning');
      expect(v.goal).toBe('onprem');
      // Every FIG 7 step a stateless O2C transfer takes, in order, then every FIG 16 step of the way back.
      // A retried step shows as "<step>.backoff" and then "<step>" again: one entry per step here.
      const transfer = states.filter((s) => s.startsWith('transfer.') && !s.endsWith('.backoff')).map((s) => s.slice('transfer.'.length)).filter((s, i, a) => s !== a[i - 1]);
      expect(transfer).toEqual(['deactivate', ...TRANSFER_STEPS.filter((s) => s !== 'captureState' && s !== 'restoreState' && s !== 'deactivate'), 'running']);
      const reverse = states.filter((s) => s.startsWith('reverse.')).map((s) => s.slice('reverse.'.length));
      expect(reverse[0]).toBe('deactivateRemote');
      expect(reverse).toContain('flushWrites');
      expect(reverse[reverse.length - 1]).toBe('restored');
      // The trace carries the same machine states for this VM.
      const traced = events.filter((e) => e.src === `vm/${name}` && e.type === 'machine.state').map((e) => `${(e.data as any).machine}.${(e.data as any).state}`);
      expect(traced).toContain('transfer.stageBoot');
      expect(traced).toContain('reverse.releaseRemote');
      expect(traced).toContain('instance.returning');
      expect(states.indexOf('instance.cloudStreaming')).toBeGreaterThan(states.indexOf('transfer.stageBoot'));
      expect(states.indexOf('instance.returning')).toBeLessThan(states.indexOf('reverse.deactivateRemote'));
      expect(v.decisionToRunningSeconds).toBeGreaterThan(0);
      expect(v.bootWorkingSetBytes).toBeGreaterThan(0);
    }
    expect(b.wan.bytes).toBeGreaterThan(0);
    expect(b.baseline.batchCompletionHours).toBeGreaterThan(b.batch.completionHours);
    expect(b.cost.cloudUsd).toBeGreaterThan(0);
    expect(b.sla.batchWithinHours).toBe(3);
    expect(typeof b.sla.met).toBe('boolean');
  }, 300_000);

  it('a capacity fault on the best-fit type in one zone is handled by the next zone or type', async () => {
    const cloud = `cloud:
  region: us-east-1
  faults:
    - { at: 0s, until: 8h, error: InsufficientInstanceCapacity, zone: us-east-1a }`;
    const { report } = await run(mini('', cloud));
    const b = report.burst as any;
    expect(b.launchFaults).toBeGreaterThan(0);
    expect(b.vmsBurst).toBeGreaterThanOrEqual(1);
    for (const v of Object.values(b.vms) as any[]) if (v.burst) expect(v.zone).not.toBe('us-east-1a');
  }, 300_000);

  it('a reverse whose instance will not stop rolls back through the reverse machine: the VM runs in the cloud again, and comes home once the cloud answers', async () => {
    // StopInstances fails from 3h to 3h30m; the release brings the jobs home at 3h10m.
    const cloud = `cloud:
  region: us-east-1
  faults:
    - { at: 3h, until: 3h30m, error: InternalError, api: StopInstances }`;
    const { report, events } = await run(mini('', cloud));
    const b = report.burst as any;
    expect(b.vmsBurst).toBeGreaterThanOrEqual(1);
    expect(b.vmsReturned).toBe(b.vmsBurst);
    // The work resumed in the cloud after each rollback: every job still finishes.
    expect((report.totals as any).batch.unfinished).toBe(0);
    for (const [name, v] of Object.entries(b.vms) as Array<[string, any]>) {
      if (!v.burst) continue;
      const states: string[] = v.timeline.map((t: any) => t.state);
      // Retried, then rolled back: the instance machine hears STREAMING and the goal is the cloud again.
      const rolled = states.indexOf('reverse.rolledBack');
      expect(rolled).toBeGreaterThan(states.indexOf('reverse.deactivateRemote.backoff'));
      expect(states[rolled + 1]).toBe('instance.cloudStreaming');
      expect(v.error).toMatch(/^InternalError: reverse rolled-back at deactivateRemote/);
      // Each reverse is its own machine (its own id and tokens); the last one brings the VM home.
      const outcomes = events.filter((e) => e.src === `vm/${name}` && e.type === 'machine.done' && (e.data as any).machine === 'reverse').map((e) => (e.data as any).outcome);
      expect(outcomes.length).toBeGreaterThan(1);
      expect(outcomes).toEqual([...outcomes.slice(0, -1).map(() => 'rolled-back'), 'ok']);
      expect(states.at(-1)).toBe('instance.onpremRunning');
      expect([v.state, v.goal]).toEqual(['onpremRunning', 'onprem']);
    }
  }, 300_000);

  it('reverse leaves each on-prem disk equal to its original bytes plus every acknowledged write', async () => {
    const { sim } = await run(mini(), { recordWrites: true });
    const ctl = sim.controller!;
    let compared = 0;
    for (const rec of ctl.records.values()) {
      if (!rec.io || rec.homeUs === null) continue;
      const disk = sim.hypervisor.openDisk(rec.io.diskId);
      const original = sim.guestImage('img').disk(`check-${rec.vmId}`, 2 * 1024 ** 3);
      for (const w of rec.io.acked) {
        // The expected bytes of this write's range: the image's original, then every acknowledged write in order.
        const want = Buffer.from(await original.read(w.offset, w.data.length));
        for (const o of rec.io.acked) {
          const lo = Math.max(w.offset, o.offset);
          const hi = Math.min(w.offset + w.data.length, o.offset + o.data.length);
          if (lo < hi) o.data.copy(want, lo - w.offset, lo - o.offset, hi - o.offset);
        }
        expect(Buffer.from(await drive(sim.world, disk.read(w.offset, w.data.length))).equals(want)).toBe(true);
        compared++;
      }
      // An untouched region still reads as the image's original bytes.
      const probe = 1024 * 1024 * 1024 + 12345 * 4096;
      if (![...rec.io.acked].some((w) => w.offset < probe + 4096 && w.offset + w.data.length > probe)) {
        expect((await drive(sim.world, disk.read(probe, 4096))).equals(await original.read(probe, 4096))).toBe(true);
      }
    }
    expect(compared).toBeGreaterThan(0);
  }, 300_000);

  it('same seed, same trace hash', async () => {
    const a = await run(mini());
    const b = await run(mini());
    expect(a.report.traceHash).toBe(b.report.traceHash);
  }, 300_000);
});
