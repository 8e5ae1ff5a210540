import { InputError } from '../errors.js';
import { FileStore } from '../proxy/stores/file-store.js';
import { takeLock, type HeldLock } from './lock-file.js';
import { createOnpremProxy } from '../proxy/onprem/index.js';
import { LiveWorld } from '../world/live-world.js';
import { startRelay, type Relay } from '../world/live-relay.js';
import { DEFAULT_MAX_UNAUTHENTICATED } from '../proxy/link/server.js';
import { MAX_FRAME_BYTES_BEFORE_AUTH } from '../proxy/link/wire.js';
import { EXIT_OK, parseCount, parseFlags, type Command, type CommandIo } from './command.js';
import { checkAddress, diskIdFor, parseCompression, parseShaping, readPairKey, requireFlag, type WanShaping } from './serve-options.js';
import { cloudFlagSpec, cloudUsage, parseCloudFlags, startCloudSide, type CloudSide } from './serve-cloud.js';
import { apiFlagSpec, apiUsage, parseApiFlags, startApi, type ApiFlags } from './api-flags.js';
import { ServeBackend } from '../api/serve-backend.js';
import type { OnpremProxy } from '../proxy/onprem/index.js';

const usage = `Usage:
  spillway serve onprem --disk IMAGE [--disk IMAGE…] --listen ADDR --pair-key FILE [--wan-rtt D --wan-mbit N]
                        [--max-unauthenticated N]
  spillway serve cloud  --onprem ADDR --pair-key FILE --nbd ADDR|unix:PATH --cache-dir DIR --cache-size SIZE
                        [--persistence on-prem|cloud-only] [--rpo DURATION] [--wan-rtt D --wan-mbit N]
  spillway serve pair   --disk IMAGE --pair-key FILE --nbd ADDR|unix:PATH --cache-dir DIR --cache-size SIZE [cloud flags]

onprem  serves disk images (raw files) to cloud proxies over the paired,
        encrypted link. Each disk is leased to one writer at a time; the
        order in which each cloud session first reads blocks is recorded per
        image (FIG 22) and streamed to the next cold cloud proxy.
cloud   attaches to an on-prem proxy and serves the disk to VMs over NBD
        (qemu, nbdcopy, nbdinfo, the kernel's nbd-client) through an
        encrypted cache with read-ahead, prefetch and write-behind.
pair    both in one process, for a demo or a test.

${cloudUsage}

${apiUsage}
  (a daemon's API reads its proxies and serves /events and /metrics; it starts no flows)

  --disk IMAGE        a raw disk image file; its disk id is the file name without .img/.raw
  --listen ADDR       where the on-prem link listens: HOST:PORT (e.g. 0.0.0.0:7000)
  --pair-key FILE     the shared pairing key (spillway keygen FILE)
  --wan-rtt D         emulate WAN latency on the link (e.g. 40ms), in userspace
  --wan-mbit N        emulate WAN bandwidth on the link, megabits per second per direction
  --compression LEVEL (onprem) zlib level for link payloads, 0 (off) to 9 (default 1)
  --max-unauthenticated N
                      (onprem) link connections allowed in the handshake at once
                      (default ${DEFAULT_MAX_UNAUTHENTICATED}); past that the oldest is dropped. Before a
                      peer proves the pairing key its frames may be at most
                      ${MAX_FRAME_BYTES_BEFORE_AUTH / 1024} KiB, and it has 10 s to do so

Each side prints the address it serves. SIGINT/SIGTERM stop cleanly: NBD
requests in flight are answered, pending writes are flushed and shipped,
then the link closes.`;

interface Running {
  lines: string[];
  /** A one-line summary printed when stopping. */
  stats?(): string;
  stop(): Promise<void>;
}

async function startRelayIfAsked(shaping: WanShaping | undefined, listen: string, target: string): Promise<Relay | undefined> {
  if (!shaping) return undefined;
  return startRelay({ listen, target, rttUs: shaping.rttUs, rateBytesPerS: shaping.rateBytesPerS });
}

export interface OnpremSide extends Running {
  proxy: OnpremProxy;
  address: string;
  diskIds: string[];
}

/** The on-prem proxy over real image files. With shaping, the link listens privately and a relay serves `listen`. */
export async function startOnpremSide(world: LiveWorld, options: { images: string[]; listen: string; pairingKey: Buffer; shaping?: WanShaping; compressionLevel?: number; maxUnauthenticated?: number }): Promise<OnpremSide> {
  const ids = options.images.map(diskIdFor);
  const dup = ids.find((id, i) => ids.indexOf(id) !== i);
  if (dup) throw new InputError('E_BAD_ARGUMENT', `--disk: two images map to the disk id "${dup}"; rename one of them`);
  const opened: FileStore[] = [];
  const locks: HeldLock[] = [];
  try {
    const disks = [];
    for (const [i, image] of options.images.entries()) {
      const device = await FileStore.open(image, { mustExist: true }).catch((err: Error) => {
        const missing = (err.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
        throw new InputError('E_BAD_DISK', missing
          ? `--disk ${image}: no such file (make a raw image with: qemu-img create -f raw ${image} SIZE)`
          : `--disk ${image}: cannot open: ${err.message}`, { cause: err });
      });
      opened.push(device);
      if (device.size() === 0) throw new InputError('E_BAD_DISK', `--disk ${image}: the image is empty (0 bytes); give it a size with: truncate -s SIZE ${image}`);
      // One on-prem proxy per image: a second would keep its own leases and share the apply journal.
      locks.push(await takeLock(`${image}.spillway-lock`, `serve onprem of ${image}`, `--disk ${image}`));
      // The apply journal makes shipped write groups atomic across an on-prem crash; it lives beside the image.
      const journal = await FileStore.open(`${image}.spillway-journal`, { sizeBytes: 256 * 1024 * 1024 });
      opened.push(journal);
      disks.push({ id: ids[i]!, device, applyJournal: journal });
    }
    const proxy = await createOnpremProxy(world, {
      address: options.shaping ? '127.0.0.1:0' : options.listen,
      pairingKey: options.pairingKey,
      disks,
      ...(options.compressionLevel !== undefined ? { compressionLevel: options.compressionLevel } : {}),
      ...(options.maxUnauthenticated !== undefined ? { maxUnauthenticated: options.maxUnauthenticated } : {}),
    });
    const relay = await startRelayIfAsked(options.shaping, options.listen, proxy.address);
    const address = relay?.address ?? proxy.address;
    return {
      proxy,
      address,
      diskIds: ids,
      lines: [
        `onprem link listening on ${address}${relay ? ` (WAN shaped: ${options.shaping!.rttUs / 1000} ms RTT, ${(options.shaping!.rateBytesPerS * 8) / 1e6} Mbit/s)` : ''}`,
        ...ids.map((id, i) => `onprem disk ${id}: ${options.images[i]}`),
      ],
      async stop() {
        await relay?.close();
        await proxy.close();
        for (const d of opened) {
          await d.flush().catch(() => undefined);
          await d.close();
        }
        for (const l of locks) await l.release();
      },
    };
  } catch (err) {
    for (const d of opened) await d.close().catch(() => undefined);
    for (const l of locks) await l.release();
    throw err;
  }
}

/** Resolves on the first SIGINT or SIGTERM. */
function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    const on = (sig: NodeJS.Signals) => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      resolve(sig);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}

/** The management API over the sides this daemon runs; listed last, so it stops first. */
async function withApi(flags: ApiFlags | null, world: LiveWorld, mode: string, onprem: OnpremSide | null, cloud: CloudSide | null): Promise<Running[]> {
  if (!flags) return [];
  const backend = new ServeBackend({
    mode, world, onprem: onprem?.proxy ?? null,
    clouds: cloud ? [{ name: cloud.name, disk: cloud.diskId, proxy: cloud.proxy }] : [],
  });
  const api = await startApi(flags, backend);
  return [{ lines: api.lines, stop: () => api.close() }];
}

async function runUntilSignal(io: CommandIo, running: Running[]): Promise<number> {
  for (const r of running) for (const line of r.lines) io.out(line);
  io.out('ready (Ctrl-C to stop)');
  const sig = await untilSignal();
  io.err(`${sig}: stopping; answering requests in flight and flushing pending writes… (signal again to exit at once)`);
  // A drain can wait on an unreachable on-prem side forever; a second signal is the operator's way out.
  void untilSignal().then((again) => {
    io.err(`${again}: exiting without finishing; unshipped writes stay in the cloud journal and ship on the next start`);
    process.exit(130);
  });
  // Cloud side first: its NBD server drains and its write-behind ships to on-prem before the link goes away.
  for (const r of [...running].reverse()) {
    const line = r.stats?.();
    if (line) io.err(line);
    await r.stop();
  }
  io.err('stopped cleanly');
  return EXIT_OK;
}

const onpremFlags = {
  disk: { type: 'string', multiple: true },
  listen: { type: 'string' },
  'pair-key': { type: 'string' },
  'wan-rtt': { type: 'string' },
  'wan-mbit': { type: 'string' },
  compression: { type: 'string' },
  'max-unauthenticated': { type: 'string' },
  ...apiFlagSpec,
} as const;

export const serveCommand: Command = {
  name: 'serve',
  summary: 'serve a real disk through the proxy pair (onprem | cloud | pair)',
  usage,
  async run(args, io) {
    const [mode, ...rest] = args;
    const world = new LiveWorld(undefined, (line) => io.err(line));
    world.logLevel = process.env.SPILLWAY_LOG === 'debug' ? 'debug' : 'warn';
    switch (mode) {
      case 'onprem': {
        const { values, positionals } = parseFlags(rest, onpremFlags, usage, false);
        void positionals;
        const images = values.disk ?? [];
        if (images.length === 0) throw new InputError('E_MISSING_ARGUMENT', `--disk IMAGE is required (a raw disk image file)\n\n${usage}`);
        const listen = checkAddress(requireFlag(values.listen, '--listen', 'where the link listens, e.g. 0.0.0.0:7000'), '--listen');
        const pairingKey = await readPairKey(values['pair-key']);
        const shaping = parseShaping(values['wan-rtt'], values['wan-mbit']);
        const compressionLevel = parseCompression(values.compression);
        const maxUnauthenticated = parseCount(values['max-unauthenticated'], '--max-unauthenticated', 1, 65_536);
        const apiFlags = parseApiFlags(values);
        const onprem = await startOnpremSide(world, {
          images, listen, pairingKey, ...(shaping ? { shaping } : {}), ...(compressionLevel !== undefined ? { compressionLevel } : {}),
          ...(maxUnauthenticated !== undefined ? { maxUnauthenticated } : {}),
        });
        return runUntilSignal(io, [onprem, ...await withApi(apiFlags, world, 'onprem', onprem, null).catch(async (err) => { await onprem.stop(); throw err; })]);
      }
      case 'cloud': {
        const { values } = parseFlags(rest, { ...cloudFlagSpec, ...apiFlagSpec, onprem: { type: 'string' }, 'wan-rtt': { type: 'string' }, 'wan-mbit': { type: 'string' } }, usage, false);
        const apiFlags = parseApiFlags(values);
        const onpremAddress = checkAddress(requireFlag(values.onprem, '--onprem', 'the on-prem link address, e.g. onprem.example:7000'), '--onprem');
        const pairingKey = await readPairKey(values['pair-key']);
        const cloud = parseCloudFlags(values);
        const shaping = parseShaping(values['wan-rtt'], values['wan-mbit']);
        const relay = await startRelayIfAsked(shaping, '127.0.0.1:0', onpremAddress);
        try {
          const side = await startCloudSide(world, { ...cloud, onprem: relay?.address ?? onpremAddress, pairingKey });
          const api = await withApi(apiFlags, world, 'cloud', null, side).catch(async (err) => { await side.stop(); throw err; });
          return await runUntilSignal(io, [{ lines: [], stop: async () => { await relay?.close(); } }, side, ...api]);
        } catch (err) {
          await relay?.close();
          throw err;
        }
      }
      case 'pair': {
        const { values } = parseFlags(rest, { ...cloudFlagSpec, ...apiFlagSpec, disk: { type: 'string' }, 'wan-rtt': { type: 'string' }, 'wan-mbit': { type: 'string' } }, usage, false);
        const apiFlags = parseApiFlags(values);
        const image = requireFlag(values.disk, '--disk', 'the raw disk image to serve');
        const pairingKey = await readPairKey(values['pair-key']);
        const cloud = parseCloudFlags(values);
        const shaping = parseShaping(values['wan-rtt'], values['wan-mbit']);
        const onprem = await startOnpremSide(world, {
          images: [image], listen: '127.0.0.1:0', pairingKey, ...(shaping ? { shaping } : {}),
          ...(cloud.compressionLevel !== undefined ? { compressionLevel: cloud.compressionLevel } : {}),
        });
        try {
          const side = await startCloudSide(world, { ...cloud, onprem: onprem.address, pairingKey, disk: onprem.diskIds[0]! });
          const api = await withApi(apiFlags, world, 'pair', onprem, side).catch(async (err) => { await side.stop(); throw err; });
          return await runUntilSignal(io, [onprem, side, ...api]);
        } catch (err) {
          await onprem.stop();
          throw err;
        }
      }
      case undefined:
        throw new InputError('E_MISSING_ARGUMENT', `serve needs a side: onprem, cloud or pair\n\n${usage}`);
      default:
        throw new InputError('E_BAD_ARGUMENT', `serve: unknown side "${mode}"; use onprem, cloud or pair\n\n${usage}`);
    }
  },
};
