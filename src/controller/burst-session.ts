import { createCloudProxy, memoryCloudStores, type CloudProxy } from '../proxy/cloud/index.js';
import type { BurstPolicy } from '../scenario/schema.js';
import { replayReads } from '../sim/guest/boot-profile.js';
import type { GuestImage } from '../sim/guest/image.js';
import type { Rng, World } from '../world/types.js';

/** One acknowledged guest write (kept only when the controller is asked to record them). */
export interface AckedWrite {
  offset: number;
  data: Buffer;
}

/** What a burst VM measured while it ran in the cloud (report.burst.vms.<vm>). */
export interface SessionFigures {
  bootUs: number;
  bootReads: number;
  bootBytes: number;
  bootWorkingSetBytes: number;
  guestBytesRead: number;
  guestBytesWritten: number;
  cacheHits: number;
  cacheMisses: number;
  prefetchHits: number;
  prefetchCompleted: number;
  wireBytes: number;
  writeBack: { lagUs: number; backlogBytes: number; etaUs: number | null; bytesShipped: number };
  /** Mean read latency of the application I/O through the proxy (the monitoring's "cloud storage latency"). */
  meanReadLatencyUs: number;
}

const BLOCK = 4096;
/** Cloud cache block of a burst VM: 16 KiB quarters the per-block seals, hashes and index entries of 4 KiB for ~9% more WAN bytes (read amplification), measured on quarter-end. */
const CACHE_BLOCK_BYTES = 16 * 1024;
/** Largest coarsened application I/O operation. */
const COARSE_OP_BYTES = 256 * 1024;

/**
 * The data path of one burst VM: a cloud proxy on its boot disk connected over
 * the emulated WAN to the on-prem proxy, the boot profile replayed through the
 * proxy's storage-target device, then coarsened application I/O (a batch of
 * `policy.io.ops` reads and writes every `policy.io.everyUs`) with write-behind
 * shipping to on-prem.
 */
export class BurstSession {
  proxy: CloudProxy | null = null;
  readonly acked: AckedWrite[] = [];
  private bootFigures = { bootUs: 0, bootReads: 0, bootBytes: 0, bootWorkingSetBytes: 0 };
  private written = 0;
  private readLatencySumUs = 0;
  private readCount = 0;
  private stopped = false;
  private ioChain: Promise<void> = Promise.resolve();
  private ioTimer: { cancel(): void } | null = null;
  private last: SessionFigures | null = null;

  constructor(
    private readonly world: World,
    readonly vmId: string,
    readonly diskId: string,
    private readonly diskBytes: number,
    private readonly image: GuestImage,
    private readonly imageId: string,
    private readonly policy: BurstPolicy,
    private readonly onprem: string,
    private readonly pairingKey: string,
    private readonly rng: Rng,
    private readonly recordWrites: boolean,
  ) {}

  /** Attach the cloud proxy and boot through it; resolves when the guest's boot reads are done. */
  async boot(): Promise<void> {
    const p = this.policy;
    this.proxy = await createCloudProxy(this.world, {
      name: this.vmId, onprem: this.onprem, pairingKey: this.pairingKey,
      disk: { id: this.diskId, image: this.imageId, persistence: p.defaultPersistence },
      stores: memoryCloudStores(this.vmId, this.diskBytes, { journalBytes: 64 * 1024 * 1024 }),
      cacheCapacityBytes: p.cache.sizeBytes,
      blockBytes: CACHE_BLOCK_BYTES,
      streamProfile: p.prefetch,
      rpoUs: p.writeBack.rpoUs,
    });
    const profile = this.image.bootFor(this.vmId);
    const start = this.world.clock.nowUs();
    const r = await replayReads(this.world, this.proxy.device, profile.reads, { depth: p.boot.depth, thinkUs: p.boot.thinkUs });
    this.bootFigures = { bootUs: this.world.clock.nowUs() - start, bootReads: r.reads, bootBytes: r.bytes, bootWorkingSetBytes: profile.uniqueBytes };
  }

  /** Start the coarsened application I/O. */
  startIo(): void {
    if (this.policy.io.ops === 0) return;
    const loop = (): void => {
      if (this.stopped) return;
      this.ioChain = this.ioChain.then(() => this.ioBatch()).catch((err: unknown) => {
        this.world.log('warn', `controller/${this.vmId}`, `application I/O failed: ${(err as Error).message}`);
      });
      this.ioTimer = this.world.clock.schedule(this.policy.io.everyUs, loop);
    };
    loop();
  }

  private async ioBatch(): Promise<void> {
    // The monitoring's latency is the last batch's, so a VM whose WAN recovers is judged on now, not on its history.
    this.readLatencySumUs = 0;
    this.readCount = 0;
    const dev = this.proxy!.device;
    const blocks = Math.floor(this.diskBytes / BLOCK);
    // The period's bytes are drawn as `ops` operations of 4-64 KiB (60% reads) and then
    // issued as few operations of up to COARSE_OP_BYTES each: the same bytes per hour and
    // read/write mix through the same proxy, without paying per-operation costs 32 times.
    let readBlocks = 0;
    let writeBlocks = 0;
    for (let i = 0; i < this.policy.io.ops; i++) {
      const n = this.rng.int(1, 17);
      if (this.rng.chance(0.6)) readBlocks += n;
      else writeBlocks += n;
    }
    const perOp = COARSE_OP_BYTES / BLOCK;
    while ((readBlocks > 0 || writeBlocks > 0) && !this.stopped) {
      if (readBlocks > 0) {
        const n = Math.min(perOp, readBlocks);
        readBlocks -= n;
        const offset = this.rng.int(0, blocks - perOp) * BLOCK;
        const t0 = this.world.clock.nowUs();
        await dev.read(offset, n * BLOCK);
        this.readLatencySumUs += this.world.clock.nowUs() - t0;
        this.readCount++;
      }
      if (writeBlocks > 0 && !this.stopped) {
        const n = Math.min(perOp, writeBlocks);
        writeBlocks -= n;
        const length = n * BLOCK;
        const offset = this.rng.int(0, blocks - perOp) * BLOCK;
        const data = Buffer.allocUnsafe(length);
        for (let k = 0; k < length; k += 4) data.writeUInt32LE(this.rng.u32(), k);
        await dev.write(offset, data);
        this.written += length;
        if (this.recordWrites) this.acked.push({ offset, data });
      }
    }
  }

  /** Reverse: stop the I/O, ship every acknowledged write home, release the lease. */
  async reverse(): Promise<void> {
    this.stopped = true;
    this.ioTimer?.cancel();
    await this.ioChain;
    if (!this.proxy) return;
    await this.proxy.drain();
    this.last = this.figures();
    await this.proxy.close();
  }

  figures(): SessionFigures {
    if (this.last) return this.last;
    const proxy = this.proxy;
    const cache = proxy?.cache.stats();
    const pf = proxy?.prefetch.stats();
    const wb = proxy?.writeBehind.stats();
    return {
      ...this.bootFigures,
      guestBytesRead: proxy?.guestBytes() ?? 0,
      guestBytesWritten: this.written,
      cacheHits: cache?.hits ?? 0,
      cacheMisses: cache?.misses ?? 0,
      prefetchHits: cache?.prefetchHits ?? 0,
      prefetchCompleted: pf?.completedBlocks ?? 0,
      wireBytes: proxy?.wireBytes() ?? 0,
      writeBack: { lagUs: wb?.lagUs ?? 0, backlogBytes: wb?.backlogBytes ?? 0, etaUs: wb?.etaUs ?? null, bytesShipped: wb?.bytesShipped ?? 0 },
      meanReadLatencyUs: this.readCount ? this.readLatencySumUs / this.readCount : 0,
    };
  }
}
