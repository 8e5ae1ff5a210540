import type { AckedWrite, AppIoSession } from '../../../ports/app-io.js';
import type { BlockDevice } from '../../../proxy/block-device.js';
import type { Rng, World } from '../../../world/types.js';
import { fillRandom } from '../guest/fill.js';

const BLOCK = 4096;
/** Largest coarsened application I/O operation. */
const COARSE_OP_BYTES = 256 * 1024;

/** How much I/O a VM's application does: `ops` small operations every `everyUs` (policies.burst.io). */
export interface AppIoRate {
  everyUs: number;
  ops: number;
}

/**
 * The application I/O of one VM that runs remotely (a burst VM, a serving
 * clone), against its storage target's device (CoreProxyControl.targetDevice):
 * a batch of `rate.ops` reads and writes every `rate.everyUs`, coarsened into
 * few large operations. Writes are acknowledged by write-behind and ship home
 * on its schedule.
 */
export class AppIo implements AppIoSession {
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
    private readonly rate: AppIoRate,
    private readonly rng: Rng,
    private readonly recordWrites: boolean,
  ) {}

  start(): void {
    if (this.rate.ops === 0) return;
    this.stopped = false;
    const loop = (): void => {
      if (this.stopped) return;
      this.ioChain = this.ioChain.then(() => this.ioBatch()).catch((err: unknown) => {
        this.world.log('warn', `controller/${this.vmId}`, `application I/O failed: ${(err as Error).message}`);
      });
      this.ioTimer = this.world.clock.schedule(this.rate.everyUs, loop);
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
    for (let i = 0; i < this.rate.ops; i++) {
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
