import swagger from '@fastify/swagger';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { SpillwayError, errorCode } from '../errors.js';
import type { ApiBackend } from './backend.js';
import { tokenChecker } from './auth.js';
import { EventHub, parseFilter, type HubOptions, type HubTimers } from './events.js';
import { ApiMetrics } from './metrics.js';
import { proxyView } from './proxy-figures.js';
import * as S from './schemas.js';
import { FlowConflict } from './sim-flows.js';

export interface ApiAppOptions {
  backend: ApiBackend;
  /** The bearer token every route but /health requires. */
  token: string;
  timers: HubTimers;
  https?: { key: Buffer; cert: Buffer };
  hub?: HubOptions;
}

export interface ApiApp {
  readonly app: FastifyInstance;
  readonly hub: EventHub;
  readonly metrics: ApiMetrics;
  close(): Promise<void>;
}

/** An error the API answers with a status of its own. */
export class ApiError extends SpillwayError {
  constructor(readonly status: number, code: string, message: string) {
    super(code, message);
  }
}

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 401: 'Unauthorized', 404: 'Not Found', 409: 'Conflict', 500: 'Internal Server Error', 501: 'Not Implemented' };

interface AjvError { keyword: string; instancePath: string; params: Record<string, unknown>; message?: string; data?: unknown; parentSchema?: { properties?: Record<string, unknown>; description?: string; pattern?: string } }

/** One validation error as "<where>.<field>: what is allowed, got what". */
function describeValidation(context: string, e: AjvError): string {
  const path = e.instancePath.replace(/^\//, '').replace(/\//g, '.');
  const field = [context, path].filter(Boolean).join('.');
  const got = e.data === undefined ? '' : `, got ${JSON.stringify(e.data)}`;
  switch (e.keyword) {
    case 'required': return `${[field, String(e.params.missingProperty)].join('.')}: required`;
    case 'additionalProperties': {
      const allowed = Object.keys(e.parentSchema?.properties ?? {});
      return `${[field, String(e.params.additionalProperty)].join('.')}: unknown field${allowed.length ? `; allowed: ${allowed.join(', ')}` : ''}`;
    }
    case 'enum': return `${field}: expected one of ${(e.params.allowedValues as unknown[]).join(', ')}${got}`;
    case 'pattern': return `${field}: expected ${e.parentSchema?.description ?? 'a value'} matching ${String(e.params.pattern)}${got}`;
    case 'type': return `${field}: expected ${String(e.params.type)}${got}`;
    case 'minimum': case 'maximum': return `${field}: expected ${String(e.params.comparison)} ${String(e.params.limit)}${got}`;
    default: return `${field}: ${e.message ?? e.keyword}${got}`;
  }
}

function send(reply: FastifyReply, status: number, code: string, message: string): FastifyReply {
  return reply.code(status).send({ statusCode: status, code, error: STATUS_TEXT[status] ?? 'Error', message });
}

/**
 * The management API on fastify: read routes, the SSE event stream,
 * /metrics, the act routes, and the OpenAPI document of all of them. It only
 * builds the server; listening is src/world/live-api-server.ts's job (real
 * sockets live there).
 */
export async function buildApi(options: ApiAppOptions): Promise<ApiApp> {
  const { backend } = options;
  const app = Fastify({
    logger: false,
    ...(options.https ? { https: options.https } : {}),
    // Unknown fields are refused (400), not silently dropped (fastify's default).
    ajv: { customOptions: { verbose: true, allErrors: false, removeAdditional: false } },
  }) as unknown as FastifyInstance;
  const hub = new EventHub(backend.trace, options.timers, options.hub);
  const metrics = new ApiMetrics(() => ({
    proxies: backend.proxies(), onprem: backend.onprem(), wan: backend.wan(), flows: backend.flows(), cloudCalls: backend.cloud().calls,
    nowUs: backend.health().nowUs, traceEvents: backend.trace.count, sseClients: hub.clientCount, sseDropped: hub.dropped,
  }));
  const authorized = tokenChecker(options.token);

  await app.register(swagger, {
    // Components are named by their $id (Vm, Flow, FlowRequest...), not def-0, def-1...
    refResolver: { buildLocalReference: (json, _base, _fragment, i) => String(json.$id ?? `def-${i}`) },
    openapi: {
      openapi: '3.0.3',
      info: { title: 'spillway management API', version: '1', description: 'Read a run, follow its events, scrape its metrics, drive its flows. See docs/api.md.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });
  for (const schema of [S.ErrorBody, S.Health, S.Vm, S.Flow, S.Proxies, S.Wan, S.Cloud, S.Cost, S.FlowRequest, S.FlowAccepted, S.RollbackAccepted]) app.addSchema(schema);

  app.addHook('onRequest', async (req, reply) => {
    if ((req.routeOptions.config as { public?: boolean } | undefined)?.public) return;
    if (!authorized(req.headers.authorization)) {
      reply.header('www-authenticate', 'Bearer realm="spillway"');
      return send(reply, 401, 'E_UNAUTHORIZED', 'missing or wrong bearer token: send "Authorization: Bearer <the token in --api-token-file>"');
    }
  });

  app.setErrorHandler((err: FastifyError, req: FastifyRequest, reply: FastifyReply) => {
    if (err.validation) {
      return send(reply, 400, 'E_BAD_FIELD', err.validation.map((e) => describeValidation(err.validationContext ?? '', e as unknown as AjvError)).join('; '));
    }
    if (err instanceof ApiError) return send(reply, err.status, err.code, err.message);
    if (err instanceof FlowConflict || errorCode(err) === 'E_RUN_ENDED') return send(reply, 409, errorCode(err)!, err.message);
    if (err instanceof SpillwayError && err.code.startsWith('E_BAD')) return send(reply, 400, err.code, err.message);
    if (typeof err.statusCode === 'number' && err.statusCode < 500) return send(reply, err.statusCode, err.code ?? 'E_REQUEST', err.message);
    req.log.error(err);
    return send(reply, 500, errorCode(err) ?? 'E_INTERNAL', err.message);
  });
  app.setNotFoundHandler((req, reply) => send(reply, 404, 'E_NO_ROUTE', `no route ${req.method} ${req.url.split('?')[0]}; the routes are listed in /openapi.json`));

  const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [c, { $ref: 'Error#' }]));
  const noVm = (name: string): never => {
    const known = backend.vms().map((v) => v.name);
    throw new ApiError(404, 'E_NO_VM', `no VM "${name}"; known: ${known.slice(0, 20).join(', ')}${known.length > 20 ? `, … (${known.length})` : ''}`);
  };

  app.get('/openapi.json', { schema: { hide: true }, config: { public: true } }, () => app.swagger());
  app.get('/health', {
    config: { public: true },
    schema: { summary: 'liveness and what is served (no auth)', security: [], response: { 200: { $ref: 'Health#' } } },
  }, () => ({ ok: true, ...backend.health(), events: backend.trace.count, actions: backend.actions !== null }));
  app.get('/vms', {
    schema: { summary: 'every VM: where it runs, its lifecycle machine and state, time in state, boot figures', response: { 200: Type.array('Vm#'), ...errors(401) } },
  }, () => backend.vms());
  app.get<{ Params: { name: string } }>('/vms/:name', {
    schema: { summary: 'one VM', params: S.VmParams, response: { 200: { $ref: 'Vm#' }, ...errors(400, 401, 404) } },
  }, (req) => backend.vm(req.params.name) ?? noVm(req.params.name));
  app.get('/flows', {
    schema: { summary: 'every lifecycle flow: machine, state, outcome, who started it', response: { 200: Type.array('Flow#'), ...errors(401) } },
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
    if (!a.knowsVm(body.vm)) noVm(body.vm);
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

  await app.ready();
  return {
    app, hub, metrics,
    async close() {
      hub.close();
      await app.close();
    },
  };
}

const Type = { array: (ref: string) => ({ type: 'array', items: { $ref: ref } }) };
