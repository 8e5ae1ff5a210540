import { Volume } from 'memfs';
import { SpillwayError } from '../../../errors.js';
import type { BlockDevice } from '../../../proxy/block-device.js';
import { createRng } from '../../../world/rng.js';
import type { Rng } from '../../../world/types.js';
import { CONTENT_BLOCK_BYTES, SPAN_BYTES } from './content.js';
import type { ImageContent } from './image-content.js';
import { FileContentLayout, fileContentClass, type FileContentClass } from './file-content.js';

/**
 * The guest's file-level view of a generated disk (docs/guest.md): an
 * OS-shaped tree of files, each mapped to block extents on the disk. The
 * mapping is a pure function of the image (seed, image id, OS, application
 * role), so every clone of an image has the same files at the same LBAs, and a
 * file's bytes are exactly the disk's bytes at its extents.
 *
 * Files are placed in tree order from the start of their area (boot
 * partition, OS, data), so related files sit together the way an installer
 * leaves them, skipping the 1 MiB spans the base layout (the image content
 * without files) keeps free: the gaps of a used filesystem. What the files'
 * blocks hold is their content class's (file-content.ts) once GuestImage
 * installs the layout. memfs holds file *contents* only when asked
 * (`toVolume`), never the disk.
 */

export type GuestOs = 'linux' | 'windows';
export type AppRole = 'database' | 'web' | 'batch' | 'generic';
export const APP_ROLES: readonly AppRole[] = ['database', 'web', 'batch', 'generic'];

export type FileRole =
  | 'loader' | 'kernel' | 'initrd' | 'module' | 'driver' | 'lib' | 'bin' | 'service' | 'config' | 'registry'
  | 'doc' | 'log' | 'data' | 'wal' | 'swap';

export interface DiskRange {
  offset: number;
  length: number;
}

export interface GuestFile {
  path: string;
  sizeBytes: number;
  role: FileRole;
  /** Disk ranges holding the file, in file order; whole 4 KiB blocks. */
  extents: DiskRange[];
  /** When the boot reads it: lower is earlier; undefined when boot never touches it. */
  bootPhase?: number;
  /** What its blocks hold (file-content.ts), from its role and name. */
  content: FileContentClass;
}

export interface FileViewOptions {
  os: GuestOs;
  /** Shown in kernel and package names (e.g. "9.2", "2019"). */
  version?: string;
  app?: AppRole;
}

type Area = 'boot' | 'os' | 'data';

interface FileGroup {
  area: Area;
  role: FileRole;
  /** Fixed paths, or a generator of `count` names. */
  paths?: string[];
  dir?: string;
  count?: number;
  name?: (word: string, i: number) => string;
  medianBytes: number;
  /** Log-normal spread of sizes (0: every file is medianBytes). */
  sigma?: number;
  bootPhase?: number;
  /** Fraction of the group read at boot (default: all when bootPhase is set). */
  bootShare?: number;
}

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

function linuxTree(version: string, app: AppRole): FileGroup[] {
  const k = `5.14.0-${version.replace(/\W/g, '')}.x86_64`;
  const groups: FileGroup[] = [
    { area: 'boot', role: 'loader', paths: ['/boot/efi/EFI/BOOT/shimx64.efi', '/boot/efi/EFI/BOOT/grubx64.efi'], medianBytes: 1.5 * MiB, sigma: 0.3, bootPhase: 0 },
    { area: 'boot', role: 'config', paths: ['/boot/grub2/grub.cfg', '/boot/grub2/grubenv', `/boot/loader/entries/${k}.conf`], medianBytes: 4 * KiB, sigma: 0.5, bootPhase: 0 },
    { area: 'boot', role: 'kernel', paths: [`/boot/vmlinuz-${k}`], medianBytes: 11 * MiB, bootPhase: 1 },
    { area: 'boot', role: 'initrd', paths: [`/boot/initramfs-${k}.img`], medianBytes: 32 * MiB, bootPhase: 1 },
    { area: 'boot', role: 'doc', paths: [`/boot/System.map-${k}`, `/boot/config-${k}`], medianBytes: 1 * MiB, sigma: 1 },
    { area: 'os', role: 'config', paths: ['/etc/fstab', '/etc/hostname', '/etc/hosts', '/etc/passwd', '/etc/group', '/etc/shadow', '/etc/os-release', '/etc/resolv.conf', '/etc/machine-id', '/etc/ld.so.cache', '/etc/selinux/config', '/etc/ssh/sshd_config', '/etc/sysconfig/network-scripts/ifcfg-eth0', '/etc/systemd/system.conf', '/etc/locale.conf'], medianBytes: 2 * KiB, sigma: 1, bootPhase: 2 },
    { area: 'os', role: 'config', dir: '/etc', count: 110, name: (w, i) => `${w}${i % 3 ? '.conf' : '.d/' + w + '.conf'}`, medianBytes: 2 * KiB, sigma: 1.2, bootPhase: 3, bootShare: 0.3 },
    { area: 'os', role: 'module', dir: `/usr/lib/modules/${k}/kernel/drivers`, count: 360, name: (w, i) => `${DRIVER_DIRS[i % DRIVER_DIRS.length]}/${w}.ko.xz`, medianBytes: 24 * KiB, sigma: 1, bootPhase: 2, bootShare: 0.1 },
    { area: 'os', role: 'bin', paths: ['/usr/lib/systemd/systemd'], medianBytes: 2 * MiB, bootPhase: 3 },
    { area: 'os', role: 'bin', dir: '/usr/lib/systemd', count: 40, name: (w) => `systemd-${w}`, medianBytes: 120 * KiB, sigma: 0.8, bootPhase: 3, bootShare: 0.5 },
    { area: 'os', role: 'service', dir: '/usr/lib/systemd/system', count: 180, name: (w, i) => `${w}${i % 4 ? '.service' : '.target'}`, medianBytes: 1 * KiB, sigma: 0.6, bootPhase: 3, bootShare: 0.5 },
    { area: 'os', role: 'lib', paths: ['/usr/lib64/ld-linux-x86-64.so.2', '/usr/lib64/libc.so.6', '/usr/lib64/libsystemd.so.0', '/usr/lib64/libcrypto.so.3'], medianBytes: 2 * MiB, sigma: 0.4, bootPhase: 3 },
    { area: 'os', role: 'lib', dir: '/usr/lib64', count: 320, name: (w, i) => `lib${w}.so.${1 + (i % 4)}`, medianBytes: 110 * KiB, sigma: 1.3, bootPhase: 3, bootShare: 0.35 },
    { area: 'os', role: 'bin', dir: '/usr/bin', count: 420, name: (w) => w, medianBytes: 48 * KiB, sigma: 1.2, bootPhase: 4, bootShare: 0.08 },
    { area: 'os', role: 'bin', dir: '/usr/sbin', count: 160, name: (w) => w, medianBytes: 64 * KiB, sigma: 1.1, bootPhase: 4, bootShare: 0.15 },
    { area: 'os', role: 'doc', dir: '/usr/share/doc', count: 500, name: (w, i) => `${w}/${i % 2 ? 'README' : 'COPYING'}`, medianBytes: 8 * KiB, sigma: 1.2 },
    { area: 'os', role: 'doc', dir: '/usr/share/locale', count: 300, name: (w, i) => `${LOCALES[i % LOCALES.length]}/LC_MESSAGES/${w}.mo`, medianBytes: 24 * KiB, sigma: 1 },
    { area: 'os', role: 'data', paths: ['/var/lib/rpm/rpmdb.sqlite'], medianBytes: 90 * MiB },
    { area: 'os', role: 'log', paths: ['/var/log/messages', '/var/log/secure', '/var/log/journal/system.journal'], medianBytes: 24 * MiB, sigma: 0.6, bootPhase: 4, bootShare: 0.34 },
    { area: 'data', role: 'swap', paths: ['/swapfile'], medianBytes: 2 * GiB },
  ];
  if (app === 'database') {
    groups.push(
      { area: 'os', role: 'bin', paths: ['/usr/pgsql-15/bin/postgres'], medianBytes: 9 * MiB, bootPhase: 5 },
      { area: 'os', role: 'config', paths: ['/var/lib/pgsql/15/data/postgresql.conf', '/var/lib/pgsql/15/data/pg_hba.conf'], medianBytes: 16 * KiB, bootPhase: 5 },
      { area: 'data', role: 'wal', dir: '/var/lib/pgsql/15/data/pg_wal', count: 16, name: (_w, i) => `0000000100000000000000${i.toString(16).toUpperCase().padStart(2, '0')}`, medianBytes: 16 * MiB, bootPhase: 5, bootShare: 0.07 },
      { area: 'data', role: 'data', dir: '/var/lib/pgsql/15/data/base/16384', count: 24, name: (_w, i) => String(16400 + i), medianBytes: 256 * MiB, sigma: 0.8 },
    );
  } else if (app === 'web') {
    groups.push(
      { area: 'os', role: 'bin', paths: ['/usr/sbin/nginx'], medianBytes: 1.3 * MiB, bootPhase: 5 },
      { area: 'os', role: 'config', paths: ['/etc/nginx/nginx.conf'], medianBytes: 3 * KiB, bootPhase: 5 },
      { area: 'data', role: 'data', dir: '/var/www/html', count: 400, name: (w, i) => `${w}${['.html', '.css', '.js', '.png'][i % 4]}`, medianBytes: 20 * KiB, sigma: 1.4 },
    );
  } else if (app === 'batch') {
    groups.push(
      { area: 'os', role: 'bin', paths: ['/opt/batch/bin/job'], medianBytes: 20 * MiB, bootPhase: 5 },
      { area: 'data', role: 'data', dir: '/opt/batch/input', count: 64, name: (_w, i) => `part-${String(i).padStart(5, '0')}`, medianBytes: 128 * MiB, sigma: 0.3 },
    );
  } else {
    groups.push({ area: 'data', role: 'data', dir: '/home/user', count: 200, name: (w, i) => `${w}-${i}.dat`, medianBytes: 200 * KiB, sigma: 1.5 });
  }
  return groups;
}

function windowsTree(_version: string, app: AppRole): FileGroup[] {
  const s32 = '/Windows/System32';
  const groups: FileGroup[] = [
    { area: 'boot', role: 'loader', paths: ['/EFI/Microsoft/Boot/bootmgfw.efi', '/EFI/Boot/bootx64.efi'], medianBytes: 1.5 * MiB, sigma: 0.2, bootPhase: 0 },
    { area: 'boot', role: 'config', paths: ['/EFI/Microsoft/Boot/BCD'], medianBytes: 32 * KiB, bootPhase: 0 },
    { area: 'os', role: 'loader', paths: [`${s32}/winload.efi`], medianBytes: 1.4 * MiB, bootPhase: 1 },
    { area: 'os', role: 'kernel', paths: [`${s32}/ntoskrnl.exe`, `${s32}/hal.dll`], medianBytes: 6 * MiB, sigma: 0.8, bootPhase: 1 },
    { area: 'os', role: 'registry', paths: [`${s32}/config/SYSTEM`], medianBytes: 16 * MiB, bootPhase: 1 },
    { area: 'os', role: 'registry', paths: [`${s32}/config/SOFTWARE`, `${s32}/config/SAM`, `${s32}/config/SECURITY`, `${s32}/config/DEFAULT`], medianBytes: 4 * MiB, sigma: 1.5, bootPhase: 3 },
    { area: 'os', role: 'driver', dir: `${s32}/drivers`, count: 350, name: (w) => `${w}.sys`, medianBytes: 60 * KiB, sigma: 1, bootPhase: 2, bootShare: 0.25 },
    { area: 'os', role: 'lib', dir: s32, count: 900, name: (w) => `${w}.dll`, medianBytes: 220 * KiB, sigma: 1.2, bootPhase: 3, bootShare: 0.2 },
    { area: 'os', role: 'bin', dir: s32, count: 250, name: (w) => `${w}.exe`, medianBytes: 80 * KiB, sigma: 1, bootPhase: 4, bootShare: 0.1 },
    { area: 'os', role: 'lib', dir: '/Windows/WinSxS', count: 800, name: (w, i) => `amd64_${w}_${(i * 2654435761 >>> 0).toString(16)}/${w}.dll`, medianBytes: 200 * KiB, sigma: 1.2 },
    { area: 'os', role: 'log', dir: `${s32}/winevt/Logs`, count: 60, name: (w) => `${w}.evtx`, medianBytes: 1 * MiB, sigma: 0.8, bootPhase: 4, bootShare: 0.1 },
    { area: 'os', role: 'log', paths: ['/Windows/Logs/CBS/CBS.log'], medianBytes: 20 * MiB },
    { area: 'os', role: 'lib', dir: '/Program Files/Common Files', count: 200, name: (w) => `${w}/${w}.dll`, medianBytes: 300 * KiB, sigma: 1.2 },
    { area: 'data', role: 'swap', paths: ['/pagefile.sys'], medianBytes: 4 * GiB },
  ];
  if (app === 'database') {
    const dir = '/Program Files/Microsoft SQL Server/MSSQL15.MSSQLSERVER/MSSQL';
    groups.push(
      { area: 'os', role: 'bin', paths: [`${dir}/Binn/sqlservr.exe`], medianBytes: 500 * KiB, bootPhase: 5 },
      { area: 'data', role: 'wal', dir: `${dir}/DATA`, count: 6, name: (w) => `${w}_log.ldf`, medianBytes: 512 * MiB, sigma: 0.5, bootPhase: 5, bootShare: 0.34 },
      { area: 'data', role: 'data', dir: `${dir}/DATA`, count: 6, name: (w) => `${w}.mdf`, medianBytes: 2 * GiB, sigma: 0.6 },
    );
  } else if (app === 'web') {
    groups.push({ area: 'data', role: 'data', dir: '/inetpub/wwwroot', count: 400, name: (w, i) => `${w}${['.aspx', '.css', '.js', '.png'][i % 4]}`, medianBytes: 20 * KiB, sigma: 1.4 });
  } else if (app === 'batch') {
    groups.push({ area: 'data', role: 'data', dir: '/batch/input', count: 64, name: (_w, i) => `part-${String(i).padStart(5, '0')}`, medianBytes: 128 * MiB, sigma: 0.3 });
  } else {
    groups.push({ area: 'data', role: 'data', dir: '/Users/user/Documents', count: 200, name: (w, i) => `${w}-${i}.docx`, medianBytes: 200 * KiB, sigma: 1.5 });
  }
  return groups;
}

const DRIVER_DIRS = ['block', 'net/ethernet', 'scsi', 'ata', 'nvme/host', 'usb/storage', 'virtio', 'input', 'gpu/drm', 'md'];
const LOCALES = ['de', 'es', 'fr', 'it', 'ja', 'pt_BR', 'ru', 'zh_CN'];
const NAME_SYLLABLES = ['ac', 'al', 'bo', 'cr', 'da', 'ek', 'fi', 'gr', 'ha', 'in', 'jo', 'ke', 'lu', 'mo', 'ne', 'ox', 'pa', 'qu', 'ri', 'st', 'tu', 'ud', 'vo', 'wa', 'xy', 'ze'];

function pseudoWord(rng: Rng): string {
  let w = '';
  const n = 2 + rng.int(0, 3);
  for (let i = 0; i < n; i++) w += rng.pick(NAME_SYLLABLES);
  return w;
}

/** The disk's partition-like areas: [start, end) in bytes, scaled to the disk. */
function areasOf(sizeBytes: number): Record<Area, { start: number; end: number }> {
  const align = (x: number): number => Math.floor(x / SPAN_BYTES) * SPAN_BYTES;
  const bootStart = Math.min(MiB, align(sizeBytes / 64));
  const bootEnd = Math.max(bootStart + SPAN_BYTES, align(bootStart + Math.min(GiB, sizeBytes * 0.02)));
  const osEnd = Math.max(bootEnd + SPAN_BYTES, align(sizeBytes * 0.4));
  return { boot: { start: bootStart, end: bootEnd }, os: { start: bootEnd, end: osEnd }, data: { start: osEnd, end: sizeBytes } };
}

/** Bytes in non-zero regions of [start, end). */
function dataBytesIn(image: ImageContent, start: number, end: number): number {
  let n = 0;
  for (let span = Math.floor(start / SPAN_BYTES); span * SPAN_BYTES < end; span++) {
    if (image.spanIsZero(span)) continue;
    const s = Math.max(start, span * SPAN_BYTES);
    const e = Math.min(end, (span + 1) * SPAN_BYTES);
    // Every region of a non-zero span holds data.
    n += e - s;
  }
  return n;
}

/**
 * Hands out whole blocks of non-zero regions in address order. Zero is
 * decided per 1 MiB span (content.ts), so runs of data are runs of non-zero spans.
 */
class AreaAllocator {
  private pos: number;
  constructor(private readonly image: ImageContent, start: number, private readonly end: number) {
    this.pos = Math.ceil(start / CONTENT_BLOCK_BYTES) * CONTENT_BLOCK_BYTES;
  }

  allocate(bytes: number, path: string): DiskRange[] {
    let need = Math.max(1, Math.ceil(bytes / CONTENT_BLOCK_BYTES)) * CONTENT_BLOCK_BYTES;
    const out: DiskRange[] = [];
    while (need > 0) {
      while (this.pos < this.end && this.image.spanIsZero(Math.floor(this.pos / SPAN_BYTES))) {
        this.pos = (Math.floor(this.pos / SPAN_BYTES) + 1) * SPAN_BYTES;
      }
      if (this.pos >= this.end) {
        throw new SpillwayError('E_GUEST_DISK_FULL', `guest file view: no room left for ${path} (area ends at ${this.end})`);
      }
      let runEnd = (Math.floor(this.pos / SPAN_BYTES) + 1) * SPAN_BYTES;
      while (runEnd < this.end && runEnd - this.pos < need && !this.image.spanIsZero(runEnd / SPAN_BYTES)) runEnd += SPAN_BYTES;
      const take = Math.min(need, Math.min(runEnd, this.end) - this.pos);
      const last = out[out.length - 1];
      if (last && last.offset + last.length === this.pos) last.length += take;
      else out.push({ offset: this.pos, length: take });
      this.pos += take;
      need -= take;
    }
    return out;
  }
}

export class FileView {
  readonly byPath = new Map<string, GuestFile>();
  private index: Array<{ start: number; end: number; file: GuestFile }> | undefined;

  private constructor(readonly os: GuestOs, readonly files: GuestFile[], readonly scale: Record<Area, number>) {
    for (const f of files) this.byPath.set(f.path, f);
  }

  /**
   * Build the file tree for a disk of `sizeBytes` with `image`'s content.
   * Sizes shrink per area (the `scale` field says by how much) when the
   * disk is too small for a full install, so tests can use small disks.
   */
  static generate(image: ImageContent, sizeBytes: number, options: FileViewOptions): FileView {
    const rng = createRng(image.seed, `guest-files/${image.imageId}/${options.os}`);
    const groups = options.os === 'linux' ? linuxTree(options.version ?? '9', options.app ?? 'generic') : windowsTree(options.version ?? '2019', options.app ?? 'generic');
    const areas = areasOf(sizeBytes);
    const planned: Array<{ group: FileGroup; path: string; bytes: number; boot: boolean }> = [];
    for (const group of groups) {
      const paths = [...(group.paths ?? [])];
      if (group.dir && group.count && group.name) {
        const seen = new Set<string>();
        for (let i = 0; i < group.count; i++) {
          let p = `${group.dir}/${group.name(pseudoWord(rng), i)}`;
          while (seen.has(p)) p = `${group.dir}/${group.name(pseudoWord(rng), i)}`;
          seen.add(p);
          paths.push(p);
        }
      }
      for (const path of paths) {
        const bytes = Math.max(1, Math.round(group.medianBytes * Math.exp((group.sigma ?? 0) * rng.normal(0, 1))));
        const boot = group.bootPhase !== undefined && rng.next() < (group.bootShare ?? 1);
        planned.push({ group, path, bytes, boot });
      }
    }
    const scale = { boot: 1, os: 1, data: 1 };
    for (const area of ['boot', 'os', 'data'] as const) {
      const inArea = planned.filter((p) => p.group.area === area);
      const need = inArea.reduce((s, p) => s + p.bytes, 0);
      const room = dataBytesIn(image, areas[area].start, areas[area].end);
      // Leave room for the per-file block rounding and for the guest's own later growth.
      scale[area] = need === 0 ? 1 : Math.min(1, (0.7 * room - inArea.length * CONTENT_BLOCK_BYTES) / need);
      if (scale[area] <= 0) throw new SpillwayError('E_GUEST_DISK_FULL', `guest file view: a ${sizeBytes}-byte disk is too small for a ${options.os} tree`);
    }
    const allocators = {
      boot: new AreaAllocator(image, areas.boot.start, areas.boot.end),
      os: new AreaAllocator(image, areas.os.start, areas.os.end),
      data: new AreaAllocator(image, areas.data.start, areas.data.end),
    };
    const files: GuestFile[] = planned.map(({ group, path, bytes, boot }) => {
      const sizeBytes = Math.max(1, Math.round(bytes * scale[group.area]));
      const file: GuestFile = { path, sizeBytes, role: group.role, extents: allocators[group.area].allocate(sizeBytes, path), content: fileContentClass(group.role, path) };
      if (boot) file.bootPhase = group.bootPhase!;
      return file;
    });
    return new FileView(options.os, files, scale);
  }

  file(path: string): GuestFile {
    const f = this.byPath.get(path);
    if (!f) throw new SpillwayError('E_GUEST_NO_FILE', `guest file view: no file ${path}`);
    return f;
  }

  /** The file's bytes, read from `disk` at its extents. */
  async readFile(disk: BlockDevice, path: string): Promise<Buffer> {
    const f = this.file(path);
    const parts = await Promise.all(f.extents.map((e) => disk.read(e.offset, e.length)));
    return Buffer.concat(parts).subarray(0, f.sizeBytes);
  }

  /** The file whose extents hold disk byte `offset`, if any (for FIG 23 groups). */
  fileAt(offset: number): GuestFile | undefined {
    if (!this.index) {
      this.index = this.files.flatMap((file) => file.extents.map((e) => ({ start: e.offset, end: e.offset + e.length, file })));
      this.index.sort((a, b) => a.start - b.start);
    }
    const idx = this.index;
    let lo = 0;
    let hi = idx.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const e = idx[mid]!;
      if (offset < e.start) hi = mid - 1;
      else if (offset >= e.end) lo = mid + 1;
      else return e.file;
    }
    return undefined;
  }

  /** Disk ranges whose contents need not survive a reboot (swap, page file): cloud-only candidates. */
  nonPersistentRanges(): DiskRange[] {
    return this.files.filter((f) => f.role === 'swap' || f.path.startsWith('/tmp/')).flatMap((f) => f.extents);
  }

  /** The files as the content generator sees them (ImageContent.withFiles). */
  contentLayout(): FileContentLayout {
    return new FileContentLayout(this.files.map((f) => ({ extents: f.extents, sizeBytes: f.sizeBytes, cls: f.content })));
  }

  /** Bytes held by files. */
  get totalBytes(): number {
    return this.files.reduce((s, f) => s + f.sizeBytes, 0);
  }

  /**
   * A memfs volume with the tree and the bytes of the files `include`
   * accepts (default: all), read from `disk`. Refuses to hold more than
   * `maxBytes` (memfs is dense: it is for the file view, never the disk).
   */
  async toVolume(disk: BlockDevice, options: { include?: (f: GuestFile) => boolean; maxBytes?: number } = {}): Promise<InstanceType<typeof Volume>> {
    const { include = () => true, maxBytes = 256 * MiB } = options;
    const chosen = this.files.filter(include);
    const bytes = chosen.reduce((s, f) => s + f.sizeBytes, 0);
    if (bytes > maxBytes) {
      throw new SpillwayError('E_GUEST_VIEW_TOO_LARGE', `guest file view: the selected files hold ${bytes} bytes, over the ${maxBytes}-byte limit; pass include: to choose fewer`, { details: { bytes, maxBytes } });
    }
    const vol = new Volume();
    for (const f of chosen) {
      vol.mkdirSync(f.path.slice(0, f.path.lastIndexOf('/')) || '/', { recursive: true });
      vol.writeFileSync(f.path, await this.readFile(disk, f.path));
    }
    return vol;
  }
}
