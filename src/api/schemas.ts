import { Type, type Static, type TSchema, type TUnsafe } from '@sinclair/typebox';
import { FLOW_KINDS } from '../sim/operator-flows.js';

/**
 * Every request and response body of the management API, declared once:
 * fastify validates requests with them, serializes responses with them, and
 * @fastify/swagger publishes them at /openapi.json. The TypeScript types
 * below are derived from the same declarations.
 */

const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);

/** A string from a fixed list, as a JSON Schema `enum`: a bad value's error can then name every allowed one. */
function StringEnum<const T extends readonly string[]>(values: T, options: { description?: string } = {}): TUnsafe<T[number]> {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
}

export const VM_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$';

export const ErrorBody = Type.Object({
  statusCode: Type.Integer(),
  code: Type.String({ description: 'stable error code (E_...)' }),
  error: Type.String(),
  message: Type.String({ description: 'names the bad field and what is allowed' }),
}, { $id: 'Error' });

export const Health = Type.Object({
  ok: Type.Boolean(),
  kind: Type.Union([Type.Literal('simulation'), Type.Literal('serve')]),
  /** serve: onprem, cloud or pair; simulation: the scenario name. */
  name: Type.String(),
  seed: Nullable(Type.Integer()),
  nowUs: Type.Integer({ description: 'virtual time (simulation) or time since start (serve), µs' }),
  endUs: Nullable(Type.Integer()),
  done: Type.Boolean(),
  events: Type.Integer({ description: 'trace events so far; the next SSE event id' }),
  actions: Type.Boolean({ description: 'POST /flows is available' }),
}, { $id: 'Health' });

export const BootFigures = Type.Object({
  stagingBootUs: Nullable(Type.Integer()),
  targetBootUs: Nullable(Type.Integer()),
  bootUs: Nullable(Type.Integer({ description: 'staging boot start to running' })),
});

export const Vm = Type.Object({
  name: Type.String(),
  where: Type.Union([Type.Literal('onprem'), Type.Literal('cloud'), Type.Literal('none'), Type.Literal('unknown')]),
  host: Nullable(Type.String()),
  instance: Nullable(Type.String()),
  instanceType: Nullable(Type.String()),
  power: Nullable(Type.String()),
  machine: Nullable(Type.String({ description: 'lifecycle machine that last changed state' })),
  state: Nullable(Type.String({ description: 'its dotted state path' })),
  stateSinceUs: Nullable(Type.Integer()),
  timeInStateUs: Nullable(Type.Integer()),
  outcome: Nullable(Type.String()),
  error: Nullable(Type.String()),
  boot: BootFigures,
}, { $id: 'Vm' });

export const Flow = Type.Object({
  id: Type.String(),
  machine: Type.String(),
  vm: Nullable(Type.String()),
  src: Type.String(),
  state: Type.String(),
  status: Type.Union([Type.Literal('running'), Type.Literal('done'), Type.Literal('stopped'), Type.Literal('error')]),
  outcome: Nullable(Type.String()),
  startedUs: Nullable(Type.Integer()),
  stateSinceUs: Nullable(Type.Integer()),
  failure: Nullable(Type.String()),
  origin: Type.Union([Type.Literal('api'), Type.Literal('controller')]),
}, { $id: 'Flow' });

export const LatencySummary = Type.Object({
  count: Type.Integer(), meanUs: Type.Integer(), p50Us: Type.Integer(), p99Us: Type.Integer(), maxUs: Type.Integer(),
});

export const Proxy = Type.Object({
  id: Type.String({ description: '"<vm>/<disk>" in a simulation, the proxy name when serving' }),
  vm: Nullable(Type.String()),
  disk: Type.String(),
  cache: Type.Object({
    hits: Type.Integer(), misses: Type.Integer(), hitRatio: Nullable(Type.Number()), usedBytes: Type.Integer(), capacityBytes: Type.Integer(),
  }),
  prefetch: Type.Object({ queuedBlocks: Type.Integer(), inflight: Type.Integer(), completedBlocks: Type.Integer(), prefetchHits: Type.Integer() }),
  writeBack: Type.Object({
    persistence: Type.String(), backlogBytes: Type.Integer(), backlogOps: Type.Integer(), lagUs: Type.Integer(),
    etaUs: Nullable(Type.Integer()), bytesShipped: Type.Integer(), groupsShipped: Type.Integer(),
  }),
  bytesBySource: Type.Object({ cache: Type.Integer(), local: Type.Integer(), sibling: Type.Integer(), remote: Type.Integer(), pushed: Type.Integer() }),
  link: Type.Object({ bytesIn: Type.Integer(), bytesOut: Type.Integer(), requests: Type.Integer(), reconnects: Type.Integer(), pushesReceived: Type.Integer() }),
  guestBytes: Type.Integer(),
  latency: Type.Record(Type.String(), LatencySummary, { description: 'per NBD/target op (read, write, flush...)' }),
}, { $id: 'Proxy' });

export const OnpremLink = Type.Object({
  connections: Type.Integer(), refused: Type.Integer(), reads: Type.Integer(), pushes: Type.Integer(),
  groupsApplied: Type.Integer(), wireBytesIn: Type.Integer(), wireBytesOut: Type.Integer(),
});

export const Proxies = Type.Object({
  proxies: Type.Array(Proxy),
  onprem: Nullable(OnpremLink),
}, { $id: 'Proxies' });

export const Wan = Type.Object({
  up: Type.Boolean(),
  outages: Type.Integer(),
  upBps: Nullable(Type.Number()), downBps: Nullable(Type.Number()), rttUs: Nullable(Type.Number()), lossPct: Nullable(Type.Number()),
  sampledUs: Nullable(Type.Integer()),
  bytesUp: Nullable(Type.Integer({ description: 'bytes carried on-prem to cloud (the emulated link, or the relay when serving)' })),
  bytesDown: Nullable(Type.Integer()),
}, { $id: 'Wan' });

export const Instance = Type.Object({
  id: Type.String(), type: Type.String(), state: Type.String(), vm: Nullable(Type.String()), sinceUs: Type.Integer(),
});

export const CloudCalls = Type.Object({
  api: Type.String(), calls: Type.Integer(), errors: Type.Integer(),
  errorCodes: Type.Record(Type.String(), Type.Integer()), latencyUsSum: Type.Integer(),
});

export const Cloud = Type.Object({
  instances: Type.Array(Instance),
  calls: Type.Array(CloudCalls),
}, { $id: 'Cloud' });

export const Cost = Type.Object({
  cloudUsd: Type.Number(), onpremUsd: Type.Number(), sampledUs: Nullable(Type.Integer()),
}, { $id: 'Cost' });


export const FlowRequest = Type.Object({
  kind: StringEnum(FLOW_KINDS),
  vm: Type.String({ pattern: VM_NAME_PATTERN, description: 'the VM the flow acts on' }),
  to: Type.Optional(StringEnum(['cloud', 'onprem'], { description: 'transfer: where to (default cloud)' })),
  transferKind: Type.Optional(StringEnum(['stateless', 'stateful', 'run-time'], { description: 'transfer: what of the running VM moves (default stateless)' })),
  host: Type.Optional(Type.String({ pattern: VM_NAME_PATTERN, description: 'transfer --to onprem, reverse: the on-prem host' })),
  instanceType: Type.Optional(Type.String({ pattern: '^[a-z0-9][a-z0-9.-]{0,63}$' })),
  persistence: Type.Optional(StringEnum(['on-prem', 'cloud-only'], { description: 'clone: where its writes persist (default cloud-only)' })),
  target: Type.Optional(Type.String({ pattern: VM_NAME_PATTERN, description: 'cutover: the standby clone (its VM name, e.g. web-01-c1)' })),
  disk: Type.Optional(Type.String({ pattern: VM_NAME_PATTERN, description: 'resize: the disk whose cloud proxy to resize (default the first)' })),
  cacheBytes: Type.Optional(Type.Integer({ minimum: 1048576, maximum: 17592186044416, description: 'resize: new cache capacity' })),
  mode: Type.Optional(StringEnum(['snapshot', 'deactivate'], { description: 'containerize: image the running VM, or shut it down first (default snapshot)' })),
}, { additionalProperties: false, $id: 'FlowRequest' });

export const FlowAccepted = Type.Object({
  id: Type.String(),
  kind: Type.String(),
  vm: Type.String(),
  machine: Type.String(),
  state: Type.String(),
  atUs: Type.Integer({ description: 'virtual time the action was applied at (recorded in the trace)' }),
  seq: Type.Integer({ description: 'scheduler sequence number of the action (a replay puts it back there)' }),
}, { $id: 'FlowAccepted' });

export const RollbackAccepted = Type.Object({
  id: Type.String(), state: Type.String(), atUs: Type.Integer(), seq: Type.Integer(),
}, { $id: 'RollbackAccepted' });

export const VmParams = Type.Object({ name: Type.String({ pattern: VM_NAME_PATTERN }) });
export const FlowParams = Type.Object({ id: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,159}$' }) });

export const EventsQuery = Type.Object({
  vm: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._-]+(,[A-Za-z0-9._-]+)*$', description: 'comma-separated VM names' })),
  type: Type.Optional(Type.String({ pattern: '^[a-z][a-z0-9]*(\\.([a-z0-9]+|\\*))*(,[a-z][a-z0-9]*(\\.([a-z0-9]+|\\*))*)*$', description: 'comma-separated event types; "machine.*" matches a prefix' })),
  since: Type.Optional(Type.Integer({ minimum: 0, description: 'replay from this event id (as Last-Event-ID + 1)' })),
}, { additionalProperties: false });

export type HealthT = Static<typeof Health>;
export type VmT = Static<typeof Vm>;
export type FlowT = Static<typeof Flow>;
export type ProxyT = Static<typeof Proxy>;
export type ProxiesT = Static<typeof Proxies>;
export type OnpremLinkT = Static<typeof OnpremLink>;
export type WanT = Static<typeof Wan>;
export type CloudT = Static<typeof Cloud>;
export type CloudCallsT = Static<typeof CloudCalls>;
export type InstanceT = Static<typeof Instance>;
export type CostT = Static<typeof Cost>;
export type FlowRequestT = Static<typeof FlowRequest>;
export type FlowAcceptedT = Static<typeof FlowAccepted>;
export type RollbackAcceptedT = Static<typeof RollbackAccepted>;
export type EventsQueryT = Static<typeof EventsQuery>;
