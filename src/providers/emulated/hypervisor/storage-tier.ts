import { invariant } from '../../../errors.js';
import type { BlockDevice, WriteOptions, ZeroOptions } from '../../../proxy/block-device.js';
import { Layer } from '../../../proxy/layer.js';
import { US_PER_S } from '../../../util/units.js';
import type { World } from '../../../world/types.js';

/**
 * Emulated storage tiers (docs/storage.md): a Layer that makes a BlockDevice
 * (a SparseStore or a GeneratedDisk) answer at the time a tier with latency,
 * IOPS and throughput limits would.
 *
 * Timing model, per request, in virtual time:
 *   start    = the next IOPS slot at or after issue (slots are 1/iops apart)
 *   transfer = bytes / throughput on one shared data channel, after `start`
 *              and after every earlier transfer
 *   done     = end of transfer + the tier's read or write latency
 * Latency overlaps between requests (a deep device queue); IOPS and
 * throughput are the shared limits where requests queue. Busy periods are
 * timed from their start with cumulative counts, so rounding up to whole
 * microseconds never accumulates.
 */

export interface TierConfig {
  name: string;
  readLatencyUs: number;
  writeLatencyUs: number;
  iops: number;
  throughputBytesPerS: number;
}

export const TIER_PRESETS: Readonly<Record<string, TierConfig>> = {
  nvme: { name: 'nvme', readLatencyUs: 80, writeLatencyUs: 20, iops: 500_000, throughputBytesPerS: 3e9 },
  ssd: { name: 'ssd', readLatencyUs: 150, writeLatencyUs: 60, iops: 90_000, throughputBytesPerS: 550e6 },
  hdd: { name: 'hdd', readLatencyUs: 8_000, writeLatencyUs: 8_000, iops: 150, throughputBytesPerS: 200e6 },
  archive: { name: 'archive', readLatencyUs: 200_000, writeLatencyUs: 200_000, iops: 50, throughputBytesPerS: 100e6 },
};

/** Tiers without a preset name fill missing fields from this one. */
export const DEFAULT_TIER = 'ssd';

const ceilUs = (x: number): number => Math.ceil(x - 1e-6);

/** The limits' arithmetic, kept apart from the I/O so reports can quote it. */
export class TierClock {
  private slotAnchorUs = -1;
  private slotOps = 0;
  private nextSlotUs = 0;
  private channelAnchorUs = -1;
  private channelBytes = 0;
  private channelFreeUs = 0;

  constructor(readonly config: TierConfig) {}

  /** Completion time of a request of `bytes` issued at `nowUs`; `start` is when its IOPS slot came up. */
  admit(nowUs: number, bytes: number, kind: 'read' | 'write'): { startUs: number; transferStartUs: number; transferEndUs: number; doneUs: number } {
    const { iops, throughputBytesPerS } = this.config;
    if (nowUs >= this.nextSlotUs) {
      this.slotAnchorUs = nowUs;
      this.slotOps = 0;
    }
    const startUs = this.slotAnchorUs + ceilUs((this.slotOps * US_PER_S) / iops);
    this.slotOps++;
    this.nextSlotUs = this.slotAnchorUs + ceilUs((this.slotOps * US_PER_S) / iops);
    let transferStartUs = startUs;
    let transferEndUs = startUs;
    if (bytes > 0) {
      if (startUs >= this.channelFreeUs) {
        this.channelAnchorUs = startUs;
        this.channelBytes = 0;
      } else {
        transferStartUs = this.channelFreeUs;
      }
      this.channelBytes += bytes;
      transferEndUs = this.channelAnchorUs + ceilUs((this.channelBytes * US_PER_S) / throughputBytesPerS);
      this.channelFreeUs = transferEndUs;
    }
    const doneUs = transferEndUs + (kind === 'read' ? this.config.readLatencyUs : this.config.writeLatencyUs);
    return { startUs, transferStartUs, transferEndUs, doneUs };
  }
}

export interface TierStats {
  reads: number;
  writes: number;
  /** Trims, zeroes and flushes. */
  other: number;
  readBytes: number;
  writeBytes: number;
  /** Sum and maximum of (IOPS-slot wait + channel wait), microseconds. */
  queueWaitUs: number;
  maxQueueWaitUs: number;
  inFlight: number;
}

export class StorageTier extends Layer {
  readonly name: string;
  readonly clock: TierClock;
  readonly stats: TierStats = { reads: 0, writes: 0, other: 0, readBytes: 0, writeBytes: 0, queueWaitUs: 0, maxQueueWaitUs: 0, inFlight: 0 };
  /** Completion time of the latest request admitted, for flush ordering. */
  private lastDoneUs = 0;

  constructor(private readonly world: World, below: BlockDevice, readonly config: TierConfig) {
    super(below);
    invariant(config.iops > 0 && config.throughputBytesPerS > 0, `tier ${config.name}: iops and throughput must be positive`);
    this.name = `tier:${config.name}`;
    this.clock = new TierClock(config);
  }

  override read(offset: number, length: number): Promise<Buffer> {
    this.stats.reads++;
    this.stats.readBytes += length;
    return this.timed(length, 'read', () => this.below.read(offset, length));
  }

  override write(offset: number, data: Uint8Array, options?: WriteOptions): Promise<void> {
    this.stats.writes++;
    this.stats.writeBytes += data.length;
    return this.timed(data.length, 'write', () => this.below.write(offset, data, options));
  }

  /** Trim and zeroing take an IOPS slot and the write latency but move no data. */
  override trim(offset: number, length: number, options?: WriteOptions): Promise<void> {
    this.stats.other++;
    return this.timed(0, 'write', () => this.below.trim(offset, length, options));
  }

  override writeZeroes(offset: number, length: number, options?: ZeroOptions): Promise<void> {
    this.stats.other++;
    return this.timed(0, 'write', () => this.below.writeZeroes(offset, length, options));
  }

  /** A flush completes one write latency after every request admitted before it has completed. */
  override async flush(): Promise<void> {
    this.stats.other++;
    const now = this.world.clock.nowUs();
    const doneUs = Math.max(now, this.lastDoneUs) + this.config.writeLatencyUs;
    this.lastDoneUs = Math.max(this.lastDoneUs, doneUs);
    await Promise.all([this.below.flush(), this.world.clock.sleepUs(doneUs - now)]);
  }

  /**
   * The request runs on the device below at issue (so later requests see its
   * effect, in issue order); its promise settles at the modeled completion
   * time, or later if the device below is itself slower.
   */
  private async timed<T>(bytes: number, kind: 'read' | 'write', op: () => Promise<T>): Promise<T> {
    const now = this.world.clock.nowUs();
    const { transferStartUs, doneUs } = this.clock.admit(now, bytes, kind);
    const waitUs = transferStartUs - now;
    this.stats.queueWaitUs += waitUs;
    this.stats.maxQueueWaitUs = Math.max(this.stats.maxQueueWaitUs, waitUs);
    this.lastDoneUs = Math.max(this.lastDoneUs, doneUs);
    this.stats.inFlight++;
    try {
      const [result] = await Promise.all([op(), this.world.clock.sleepUs(doneUs - now)]);
      return result;
    } finally {
      this.stats.inFlight--;
    }
  }
}
