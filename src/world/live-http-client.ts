import http from 'node:http';
import https from 'node:https';
import { createParser } from 'eventsource-parser';
import { SpillwayError } from '../errors.js';

/**
 * The client side of the management API (the `flow` verbs, `tui --attach`):
 * real sockets, so it lives under src/world/live*.
 */
export interface ApiEndpoint {
  /** Base URL, e.g. http://127.0.0.1:8080 */
  url: string;
  token: string;
  /** PEM CA to trust for an https URL with a self-signed certificate. */
  ca?: Buffer;
}

export interface ApiResponse {
  status: number;
  body: unknown;
}

function requestFn(url: URL): typeof http.request {
  if (url.protocol === 'https:') return https.request;
  if (url.protocol === 'http:') return http.request;
  throw new SpillwayError('E_BAD_URL', `expected an http:// or https:// API URL, got "${url.href}"`);
}

function options(ep: ApiEndpoint, method: string, headers: Record<string, string>): http.RequestOptions & https.RequestOptions {
  return { method, headers: { authorization: `Bearer ${ep.token}`, ...headers }, ...(ep.ca ? { ca: ep.ca } : {}) };
}

/** One JSON request; resolves with the status and the parsed body (whatever the status). */
export function apiRequest(ep: ApiEndpoint, method: string, path: string, body?: unknown, timeoutMs = 60_000): Promise<ApiResponse> {
  const url = new URL(path, ep.url);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = requestFn(url)(url, options(ep, method, payload === undefined ? {} : { 'content-type': 'application/json' }), (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = text;
        try { parsed = text ? JSON.parse(text) : null; } catch { /* a text body (metrics) stays text */ }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new SpillwayError('E_TIMEOUT', `no answer from ${url.origin} within ${timeoutMs / 1000} s`)));
    req.on('error', (err) => reject(new SpillwayError('E_API_UNREACHABLE', `cannot reach the API at ${url.origin}: ${err.message}`, { cause: err })));
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

export interface StreamHandlers {
  onEvent(id: number | null, type: string, data: string): void;
  /** The stream ended: `err` when it broke, nothing when the server closed it. */
  onEnd(err?: Error): void;
}

/** Follow GET /events after `lastEventId`; with none, from the oldest kept event, or from now when `fromNow`. A `since` in `query` wins. */
export function openEventStream(ep: ApiEndpoint, query: string, lastEventId: number | null, h: StreamHandlers, fromNow = false): { close(): void } {
  const url = new URL(`/events${query}`, ep.url);
  if (lastEventId === null && !fromNow && !url.searchParams.has('since')) url.searchParams.set('since', '0');
  const headers: Record<string, string> = { accept: 'text/event-stream' };
  if (lastEventId !== null) headers['last-event-id'] = String(lastEventId);
  let ended = false;
  const end = (err?: Error): void => {
    if (ended) return;
    ended = true;
    h.onEnd(err);
  };
  const parser = createParser({
    onEvent: (ev) => h.onEvent(ev.id === undefined ? null : Number(ev.id), ev.event ?? 'message', ev.data),
  });
  const req = requestFn(url)(url, options(ep, 'GET', headers), (res) => {
    if (res.statusCode !== 200) {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => end(new SpillwayError('E_API_REFUSED', `GET /events: ${res.statusCode}: ${Buffer.concat(chunks).toString('utf8').slice(0, 300)}`)));
      return;
    }
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => parser.feed(chunk));
    res.on('end', () => end());
    res.on('error', (err) => end(err));
  });
  req.on('error', (err) => end(err));
  req.end();
  return { close: () => { ended = true; req.destroy(); } };
}
