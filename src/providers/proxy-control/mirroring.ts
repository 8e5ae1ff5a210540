import { InputError } from '../../errors.js';
import type { MirrorRound } from '../../ports/proxy-control.js';
import { DirtyModel, RunStateReceiver } from './run-state.js';
import { MiB, type ProxyControlState } from './state.js';

/** Run-state mirroring (FIG 15): rounds of a VM's memory shipped to a standby target. */

export async function mirrorRound(pc: ProxyControlState, req: { sourceVmId: string; targetId: string; round: number }): Promise<MirrorRound> {
  if (!Number.isInteger(req.round) || req.round < 0) throw new InputError('E_BAD_FIELD', `mirrorRound.round: expected a non-negative integer, got ${JSON.stringify(req.round)}`);
  const hv = pc.options.hypervisor;
  const key = `${req.sourceVmId}>${req.targetId}`;
  const clock = pc.world.clock;
  const running = (): boolean => hv.vm(req.sourceVmId).power === 'running';
  let model = pc.mirrors.get(key);
  let toSend: number;
  if (!model || req.round === 0) {
    // The first round sends the whole run state; the dirty rate comes from the hypervisor's memory image.
    const image = running() ? await hv.captureMemory(req.sourceVmId) : null;
    const bytes = image?.bytes ?? hv.vm(req.sourceVmId).ramMiB * MiB;
    model = new DirtyModel(bytes, image?.dirtyRateBytesPerS ?? 0, clock.nowUs(), running());
    pc.mirrors.set(key, model);
    toSend = bytes;
  } else {
    toSend = model.take(clock.nowUs(), running());
  }
  await receiverFor(pc, req.targetId);
  const startUs = clock.nowUs();
  await pc.runState.ship(req.targetId, req.round, toSend);
  const durationUs = Math.max(1, clock.nowUs() - startUs);
  const dirtyBytes = model.accrue(clock.nowUs(), running());
  if (toSend > 0) model.lastLinkRateBytesPerS = (toSend / durationUs) * 1e6;
  return {
    round: req.round, sentBytes: toSend, durationUs, dirtyBytes,
    dirtyRateBytesPerS: (dirtyBytes / durationUs) * 1e6,
    linkRateBytesPerS: model.lastLinkRateBytesPerS,
  };
}

/** The standby target's receiver dials on-prem once and stays connected. */
async function receiverFor(pc: ProxyControlState, targetId: string): Promise<RunStateReceiver> {
  let r = pc.receivers.get(targetId);
  if (r?.connected) return r;
  r = new RunStateReceiver(pc.world, pc.key, targetId);
  await r.connect(pc.options.runStateAddress);
  pc.receivers.set(targetId, r);
  return r;
}
