import { SpillwayError } from '../../errors.js';
import type { BlockDevice } from '../../proxy/block-device.js';
import type { BootPhase, PhasedRead } from './guest-boot.js';
import { requireTarget, type BootProgress, type DiskSession, type ProxyControlState, type VmTarget } from './state.js';

/**
 * A simulated guest's boot against its storage target: the guest model's
 * boot reads of a phase (staging or target) replayed with the configured
 * depth and think time, resumable after a failed attempt.
 */

export async function awaitBoot(pc: ProxyControlState, req: { vmId: string; instanceId: string; phase: 'staging' | 'target' }): Promise<{ bootReadBytes: number }> {
  const t = requireTarget(pc, req.vmId);
  if (t.instanceId !== req.instanceId) throw new SpillwayError('E_TARGET_BUSY', `the target of ${req.vmId} serves instance ${t.instanceId}, not ${req.instanceId}`);
  const progress = t.boot[req.phase];
  if (progress.done) return { bootReadBytes: progress.bytes };
  // The step that was in flight when the controller restarted may still be replaying: join it rather than race it.
  if (!progress.running) {
    const run = bootPhase(pc, t, req.vmId, req.phase, progress);
    progress.running = run;
    run.then(() => { progress.done = true; }, () => undefined).finally(() => { progress.running = null; });
  }
  await progress.running;
  return { bootReadBytes: progress.bytes };
}

async function bootPhase(pc: ProxyControlState, t: VmTarget, vmId: string, phase: BootPhase, progress: BootProgress): Promise<void> {
  const boot = bootSession(pc, t);
  if (!boot) return;
  const reads = pc.options.guest!.bootReads(vmId, boot.exp.imageId).filter((r) => r.phase === phase);
  await replay(pc, boot.target, reads, progress);
  // 'recorded' streams later sessions what earlier ones read: the boot, not the application's reads after it.
  if (phase === 'target' && pc.options.prefetch === 'recorded') for (const s of t.sessions) s.proxy.stopRecordingReads();
}

/** The disk the guest boots from: the root mount of the VM the export belongs to. */
function bootSession(pc: ProxyControlState, t: VmTarget): DiskSession | undefined {
  if (!pc.options.guest) return undefined;
  for (const s of t.sessions) {
    const vm = pc.options.hypervisor.vm(s.exp.vmId);
    const root = vm.guest.mounts.find((m) => m.mountPoint === '/' || m.mountPoint.toUpperCase() === 'C:')?.diskId ?? vm.diskIds[0];
    if (s.exp.diskId === root) return s;
  }
  return undefined;
}

/** Replay reads with `depth` outstanding; progress survives a failed attempt (the next one continues). */
async function replay(pc: ProxyControlState, device: BlockDevice, reads: PhasedRead[], progress: BootProgress): Promise<void> {
  const depth = Math.max(1, pc.options.boot?.depth ?? 1);
  const thinkUs = pc.options.boot?.thinkUs ?? 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = progress.retry.length > 0 ? progress.retry.shift()! : progress.next < reads.length ? progress.next++ : -1;
      if (i < 0) return;
      const r = reads[i]!;
      try {
        const data = await device.read(r.offset, r.length);
        progress.bytes += data.length;
      } catch (err) {
        progress.retry.push(i);
        throw err;
      }
      if (thinkUs > 0) await pc.world.clock.sleepUs(thinkUs);
    }
  };
  await Promise.all(Array.from({ length: depth }, worker));
}
