import { existsSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { InputError } from '../errors.js';
import { connectError, listenError } from './net-errors.js';
import type { Listener, Net, Transport } from './types.js';

/** "unix:/path" or "host:port" / "[v6]:port" / ":port" / "port". */
export type ParsedAddress = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

export function parseAddress(address: string, field = 'address'): ParsedAddress {
  if (address.startsWith('unix:')) {
    const path = address.slice(5);
    if (!path) throw new InputError('E_BAD_ADDRESS', `${field}: "unix:" needs a socket path, e.g. unix:/tmp/spillway.sock`);
    return { kind: 'unix', path };
  }
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(address) ?? /^()()(\d+)$/.exec(address);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) {
    throw new InputError('E_BAD_ADDRESS', `${field}: "${address}" is not an address; use HOST:PORT (e.g. 127.0.0.1:10809) or unix:/path/to.sock`);
  }
  return { kind: 'tcp', host: m[1] || m[2] || '127.0.0.1', port };
}

export function formatAddress(a: ParsedAddress): string {
  if (a.kind === 'unix') return `unix:${a.path}`;
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** What a net.Socket keeps of its libuv handle (not public API; see onDataLent). */
type SocketWithHandle = net.Socket & { _handle?: { readStop?(): number; reading?: boolean } | null };

class SocketTransport implements Transport {
  closed = false;
  readonly confirmsWritten = true;
  constructor(private socket: net.Socket, readonly localAddress: string, readonly remoteAddress: string) {
    this.watch(socket);
  }
  private watch(socket: net.Socket): void {
    socket.setNoDelay(true);
    socket.on('close', () => { this.closed = true; });
    // Errors surface through onClose(err); an unhandled 'error' would crash the process.
    socket.on('error', () => {});
  }
  /**
   * Node 20 offers `onread` (reads into one reused buffer) only to sockets it creates for connect();
   * an accepted socket reads each chunk into a fresh 64 KiB allocation. Until any byte is read, the
   * accepted socket's handle can be moved to a new Socket built with `onread`: the old Socket lets
   * go of it and is destroyed (which also takes it off the server's connection count).
   */
  onDataLent(cb: (chunk: Buffer) => void, bufferBytes: number): boolean {
    const old = this.socket as SocketWithHandle;
    const handle = old._handle;
    if (!handle || typeof handle.readStop !== 'function' || this.closed || old.destroyed || old.bytesRead > 0
      || old.readableLength > 0 || old.writableLength > 0) return false;
    // Only this transport's own listeners may be attached: they are set up again on the new Socket.
    if (old.listenerCount('close') !== 1 || old.listenerCount('error') !== 1 || old.listenerCount('data') > 0 || old.listenerCount('drain') > 0) return false;
    handle.readStop();
    // The new Socket starts reading only if the handle says it is not reading already.
    handle.reading = false;
    old.removeAllListeners();
    old._handle = null;
    old.on('error', () => {});
    old.destroy();
    const buffer = Buffer.allocUnsafe(bufferBytes);
    // `handle` is accepted by the constructor (net.Server passes it) but missing from @types/node.
    const options = {
      handle,
      readable: true,
      writable: true,
      // true: keep reading (false would pause the socket).
      onread: { buffer, callback: (n: number, b: Uint8Array) => { cb((b as Buffer).subarray(0, n)); return true; } },
    } as net.SocketConstructorOpts;
    const fresh = new net.Socket(options);
    this.socket = fresh;
    this.watch(fresh);
    return true;
  }
  write(data: Uint8Array, onWritten?: () => void): boolean {
    if (this.closed || this.socket.destroyed) return false;
    // After a failed write the socket is torn down; the buffer is simply never handed back.
    return onWritten ? this.socket.write(data, (err) => { if (!err) onWritten(); }) : this.socket.write(data);
  }
  writev(chunks: readonly Uint8Array[], onWritten?: () => void): boolean {
    if (this.closed || this.socket.destroyed) return false;
    // cork/uncork hands the batch to libuv as one writev instead of a syscall per buffer.
    this.socket.cork();
    let ok = true;
    const last = chunks.length - 1;
    for (let i = 0; i <= last; i++) {
      // Writes complete in order, so the last one's callback means the whole batch is out.
      ok = i === last && onWritten ? this.socket.write(chunks[i]!, (err) => { if (!err) onWritten(); }) : this.socket.write(chunks[i]!);
    }
    this.socket.uncork();
    return ok;
  }
  pause(): void {
    this.socket.pause();
  }
  resume(): void {
    this.socket.resume();
  }
  onData(cb: (chunk: Buffer) => void): void {
    this.socket.on('data', cb);
  }
  onDrain(cb: () => void): void {
    this.socket.on('drain', cb);
  }
  onClose(cb: (err?: Error) => void): void {
    if (this.closed) { cb(); return; }
    let lastError: Error | undefined;
    this.socket.on('error', (err) => { lastError = err; });
    this.socket.on('close', () => cb(lastError));
  }
  end(): void {
    this.socket.end();
  }
  destroy(err?: Error): void {
    this.socket.destroy(err);
  }
}

function describe(socket: net.Socket, side: 'local' | 'remote'): string {
  const host = side === 'local' ? socket.localAddress : socket.remoteAddress;
  const port = side === 'local' ? socket.localPort : socket.remotePort;
  return host ? formatAddress({ kind: 'tcp', host, port: port ?? 0 }) : 'unix';
}

/** Real sockets: TCP and unix domain sockets through node:net. */
export class LiveNet implements Net {
  async listen(address: string, onConnection: (t: Transport) => void): Promise<Listener> {
    const parsed = parseAddress(address);
    const server = net.createServer({ noDelay: true }, (socket) => {
      onConnection(new SocketTransport(socket, describe(socket, 'local'), describe(socket, 'remote')));
    });
    if (parsed.kind === 'unix' && existsSync(parsed.path)) unlinkSync(parsed.path);
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(listenError(address, err.message, (err as NodeJS.ErrnoException).code, err)));
      if (parsed.kind === 'unix') server.listen(parsed.path, resolve);
      else server.listen(parsed.port, parsed.host, resolve);
    });
    const bound = server.address();
    const actual = typeof bound === 'object' && bound
      ? formatAddress({ kind: 'tcp', host: bound.address, port: bound.port })
      : address;
    return {
      address: actual,
      close: () => new Promise<void>((resolve) => {
        server.close(() => resolve());
        if (parsed.kind === 'unix' && existsSync(parsed.path)) unlinkSync(parsed.path);
      }),
    };
  }

  connect(address: string): Promise<Transport> {
    const parsed = parseAddress(address);
    return new Promise((resolve, reject) => {
      const socket = parsed.kind === 'unix' ? net.connect(parsed.path) : net.connect(parsed.port, parsed.host);
      socket.once('connect', () => {
        socket.removeAllListeners('error');
        resolve(new SocketTransport(socket, describe(socket, 'local'), address));
      });
      socket.once('error', (err) => reject(connectError(address, err.message, (err as NodeJS.ErrnoException).code, err)));
    });
  }
}
