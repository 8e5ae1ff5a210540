import swagger from '@fastify/swagger';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { isBadInputCode } from '../error-codes.js';
import { SpillwayError, errorCode } from '../errors.js';
import type { ApiBackend } from './backend.js';
import { tokenChecker } from './auth.js';
import { ApiError } from './errors.js';
import { EventHub, type HubOptions, type HubTimers } from './events.js';
import { ApiMetrics } from './metrics.js';
import { actRoutes, readRoutes, streamRoutes } from './routes.js';
import * as S from './schemas.js';
import { FlowConflict } from '../sim/operator-flows.js';

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

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 404: 'Not Found', 409: 'Conflict', 413: 'Payload Too Large', 415: 'Unsupported Media Type', 500: 'Internal Server Error', 501: 'Not Implemented',
};

/** fastify's own refusals of a request body (FST_ERR_CTP_*), as our codes and a message that names the part. */
function requestError(status: number, message: string, contentType: string | undefined): [string, string] {
  switch (status) {
    case 400: return ['E_BAD_BODY', `body: ${message}; expected a JSON object (see /openapi.json)`];
    case 413: return ['E_BODY_TOO_LARGE', `body: ${message}`];
    case 415: return ['E_BAD_MEDIA_TYPE', `content-type: expected application/json, got "${contentType ?? ''}"`];
    default: return ['E_REQUEST', message];
  }
}

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
    if (err instanceof SpillwayError && isBadInputCode(err.code)) return send(reply, 400, err.code, err.message);
    if (typeof err.statusCode === 'number' && err.statusCode < 500) return send(reply, err.statusCode, ...requestError(err.statusCode, err.message, req.headers['content-type']));
    req.log.error(err);
    return send(reply, 500, errorCode(err) ?? 'E_UNKNOWN', err.message);
  });
  app.setNotFoundHandler((req, reply) => send(reply, 404, 'E_NO_ROUTE', `no route ${req.method} ${req.url.split('?')[0]}; the routes are listed in /openapi.json`));

  readRoutes(app, backend);
  streamRoutes(app, hub, metrics);
  actRoutes(app, backend);

  await app.ready();
  return {
    app, hub, metrics,
    async close() {
      hub.close();
      await app.close();
    },
  };
}

