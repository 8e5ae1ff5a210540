import { describe, expect, it } from 'vitest';
import { InputError } from '../src/errors.js';
import { bootTraceJsonl, buildBootProfile, replayReads, toDiskRanges } from '../src/providers/emulated/guest/boot-profile.js';
import { CONTENT_BLOCK_BYTES } from '../src/providers/emulated/guest/content.js';
import { ImageContent } from '../src/providers/emulated/guest/image-content.js';
import { FileView } from '../src/providers/emulated/guest/file-view.js';
import { GuestImage } from '../src/providers/emulated/guest/image.js';
import { parseBootProfileSpec, parseContentSpec } from '../src/scenario/guest.js';
import { SimWorld } from '../src/world/sim-world.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

describe('guest file view', () => {
  const image = new GuestImage({ seed: 42, imageId: 'rhel9-db', sizeBytes: 2 * GiB, os: 'linux', version: '9.2', app: 'database' });

  it('builds an OS-shaped tree whose files hold zero blocks only where their content class has them', () => {
    const view = image.files;
    expect(view.byPath.has('/boot/vmlinuz-5.14.0-92.x86_64')).toBe(true);
    expect(view.byPath.has('/etc/fstab')).toBe(true);
    expect(view.files.some((f) => f.path.startsWith('/usr/lib64/lib'))).toBe(true);
    expect(view.files.some((f) => f.path.startsWith('/var/lib/pgsql/15/data/base/16384/'))).toBe(true);
    expect(view.files.length).toBeGreaterThan(2000);
    const ranges = view.files.flatMap((f) => f.extents).sort((a, b) => a.offset - b.offset);
    for (let i = 1; i < ranges.length; i++) expect(ranges[i]!.offset).toBeGreaterThanOrEqual(ranges[i - 1]!.offset + ranges[i - 1]!.length);
    const wrongSize: string[] = [];
    let zeroBlocks = 0;
    let blocks = 0;
    for (const f of view.files) {
      const allocated = f.extents.reduce((s, e) => s + e.length, 0);
      if (allocated !== Math.ceil(f.sizeBytes / CONTENT_BLOCK_BYTES) * CONTENT_BLOCK_BYTES) wrongSize.push(f.path);
      for (const e of f.extents) {
        if (e.offset % CONTENT_BLOCK_BYTES !== 0) wrongSize.push(`${f.path}@${e.offset}`);
        for (let b = e.offset / CONTENT_BLOCK_BYTES; b < (e.offset + e.length) / CONTENT_BLOCK_BYTES; b++) {
          blocks++;
          // Executables and text have (almost) no all-zero blocks; swap, WAL and journals are mostly zeros.
          if (image.content.blockKind(b) === 'zero' && (f.content === 'text' || f.content === 'compressed' || f.content === 'log')) zeroBlocks++;
        }
      }
    }
    expect(wrongSize).toEqual([]);
    expect(blocks).toBeGreaterThan(100_000);
    expect(zeroBlocks).toBe(0);
  });

  it('is the same tree for the same image and a different one for another seed', () => {
    const again = new GuestImage({ seed: 42, imageId: 'rhel9-db', sizeBytes: 2 * GiB, os: 'linux', version: '9.2', app: 'database' });
    expect(again.files.files).toEqual(image.files.files);
    const other = new GuestImage({ seed: 43, imageId: 'rhel9-db', sizeBytes: 2 * GiB, os: 'linux', version: '9.2', app: 'database' });
    expect(other.files.files.map((f) => f.path)).not.toEqual(image.files.files.map((f) => f.path));
  });

  it('file bytes are the disk bytes at the file extents, through memfs too', async () => {
    const disk = image.disk('vm1-disk0');
    const view = image.files;
    const vol = await view.toVolume(disk, { include: (f) => f.path.startsWith('/etc/') || f.path.startsWith('/boot/grub2/') });
    for (const path of ['/etc/fstab', '/etc/passwd', '/boot/grub2/grub.cfg']) {
      const f = view.file(path);
      const fromDisk = Buffer.concat(await Promise.all(f.extents.map((e) => disk.read(e.offset, e.length)))).subarray(0, f.sizeBytes);
      expect((vol.readFileSync(path) as Buffer).equals(fromDisk)).toBe(true);
      expect(fromDisk.length).toBe(f.sizeBytes);
    }
    // A write through the disk shows up in the file's bytes; fileAt maps the LBA back to the file.
    const f = view.file('/etc/hostname');
    await disk.write(f.extents[0]!.offset, Buffer.from('db-01\n'));
    expect((await view.readFile(disk, '/etc/hostname')).subarray(0, 6).toString()).toBe('db-01\n');
    expect(view.fileAt(f.extents[0]!.offset + 3)).toBe(f);
    expect(view.fileAt(0)).toBeUndefined();
    await expect(view.toVolume(disk)).rejects.toMatchObject({ code: 'E_GUEST_VIEW_TOO_LARGE' });
  });

  it('builds a Windows tree and marks swap as non-persistent', () => {
    const win = new GuestImage({ seed: 1, imageId: 'win2019', sizeBytes: 4 * GiB, os: 'windows', app: 'web' });
    const view = win.files;
    expect(view.byPath.has('/Windows/System32/ntoskrnl.exe')).toBe(true);
    expect(view.byPath.has('/Windows/System32/config/SYSTEM')).toBe(true);
    expect(view.files.some((f) => f.path.startsWith('/inetpub/wwwroot/'))).toBe(true);
    const np = view.nonPersistentRanges();
    expect(np).toEqual(view.file('/pagefile.sys').extents);
  });

  it('shrinks to fit a small disk and refuses one that is far too small', () => {
    const small = FileView.generate(new ImageContent({ seed: 1, imageId: 's' }), 256 * MiB, { os: 'linux' });
    expect(small.totalBytes).toBeLessThan(256 * MiB);
    expect(small.scale.os).toBeLessThan(1);
    expect(() => FileView.generate(new ImageContent({ seed: 1, imageId: 't' }), 4 * MiB, { os: 'linux' })).toThrow(/too small/);
  });
});

describe('boot profile', () => {
  const image = new GuestImage({ seed: 7, imageId: 'rhel9', sizeBytes: 20 * GiB, os: 'linux' });

  it('reads ~2,000 blocks of 4-64 KiB from ~150 files in boot order, clustered in a few regions', () => {
    const boot = image.boot;
    expect(boot.files).toHaveLength(150);
    expect(Math.abs(boot.reads.length - 2000)).toBeLessThan(100);
    expect(boot.reads.every((r) => r.length >= 1 && r.length <= 65536 && r.offset % 4096 === 0)).toBe(true);
    expect(boot.reads.filter((r) => r.length % 4096 === 0).length / boot.reads.length).toBeGreaterThan(0.97);
    // Loader and kernel come first, phases never go backwards.
    expect(boot.files[0]!.role).toBe('loader');
    expect(boot.files.findIndex((f) => f.role === 'kernel')).toBeLessThan(boot.files.findIndex((f) => f.role === 'lib'));
    for (let i = 1; i < boot.files.length; i++) expect(boot.files[i]!.bootPhase).toBeGreaterThanOrEqual(boot.files[i - 1]!.bootPhase);
    // Files are read in profile order: each file's first read comes after the previous file's.
    const firstRead = boot.files.map((_, i) => boot.reads.findIndex((r) => r.file === i));
    for (let i = 1; i < firstRead.length; i++) expect(firstRead[i]!).toBeGreaterThan(firstRead[i - 1]!);
    // Clustered: the reads fall in a handful of 256 MiB windows of a 20 GiB disk.
    const windows = new Set(boot.reads.map((r) => Math.floor(r.offset / (256 * MiB))));
    expect(windows.size).toBeLessThanOrEqual(8);
    expect(boot.bytes).toBeGreaterThan(20 * MiB);
    expect(boot.bytes).toBeLessThan(80 * MiB);
    // Every read lies inside its file's extents.
    for (const r of boot.reads.slice(0, 500)) {
      const f = boot.files[r.file]!;
      expect(f.extents.some((e) => r.offset >= e.offset && r.offset + r.length <= e.offset + e.length)).toBe(true);
    }
  });

  it('is deterministic and exported as JSONL', () => {
    const again = buildBootProfile(image.files, { files: 150, reads: 2000, minReadBytes: 4096, maxReadBytes: 65536 }, 7, 'rhel9');
    expect(again.reads).toEqual(image.boot.reads);
    const lines = bootTraceJsonl(image.boot).trim().split('\n');
    expect(lines).toHaveLength(image.boot.reads.length);
    expect(JSON.parse(lines[0]!)).toEqual(image.boot.reads[0]);
  });

  it('per-VM boots share most blocks (FIG 22 hotspots) and keep some of their own', () => {
    const a = image.bootFor('vm-a');
    const b = image.bootFor('vm-b');
    expect(image.bootFor('vm-a').reads).toEqual(a.reads);
    expect(a.reads).toHaveLength(image.boot.reads.length);
    const key = (r: { offset: number; length: number }) => `${r.offset}+${r.length}`;
    const shared = image.boot.reads.map(key);
    const same = a.reads.filter((r, i) => key(r) === shared[i]).length / a.reads.length;
    expect(same).toBeGreaterThan(0.85);
    expect(same).toBeLessThan(0.95);
    // Blocks both VMs read are many; each has blocks the other never reads.
    const blocks = (p: typeof a) => new Set(p.reads.map((r) => Math.floor(r.offset / 4096)));
    const ba = blocks(a);
    const bb = blocks(b);
    const both = [...ba].filter((x) => bb.has(x)).length;
    expect(both / ba.size).toBeGreaterThan(0.8);
    expect([...ba].some((x) => !bb.has(x))).toBe(true);
    // Every read still lies inside the file it names.
    for (const r of a.reads) {
      const f = a.files[r.file]!;
      expect(f.extents.some((e) => r.offset >= e.offset && r.offset + r.length <= e.offset + e.length)).toBe(true);
    }
  });

  it('splits a file range at extent boundaries', () => {
    const extents = [{ offset: 4096, length: 8192 }, { offset: 65536, length: 4096 }];
    expect(toDiskRanges(extents, 4096, 8192)).toEqual([{ offset: 8192, length: 4096 }, { offset: 65536, length: 4096 }]);
    expect(() => toDiskRanges(extents, 8192, 8192)).toThrow(/runs past/);
  });

  it('replays on the World clock, one read outstanding', async () => {
    const world = new SimWorld(1);
    const disk = image.disk('d0');
    const reads = image.boot.reads.slice(0, 100);
    let result: Awaited<ReturnType<typeof replayReads>> | undefined;
    void replayReads(world, disk, reads, { thinkUs: 250 }).then((r) => (result = r));
    await world.run();
    expect(result).toEqual({ reads: 100, bytes: reads.reduce((s, r) => s + r.length, 0), elapsedUs: 100 * 250 });
  });
});

describe('guest spec parsers', () => {
  it('reads content mixes and boot profiles', () => {
    expect(parseContentSpec({ zeros: 0.5, random: 0.35, repeated: 0.07, text: 0.06, unique: 0.02, pool: 'rhel' })).toMatchObject({
      uniqueFraction: 0.02, poolId: 'rhel',
    });
    expect(parseContentSpec({ zeros: 0.5, random: 0.5 }).mix).toEqual({ zeros: 0.5, random: 0.5, repeated: 0, text: 0 });
    expect(parseContentSpec(undefined).mix.zeros).toBe(0.5);
    expect(parseBootProfileSpec({ files: 150, reads: 2000 })).toEqual({ files: 150, reads: 2000, minReadBytes: 4096, maxReadBytes: 65536 });
    expect(parseBootProfileSpec('minimal').files).toBe(60);
    expect(parseBootProfileSpec({ maxRead: '128KiB' }).maxReadBytes).toBe(131072);
  });

  it('names the bad field', () => {
    const bad = (fn: () => unknown, re: RegExp) => {
      expect(fn).toThrow(InputError);
      expect(fn).toThrow(re);
    };
    bad(() => parseContentSpec({ zeros: 0.9, random: 0.9 }, 'images[0].content'), /images\[0\]\.content: the fractions .* must add up to about 1, got 1\.8/);
    bad(() => parseContentSpec({ zeros: -1 }, 'content'), /content\.zeros: expected a number >= 0 <= 1/);
    bad(() => parseContentSpec({ zero: 0.5 }, 'content'), /content\.zero: unknown field; allowed here: zeros, random/);
    bad(() => parseBootProfileSpec('fast', 'images[1].bootProfile'), /images\[1\]\.bootProfile: expected a preset \(default, linux-systemd, windows-server, minimal, heavy\)/);
    bad(() => parseBootProfileSpec({ files: 0 }), /bootProfile\.files: expected an integer >= 1/);
    bad(() => parseBootProfileSpec({ maxRead: '6KiB' }), /bootProfile\.maxRead: expected a multiple of 4KiB/);
    bad(() => parseBootProfileSpec({ files: 100, reads: 10 }), /bootProfile\.reads: expected at least one read per file/);
  });
});
