import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { createCloudProxy, type CloudProxy } from '../proxy/cloud/index.js';
import { FileStore } from '../proxy/stores/file-store.js';
import { SecureCache } from '../proxy/layers/secure-cache.js';
import { indexStoreBytes } from '../proxy/layers/cache-index.js';
import { LinkClient } from '../proxy/link/client.js';
import { takeLock } from './lock-file.js';
import { DEFAULT_HANDSHAKE_TIMEOUT_US, DEFAULT_MAX_CONNECTIONS, NbdServer } from '../proxy/nbd/index.js';
import { formatDurationUs, parseDurationUs } from '../util/units.js';
import { parseCount } from './command.js';
import { PersistentBitmap } from '../proxy/stores/persistent-bitmap.js';
import type { LiveWorld } from '../world/live-world.js';
import { checkAddress, parseCacheSize, parseCompression, parsePersistence, parsePositiveDurationUs, parseRpoUs, requireFlag } from './serve-options.js';

/** As a SCSI disk's command timeout: long enough for a reconnect, short enough that a guest sees an error, not a hang. */
const DEFAULT_READ_TIMEOUT_US = 30_000_000;

export const cloudUsage = `Cloud flags:
  --nbd ADDR|unix:PATH  where VMs attach over NBD (e.g. unix:/run/spillway.sock or 127.0.0.1:10809)
  --disk ID             (cloud) which on-prem disk to attach; serve onprem prints the ids
  --cache-dir DIR       the encrypted cache and the write-behind journal live here
  --cache-size SIZE     cache capacity, e.g. 20GiB
  --persistence MODE    on-prem (default: writes ship back within the RPO) or cloud-only
  --rpo DURATION        ship pending writes at least this often (default 30s)
  --name NAME           this cloud proxy's identity on the link (default cloud-<disk id>)
  --read-only           export the disk read-only over NBD
  --compression LEVEL   zlib level for link payloads, 0 (off) to 9 (default 1)
  --take-over           become the disk's writer although the last cloud proxy did not
                        end cleanly: the writes it had not shipped are given up
  --read-timeout DURATION
                        a guest read that needs on-prem fails with EIO after this long
                        without an answer, e.g. while the link is down (default ${formatDurationUs(DEFAULT_READ_TIMEOUT_US)};
                        0 waits for the link however long it takes)
  --nbd-max-connections N
                        NBD connections at once (default ${DEFAULT_MAX_CONNECTIONS}); past that the oldest
                        still in the handshake is closed, or the new one refused
  --nbd-handshake-timeout DURATION
                        close an NBD connection that has not chosen an export
                        within this long (default ${formatDurationUs(DEFAULT_HANDSHAKE_TIMEOUT_US)})`;

export const cloudFlagSpec = {
  nbd: { type: 'string' },
  disk: { type: 'string' },
  'pair-key': { type: 'string' },
  'cache-dir': { type: 'string' },
  'cache-size': { type: 'string' },
  persistence: { type: 'string' },
  rpo: { type: 'string' },
  name: { type: 'string' },
  'read-only': { type: 'boolean' },
  compression: { type: 'string' },
  'take-over': { type: 'boolean' },
  'read-timeout': { type: 'string' },
  'nbd-max-connections': { type: 'string' },
  'nbd-handshake-timeout': { type: 'string' },
} as const;

export interface CloudFlags {
  nbd: string;
  disk: string | undefined;
  cacheDir: string;
  cacheSizeBytes: number;
  persistence: 'on-prem' | 'cloud-only';
  rpoUs: number | undefined;
  name: string | undefined;
  readOnly: boolean;
  compressionLevel: number | undefined;
  takeOver: boolean;
  /** 0: no deadline. */
  readTimeoutUs: number;
  nbdMaxConnections: number | undefined;
  nbdHandshakeTimeoutUs: number | undefined;
}

export function parseCloudFlags(values: { nbd?: string; disk?: string; 'cache-dir'?: string; 'cache-size'?: string; persistence?: string; rpo?: string; name?: string; 'read-only'?: boolean; compression?: string; 'take-over'?: boolean; 'read-timeout'?: string; 'nbd-max-connections'?: string; 'nbd-handshake-timeout'?: string }): CloudFlags {
  return {
    nbd: checkAddress(requireFlag(values.nbd, '--nbd', 'where VMs attach, e.g. unix:/tmp/spillway.sock or 127.0.0.1:10809'), '--nbd'),
    disk: values.disk,
    cacheDir: requireFlag(values['cache-dir'], '--cache-dir', 'a directory for the encrypted cache and the write journal'),
    cacheSizeBytes: parseCacheSize(values['cache-size']),
    persistence: parsePersistence(values.persistence),
    rpoUs: parseRpoUs(values.rpo),
    name: values.name,
    readOnly: values['read-only'] ?? false,
    compressionLevel: parseCompression(values.compression),
    takeOver: values['take-over'] ?? false,
    readTimeoutUs: values['read-timeout'] === undefined ? DEFAULT_READ_TIMEOUT_US : parseDurationUs(values['read-timeout'], '--read-timeout'),
    nbdMaxConnections: parseCount(values['nbd-max-connections'], '--nbd-max-connections', 1, 65_536),
    nbdHandshakeTimeoutUs: parsePositiveDurationUs(values['nbd-handshake-timeout'], '--nbd-handshake-timeout'),
  };
}

export interface CloudSide {
  /** The proxy's name on the link and the disk it serves. */
  name: string;
  diskId: string;
  proxy: CloudProxy;
  nbd: NbdServer;
  nbdAddress: string;
  lines: string[];
  stats(): string;
  stop(): Promise<void>;
}

const JOURNAL_BYTES = 512 * 1024 * 1024;
const BLOCK_BYTES = 4096;
const PREFETCH_BLOCK_BYTES = 64 * 1024;
const PREFETCH_DEPTH = 8;
const READ_AHEAD_BYTES = 768 * 1024;

/** The disk's size, from a short read-only attach: the write store must match it before the proxy opens. */
async function probeDiskSize(world: LiveWorld, onprem: string, pairingKey: Buffer, disk: string, peer: string): Promise<number> {
  const link = new LinkClient(world, { address: onprem, pairingKey, peer: `${peer}/probe`, maxReconnectAttempts: 1 });
  try {
    await link.connect();
    const remote = await link.attach(disk, { mode: 'ro' });
    const size = remote.size();
    await remote.close().catch(() => undefined);
    return size;
  } finally {
    await link.close().catch(() => undefined);
  }
}

/**
 * The cloud proxy, live: stores are sparse files under --cache-dir (the sealed
 * cache and its index survive, so a restart over the same dir is warm; the
 * write journal survives and ships what it holds), and the device is served
 * over NBD.
 */
export async function startCloudSide(world: LiveWorld, options: CloudFlags & { onprem: string; pairingKey: Buffer }): Promise<CloudSide> {
  const diskId = options.disk;
  if (!diskId) throw new InputError('E_MISSING_ARGUMENT', '--disk ID is required: which on-prem disk to attach (serve onprem prints "onprem disk ID: IMAGE")');
  const name = options.name ?? `cloud-${diskId}`;
  await mkdir(options.cacheDir, { recursive: true });
  // One cloud proxy per cache dir: two would append to one journal.
  const lock = await takeLock(join(options.cacheDir, `${diskId}.lock`), `serve cloud of disk ${diskId}`, `--cache-dir ${options.cacheDir}`);
  const files: FileStore[] = [];
  let sizeBytes: number;
  try {
    sizeBytes = await probeDiskSize(world, options.onprem, options.pairingKey, diskId, name);
  } catch (err) {
    await lock.release();
    throw err;
  }
  const file = async (base: string, bytes: number) => {
    const f = await FileStore.open(join(options.cacheDir, base), { sizeBytes: bytes });
    files.push(f);
    return f;
  };
  let proxy: CloudProxy | undefined;
  try {
    const cacheBytes = SecureCache.storeBytes(options.cacheSizeBytes, BLOCK_BYTES);
    const stores = {
      writeStore: await file(`${diskId}.writes`, sizeBytes),
      writeMap: await file(`${diskId}.writes.map`, Math.max(4096, PersistentBitmap.bytesFor(Math.ceil(sizeBytes / BLOCK_BYTES)))),
      journal: await file(`${diskId}.journal`, JOURNAL_BYTES),
      cache: await file(`${diskId}.cache`, cacheBytes),
      cacheIndex: await file(`${diskId}.cache.index`, indexStoreBytes(Math.ceil(options.cacheSizeBytes / BLOCK_BYTES))),
    };
    proxy = await createCloudProxy(world, {
      name,
      onprem: options.onprem,
      pairingKey: options.pairingKey,
      disk: { id: diskId, persistence: options.persistence },
      stores,
      cacheCapacityBytes: options.cacheSizeBytes,
      blockBytes: BLOCK_BYTES,
      ...(options.rpoUs !== undefined ? { rpoUs: options.rpoUs } : {}),
      ...(options.compressionLevel !== undefined ? { compressionLevel: options.compressionLevel } : {}),
      ...(options.takeOver ? { takeOver: true } : {}),
      ...(options.readTimeoutUs > 0 ? { readTimeoutUs: options.readTimeoutUs } : {}),
      // Across a WAN a VM reads one request at a time, so a foreground read is nearly always in
      // flight: background fetches must not wait for a gap, and must be big and deep enough to
      // fill the bandwidth-delay product (8 x 64 KiB covers 100 Mbit/s at 40 ms).
      prefetch: { blockBytes: PREFETCH_BLOCK_BYTES, maxConcurrent: PREFETCH_DEPTH, yieldToForeground: false },
      // A raw image gives on-prem no file layout, so no FIG 23 group pushes: read-ahead does that work.
      // One round trip costs as much as a bandwidth-delay product of bytes (~512 KiB at 100 Mbit/s x
      // 40 ms), so a new stream reads that far ahead at once, and a bit more: a window that ends
      // before the stream does costs a stall. Modeled (bench proxy-wan "live trace", cold no profile):
      // 256 KiB 15.1 s, 512 KiB 11.7 s, 768 KiB 10.8 s, 1 MiB 11.0 s; live 768 vs 512 KiB: 11.9-12.7 vs
      // 13.2-14.3 s, for 1.30 vs 1.04 wire bytes per guest byte.
      readAhead: { minWindowBytes: READ_AHEAD_BYTES, maxWindowBytes: READ_AHEAD_BYTES, firstWindowBytes: READ_AHEAD_BYTES },
    });
    const nbd = new NbdServer(world, {
      exports: [{ name: diskId, device: proxy.device, description: `spillway cloud proxy for on-prem disk ${diskId}`, readOnly: options.readOnly }],
      src: `proxy/cloud/${name}/nbd`,
      ...(options.nbdMaxConnections !== undefined ? { maxConnections: options.nbdMaxConnections } : {}),
      ...(options.nbdHandshakeTimeoutUs !== undefined ? { handshakeTimeoutUs: options.nbdHandshakeTimeoutUs } : {}),
    });
    const listener = await nbd.listen(options.nbd);
    const p = proxy;
    return {
      name,
      diskId,
      proxy: p,
      nbd,
      nbdAddress: listener.address,
      lines: [
        `cloud proxy ${name} attached disk ${diskId} (${sizeBytes} bytes) via ${options.onprem}, persistence ${options.persistence}`,
        `nbd serving on ${listener.address} export ${diskId} (e.g. nbdinfo ${nbdUri(listener.address, diskId)})`,
      ],
      stats() {
        const s = p.link.stats;
        return `cloud proxy ${name} stats: guest read ${p.guestBytes()} bytes, nbd requests ${nbd.stats.requests}, link bytes ${p.wireBytes()}, `
          + `profile blocks ${p.remote.profileBlocks}, pushes received ${s.pushesReceived} (${s.pushBytes} bytes), cache used ${p.cache.stats().usedBytes} bytes, `
          + `remote ${JSON.stringify(p.remote.stats)}, prefetch ${JSON.stringify(p.prefetch.stats())}, read path ${JSON.stringify(p.readPath.counters)}`;
      },
      async stop() {
        // NBD first: requests in flight are answered, then acknowledged writes ship on-prem before the link closes.
        await nbd.close();
        await p.device.flush();
        if (options.persistence === 'on-prem') await p.drain();
        await p.close();
        for (const f of files) await f.close().catch(() => undefined);
        await lock.release();
      },
    };
  } catch (err) {
    await proxy?.close().catch(() => undefined);
    for (const f of files) await f.close().catch(() => undefined);
    await lock.release();
    throw err;
  }
}

export function nbdUri(address: string, exportName: string): string {
  if (address.startsWith('unix:')) return `nbd+unix:///${exportName}?socket=${address.slice(5)}`;
  return `nbd://${address}/${exportName}`;
}
