import { z } from 'zod';
import { DEFAULT_LATENCIES, type HypervisorLatencies } from '../providers/emulated/hypervisor/hypervisor.js';
import { TIER_PRESETS } from '../providers/emulated/hypervisor/storage-tier.js';
import { SCENARIO_LIMITS } from './bounds.js';
import { bool, duration, int, list, mapping, num, oneOf, refuseExpected, shown, size, text, type IssueSink } from './fields.js';
import { appSchema, bootProfileSchema, contentSchema } from './guest.js';
import { nameCount, tryExpandNames } from './names.js';
import { tierSchema } from './storage.js';

/**
 * `datacenter:` — hosts, storage tiers, golden images and VMs (docs/scenarios.md). Host ids
 * and VM names may hold one `{a..b}` range; the result has them expanded, each VM with its
 * disks. References inside the section (an image's tier, a VM's image and host, a disk's
 * tier) are checked here; a VM's workload is checked against `workloads:` by the loader.
 */

const PERSISTENCE = ['on-prem', 'cloud-only'] as const;

const host = mapping({
  id: text().meta({ description: 'host id, or many with one {a..b} range ("esx-{01..06}")' }),
  cpuCores: int({ min: 1, max: 4096 }).meta({ description: 'physical cores' }),
  ramGiB: num({ min: 1, max: 65536 }).meta({ description: 'RAM; a VM runs on a host only if its RAM fits' }),
});

const image = mapping({
  id: text({ pattern: /^[\w.-]+$/ }).meta({ description: 'image id; VMs name it in `image`' }),
  size: size().meta({ description: 'size of the root disk of every VM cloned from it' }),
  os: mapping({
    family: oneOf(['linux', 'windows']).meta({ description: 'guest OS family' }),
    distro: text().meta({ description: 'e.g. rhel, windows-server' }),
    version: z.union([z.string(), z.number()], { error: (iss) => `expected a version such as "8.9" or "2019", got ${shown(iss.input)}` })
      .transform(String).meta({ description: 'e.g. "8.9" or "2019" (quote versions)' }),
  }),
  tier: text().optional().meta({ description: 'the storage tier clones live on' }),
  content: contentSchema,
  bootProfile: bootProfileSchema,
  app: appSchema,
}).transform((o) => ({
  id: o.id, sizeBytes: o.size, os: { family: o.os.family, distro: o.os.distro, version: o.os.version },
  tier: o.tier ?? null, content: o.content, bootProfile: o.bootProfile, app: o.app,
}));

const vmEntry = mapping({
  name: text().meta({ description: 'VM name, or many with one {a..b} range ("batch-{01..24}")' }),
  image: text().meta({ description: 'an image id; the root disk is a clone of it' }),
  vcpus: int({ min: 1, max: 512 }).meta({ description: 'vCPUs; demand never exceeds them' }),
  ramGiB: num({ min: 0.25, max: 24576 }).meta({ description: 'RAM' }),
  host: text().default('auto').meta({ description: '"auto" or a host id' }),
  workload: text().meta({ description: 'a workload name' }),
  persistence: oneOf(PERSISTENCE).default('on-prem').meta({ description: 'root disk persistence when bursting, and the default for data disks' }),
  disks: list(mapping({
    size: size().meta({ description: 'data disk size' }),
    tier: text().optional().meta({ description: "a storage tier (default: the image's)" }),
    persistence: oneOf(PERSISTENCE).optional().meta({ description: "default: the VM's persistence" }),
  })).default([]).meta({ description: 'data disks (start empty)' }),
  mounts: list(mapping({
    path: text({ pattern: /^(\/|[A-Z]:\\?)/ }).meta({ description: 'mount point: /path or a drive letter' }),
    persistence: oneOf(['persistent', 'non-persistent']).default('non-persistent').meta({ description: 'non-persistent (swap, /tmp) may stay cloud-only' }),
    size: size().prefault('4GiB').meta({ description: 'mount size' }),
  })).default([]).meta({ description: 'extra guest mount points on the root disk' }),
});

const latencies = mapping({
  powerOn: duration().optional(), powerOff: duration().optional(), deactivate: duration().optional(), reactivate: duration().optional(),
  snapshot: duration().optional(), memoryPerGiB: duration().optional(), revert: duration().optional(), deleteSnapshot: duration().optional(),
  updateGuest: duration().optional(),
}).prefault({} as never).transform((o): HypervisorLatencies => {
  const out = { ...DEFAULT_LATENCIES };
  for (const [key, us] of Object.entries(o)) if (us !== undefined) out[`${key}Us` as keyof HypervisorLatencies] = us;
  return out;
}).meta({ description: 'hypervisor operation times' });

type Image = z.output<typeof image>;
type VmEntry = z.output<typeof vmEntry>;

const fields = mapping({
  ha: mapping({
    enabled: bool().default(true).meta({ description: "restart a failed host's VMs on other hosts" }),
    restartAfter: duration().prefault('2m').meta({ description: 'failure to running again (detection + boot)' }),
  }).prefault({} as never).meta({ description: 'HA restart of a failed host\'s VMs' }),
  latencies,
  hosts: list(host, { atLeastOne: 'at least one host' }).meta({ description: 'hosts (at least one)' }),
  storage: list(tierSchema, { atLeastOne: 'at least one storage tier' }).optional()
    .meta({ description: 'storage tiers (default: the presets nvme, ssd, hdd, archive)' }),
  images: list(image, { atLeastOne: 'at least one image' }).meta({ description: 'golden images VMs are cloned from (at least one)' }),
  vms: list(vmEntry, { atLeastOne: 'at least one VM' }).meta({ description: 'virtual machines (at least one)' }),
});

export const datacenterSchema = fields.transform((o, ctx) => {
  const hosts = expandHosts(o.hosts, ctx);
  const storage = o.storage ?? Object.values(TIER_PRESETS).map((t) => ({ ...t }));
  const tierNames = storage.map((t) => t.name);
  const twiceTier = tierNames.findIndex((n, i) => tierNames.indexOf(n) !== i);
  if (twiceTier >= 0) return refuseExpected(ctx, tierNames[twiceTier], 'tier names that are unique', ['storage', twiceTier, 'name']);
  const imageIds = o.images.map((im) => im.id);
  const twiceImage = imageIds.findIndex((n, i) => imageIds.indexOf(n) !== i);
  if (twiceImage >= 0) return refuseExpected(ctx, imageIds[twiceImage], 'image ids that are unique', ['images', twiceImage, 'id']);
  const badTier = o.images.findIndex((im) => im.tier !== null && !tierNames.includes(im.tier));
  if (badTier >= 0) return refuseExpected(ctx, o.images[badTier]!.tier, `one of ${tierNames.join(', ')}`, ['images', badTier, 'tier']);
  if (hosts === null) return z.NEVER;
  const vms = buildVms(o.vms, { hostIds: hosts.map((h) => h.id), images: o.images, tierNames }, ctx);
  if (vms === null) return z.NEVER;
  return { ha: { enabled: o.ha.enabled, restartUs: o.ha.restartAfter }, latencies: o.latencies, hosts, storage, images: o.images, vms };
});

export type DatacenterSpec = z.output<typeof datacenterSchema>;
export type HostSpec = DatacenterSpec['hosts'][number];
export type ImageSpec = DatacenterSpec['images'][number];
export type VmSpec = DatacenterSpec['vms'][number];
export type DiskSpec = VmSpec['disks'][number];
export type MountSpec = VmSpec['mounts'][number];
export type Persistence = (typeof PERSISTENCE)[number];

/** Expanded names of every entry, or null once an issue is raised; the total is capped before any list is made. */
function expandAll<E extends object>(entries: readonly E[], nameOf: (e: E) => string, key: string, section: string, max: number, ctx: IssueSink): string[][] | null {
  let total = 0;
  for (const [i, e] of entries.entries()) {
    const n = nameCount(nameOf(e), SCENARIO_LIMITS.namesPerRange);
    if (typeof n === 'string') return refuseExpected(ctx, nameOf(e), n, [section, i, key]), null;
    total += n;
  }
  if (total > max) return refuseExpected(ctx, total, `at most ${max} ${section} once {a..b} ranges are expanded`, [section]), null;
  const out: string[][] = [];
  const seen = new Set<string>();
  for (const [i, e] of entries.entries()) {
    const names = tryExpandNames(nameOf(e), SCENARIO_LIMITS.namesPerRange);
    if (typeof names === 'string') return refuseExpected(ctx, nameOf(e), names, [section, i, key]), null;
    for (const n of names) {
      if (seen.has(n)) {
        const what = section === 'hosts' ? 'host ids that are unique' : `VM names that are unique (${n} is used twice)`;
        return refuseExpected(ctx, n, what, [section, i, key]), null;
      }
      seen.add(n);
    }
    out.push(names);
  }
  return out;
}

function expandHosts(entries: ReadonlyArray<z.output<typeof host>>, ctx: IssueSink) {
  const names = expandAll(entries, (h) => h.id, 'id', 'hosts', SCENARIO_LIMITS.hosts, ctx);
  return names && entries.flatMap((h, i) => names[i]!.map((id) => ({ id, cpuCores: h.cpuCores, ramMiB: Math.round(h.ramGiB * 1024) })));
}

function buildVms(entries: readonly VmEntry[], dc: { hostIds: string[]; images: Image[]; tierNames: string[] }, ctx: IssueSink) {
  const names = expandAll(entries, (v) => v.name, 'name', 'vms', SCENARIO_LIMITS.vms, ctx);
  if (!names) return null;
  const vms = [];
  for (const [index, o] of entries.entries()) {
    const at = ['vms', index];
    const img = dc.images.find((im) => im.id === o.image);
    if (!img) return refuseExpected(ctx, o.image, `one of ${dc.images.map((im) => im.id).join(', ')}`, [...at, 'image']), null;
    if (o.host !== 'auto' && !dc.hostIds.includes(o.host)) return refuseExpected(ctx, o.host, `one of ${['auto', ...dc.hostIds].join(', ')}`, [...at, 'host']), null;
    const badDisk = o.disks.findIndex((d) => d.tier !== undefined && !dc.tierNames.includes(d.tier));
    if (badDisk >= 0) return refuseExpected(ctx, o.disks[badDisk]!.tier, `one of ${dc.tierNames.join(', ')}`, [...at, 'disks', badDisk, 'tier']), null;
    const dataDisks = o.disks.map((d) => ({ sizeBytes: d.size, tier: d.tier ?? img.tier, persistence: d.persistence ?? o.persistence }));
    // Every VM of an entry shares its mounts: they are the entry's, read-only.
    const mounts = o.mounts.map((m) => ({ path: m.path, persistence: m.persistence, sizeBytes: m.size }));
    for (const name of names[index]!) {
      vms.push({
        name, image: o.image, vcpus: o.vcpus, ramMiB: Math.round(o.ramGiB * 1024), workload: o.workload, entry: index,
        host: o.host === 'auto' ? null : o.host,
        disks: [
          { id: `${name}-disk0`, sizeBytes: img.sizeBytes, tier: img.tier, persistence: o.persistence, imageId: img.id },
          ...dataDisks.map((d, k) => ({ id: `${name}-disk${k + 1}`, imageId: `${name}-disk${k + 1}`, ...d })),
        ],
        mounts,
      });
    }
  }
  return vms;
}
