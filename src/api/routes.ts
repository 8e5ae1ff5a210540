import type { FastifyInstance } from 'fastify';
import type { ApiBackend } from './backend.js';
import { ApiError } from './errors.js';
import { parseFilter, type EventHub } from './events.js';
import type { ApiMetrics } from './metrics.js';
import { proxyView } from './proxy-figures.js';
import * as S from './schemas.js';

/** The management API's routes, registered on an app that has the schemas added (see app.ts). */

const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [c, { $ref: 'Error#' }]));
const arrayOf = (ref: string) => ({ type: 'array', items: { $ref: ref } });

function noVm(backend: ApiBackend, name: string): never {
  const known = backend.vms().map((v) => v.name);
  throw new ApiError(404, 'E_NO_VM', `no VM "${name}"; known: ${known.slice(0, 20).join(', ')}${known.length > 20 ? `, … (${known.length})` : ''}`);
}

/** Health, the OpenAPI document, and the read routes. */
export function readRoutes(app: FastifyInstance, backend: ApiBackend): void {
  app.get('/openapi.json', { schema: { hide: true }, config: { public: true } }, () => app.swagger());
  app.get('/health', {
    config: { public: true },
    schema: { summary: 'liveness and what is served (no auth)', security: [], response: { 200: { $ref: 'Health#' } } },
  }, () => ({ ok: true, ...backend.health(), events: backend.trace.count, actions: backend.actions !== null }));
  app.get('/vms', {
    schema: { summary: 'every VM: where it runs, its lifecycle machine and state, time in state, boot figures', response: { 200: arrayOf('Vm#'), ...errors(401) } },
  }, () => backend.vms());
  app.get<{ Params: { name: string } }>('/vms/:name', {
    schema: { summary: 'one VM', params: S.VmParams, response: { 200: { $ref: 'Vm#' }, ...errors(400, 401, 404) } },
  }, (req) => backend.vm(req.params.name) ?? noVm(backend, req.params.name));
  app.get('/flows', {
    schema: { summary: 'every lifecycle flow: machine, state, outcome, who started it', response: { 200: arrayOf('Flow#'), ...errors(401) } },
  }, () => backend.flows());
  app.get<{ Params: { id: string } }>('/flows/:id', {
    schema: { summary: 'one flow', params: S.FlowParams, response: { 200: { $ref: 'Flow#' }, ...errors(400, 401, 404) } },
  }, (req) => {
    const f = backend.flow(req.params.id);
    if (!f) throw new ApiError(404, 'E_NO_FLOW', `no flow "${req.params.id}"; GET /flows lists them`);
    return f;
  });
  app.get('/proxies', {
    schema: { summary: 'cloud proxies (cache, prefetch, write-back backlog, lag, ETA, bytes by source) and the on-prem link', response: { 200: { $ref: 'Proxies#' }, ...errors(401) } },
  }, () => ({ proxies: backend.proxies().map(proxyView), onprem: backend.onprem() }));
  app.get('/wan', { schema: { summary: 'the WAN: up or down, rates, RTT, loss, bytes', response: { 200: { $ref: 'Wan#' }, ...errors(401) } } }, () => backend.wan());
  app.get('/cloud', { schema: { summary: 'cloud resources and API calls', response: { 200: { $ref: 'Cloud#' }, ...errors(401) } } }, () => backend.cloud());
  app.get('/cost', { schema: { summary: 'cost so far', response: { 200: { $ref: 'Cost#' }, ...errors(401) } } }, () => backend.cost());
}

/** The SSE event stream and the Prometheus metrics. */
export function streamRoutes(app: FastifyInstance, hub: EventHub, metrics: ApiMetrics): void {
  app.get<{ Querystring: S.EventsQueryT }>('/events', {
    schema: {
      summary: 'Server-Sent Events of the trace; id = trace position; resume with Last-Event-ID',
      querystring: S.EventsQuery,
      headers: { type: 'object', properties: { 'last-event-id': { type: 'string', pattern: '^[0-9]{1,15}$' } } },
      response: { 200: { description: 'text/event-stream of trace lines', content: { 'text/event-stream': { schema: { type: 'string' } } } }, ...errors(400, 401) },
    },
  }, (req, reply) => {
    const last = req.headers['last-event-id'];
    const from = typeof last === 'string' ? Number(last) + 1 : req.query.since ?? null;
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    hub.attach(res, parseFilter(req.query.vm, req.query.type), from);
  });

  app.get('/metrics', {
    schema: { summary: 'Prometheus text format', response: { 200: { description: 'metrics', content: { 'text/plain': { schema: { type: 'string' } } } }, ...errors(401) } },
  }, async (_req, reply) => {
    const text = await metrics.scrape();
    return reply.type(metrics.contentType).send(text);
  });
}

/** POST /flows and rollback: through the backend's actions (a simulation's machines). */
export function actRoutes(app: FastifyInstance, backend: ApiBackend): void {
  const actions = () => {
    if (!backend.actions) throw new ApiError(501, 'E_NO_ACTIONS', 'this server runs no lifecycle machines (a serve daemon): flows are driven in a simulation (spillway run --api)');
    return backend.actions;
  };
  app.post<{ Body: S.FlowRequestT }>('/flows', {
    schema: {
      summary: 'start a flow through the lifecycle machines; applied at a virtual time that the trace records',
      body: { $ref: 'FlowRequest#' }, response: { 201: { $ref: 'FlowAccepted#' }, ...errors(400, 401, 404, 409, 501) },
    },
  }, async (req, reply) => {
    const a = actions();
    const body = req.body;
    if (body.kind === 'cutover' && !body.target) throw new ApiError(400, 'E_BAD_FIELD', 'body.target: required for kind cutover (the standby clone, e.g. web-01-c1)');
    if (body.kind === 'resize' && body.cacheBytes === undefined) throw new ApiError(400, 'E_BAD_FIELD', 'body.cacheBytes: required for kind resize (the new cache capacity in bytes, at least 1048576)');
    if (!a.knowsVm(body.vm)) noVm(backend, body.vm);
    const accepted = await a.start(body);
    return reply.code(201).send(accepted);
  });
  app.post<{ Params: { id: string } }>('/flows/:id/rollback', {
    schema: { summary: 'roll a running flow back', params: S.FlowParams, response: { 202: { $ref: 'RollbackAccepted#' }, ...errors(400, 401, 404, 409, 501) } },
  }, async (req, reply) => {
    const a = actions();
    if (!a.knowsFlow(req.params.id)) throw new ApiError(404, 'E_NO_FLOW', `no flow "${req.params.id}"; GET /flows lists them`);
    return reply.code(202).send(await a.rollback(req.params.id));
  });
}
