import { createCipheriv, createDecipheriv, createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { LinkError, E_TAMPERED } from './errors.js';

/**
 * Mutual challenge-response over a shared 32-byte pairing key, then
 * AES-256-GCM per frame. Each side proves it holds the key by MACing both
 * nonces; neither proof can be replayed because each side picks a fresh
 * nonce. Nonces come from World.unpredictable: the OS CSPRNG live, a seeded
 * stream in a simulation (so a run is reproducible).
 */
export const NONCE_BYTES = 16;
export const TAG_BYTES = 16;

export function proof(key: Buffer, role: 'server' | 'client', clientNonce: Buffer, serverNonce: Buffer): Buffer {
  return createHmac('sha256', key).update(`spillway-link/${role}`).update(clientNonce).update(serverNonce).digest();
}

export function proofMatches(expected: Buffer, got: Buffer): boolean {
  return got.length === expected.length && timingSafeEqual(expected, got);
}

/** Per-direction session keys, so the two counters never share a key. */
export function sessionKeys(key: Buffer, clientNonce: Buffer, serverNonce: Buffer): { c2s: Buffer; s2c: Buffer } {
  const salt = Buffer.concat([clientNonce, serverNonce]);
  return {
    c2s: Buffer.from(hkdfSync('sha256', key, salt, 'spillway-link c2s', 32)),
    s2c: Buffer.from(hkdfSync('sha256', key, salt, 'spillway-link s2c', 32)),
  };
}

/**
 * One direction of an encrypted stream. The nonce is a frame counter: the
 * stream is ordered, so both ends count in step and a dropped, replayed or
 * reordered frame fails authentication.
 */
export class FrameCipher {
  private counter = 0n;
  constructor(private readonly key: Buffer) {}

  private nextNonce(): Buffer {
    const iv = Buffer.alloc(12);
    iv.writeBigUInt64BE(this.counter, 4);
    this.counter++;
    return iv;
  }

  seal(body: Buffer): Buffer {
    const out = Buffer.allocUnsafe(body.length + TAG_BYTES);
    this.sealInto(out, 0, [body]);
    return out;
  }

  /**
   * Seal the concatenation of `parts` into `out` at `at` (ciphertext then
   * tag): the frame is built in its final buffer, with no concatenated
   * plaintext and no concatenated ciphertext.
   */
  sealInto(out: Buffer, at: number, parts: Buffer[]): void {
    const cipher = createCipheriv('aes-256-gcm', this.key, this.nextNonce());
    let pos = at;
    for (const part of parts) pos += cipher.update(part).copy(out, pos);
    cipher.final();
    cipher.getAuthTag().copy(out, pos);
  }

  open(sealed: Buffer): Buffer {
    if (sealed.length < TAG_BYTES) throw new LinkError(E_TAMPERED, 'encrypted frame is shorter than its tag');
    const decipher = createDecipheriv('aes-256-gcm', this.key, this.nextNonce());
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    try {
      const plain = decipher.update(sealed.subarray(0, sealed.length - TAG_BYTES));
      // GCM's final() only checks the tag (it returns no bytes): nothing released before it passes.
      decipher.final();
      return plain;
    } catch (err) {
      throw new LinkError(E_TAMPERED, 'a frame failed authentication: the link was tampered with or the peer uses another key', { cause: err });
    }
  }
}
