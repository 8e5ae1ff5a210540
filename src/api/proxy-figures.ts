import type { CloudProxy } from '../proxy/cloud/index.js';
import type { HistogramSnapshot } from '../proxy/layers/stats.js';
import type { LinkServer } from '../proxy/link/server.js';
import type { OnpremLinkT, ProxyT } from './schemas.js';

/**
 * What the API and /metrics say about one cloud proxy, read from the
 * proxy's own counters (its layers' stats() and the stats registry). The
 * same function serves a simulation's proxies and a live `serve cloud`.
 */
export interface ProxyFigures extends ProxyT {
  /** Full latency histograms per op of the storage target (log2 µs buckets), for /metrics. */
  histograms: Record<string, HistogramSnapshot>;
}

export function proxyFigures(id: string, vm: string | null, disk: string, proxy: CloudProxy): ProxyFigures {
  const c = proxy.cache.stats();
  const p = proxy.prefetch.stats();
  const w = proxy.writeBehind.stats();
  const r = proxy.readPath.counters;
  const block = proxy.readPath.blockBytes;
  const l = proxy.link.stats;
  const wire = proxy.link.wireBytes();
  const layers = proxy.registry.snapshot();
  const target = Object.keys(layers).find((k) => k.startsWith('target:'));
  const histograms = target ? layers[target]!.latency : {};
  const latency: ProxyT['latency'] = {};
  for (const [op, h] of Object.entries(histograms)) latency[op] = { count: h.count, meanUs: h.meanUs, p50Us: h.p50Us, p99Us: h.p99Us, maxUs: h.maxUs };
  return {
    id, vm, disk,
    cache: { hits: c.hits, misses: c.misses, hitRatio: c.hits + c.misses > 0 ? c.hits / (c.hits + c.misses) : null, usedBytes: c.usedBytes, capacityBytes: c.capacityBytes },
    prefetch: { queuedBlocks: p.queuedBlocks, inflight: p.inflight, completedBlocks: p.completedBlocks, prefetchHits: p.prefetchHits },
    writeBack: {
      persistence: w.persistence, backlogBytes: w.backlogBytes, backlogOps: w.backlogOps, lagUs: Math.round(w.lagUs),
      etaUs: w.etaUs === null ? null : Math.round(w.etaUs), bytesShipped: w.bytesShipped, groupsShipped: w.groupsShipped,
    },
    bytesBySource: {
      cache: r.cacheBlocks * block, local: r.localBlocks * block, sibling: r.siblingBlocks * block, remote: r.remoteBlocks * block, pushed: r.pushedBlocks * block,
    },
    link: { bytesIn: wire.in, bytesOut: wire.out, requests: l.requests, reconnects: l.reconnects, pushesReceived: l.pushesReceived },
    guestBytes: proxy.guestBytes(),
    latency,
    histograms,
  };
}

/** The API shape without the histograms (the JSON routes give summaries). */
export function proxyView(f: ProxyFigures): ProxyT {
  const { histograms: _h, ...view } = f;
  void _h;
  return view;
}

export function onpremLink(server: Pick<LinkServer, 'stats' | 'wireBytes'>): OnpremLinkT {
  const s = server.stats;
  const wire = server.wireBytes();
  return {
    connections: s.connections, refused: s.refused, reads: s.reads, pushes: s.pushes, groupsApplied: s.groupsApplied,
    wireBytesIn: wire.in, wireBytesOut: wire.out,
  };
}
