import { InputError } from '../../errors.js';
import type { CacheUsage } from '../../ports/proxy-control.js';
import { requireSession, type ProxyControlState } from './state.js';

/** A disk proxy's secure cache (its usage and online resize, §4.4) and draining its target. */

export async function cacheUsage(pc: ProxyControlState, req: { proxyId: string }): Promise<CacheUsage> {
  const st = requireSession(pc, req.proxyId).proxy.cache.stats();
  return { capacityBytes: st.capacityBytes, usedBytes: st.usedBytes };
}

export async function resizeCache(pc: ProxyControlState, req: { proxyId: string; capacityBytes: number }): Promise<CacheUsage> {
  const s = requireSession(pc, req.proxyId);
  if (!Number.isInteger(req.capacityBytes) || req.capacityBytes < 0 || req.capacityBytes > pc.maxCacheBytes) {
    throw new InputError('E_BAD_FIELD', `resizeCache.capacityBytes: expected an integer from 0 to ${pc.maxCacheBytes} (the store is sized for proxyControl.cache.maxCapacityBytes), got ${JSON.stringify(req.capacityBytes)}`);
  }
  await s.proxy.cache.resize(req.capacityBytes);
  return cacheUsage(pc, req);
}

export async function drain(pc: ProxyControlState, req: { proxyId: string }): Promise<void> {
  const s = requireSession(pc, req.proxyId);
  await s.target.drain();
  if (s.policy === 'on-prem') await s.proxy.drain();
  await s.proxy.writeBehind.flush();
}

export async function resume(pc: ProxyControlState, req: { proxyId: string }): Promise<void> {
  requireSession(pc, req.proxyId).target.resume();
}
