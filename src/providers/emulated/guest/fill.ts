/**
 * The byte generators behind generated disk content (content.ts): stable
 * 32-bit hashes, xorshift32 incompressible bytes, and text stitched from a
 * per-seed corpus of pseudo-words. Pure functions of their keys.
 */

/** A 32-bit finalizer (lowbias32): good avalanche for sequential inputs. */
export function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

export function hashString(s: string, salt = 0): number {
  let h = (0x811c9dc5 ^ salt) >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return mix32(h);
}

/** Key for an index that may exceed 2^32 (disks over 16 TiB). */
export function keyOf(base: number, index: number): number {
  const lo = index >>> 0;
  const hi = Math.floor(index / 0x1_0000_0000);
  return mix32(base ^ mix32(lo ^ mix32(hi + 0x9e3779b9)));
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Fill `length` bytes (a multiple of 4) at `out[at]` with xorshift32 output seeded by `key`. */
export function fillRandom(out: Buffer, at: number, length: number, key: number): void {
  let x = key | 0 || 0x6d2b79f5;
  if (LITTLE_ENDIAN && (out.byteOffset + at) % 4 === 0) {
    const words = new Uint32Array(out.buffer, out.byteOffset + at, length >>> 2);
    for (let i = 0; i < words.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      words[i] = x;
    }
    return;
  }
  for (let i = 0; i < length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeUInt32LE(x >>> 0, at + i);
  }
}

const SYLLABLES = ['ka', 'lo', 'mi', 'ne', 'ru', 'sa', 'to', 'vi', 'de', 'fa', 'gu', 'ho', 'ji', 'be', 'po', 'ze', 'qu', 'xa', 'ly', 'or', 'an', 'el', 'is', 'um'];

/** A word list of 256 pseudo-words made from syllables, chosen by the seed. */
function wordList(seed: number): Buffer[] {
  const words: Buffer[] = [];
  let x = mix32(seed ^ 0x51ed270b) || 1;
  const next = (): number => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  for (let i = 0; i < 256; i++) {
    const n = 1 + (next() % 4);
    let w = '';
    for (let k = 0; k < n; k++) w += SYLLABLES[next() % SYLLABLES.length];
    words.push(Buffer.from(w, 'latin1'));
  }
  return words;
}

/** Fill one block with lines of words; deterministic in `key`. */
function fillText(out: Buffer, at: number, length: number, key: number, words: Buffer[]): void {
  let x = key | 0 || 0x2545f491;
  const end = at + length;
  let pos = at;
  let inLine = 0;
  let lineLength = 6 + ((x >>> 0) % 10);
  while (pos < end) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const w = words[(x >>> 0) & 255]!;
    // A byte loop beats Buffer.copy for words this short.
    for (let i = 0; i < w.length && pos < end; i++) out[pos++] = w[i]!;
    if (pos >= end) break;
    if (++inLine >= lineLength) {
      out[pos++] = 0x0a;
      inLine = 0;
      lineLength = 6 + ((x >>> 8) % 10);
    } else {
      out[pos++] = 0x20;
    }
  }
}

const CORPUS_BYTES = 256 * 1024;
const TEXT_SLICE_BYTES = 512;

/**
 * Text blocks are stitched from 512-byte slices of a per-seed corpus of
 * words: as compressible as prose, and about ten times faster to make than
 * drawing word by word.
 */
export function fillTextFromCorpus(out: Buffer, at: number, length: number, key: number, corpus: Buffer): void {
  let x = key | 0 || 0x2545f491;
  const span = corpus.length - TEXT_SLICE_BYTES;
  for (let pos = 0; pos < length; pos += TEXT_SLICE_BYTES) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const from = (x >>> 0) % span;
    corpus.copy(out, at + pos, from, from + Math.min(TEXT_SLICE_BYTES, length - pos));
  }
}

/** The per-seed text corpus that text blocks are cut from (CORPUS_BYTES of word lines). */
export function textCorpus(seed: number): Buffer {
  const corpus = Buffer.alloc(CORPUS_BYTES);
  fillText(corpus, 0, CORPUS_BYTES, hashString('corpus', seed), wordList(hashString('words', seed)));
  return corpus;
}
