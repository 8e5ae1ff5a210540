/*
 * How the secure cache seals blocks at rest: the store's header (a guard
 * against reusing a key epoch, never the key), the session key, nonces and
 * AAD, and the slot layout (a block's ciphertext then its tag, at a fixed
 * stride after the header). See SecureCache for why nonces never repeat.
 */
import { createCipheriv, createDecipheriv, createHmac, hash, hkdfSync } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { BlockError, type BlockDevice } from '../block-device.js';

export const TAG_BYTES = 16;
/** The store's first page holds a guard against reusing a key epoch (never the key). */
export const HEADER_BYTES = 4096;
const HEADER_MAGIC = 'SPWCACHE';

/** sha256 of a block's plaintext: the content signature the link and read path use for dedup. */
export function signatureOf(data: Uint8Array): Buffer {
  // The one-shot hash skips building a Hash object: most of the cost of hashing one small block.
  return hash('sha256', data, 'buffer');
}

/** The index key of a signature (lower-case hex). */
export function sigKey(sig: Uint8Array | string): string {
  return typeof sig === 'string' ? sig.toLowerCase() : Buffer.from(sig).toString('hex');
}

/** An HMAC of the key that names it in the store's header without revealing it. */
export function keyFingerprint(key: Uint8Array): Buffer {
  return createHmac('sha256', key).update('spillway secure-cache key fingerprint').digest().subarray(0, 16);
}

/**
 * What the store's header says about this key: nothing (never opened with it,
 * or the magic or fingerprint is not there), the highest epoch opened with
 * it, or that the header is damaged (its crc fails), when nothing it says can
 * be trusted.
 */
export type CacheHeader = { kind: 'none' } | { kind: 'epoch'; lastEpoch: number } | { kind: 'damaged' };

/** magic (8), key fingerprint (16), epoch u32 (at 24), crc32 of the 28 bytes before it (at 28). */
export function readHeader(header: Buffer, fingerprint: Buffer): CacheHeader {
  if (header.subarray(0, 8).toString('latin1') !== HEADER_MAGIC || !header.subarray(8, 24).equals(fingerprint)) return { kind: 'none' };
  const crc = header.readUInt32BE(28);
  // A crc of 0 is a header written before it had one: taken as it is.
  if (crc !== 0 && crc !== crc32(header.subarray(0, 28))) return { kind: 'damaged' };
  return { kind: 'epoch', lastEpoch: header.readUInt32BE(24) };
}

/** The header recording that `keyEpoch` was opened with this key (32 bytes at offset 0). */
export function headerFor(fingerprint: Buffer, keyEpoch: number): Buffer {
  const fresh = Buffer.alloc(32);
  fresh.write(HEADER_MAGIC, 0, 'latin1');
  fingerprint.copy(fresh, 8);
  fresh.writeUInt32BE(keyEpoch, 24);
  fresh.writeUInt32BE(crc32(fresh.subarray(0, 28)), 28);
  return fresh;
}

export const E_NONCE_REUSE = 'E_NONCE_REUSE';

/**
 * Record in `store`'s header that `keyEpoch` opens it with `key`, durably,
 * refusing (E_NONCE_REUSE) an epoch the header says was used already. Returns
 * the highest earlier epoch the header vouches for: undefined when there is
 * none, or when the header is damaged (it vouches for nothing; the cache then
 * starts empty: it is a cache, on-prem has every byte).
 */
export async function claimEpoch(store: BlockDevice, key: Uint8Array, keyEpoch: number, name: string): Promise<{ lastEpoch: number | undefined; damaged: boolean }> {
  const fingerprint = keyFingerprint(key);
  const header = readHeader(await store.read(0, 32), fingerprint);
  const lastEpoch = header.kind === 'epoch' ? header.lastEpoch : undefined;
  if (lastEpoch !== undefined && keyEpoch <= lastEpoch) {
    throw new BlockError(E_NONCE_REUSE,
      `${name}: key epoch ${keyEpoch} was already used with this key on ${store.name} (last ${lastEpoch}); on-prem must hand out a higher epoch or a new key`,
      { details: { keyEpoch, lastEpoch } });
  }
  await store.write(0, headerFor(fingerprint, keyEpoch));
  await store.flush();
  return { lastEpoch, damaged: header.kind === 'damaged' };
}

/** HKDF(key, salt = keyEpoch): two sessions with different epochs never share a GCM key. */
export function sessionKeyFor(key: Uint8Array, keyEpoch: number): Buffer {
  const salt = Buffer.alloc(4);
  salt.writeUInt32BE(keyEpoch);
  return Buffer.from(hkdfSync('sha256', key, salt, 'spillway secure-cache session', 32));
}

/**
 * AES-256-GCM for one cache session. The nonce is keyEpoch (4 bytes) || a
 * 64-bit counter the caller never repeats; the AAD binds the ciphertext to
 * its block index and length, so a ciphertext copied into another slot or
 * block fails authentication.
 */
export class BlockSealer {
  private readonly epochBytes = Buffer.alloc(4);
  /** One scratch nonce: createCipheriv copies the IV, so it is free again as soon as the call returns. */
  private readonly nonceScratch = Buffer.alloc(12);

  constructor(private readonly sessionKey: Buffer, keyEpoch: number) {
    this.epochBytes.writeUInt32BE(keyEpoch);
  }

  /** Seal `plain` as block `block` with nonce `counter`: ciphertext then tag at `out[at..]`. */
  sealInto(block: number, counter: bigint, plain: Uint8Array, out: Buffer, at: number): void {
    const cipher = createCipheriv('aes-256-gcm', this.sessionKey, this.nonce(counter));
    cipher.setAAD(aad(block, plain.length));
    const body = cipher.update(plain);
    body.copy(out, at);
    cipher.final();
    cipher.getAuthTag().copy(out, at + plain.length);
  }

  /** The plaintext of `sealed` (ciphertext then tag); throws when it fails authentication. */
  open(block: number, counter: bigint, length: number, sealed: Buffer): Buffer {
    const decipher = createDecipheriv('aes-256-gcm', this.sessionKey, this.nonce(counter));
    decipher.setAAD(aad(block, length));
    decipher.setAuthTag(sealed.subarray(length));
    const plain = decipher.update(sealed.subarray(0, length));
    decipher.final();
    return plain;
  }

  private nonce(counter: bigint): Buffer {
    const n = this.nonceScratch;
    this.epochBytes.copy(n, 0);
    n.writeBigUInt64BE(counter, 4);
    return n;
  }
}

/** One scratch AAD buffer: setAAD consumes it at once. */
const aadScratch = Buffer.alloc(12);

function aad(block: number, length: number): Buffer {
  const b = aadScratch;
  b.writeBigUInt64BE(BigInt(block), 0);
  b.writeUInt32BE(length, 8);
  return b;
}

/**
 * Items sorted by slot, cut into runs a single store read or write can cover:
 * adjacent slots, every slot but the run's last one full (a short block
 * leaves a gap before the next slot).
 */
export function adjacentSlotRuns<T>(sorted: T[], slotOf: (t: T) => number, full: (t: T) => boolean): T[][] {
  const runs: T[][] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i + 1;
    while (j < sorted.length && slotOf(sorted[j]!) === slotOf(sorted[j - 1]!) + 1 && full(sorted[j - 1]!)) j++;
    runs.push(sorted.slice(i, j));
    i = j;
  }
  return runs;
}
