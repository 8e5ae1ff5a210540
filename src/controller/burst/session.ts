import type { BlockDevice } from '../../proxy/block-device.js';
import type { CloudProxy } from '../../proxy/cloud/index.js';
import type { BurstPolicy } from '../../scenario/schema.js';
import { fillRandom } from '../../providers/emulated/guest/content.js';
import type { Rng, World } from '../../world/types.js';

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
/** Largest coarsened application I/O operation. */
const COARSE_OP_BYTES = 256 * 1024;

/**
 * The application I/O of one burst VM, against its storage target's device
 * (CoreProxyControl.targetDevice): a batch of `policy.io.ops` reads and
 * writes every `policy.io.everyUs`, coarsened into few large operations.
 * Writes are acknowledged by write-behind and ship home on its schedule.
 */
export class AppIo {
  readonly acked: AckedWrite[] = [];
  written = 0;
  private readLatencySumUs = 0;
  private readCount = 0;
  private stopped = false;
  private ioChain: Promise<void> = Promise.resolve();
  private ioTimer: { cancel(): void } | null = null;

  constructor(
    private readonly world: World,
    readonly vmId: string,
    readonly diskId: string,
    private readonly device: BlockDevice,
    private readonly policy: BurstPolicy,
    private readonly rng: Rng,
    private readonly recordWrites: boolean,
  ) {}

  start(): void {
    if (this.policy.io.ops === 0) return;
    this.stopped = false;
    const loop = (): void => {
      if (this.stopped) return;
      this.ioChain = this.ioChain.then(() => this.ioBatch()).catch((err: unknown) => {
        this.world.log('warn', `controller/${this.vmId}`, `application I/O failed: ${(err as Error).message}`);
      });
      this.ioTimer = this.world.clock.schedule(this.policy.io.everyUs, loop);
    };
    loop();
  }

  /** Stop issuing I/O; resolves when the batch in flight is done. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.ioTimer?.cancel();
    this.ioTimer = null;
    await this.ioChain;
  }

  /** The last batch's mean read latency: a VM whose WAN recovers is judged on now, not on its history. */
  meanReadLatencyUs(): number {
    return this.readCount ? this.readLatencySumUs / this.readCount : 0;
  }

  private async ioBatch(): Promise<void> {
    this.readLatencySumUs = 0;
    this.readCount = 0;
    const dev = this.device;
    const blocks = Math.floor(dev.size() / BLOCK);
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
        // One draw keys an xorshift fill: the same incompressible bytes per seed at a fraction of a draw per word.
        fillRandom(data, 0, length, this.rng.u32());
        await dev.write(offset, data);
        this.written += length;
        if (this.recordWrites) this.acked.push({ offset, data });
      }
    }
  }
}

export interface BootFigures {
  bootUs: number;
  bootReads: number;
  bootBytes: number;
  bootWorkingSetBytes: number;
}

/**
 * A burst VM's figures summed over its disks' cloud proxies. The proxies are
 * kept by reference, so their counters stay readable after the reverse
 * closed them.
 */
export function sessionFigures(proxies: readonly CloudProxy[], boot: BootFigures, io: AppIo | null): SessionFigures {
  const f: SessionFigures = {
    ...boot, guestBytesRead: 0, guestBytesWritten: io?.written ?? 0, cacheHits: 0, cacheMisses: 0, prefetchHits: 0, prefetchCompleted: 0, wireBytes: 0,
    writeBack: { lagUs: 0, backlogBytes: 0, etaUs: null, bytesShipped: 0 }, meanReadLatencyUs: io?.meanReadLatencyUs() ?? 0,
  };
  for (const p of proxies) {
    const cache = p.cache.stats();
    const wb = p.writeBehind.stats();
    f.guestBytesRead += p.guestBytes();
    f.cacheHits += cache.hits;
    f.cacheMisses += cache.misses;
    f.prefetchHits += cache.prefetchHits;
    f.prefetchCompleted += p.prefetch.stats().completedBlocks;
    f.wireBytes += p.wireBytes();
    // The VM's write-back is as far behind as its slowest disk.
    f.writeBack.lagUs = Math.max(f.writeBack.lagUs, wb.lagUs);
    f.writeBack.backlogBytes += wb.backlogBytes;
    if (wb.etaUs !== null) f.writeBack.etaUs = Math.max(f.writeBack.etaUs ?? 0, wb.etaUs);
    f.writeBack.bytesShipped += wb.bytesShipped;
  }
  return f;
}
