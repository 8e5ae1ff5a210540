import { SpillwayError } from '../../errors.js';
import type { Transport } from '../../world/types.js';

/**
 * The image store's wire protocol (container-platform.ts): a remote framework
 * connects to the local store's address and asks for an image's bytes; the
 * store answers with a header line and the bytes. Over world.net, so behind a
 * WAN link they take its serialization, propagation, loss and outages.
 */

const CHUNK_BYTES = 1024 * 1024;
const ZEROS = Buffer.alloc(CHUNK_BYTES);

export class ContainerPlatformError extends SpillwayError {
  constructor(code: string, message: string, readonly retryable: boolean, details?: Record<string, unknown>) {
    super(code, message, details ? { details } : {});
  }
}

/** Ask the store on `conn` for `bytes` of image `imageId`; resolves with the bytes received once it closes. */
export function receiveImage(conn: Transport, imageId: string, bytes: number): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let got = 0;
    let header: Buffer | null = Buffer.alloc(0);
    let expected = -1;
    conn.onData((chunk) => {
      if (header) {
        header = Buffer.concat([header, chunk]);
        const nl = header.indexOf(10);
        if (nl < 0) return;
        expected = (JSON.parse(header.subarray(0, nl).toString('utf8')) as { bytes: number }).bytes;
        got = header.length - nl - 1;
        header = null;
      } else {
        got += chunk.length;
      }
    });
    conn.onClose((err) => {
      if (expected >= 0 && got === expected) resolve(got);
      else reject(new ContainerPlatformError('E_LINK_DOWN', `image ${imageId} transfer broke after ${got} of ${expected < 0 ? bytes : expected} bytes${err ? `: ${err.message}` : ''}`, true));
    });
    conn.write(Buffer.from(`${JSON.stringify({ imageId, bytes })}\n`));
  });
}

/**
 * Serve one request on `t`. `manifestOf(imageId)` is the manifest of an image
 * the local store holds (undefined: it does not, and the connection is
 * destroyed). Layer bytes are sized, not read: the link model times bytes,
 * and reading GiBs of generated content would only cost real time.
 */
export function serveImage(t: Transport, manifestOf: (imageId: string) => unknown): void {
  let req = Buffer.alloc(0);
  let served = false;
  t.onData((chunk) => {
    if (served) return;
    req = Buffer.concat([req, chunk]);
    const nl = req.indexOf(10);
    if (nl < 0) return;
    served = true;
    const { imageId, bytes } = JSON.parse(req.subarray(0, nl).toString('utf8')) as { imageId: string; bytes: number };
    const held = manifestOf(imageId);
    if (held === undefined) {
      t.destroy(new Error(`no image ${imageId} in the local store`));
      return;
    }
    const manifest = Buffer.from(JSON.stringify(held));
    t.write(Buffer.from(`${JSON.stringify({ bytes })}\n`));
    t.write(manifest.subarray(0, Math.min(manifest.length, bytes)));
    let left = bytes - Math.min(manifest.length, bytes);
    const pump = (): void => {
      while (left > 0 && !t.closed) {
        const n = Math.min(CHUNK_BYTES, left);
        left -= n;
        if (!t.write(ZEROS.subarray(0, n))) return;
      }
      if (left === 0) t.end();
    };
    t.onDrain(pump);
    pump();
  });
}
