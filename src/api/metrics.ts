import { Registry } from 'prom-client';
import type { HistogramSnapshot } from '../proxy/layers/stats.js';
import type { ProxyFigures } from './proxy-figures.js';
import type { CloudCallsT, FlowT, OnpremLinkT, WanT } from './schemas.js';

/** Everything one scrape reports, read once per scrape from the backend. */
export interface MetricsInput {
  proxies: ProxyFigures[];
  onprem: OnpremLinkT | null;
  wan: WanT | null;
  flows: FlowT[];
  cloudCalls: CloudCallsT[];
  nowUs: number;
  traceEvents: number;
  sseClients: number;
  sseDropped: number;
}

type Labels = Record<string, string>;
interface Value { value: number; labels: Labels; metricName?: string }

/**
 * A metric whose values are read at scrape time from counters the proxies
 * and the run already keep. prom-client's Counter and Histogram are built to
 * be incremented; ours are running totals and log2 histograms owned by the
 * proxy core, so they are exposed through prom-client's registry (which does
 * the exposition format) as metrics that report what they read.
 */
class ReadMetric {
  readonly aggregator = 'sum';
  constructor(readonly name: string, readonly help: string, readonly type: 'counter' | 'gauge' | 'histogram', private readonly read: () => Value[]) {}
  get(): Promise<{ name: string; help: string; type: string; values: Value[]; aggregator: string }> {
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, values: this.read(), aggregator: this.aggregator });
  }
  reset(): void {}
}

const SOURCES = ['cache', 'local', 'sibling', 'remote', 'pushed'] as const;

/** Prometheus buckets from a log2 µs histogram: bucket i holds [2^(i-1), 2^i) µs, so its upper edge is 2^i µs. */
function histogramValues(name: string, labels: Labels, h: HistogramSnapshot): Value[] {
  const out: Value[] = [];
  let cumulative = 0;
  h.buckets.forEach((n, i) => {
    cumulative += n;
    out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: String((i === 0 ? 1 : 2 ** i) / 1e6) }, value: cumulative });
  });
  out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: h.count });
  out.push({ metricName: `${name}_sum`, labels, value: (h.meanUs * h.count) / 1e6 });
  out.push({ metricName: `${name}_count`, labels, value: h.count });
  return out;
}

export class ApiMetrics {
  readonly registry = new Registry();
  private input: MetricsInput | null = null;

  constructor(private readonly gather: () => MetricsInput) {
    const each = (fn: (p: ProxyFigures, l: Labels) => Value[]) => () =>
      (this.input?.proxies ?? []).flatMap((p) => fn(p, { proxy: p.id, vm: p.vm ?? '', disk: p.disk }));
    const add = (name: string, help: string, type: ReadMetric['type'], read: () => Value[]): void => {
      this.registry.registerMetric(new ReadMetric(name, help, type, read) as never);
    };
    add('spillway_cache_hits_total', 'cloud cache lookups that hit, per disk', 'counter', each((p, labels) => [{ labels, value: p.cache.hits }]));
    add('spillway_cache_misses_total', 'cloud cache lookups that missed, per disk', 'counter', each((p, labels) => [{ labels, value: p.cache.misses }]));
    add('spillway_cache_hit_ratio', 'hits / (hits + misses) of the cloud cache, per disk (absent before the first read)', 'gauge',
      each((p, labels) => (p.cache.hitRatio === null ? [] : [{ labels, value: p.cache.hitRatio }])));
    add('spillway_cache_used_bytes', 'bytes held by the cloud cache, per disk', 'gauge', each((p, labels) => [{ labels, value: p.cache.usedBytes }]));
    add('spillway_read_bytes_total', 'bytes the read path served, by where they came from (cache, local, sibling, remote, pushed)', 'counter',
      each((p, labels) => SOURCES.map((source) => ({ labels: { ...labels, source }, value: p.bytesBySource[source] }))));
    add('spillway_nbd_request_duration_seconds', 'latency of requests at the storage target (what NBD clients wait for), per op', 'histogram',
      each((p, labels) => Object.entries(p.histograms).flatMap(([op, h]) => histogramValues('spillway_nbd_request_duration_seconds', { ...labels, op }, h))));
    add('spillway_writeback_backlog_bytes', 'bytes acknowledged in the cloud and not yet applied on-prem', 'gauge', each((p, labels) => [{ labels, value: p.writeBack.backlogBytes }]));
    add('spillway_writeback_lag_seconds', 'age of the oldest write not yet applied on-prem', 'gauge', each((p, labels) => [{ labels, value: p.writeBack.lagUs / 1e6 }]));
    add('spillway_writeback_eta_seconds', 'backlog at the recent shipping rate (absent until a ship was timed)', 'gauge',
      each((p, labels) => (p.writeBack.etaUs === null ? [] : [{ labels, value: p.writeBack.etaUs / 1e6 }])));
    add('spillway_writeback_shipped_bytes_total', 'write bytes shipped on-prem', 'counter', each((p, labels) => [{ labels, value: p.writeBack.bytesShipped }]));
    add('spillway_link_bytes_total', 'bytes on the proxy link, per cloud proxy and direction', 'counter',
      each((p, labels) => [{ labels: { ...labels, direction: 'in' }, value: p.link.bytesIn }, { labels: { ...labels, direction: 'out' }, value: p.link.bytesOut }]));
    add('spillway_link_round_trips_total', 'requests the cloud proxy sent on the link (each one round trip)', 'counter', each((p, labels) => [{ labels, value: p.link.requests }]));
    add('spillway_link_reconnects_total', 'times the cloud proxy reconnected the link', 'counter', each((p, labels) => [{ labels, value: p.link.reconnects }]));
    const onprem = (fn: (o: OnpremLinkT) => Value[]) => () => (this.input?.onprem ? fn(this.input.onprem) : []);
    add('spillway_onprem_link_bytes_total', 'bytes the on-prem link server carried, by direction', 'counter',
      onprem((o) => [{ labels: { direction: 'in' }, value: o.wireBytesIn }, { labels: { direction: 'out' }, value: o.wireBytesOut }]));
    add('spillway_onprem_link_reads_total', 'reads the on-prem link server answered', 'counter', onprem((o) => [{ labels: {}, value: o.reads }]));
    add('spillway_onprem_link_pushes_total', 'blocks the on-prem link server pushed', 'counter', onprem((o) => [{ labels: {}, value: o.pushes }]));
    add('spillway_onprem_groups_applied_total', 'write groups applied on-prem', 'counter', onprem((o) => [{ labels: {}, value: o.groupsApplied }]));
    add('spillway_wan_bytes_total', 'payload bytes carried by the WAN, by direction (up: on-prem to cloud)', 'counter', () => {
      const w = this.input?.wan;
      return w && w.bytesUp !== null && w.bytesDown !== null ? [{ labels: { direction: 'up' }, value: w.bytesUp }, { labels: { direction: 'down' }, value: w.bytesDown }] : [];
    });
    add('spillway_wan_up', '1 while the WAN is up', 'gauge', () => (this.input?.wan ? [{ labels: {}, value: this.input.wan.up ? 1 : 0 }] : []));
    add('spillway_flows', 'lifecycle flows by machine and current state', 'gauge', () => {
      const counts = new Map<string, Value>();
      for (const f of this.input?.flows ?? []) {
        const key = `${f.machine}\u0000${f.state}`;
        const v = counts.get(key) ?? { labels: { machine: f.machine, state: f.state }, value: 0 };
        v.value++;
        counts.set(key, v);
      }
      return [...counts.values()];
    });
    add('spillway_cloud_api_calls_total', 'cloud API calls, by API', 'counter', () => (this.input?.cloudCalls ?? []).map((c) => ({ labels: { api: c.api }, value: c.calls })));
    add('spillway_cloud_api_errors_total', 'cloud API calls that failed, by API and error code', 'counter',
      () => (this.input?.cloudCalls ?? []).flatMap((c) => Object.entries(c.errorCodes).map(([code, n]) => ({ labels: { api: c.api, code }, value: n }))));
    add('spillway_time_seconds', 'virtual time of the run (simulation) or time since start (serve)', 'gauge', () => [{ labels: {}, value: (this.input?.nowUs ?? 0) / 1e6 }]);
    add('spillway_trace_events_total', 'trace events emitted', 'counter', () => [{ labels: {}, value: this.input?.traceEvents ?? 0 }]);
    add('spillway_sse_clients', 'event stream clients connected', 'gauge', () => [{ labels: {}, value: this.input?.sseClients ?? 0 }]);
    add('spillway_sse_dropped_total', 'event stream clients dropped for being too slow', 'counter', () => [{ labels: {}, value: this.input?.sseDropped ?? 0 }]);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The Prometheus text for one scrape. */
  async scrape(): Promise<string> {
    this.input = this.gather();
    try {
      return await this.registry.metrics();
    } finally {
      this.input = null;
    }
  }
}
