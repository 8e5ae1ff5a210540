import { hash } from 'node:crypto';
import { inflateRawSync } from 'node:zlib';

/**
 * Results that are pure functions of content, kept by content for a whole
 * run: the sha256 signature of a block and the inflated bytes of a deflated
 * run. A simulated data center streams the same image blocks to every VM
 * booted from the image, through one proxy pair per VM; each pair still
 * seals its own link and cache (that is per session), but hashing or
 * inflating a block it has seen before costs a lookup and a compare instead.
 *
 * A result is found by a fingerprint of the content (sampled words) and
 * trusted only if the content equals the stored copy byte for byte, so a
 * memo can never answer for other content. Bounded by the bytes it holds;
 * the oldest entries go first. Inflated bytes are shared by every caller:
 * nobody may write into them (RemoteDisk hands them on read-only).
 */
export class ContentMemo {
  /** Blocks by content: one shared copy each, with what was computed of it. */
  private readonly blocks: ContentTable<BlockFacts>;
  private readonly inflated: ContentTable<Buffer>;
  readonly stats = { sigHits: 0, sigMisses: 0, inflateHits: 0, inflateMisses: 0, internHits: 0, internMisses: 0 };

  constructor(options: { capacityBytes?: number } = {}) {
    const capacity = options.capacityBytes ?? DEFAULT_CAPACITY_BYTES;
    this.blocks = new ContentTable(Math.floor((capacity * 3) / 4));
    // Inflates keep the packed and the plain bytes.
    this.inflated = new ContentTable(Math.floor(capacity / 4));
  }

  /** sha256 of `block` (32 bytes; shared, do not modify). */
  signature(block: Uint8Array): Buffer {
    const known = this.blocks.find(block);
    if (known?.value.sig) {
      this.stats.sigHits++;
      return known.value.sig;
    }
    this.stats.sigMisses++;
    const sig = hash('sha256', block, 'buffer');
    if (known) known.value.sig = sig;
    else this.blocks.set(block, { sig, hex: undefined }, sig.length);
    return sig;
  }

  /** `signature` in lower-case hex. */
  signatureHex(block: Uint8Array): string {
    const known = this.blocks.find(block);
    if (known?.value.hex !== undefined) {
      this.stats.sigHits++;
      return known.value.hex;
    }
    let sig = known?.value.sig;
    if (sig) this.stats.sigHits++;
    else {
      this.stats.sigMisses++;
      sig = hash('sha256', block, 'buffer');
    }
    const hex = sig.toString('hex');
    if (known) {
      known.value.sig = sig;
      known.value.hex = hex;
    } else {
      this.blocks.set(block, { sig, hex }, sig.length + hex.length);
    }
    return hex;
  }

  /**
   * A buffer equal to `block` that every caller with the same content shares
   * (read-only): the windows of received content of many RemoteDisks then
   * hold one copy of what every VM of an image receives. `block` itself when
   * the content is not kept.
   */
  intern(block: Buffer): Buffer {
    const known = this.blocks.find(block);
    if (known) {
      this.stats.internHits++;
      return known.key;
    }
    this.stats.internMisses++;
    return this.blocks.set(block, { sig: undefined, hex: undefined }, 0)?.key ?? block;
  }

  /** The raw-inflated bytes of `packed` (shared by every caller: read them, never write into them). */
  inflate(packed: Uint8Array): Buffer {
    const known = this.inflated.get(packed);
    if (known) {
      this.stats.inflateHits++;
      return known;
    }
    this.stats.inflateMisses++;
    const plain = inflateRawSync(packed);
    this.inflated.set(packed, plain, plain.length);
    return plain;
  }
}

interface BlockFacts {
  sig: Buffer | undefined;
  hex: string | undefined;
}

const DEFAULT_CAPACITY_BYTES = 256 * 1024 * 1024;
/** Past this many entries with one fingerprint, content is not remembered (degenerate content would make lookups slow). */
const MAX_BUCKET = 8;

interface Entry<V> {
  key: Buffer;
  value: V;
  bytes: number;
  fp: number;
  /** Used since it was last passed over for eviction (second chance). */
  used: boolean;
}

/**
 * Content -> value, found by fingerprint and checked byte for byte. Past
 * `capacityBytes` the oldest entry not used since it was last looked at goes
 * (CLOCK, second chance): content every VM of an image reads stays while
 * one-off content (an application's random reads) passes through.
 */
class ContentTable<V> {
  private readonly buckets = new Map<number, Entry<V>[]>();
  private order: Array<Entry<V>> = [];
  private head = 0;
  private heldBytes = 0;

  constructor(private readonly capacityBytes: number) {}

  get(content: Uint8Array): V | undefined {
    return this.find(content)?.value;
  }

  /** The entry holding `content`, if any (marked used). */
  find(content: Uint8Array): Entry<V> | undefined {
    const bucket = this.buckets.get(fingerprint(content));
    if (!bucket) return undefined;
    for (const e of bucket) {
      if (e.key === content || e.key.equals(content)) {
        e.used = true;
        return e;
      }
    }
    return undefined;
  }

  /** Remember `value` for `content` and return the entry, or undefined when the content is not kept (its fingerprint's bucket is full). */
  set(content: Uint8Array, value: V, valueBytes: number): Entry<V> | undefined {
    const fp = fingerprint(content);
    let bucket = this.buckets.get(fp);
    if (!bucket) this.buckets.set(fp, (bucket = []));
    else if (bucket.length >= MAX_BUCKET) return undefined;
    // Our own copy: the caller's buffer may be reused or written later.
    const key = Buffer.from(content);
    const entry: Entry<V> = { key, value, bytes: content.length + valueBytes, fp, used: false };
    bucket.push(entry);
    this.order.push(entry);
    this.heldBytes += entry.bytes;
    while (this.heldBytes > this.capacityBytes && this.head < this.order.length) {
      const oldest = this.order[this.head++]!;
      if (oldest.used && oldest !== entry) {
        oldest.used = false;
        this.order.push(oldest);
      } else {
        this.evict(oldest);
      }
    }
    if (this.head > 1024 && this.head * 2 > this.order.length) {
      this.order = this.order.slice(this.head);
      this.head = 0;
    }
    return entry;
  }

  private evict(e: Entry<V>): void {
    const bucket = this.buckets.get(e.fp)!;
    bucket.splice(bucket.indexOf(e), 1);
    if (bucket.length === 0) this.buckets.delete(e.fp);
    this.heldBytes -= e.bytes;
  }
}

/** Words sampled for the fingerprint: enough that different content almost never shares one. */
const SAMPLES = 64;

/**
 * A 32-bit fingerprint of the length and up to SAMPLES words spread over the
 * content (the first and last included). Cheap next to hashing every byte;
 * equal content always has equal fingerprints, and the table compares bytes.
 */
export function fingerprint(b: Uint8Array): number {
  const n = b.length;
  let h = Math.imul(n ^ 0x9e3779b9, 0x85ebca6b);
  if (n < 4) {
    for (let i = 0; i < n; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
    return h >>> 0;
  }
  const words = n >>> 2;
  const step = Math.max(1, Math.floor(words / SAMPLES));
  if ((b.byteOffset & 3) === 0) {
    const w = new Int32Array(b.buffer, b.byteOffset, words);
    for (let i = 0; i < words; i += step) h = Math.imul(h ^ w[i]!, 0x01000193) ^ (h >>> 15);
    h = Math.imul(h ^ w[words - 1]!, 0x01000193);
  } else {
    // Little-endian words assembled by hand: the same values, so the same fingerprint at any alignment.
    const word = (i: number): number => { const at = i << 2; return b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24); };
    for (let i = 0; i < words; i += step) h = Math.imul(h ^ word(i), 0x01000193) ^ (h >>> 15);
    h = Math.imul(h ^ word(words - 1), 0x01000193);
  }
  // The tail bytes a word walk misses.
  for (let i = words << 2; i < n; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  return (h ^ (h >>> 16)) >>> 0;
}
