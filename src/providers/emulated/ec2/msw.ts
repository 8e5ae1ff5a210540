import { http, HttpResponse } from 'msw';
import { setupServer } from 'msw/node';
import { invariant } from '../../../errors.js';
import type { World } from '../../../world/types.js';
import type { Ec2Model } from './model.js';
import { Ec2ApiError, errorXml, parseQueryBody, successXml } from './query.js';

/**
 * msw serves emulated EC2 endpoints to the real SDK client. `setupServer`
 * patches node:http(s) for the whole process, so there is one server per
 * process and each model (or replayed recording) registers its own hostname
 * under `.spillway.invalid`; several simulations can share a process.
 *
 * msw slows every node:http request in its process (NOTES.md): only
 * simulation and test processes may import this module, never a process that
 * carries the proxy data path.
 */

export interface WireResponse {
  status: number;
  body: string;
}

/** Answers one form-encoded request body. */
export type Responder = (body: string) => WireResponse | Promise<WireResponse>;

export const EMULATED_DOMAIN = 'spillway.invalid';

const responders = new Map<string, Responder>();
let server: ReturnType<typeof setupServer> | undefined;
let endpointCounter = 0;

function ensureServer(): void {
  if (server) return;
  // The SDK must never wander off to the instance metadata service for credentials.
  process.env.AWS_EC2_METADATA_DISABLED = 'true';
  const created = setupServer(
    http.post(/^https:\/\/[a-z0-9.-]+\.spillway\.invalid(:\d+)?\//, async ({ request }) => {
      const responder = responders.get(new URL(request.url).hostname);
      if (!responder) return undefined;
      const reply = await responder(await request.text());
      // EC2 also sends the request id as a header; the SDK reads it from there into $metadata.
      const requestId = /<(?:requestId|RequestID)>([^<]+)</.exec(reply.body)?.[1];
      return new HttpResponse(reply.body, {
        status: reply.status,
        headers: { 'content-type': 'text/xml;charset=UTF-8', ...(requestId ? { 'x-amzn-requestid': requestId } : {}) },
      });
    }),
  );
  created.listen({ onUnhandledRequest: 'error' });
  server = created;
}

/**
 * Serve `responder` at a fresh hostname; returns the endpoint URL and a
 * function that removes it (the server closes when the last one goes).
 */
export function registerEndpoint(kind: string, responder: Responder): { endpoint: string; release: () => void } {
  invariant(/^[a-z0-9-]+$/.test(kind), `endpoint kind must be a DNS label, got ${kind}`);
  ensureServer();
  endpointCounter++;
  const host = `${kind}.m${endpointCounter}.${EMULATED_DOMAIN}`;
  responders.set(host, responder);
  let released = false;
  return {
    endpoint: `https://${host}`,
    release: () => {
      if (released) return;
      released = true;
      responders.delete(host);
      if (responders.size === 0 && server) {
        server.close();
        server = undefined;
      }
    },
  };
}

/** The responder for a stateful model: Query in, AWS-shaped XML out. */
export function modelResponder(world: World, model: Ec2Model): Responder {
  return (body) => {
    const requestId = model.newRequestId();
    let action = '';
    try {
      const parsed = parseQueryBody(body);
      action = parsed.action;
      if (parsed.version !== undefined && parsed.version !== '2016-11-15') {
        throw new Ec2ApiError('InvalidParameterValue', `Value (${parsed.version}) for parameter Version is invalid. Only 2016-11-15 is served.`, 400);
      }
      return { status: 200, body: successXml(action, requestId, model.handle(action, parsed.tree)) };
    } catch (err) {
      if (err instanceof Ec2ApiError) return { status: err.status, body: errorXml(err.code, err.message, requestId) };
      // A bug in the model must not look like a cloud error a machine would retry forever.
      world.log('error', 'cloud/ec2-emulator', `model failed on ${action}: ${err instanceof Error ? err.message : String(err)}`);
      return { status: 500, body: errorXml('InternalError', `emulator bug: ${err instanceof Error ? err.message : String(err)}`, requestId) };
    }
  };
}
