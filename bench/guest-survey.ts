/**
 * `node --import tsx bench/guest-survey.ts [--max-mib N]`: measure what real
 * files look like at 4 KiB block granularity, per file kind, on the machine
 * it runs on. It is the evidence behind the per-file-kind content mixes of
 * src/providers/emulated/guest/file-content.ts (docs/guest.md "File content").
 *
 * Each 4 KiB block of a file (the tail zero-padded, as a filesystem stores
 * it) is classified as:
 * - zero: all zero bytes;
 * - repeated: a block whose sha256 already appeared earlier in the survey
 *   (in any file of any kind: what dedup by signature would catch);
 * - otherwise its raw-deflate size at level 6 says how compressible it is.
 *   Mapped onto the simulator's two other kinds so the deflated bytes agree:
 *   a block that deflates to ratio r counts (r - t) / (1 - t) as `random`
 *   and the rest as `text`, where t is the ratio of the generator's own
 *   text blocks (measured here too).
 */
import { createHash } from 'node:crypto';
import { closeSync, lstatSync, openSync, readdirSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { ImageContent } from '../src/providers/emulated/guest/image-content.js';

const B = 4096;
const maxMiB = Number(process.argv[process.argv.indexOf('--max-mib') + 1] ?? 0) || 64;

interface Kind {
  name: string;
  roots: string[];
  accept: (path: string) => boolean;
}

const elf = (p: string): boolean => {
  try {
    const fd = openSync(p, 'r');
    const head = Buffer.alloc(4);
    readSync(fd, head, 0, 4, 0);
    closeSync(fd);
    return head.toString('latin1') === '\x7fELF';
  } catch {
    return false;
  }
};
const compressedExt = /\.(gz|xz|zst|bz2|lz4|zip|jar|png|jpe?g|woff2?|whl|deb)$/i;

const KINDS: Kind[] = [
  { name: 'exec (ELF executables)', roots: ['/usr/bin', '/usr/sbin', '/usr/libexec'], accept: (p) => elf(p) && !/\.so(\.|$)/.test(p) },
  { name: 'lib (ELF shared libraries)', roots: ['/usr/lib/x86_64-linux-gnu', '/usr/lib'], accept: (p) => /\.so(\.|$)/.test(p) && elf(p) },
  { name: 'text (config, docs, scripts)', roots: ['/etc', '/usr/share/doc', '/usr/share/perl5', '/usr/lib/python3'], accept: (p) => !compressedExt.test(p) && !elf(p) && !/\.pyc$/.test(p) },
  { name: 'compressed (gz/xz/zst/png/jar…)', roots: ['/usr/share', '/usr/lib'], accept: (p) => compressedExt.test(p) },
  { name: 'log (/var/log)', roots: ['/var/log'], accept: () => true },
  { name: 'db (sqlite, dpkg/apt state)', roots: ['/var/lib', '/var/cache'], accept: (p) => /\.(sqlite3?|db|bin)$/i.test(p) || /pkgcache|srcpkgcache/.test(p) },
];

function* walk(root: string, depth = 0): Generator<string> {
  if (depth > 12) return;
  let entries: string[];
  try {
    entries = readdirSync(root).sort();
  } catch {
    return;
  }
  for (const e of entries) {
    const p = join(root, e);
    let st;
    try {
      st = lstatSync(p);
    } catch {
      continue;
    }
    if (st.isSymbolicLink()) continue;
    if (st.isDirectory()) yield* walk(p, depth + 1);
    else if (st.isFile() && st.size > 0) yield p;
  }
}

const seen = new Set<string>();
const PER_FILE_BYTES = 1024 * 1024;

function hashPath(p: string): number {
  return createHash('sha256').update(p).digest().readUInt32LE(0);
}

function textRatio(): number {
  const image = new ImageContent({ seed: 1, imageId: 'survey', mix: { zeros: 0, random: 0, repeated: 0, text: 1 } });
  const disk = image.disk('d', 64 * B * 16);
  let raw = 0;
  let packed = 0;
  for (let b = 0; b < 256; b++) {
    const block = disk.readSync(b * B, B);
    raw += B;
    packed += Math.min(B, deflateRawSync(block, { level: 6 }).length);
  }
  return packed / raw;
}

function survey(kind: Kind, t: number): void {
  const counts = { zero: 0, repeated: 0, random: 0, text: 0 };
  let blocks = 0;
  let files = 0;
  let deflated = 0;
  const budget = maxMiB * 1024 * 1024;
  const visited = new Set<string>();
  const buf = Buffer.alloc(B);
  for (const root of kind.roots) {
    for (const p of walk(root)) {
      if (blocks * B >= budget) break;
      // A sample spread over the tree (not the first directories in name order), at most 1 MiB per file.
      if (visited.has(p) || (hashPath(p) & 3) !== 0 || !kind.accept(p)) continue;
      visited.add(p);
      let fd: number;
      try {
        fd = openSync(p, 'r');
      } catch {
        continue;
      }
      files++;
      try {
        for (let at = 0; at < PER_FILE_BYTES; at += B) {
          buf.fill(0);
          const n = readSync(fd, buf, 0, B, at);
          if (n <= 0) break;
          blocks++;
          if (buf.every((x) => x === 0)) counts.zero++;
          else {
            const sig = createHash('sha256').update(buf).digest('hex');
            if (seen.has(sig)) counts.repeated++;
            else {
              seen.add(sig);
              const r = Math.min(B, deflateRawSync(buf, { level: 6 }).length) / B;
              deflated += r * B;
              const random = Math.max(0, Math.min(1, (r - t) / (1 - t)));
              counts.random += random;
              counts.text += 1 - random;
            }
          }
          if (n < B) break;
        }
      } finally {
        closeSync(fd);
      }
    }
  }
  const f = (x: number): string => (blocks ? (x / blocks).toFixed(3) : '-');
  console.log(`${kind.name.padEnd(36)} files ${String(files).padStart(5)}  blocks ${String(blocks).padStart(7)}  zero ${f(counts.zero)}  repeated ${f(counts.repeated)}  random ${f(counts.random)}  text ${f(counts.text)}  unique deflated/raw ${blocks ? (deflated / ((blocks - counts.zero - counts.repeated) * B || 1)).toFixed(3) : '-'}`);
}

const t = textRatio();
console.log(`generator text blocks deflate to ${t.toFixed(3)} of their size (level 6, per 4 KiB block); up to ${maxMiB} MiB per kind`);
for (const k of KINDS) survey(k, t);
