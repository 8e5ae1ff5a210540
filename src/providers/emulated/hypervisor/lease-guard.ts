import { BlockError, type BlockDevice, type WriteOptions, type ZeroOptions } from '../../../proxy/block-device.js';
import { Layer } from '../../../proxy/layer.js';

/** Reads pass; writes are refused unless someone holds the disk's write lease. */
export class LeaseGuard extends Layer {
  readonly name: string;
  constructor(below: BlockDevice, private readonly leased: () => boolean, private readonly diskId: string) {
    super(below);
    this.name = `lease-guard:${diskId}`;
  }
  private check(): void {
    if (!this.leased()) throw new BlockError('E_DISK_NOT_LOCKED', `disk ${this.diskId}: writes need the disk's lease (lockDisk) first`);
  }
  override async write(offset: number, data: Uint8Array, options?: WriteOptions): Promise<void> {
    this.check();
    return super.write(offset, data, options);
  }
  override async trim(offset: number, length: number, options?: WriteOptions): Promise<void> {
    this.check();
    return super.trim(offset, length, options);
  }
  override async writeZeroes(offset: number, length: number, options?: ZeroOptions): Promise<void> {
    this.check();
    return super.writeZeroes(offset, length, options);
  }
}
