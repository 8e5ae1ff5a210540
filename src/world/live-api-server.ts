import { isIP } from 'node:net';
import { InputError } from '../errors.js';
import { parseAddress } from './live-net.js';

/**
 * Where the management API meets real sockets and real time: listening,
 * and the event-loop services its event stream uses. The API itself
 * (src/api) only builds a server; a simulation never listens.
 */

/** What we need of a fastify instance (src/api builds it). */
export interface HttpApp {
  listen(options: { host: string; port: number }): Promise<string>;
  close(): Promise<unknown>;
}

const realSetImmediate = setImmediate;

/** Flush soon (after the current turn) and tick every `ms`: what the SSE hub needs of the real loop. */
export const liveHubTimers = {
  defer(fn: () => void): void {
    realSetImmediate(fn);
  },
  every(ms: number, fn: () => void): { stop(): void } {
    const handle = setInterval(fn, Math.max(1, ms));
    handle.unref();
    return { stop: () => clearInterval(handle) };
  },
};

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1' || host === '0:0:0:0:0:0:0:1';
  return false;
}

/**
 * Check an --api address: HOST:PORT, on loopback unless the operator said
 * --api-public (the API can start and roll back flows: it must not reach a
 * network by accident).
 */
export function checkApiAddress(address: string, allowPublic: boolean, flag = '--api'): { host: string; port: number } {
  const a = parseAddress(address, flag);
  if (a.kind !== 'tcp') throw new InputError('E_BAD_ADDRESS', `${flag}: expected HOST:PORT (e.g. 127.0.0.1:8080), got "${address}"`);
  if (!isLoopback(a.host) && !allowPublic) {
    throw new InputError('E_API_NOT_LOOPBACK', `${flag}: ${a.host} is not a loopback address; the API listens on 127.0.0.1 or ::1 unless you also give --api-public (and then use --api-cert/--api-key)`);
  }
  return { host: a.host, port: a.port };
}

/** Listen; resolves with the base URL clients use (http[s]://host:port). */
export async function listenApi(app: HttpApp, at: { host: string; port: number }, tls: boolean): Promise<string> {
  const bound = await app.listen({ host: at.host, port: at.port });
  const url = new URL(bound);
  url.protocol = tls ? 'https:' : 'http:';
  return url.origin;
}
