import { hash } from 'node:crypto';
import { deflateRawSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { ContentMemo, fingerprint } from '../src/proxy/content-memo.js';
import { decodeSegments, encodeSegments } from '../src/proxy/link/payload.js';
import { WireReader, WireWriter } from '../src/proxy/link/wire.js';
import { createRng } from '../src/world/rng.js';

const KiB = 1024;

function randomBlock(seed: number, n = 16 * KiB): Buffer {
  const rng = createRng(seed, 'memo-test');
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = rng.int(0, 256);
  return b;
}

describe('ContentMemo', () => {
  it('gives the sha256 of the content, computing it once per distinct content', () => {
    const memo = new ContentMemo();
    const a = randomBlock(1);
    const b = randomBlock(2);
    expect(memo.signature(a).equals(hash('sha256', a, 'buffer'))).toBe(true);
    expect(memo.signature(Buffer.from(a)).equals(hash('sha256', a, 'buffer'))).toBe(true);
    expect(memo.signature(b).equals(hash('sha256', b, 'buffer'))).toBe(true);
    expect(memo.signatureHex(a)).toBe(hash('sha256', a, 'hex'));
    expect(memo.stats).toMatchObject({ sigMisses: 2, sigHits: 2 });
  });

  it('never answers for other content with the same fingerprint', () => {
    const memo = new ContentMemo();
    const a = randomBlock(3);
    // Change one byte between the sampled words: same fingerprint, different content.
    const b = Buffer.from(a);
    b[5] = (b[5]! + 1) & 0xff;
    expect(fingerprint(a)).toBe(fingerprint(b));
    expect(memo.signature(a).equals(hash('sha256', a, 'buffer'))).toBe(true);
    expect(memo.signature(b).equals(hash('sha256', b, 'buffer'))).toBe(true);
    expect(memo.stats.sigMisses).toBe(2);
  });

  it('keeps its own copy: content written after it was memoised is looked up as what it is now', () => {
    const memo = new ContentMemo();
    const a = randomBlock(4);
    const before = hash('sha256', a, 'buffer');
    memo.signature(a);
    a.fill(7);
    expect(memo.signature(a).equals(hash('sha256', a, 'buffer'))).toBe(true);
    expect(memo.signature(randomBlock(4)).equals(before)).toBe(true);
  });

  it('fingerprints the same content alike at any alignment', () => {
    const a = randomBlock(5, 4 * KiB + 3);
    const shifted = Buffer.alloc(a.length + 1);
    a.copy(shifted, 1);
    expect(fingerprint(shifted.subarray(1))).toBe(fingerprint(a));
  });

  it('inflates each distinct deflated run once and stays within its capacity', () => {
    const memo = new ContentMemo({ capacityBytes: 1024 * KiB });
    const plain = Buffer.alloc(64 * KiB, 'spillway ');
    const packed = deflateRawSync(plain);
    expect(memo.inflate(packed).equals(plain)).toBe(true);
    expect(memo.inflate(Buffer.from(packed))).toBe(memo.inflate(packed));
    expect(memo.stats).toMatchObject({ inflateMisses: 1, inflateHits: 2 });
    // Past its capacity (a quarter of it for inflates: three runs) older runs go: still the right bytes.
    for (let i = 0; i < 8; i++) memo.inflate(deflateRawSync(Buffer.alloc(64 * KiB, `run ${i} `)));
    expect(memo.inflate(packed).equals(plain)).toBe(true);
    expect(memo.stats.inflateMisses).toBe(10);
  });

  it('interns content: equal blocks come back as one shared buffer, kept while it is used', () => {
    const memo = new ContentMemo({ capacityBytes: 4 * 64 * KiB });
    const a = randomBlock(7);
    const shared = memo.intern(a);
    expect(shared).not.toBe(a);
    expect(shared.equals(a)).toBe(true);
    expect(memo.intern(Buffer.from(a))).toBe(shared);
    // Its signature is computed once, whichever way it is asked for.
    expect(memo.signatureHex(shared)).toBe(hash('sha256', a, 'hex'));
    expect(memo.signature(a).toString('hex')).toBe(hash('sha256', a, 'hex'));
    expect(memo.stats.sigMisses).toBe(1);
    // One-off content passes through; what was used again stays (second chance).
    for (let i = 0; i < 20; i++) memo.intern(randomBlock(100 + i));
    expect(memo.intern(Buffer.from(a))).toBe(shared);
  });

  it('decodes a link payload to the same bytes with and without a memo', () => {
    const memo = new ContentMemo();
    const data = Buffer.concat([Buffer.alloc(16 * KiB, 'text line\n'), Buffer.alloc(16 * KiB), randomBlock(6)]);
    const w = new WireWriter();
    encodeSegments(w, 0, data, { blockBytes: 16 * KiB, level: 1, memo, sentData: () => undefined });
    const payload = w.done();
    expect(decodeSegments(new WireReader(payload), data.length, memo).data.equals(data)).toBe(true);
    expect(decodeSegments(new WireReader(payload), data.length).data.equals(data)).toBe(true);
    expect(memo.stats.sigMisses).toBe(2);
  });
});
