/**
 * What the guest was promised: the bytes of every acknowledged write, in
 * order. A range whose write failed may hold the old or the new bytes (the
 * write may have been journaled before the error), so it is unknown until the
 * next acknowledged write covers it; reads there are not checked.
 */
export class WriteModel {
  readonly bytes: Buffer;
  private readonly unknown: Uint8Array;

  constructor(original: Buffer) {
    this.bytes = Buffer.from(original);
    this.unknown = new Uint8Array(original.length);
  }

  acknowledged(offset: number, data: Buffer | null, length: number): void {
    if (data) data.copy(this.bytes, offset);
    else this.bytes.fill(0, offset, offset + length);
    this.unknown.fill(0, offset, offset + length);
  }

  failed(offset: number, length: number): void {
    this.unknown.fill(1, offset, offset + length);
  }

  /** The range's bytes become `bytes` and known again (a new session forgot cloud-only writes). */
  reset(offset: number, bytes: Buffer): void {
    bytes.copy(this.bytes, offset);
    this.unknown.fill(0, offset, offset + bytes.length);
  }

  forget(offset: number, length: number): void {
    this.unknown.fill(1, offset, offset + length);
  }

  /** The first byte of the range where `got` differs from a known model byte, or -1. */
  mismatch(offset: number, got: Buffer): number {
    for (let i = 0; i < got.length; i++) {
      if (this.unknown[offset + i] === 0 && got[i] !== this.bytes[offset + i]) return offset + i;
    }
    return -1;
  }

  /** Unknown ranges, for the final rewrite that makes the model exact again. */
  unknownRanges(): Array<{ offset: number; length: number }> {
    const out: Array<{ offset: number; length: number }> = [];
    for (let i = 0; i < this.unknown.length;) {
      if (!this.unknown[i]) { i++; continue; }
      const start = i;
      while (i < this.unknown.length && this.unknown[i]) i++;
      out.push({ offset: start, length: i - start });
    }
    return out;
  }
}
