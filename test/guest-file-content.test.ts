import { describe, expect, it } from 'vitest';
import { CONTENT_BLOCK_BYTES } from '../src/providers/emulated/guest/content.js';
import { countKinds } from '../src/providers/emulated/guest/generated-disk.js';
import { FILE_CLASS_MIX, FileContentLayout, balanceFreeSpace, fileContentClass } from '../src/providers/emulated/guest/file-content.js';
import { GuestImage } from '../src/providers/emulated/guest/image.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

describe('guest file content', () => {
  const image = new GuestImage({ seed: 11, imageId: 'linux-base', sizeBytes: 8 * GiB, os: 'linux' });

  it('classes files by role and name', () => {
    expect(fileContentClass('kernel', '/boot/vmlinuz-5.14')).toBe('compressed');
    expect(fileContentClass('kernel', '/Windows/System32/ntoskrnl.exe')).toBe('exec');
    expect(fileContentClass('module', '/usr/lib/modules/x/kernel/drivers/block/nbd.ko.xz')).toBe('compressed');
    expect(fileContentClass('lib', '/usr/lib64/libc.so.6')).toBe('exec');
    expect(fileContentClass('config', '/etc/fstab')).toBe('text');
    expect(fileContentClass('log', '/var/log/journal/system.journal')).toBe('journal');
    expect(fileContentClass('log', '/var/log/messages')).toBe('log');
    expect(fileContentClass('data', '/var/www/html/logo.png')).toBe('compressed');
    expect(fileContentClass('swap', '/swapfile')).toBe('swap');
  });

  it('keeps the whole disk at the image mix while files follow their classes', () => {
    const c = countKinds(image.content, 0, 8 * GiB);
    const total = c.zero + c.random + c.repeated + c.text;
    expect(Math.abs(c.zero / total - 0.5)).toBeLessThan(0.02);
    expect(Math.abs(c.random / total - 0.35)).toBeLessThan(0.02);
    expect(Math.abs(c.repeated / total - 0.07)).toBeLessThan(0.015);
    expect(Math.abs(c.text / total - 0.06)).toBeLessThan(0.015);
    expect(image.content.mixShortfallBytes).toBe(0);
    // Executables: mostly compressible blocks, as measured by bench/guest-survey.ts.
    const exec = image.files.files.filter((f) => f.content === 'exec');
    const kinds = { zero: 0, random: 0, repeated: 0, text: 0 };
    for (const f of exec) for (const e of f.extents) for (let b = e.offset / CONTENT_BLOCK_BYTES; b < (e.offset + e.length) / CONTENT_BLOCK_BYTES; b++) kinds[image.content.blockKind(b)]++;
    const n = kinds.zero + kinds.random + kinds.repeated + kinds.text;
    expect(n).toBeGreaterThan(10_000);
    expect(Math.abs(kinds.text / n - FILE_CLASS_MIX.exec.text)).toBeLessThan(0.03);
    expect(Math.abs(kinds.random / n - FILE_CLASS_MIX.exec.random)).toBeLessThan(0.03);
  });

  it('pads a file tail with zeros and reports zero blocks inside files as holes', async () => {
    const disk = image.disk('vm1');
    const f = image.files.files.find((x) => x.content === 'text' && x.sizeBytes % CONTENT_BLOCK_BYTES > 100)!;
    const last = f.extents[f.extents.length - 1]!;
    const tailBlock = await disk.read(last.offset + last.length - CONTENT_BLOCK_BYTES, CONTENT_BLOCK_BYTES);
    const used = f.sizeBytes % CONTENT_BLOCK_BYTES;
    if (image.content.blockKind((last.offset + last.length) / CONTENT_BLOCK_BYTES - 1) !== 'zero') {
      expect(tailBlock.subarray(0, used).some((x) => x !== 0)).toBe(true);
    }
    expect(tailBlock.subarray(used).every((x) => x === 0)).toBe(true);
    const swap = image.files.file('/swapfile').extents[0]!;
    const ext = await disk.extents(swap.offset, 4 * MiB);
    expect(ext.every((e) => e.type === 'hole')).toBe(true);
    expect((await disk.read(swap.offset, 64 * 1024)).every((x) => x === 0)).toBe(true);
  });

  it('balances free space against what files hold, and says when files alone exceed the mix', () => {
    const layout = new FileContentLayout([{ extents: [{ offset: 0, length: 1 * GiB }], sizeBytes: 1 * GiB, cls: 'compressed' }]);
    const { free, shortfall } = balanceFreeSpace({ zeros: 0.5, random: 0.35, repeated: 0.07, text: 0.08 }, layout, 2 * GiB);
    expect(free.random).toBe(0);
    expect(shortfall).toBeGreaterThan(0);
    expect(free.zeros + free.random + free.repeated + free.text).toBeCloseTo(1, 9);
  });

  it('is the position-only model with fileContent: false', () => {
    const plain = new GuestImage({ seed: 11, imageId: 'linux-base', sizeBytes: 8 * GiB, os: 'linux', fileContent: false });
    expect(plain.content.files).toBeUndefined();
    expect(image.content.files).toBeDefined();
  });
});
