import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument, isCollection } from 'yaml';
import { InputError } from '../errors.js';
import { DEFAULT_LATENCIES, EmulatedHypervisor, type HypervisorLatencies } from '../providers/emulated/hypervisor/hypervisor.js';
import { parseCloudConfig } from '../providers/emulated/ec2/config.js';
import { DEFAULT_DAILY, DEFAULT_NOISE, WORKLOAD_KINDS, type DailyPoint, type WorkloadSpec } from '../providers/emulated/workload/spec.js';
import { bool, duration, fail, join, known, list, num, obj, optStr, size, str, type Raw } from '../util/check.js';
import { SimWorld } from '../world/sim-world.js';
import { closest, expandNames, globToRegExp } from './names.js';
import { parsePolicies } from './policies/index.js';
import { parseAppRole, parseBootProfileSpec, parseContentSpec } from '../providers/emulated/guest/spec.js';
import { TIER_PRESETS, parseTierSpec } from '../providers/emulated/hypervisor/storage-tier.js';
import { EXPECT_OPS, type DatacenterSpec, type Expectation, type HostSpec, type ImageSpec, type MountSpec, type Scenario, type StorageTierSpec, type TimelineEvent, type VmSpec } from './schema.js';
import { parseWanSection } from './wan.js';

/**
 * Read and validate a scenario. Every error names the field path and what is
 * allowed there, with the line in the file when it can be found; nothing
 * unknown is ignored.
 */
export interface ScenarioChecks {
  /** The report metrics an `expect:` clause may name (the report derives them from the scenario); without it, any metric name is accepted. */
  metricPaths?: (scenario: Scenario) => ReadonlySet<string>;
}

export function loadScenarioFile(path: string, checks: ScenarioChecks = {}): Scenario {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new InputError('E_SCENARIO_READ', `cannot read scenario ${path}: ${(err as Error).message}`, { cause: err });
  }
  return parseScenario(text, path, checks);
}

export function parseScenario(text: string, sourceName: string, checks: ScenarioChecks = {}): Scenario {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const where = e.linePos?.[0] ? ` (line ${e.linePos[0].line}, column ${e.linePos[0].col})` : '';
    throw new InputError('E_BAD_YAML', `${sourceName}${where}: not valid YAML: ${e.message.split('\n')[0]}`);
  }
  const raw = doc.toJS({ maxAliasCount: 100 }) as unknown;
  try {
    return buildScenario(raw, sourceName, checks);
  } catch (err) {
    if (!(err instanceof InputError)) throw err;
    const path = typeof err.details?.path === 'string' ? err.details.path : pathFromMessage(err.message);
    const line = path === undefined ? undefined : lineOf(doc, lineCounter, path);
    const where = line === undefined ? sourceName : `${sourceName} line ${line}`;
    throw new InputError(err.code, `${where}: ${err.message}`, { cause: err, details: { ...err.details, ...(path ? { path } : {}), ...(line ? { line } : {}) } });
  }
}

function pathFromMessage(message: string): string | undefined {
  const m = /^([A-Za-z_][\w.[\]-]*):/.exec(message);
  return m?.[1];
}

/** Line of the deepest node on `path` that exists in the document. */
function lineOf(doc: ReturnType<typeof parseDocument>, lc: LineCounter, path: string): number | undefined {
  const segments: Array<string | number> = [];
  for (const m of path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) segments.push(m[2] !== undefined ? Number(m[2]) : m[1]!);
  for (let n = segments.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(segments.slice(0, n), true);
    const range = (node as { range?: [number, number, number] } | undefined)?.range;
    if (range && (n === 0 || node !== undefined)) {
      if (n === 0 && !isCollection(node)) return undefined;
      return lc.linePos(range[0]).line;
    }
  }
  return undefined;
}

const TOP = ['name', 'description', 'seed', 'duration', 'sampleEvery', 'tickEvery', 'datacenter', 'workloads', 'wan', 'cloud', 'policies', 'timeline', 'expect'];

function buildScenario(raw: unknown, sourceName: string, checks: ScenarioChecks): Scenario {
  const o = obj(raw ?? undefined, '');
  known(o, '', TOP);
  const name = str(o, 'name', '', { pattern: /^[\w.-]+$/ });
  const description = o.description === undefined ? '' : str(o, 'description', '');
  const seed = num(o, 'seed', '', { default: 1, min: 0, max: 2 ** 32 - 1, integer: true });
  const durationUs = duration(o, 'duration', '', '1d');
  if (durationUs <= 0) fail('duration', 'a positive duration', o.duration);
  const sampleEveryUs = duration(o, 'sampleEvery', '', '5m');
  if (sampleEveryUs < 1_000_000) fail('sampleEvery', 'at least 1s', o.sampleEvery);
  const tickEveryUs = duration(o, 'tickEvery', '', '5m');
  if (tickEveryUs < 1_000_000) fail('tickEvery', 'at least 1s', o.tickEvery);

  const workloads = parseWorkloads(o.workloads, 'workloads');
  const datacenter = parseDatacenter(o.datacenter, 'datacenter', workloads);
  const wan = parseWanSection(o.wan, 'wan');
  const cloud = parseCloudConfig(o.cloud, 'cloud');
  const policies = parsePolicies(o.policies, 'policies', {
    workloads: Object.keys(workloads), cloud,
    kinds: Object.fromEntries(Object.entries(workloads).map(([n, w]) => [n, w.kind])), vms: datacenter.vms.map((v) => ({ name: v.name, workload: v.workload })),
  });
  const timeline = parseTimeline(o.timeline, 'timeline', datacenter, workloads, durationUs, wan !== null);
  const scenario: Scenario = {
    name, description, seed, durationUs, sampleEveryUs, tickEveryUs, datacenter, workloads, wan, cloud, policies, timeline,
    expect: [], sourceName,
  };
  scenario.expect = parseExpect(o.expect, 'expect', checks.metricPaths?.(scenario) ?? null);
  planPlacement(scenario);
  return scenario;
}

// ---- datacenter ----------------------------------------------------------------------

function parseDatacenter(raw: unknown, path: string, workloads: Record<string, WorkloadSpec>): DatacenterSpec {
  const o = obj(raw, path);
  known(o, path, ['hosts', 'storage', 'images', 'vms', 'ha', 'latencies']);

  const haPath = join(path, 'ha');
  const haRaw = o.ha === undefined ? {} : obj(o.ha, haPath);
  known(haRaw, haPath, ['enabled', 'restartAfter']);
  const ha = { enabled: bool(haRaw, 'enabled', haPath, true), restartUs: duration(haRaw, 'restartAfter', haPath, '2m') };

  const latencies = parseLatencies(o.latencies, join(path, 'latencies'));

  const hostsPath = join(path, 'hosts');
  const hosts: HostSpec[] = [];
  list(o.hosts, hostsPath).forEach((entry, i) => {
    const p = join(hostsPath, i);
    const h = obj(entry, p);
    known(h, p, ['id', 'cpuCores', 'ramGiB']);
    const cpuCores = num(h, 'cpuCores', p, { min: 1, max: 4096, integer: true });
    const ramMiB = Math.round(num(h, 'ramGiB', p, { min: 1, max: 65536 }) * 1024);
    for (const id of expandNames(str(h, 'id', p), join(p, 'id'))) {
      if (hosts.some((x) => x.id === id)) fail(join(p, 'id'), 'host ids that are unique', id);
      hosts.push({ id, cpuCores, ramMiB });
    }
  });
  if (hosts.length === 0) fail(hostsPath, 'at least one host', o.hosts);

  const storagePath = join(path, 'storage');
  const storage: StorageTierSpec[] = o.storage === undefined
    ? Object.values(TIER_PRESETS).map((t) => ({ ...t }))
    : list(o.storage, storagePath).map((entry, i) => parseTierSpec(entry, join(storagePath, i)));
  if (storage.length === 0) fail(storagePath, 'at least one storage tier', o.storage);
  const tierNames = storage.map((t) => t.name);
  storage.forEach((t, i) => {
    if (tierNames.indexOf(t.name) !== i) fail(join(join(storagePath, i), 'name'), 'tier names that are unique', t.name);
  });

  const imagesPath = join(path, 'images');
  const images: ImageSpec[] = list(o.images, imagesPath).map((entry, i) => parseImage(entry, join(imagesPath, i), tierNames));
  images.forEach((im, i) => {
    if (images.findIndex((x) => x.id === im.id) !== i) fail(join(join(imagesPath, i), 'id'), 'image ids that are unique', im.id);
  });
  if (images.length === 0) fail(imagesPath, 'at least one image', o.images);

  const vmsPath = join(path, 'vms');
  const vms: VmSpec[] = [];
  const seen = new Set<string>();
  list(o.vms, vmsPath).forEach((entry, i) => {
    for (const vm of parseVmEntry(entry, join(vmsPath, i), i, { hosts, images, tierNames, workloads })) {
      if (seen.has(vm.name)) fail(join(join(vmsPath, i), 'name'), `VM names that are unique (${vm.name} is used twice)`, vm.name);
      seen.add(vm.name);
      vms.push(vm);
    }
  });
  if (vms.length === 0) fail(vmsPath, 'at least one VM', o.vms);
  return { ha, latencies, hosts, storage, images, vms };
}

const LATENCY_FIELDS: Array<[string, keyof HypervisorLatencies]> = [
  ['powerOn', 'powerOnUs'], ['powerOff', 'powerOffUs'], ['deactivate', 'deactivateUs'], ['reactivate', 'reactivateUs'],
  ['snapshot', 'snapshotUs'], ['memoryPerGiB', 'memoryPerGiBUs'], ['revert', 'revertUs'], ['deleteSnapshot', 'deleteSnapshotUs'],
  ['updateGuest', 'updateGuestUs'],
];

function parseLatencies(raw: unknown, path: string): HypervisorLatencies {
  const o = raw === undefined ? {} : obj(raw, path);
  known(o, path, LATENCY_FIELDS.map(([k]) => k));
  const out = { ...DEFAULT_LATENCIES };
  for (const [key, field] of LATENCY_FIELDS) if (o[key] !== undefined) out[field] = duration(o, key, path);
  return out;
}

function parseImage(raw: unknown, path: string, tiers: string[]): ImageSpec {
  const o = obj(raw, path);
  known(o, path, ['id', 'size', 'os', 'tier', 'content', 'bootProfile', 'app']);
  const osPath = join(path, 'os');
  const os = obj(o.os, osPath);
  known(os, osPath, ['family', 'distro', 'version']);
  return {
    id: str(o, 'id', path, { pattern: /^[\w.-]+$/ }),
    sizeBytes: size(o, 'size', path),
    os: {
      family: str(os, 'family', osPath, { allowed: ['linux', 'windows'] }) as 'linux' | 'windows',
      distro: str(os, 'distro', osPath),
      version: String(os.version ?? fail(join(osPath, 'version'), 'a version such as "8.9" or "2019"', os.version)),
    },
    tier: optStr(o, 'tier', path, { allowed: tiers }) ?? null,
    content: parseContentSpec(o.content, join(path, 'content')),
    bootProfile: parseBootProfileSpec(o.bootProfile, join(path, 'bootProfile')),
    app: parseAppRole(o, 'app', path),
  };
}

function parseVmEntry(raw: unknown, path: string, index: number, ctx: { hosts: HostSpec[]; images: ImageSpec[]; tierNames: string[]; workloads: Record<string, WorkloadSpec> }): VmSpec[] {
  const o = obj(raw, path);
  known(o, path, ['name', 'image', 'vcpus', 'ramGiB', 'host', 'workload', 'persistence', 'disks', 'mounts']);
  const names = expandNames(str(o, 'name', path), join(path, 'name'));
  const image = str(o, 'image', path, { allowed: ctx.images.map((i) => i.id) });
  const img = ctx.images.find((i) => i.id === image)!;
  const vcpus = num(o, 'vcpus', path, { min: 1, max: 512, integer: true });
  const ramMiB = Math.round(num(o, 'ramGiB', path, { min: 0.25, max: 24576 }) * 1024);
  const hostRaw = str(o, 'host', path, { default: 'auto', allowed: ['auto', ...ctx.hosts.map((h) => h.id)] });
  const workload = str(o, 'workload', path, { allowed: Object.keys(ctx.workloads) });
  const persistence = str(o, 'persistence', path, { default: 'on-prem', allowed: ['on-prem', 'cloud-only'] }) as VmSpec['disks'][number]['persistence'];
  const disksPath = join(path, 'disks');
  const dataDisks = o.disks === undefined ? [] : list(o.disks, disksPath).map((d, i) => {
    const p = join(disksPath, i);
    const dd = obj(d, p);
    known(dd, p, ['size', 'tier', 'persistence']);
    return {
      sizeBytes: size(dd, 'size', p),
      tier: optStr(dd, 'tier', p, { allowed: ctx.tierNames }) ?? img.tier,
      persistence: str(dd, 'persistence', p, { default: persistence, allowed: ['on-prem', 'cloud-only'] }) as typeof persistence,
    };
  });
  const mountsPath = join(path, 'mounts');
  const mounts: MountSpec[] = o.mounts === undefined ? [] : list(o.mounts, mountsPath).map((m, i) => {
    const p = join(mountsPath, i);
    const mm = obj(m, p);
    known(mm, p, ['path', 'persistence', 'size']);
    return {
      path: str(mm, 'path', p, { pattern: /^(\/|[A-Z]:\\?)/ }),
      persistence: str(mm, 'persistence', p, { default: 'non-persistent', allowed: ['persistent', 'non-persistent'] }) as MountSpec['persistence'],
      sizeBytes: size(mm, 'size', p, '4GiB'),
    };
  });
  return names.map((name) => ({
    name, image, vcpus, ramMiB, workload, entry: index,
    host: hostRaw === 'auto' ? null : hostRaw,
    disks: [
      { id: `${name}-disk0`, sizeBytes: img.sizeBytes, tier: img.tier, persistence, imageId: img.id },
      ...dataDisks.map((d, k) => ({ id: `${name}-disk${k + 1}`, imageId: `${name}-disk${k + 1}`, ...d })),
    ],
    mounts,
  }));
}

// ---- workloads -----------------------------------------------------------------------

function parseWorkloads(raw: unknown, path: string): Record<string, WorkloadSpec> {
  const o = obj(raw, path);
  const out: Record<string, WorkloadSpec> = {};
  for (const name of Object.keys(o)) {
    const p = join(path, name);
    if (!/^[\w-]+$/.test(name)) fail(p, 'a workload name of letters, digits, - and _', name);
    const w = obj(o[name], p);
    const kind = str(w, 'kind', p, { allowed: WORKLOAD_KINDS }) as WorkloadSpec['kind'];
    const noise = num(w, 'noise', p, { default: DEFAULT_NOISE[kind], min: 0, max: 1 });
    const dirtyRateBytesPerS = w.dirtyRate === undefined ? 8 * 1024 * 1024 : size(w, 'dirtyRate', p);
    if (kind === 'batch') {
      known(w, p, ['kind', 'work', 'start', 'parallelism', 'idle', 'noise', 'dirtyRate']);
      out[name] = {
        name, kind, noise, dirtyRateBytesPerS,
        workVcpuHours: num(w, 'work', p, { min: 0.001 }),
        startUs: duration(w, 'start', p, 0),
        parallelism: num(w, 'parallelism', p, { default: 1, min: 0.01, max: 1 }),
        idle: num(w, 'idle', p, { default: 0.02, min: 0, max: 1 }),
      };
      continue;
    }
    known(w, p, ['kind', 'base', 'daily', 'noise', 'spikes', 'dirtyRate']);
    const daily = w.daily === undefined ? DEFAULT_DAILY[kind].map((d) => ({ ...d })) : parseDaily(w.daily, join(p, 'daily'));
    let spikes = null;
    if (w.spikes !== undefined || kind === 'trading') {
      const sp = join(p, 'spikes');
      const s = w.spikes === undefined ? {} : obj(w.spikes, sp);
      known(s, sp, ['perHour', 'factor', 'meanDuration']);
      spikes = {
        perHour: num(s, 'perHour', sp, { default: 1.5, min: 0 }),
        factor: num(s, 'factor', sp, { default: 1.8, min: 1, max: 100 }),
        meanDurationUs: duration(s, 'meanDuration', sp, '10m'),
      };
    }
    out[name] = { name, kind, noise, dirtyRateBytesPerS, base: num(w, 'base', p, { min: 0, max: 1 }), daily, spikes };
  }
  if (Object.keys(out).length === 0) fail(path, 'at least one workload', raw);
  return out;
}

function parseDaily(raw: unknown, path: string): DailyPoint[] {
  const points = list(raw, path).map((entry, i) => {
    const p = join(path, i);
    const d = obj(entry, p);
    known(d, p, ['hour', 'factor']);
    return { hour: num(d, 'hour', p, { min: 0, max: 24 }), factor: num(d, 'factor', p, { min: 0, max: 100 }) };
  });
  if (points.length === 0) fail(path, 'at least one {hour, factor} point', raw);
  return points;
}

// ---- timeline --------------------------------------------------------------------------

const EVENTS = ['load', 'host-fail', 'host-recover', 'wan-outage', 'power-off', 'power-on', 'snapshot'] as const;

function parseTimeline(raw: unknown, path: string, dc: DatacenterSpec, workloads: Record<string, WorkloadSpec>, durationUs: number, hasWan: boolean): TimelineEvent[] {
  if (raw === undefined || raw === null) return [];
  const hostIds = dc.hosts.map((h) => h.id);
  const vmNames = dc.vms.map((v) => v.name);
  return list(raw, path).map((entry, index): TimelineEvent => {
    const p = join(path, index);
    const o = obj(entry, p);
    const event = str(o, 'event', p, { allowed: EVENTS });
    const atUs = duration(o, 'at', p);
    if (atUs > durationUs) fail(join(p, 'at'), `a time within the scenario's duration (${o.at} is after it)`, o.at);
    const forUs = (): number | null => (o.for === undefined ? null : duration(o, 'for', p));
    switch (event) {
      case 'load': {
        known(o, p, ['at', 'event', 'workload', 'vms', 'factor', 'for']);
        const workload = optStr(o, 'workload', p, { allowed: Object.keys(workloads) }) ?? null;
        if (workload && workloads[workload]!.kind === 'batch') {
          fail(join(p, 'workload'), `a steady workload (batch work is fixed: set workloads.${workload}.work and .start instead)`, workload);
        }
        const vms = optStr(o, 'vms', p) ?? null;
        if (vms !== null) {
          const re = globToRegExp(vms);
          if (!vmNames.some((n) => re.test(n))) fail(join(p, 'vms'), `a VM name or glob matching at least one VM (e.g. ${vmNames[0]}, web-*)`, vms);
        }
        if (workload === null && vms === null) fail(p, 'a workload or a vms glob to apply the load change to', entry);
        return { atUs, event, workload, vms, factor: num(o, 'factor', p, { min: 0, max: 100 }), forUs: forUs(), index };
      }
      case 'host-fail':
        known(o, p, ['at', 'event', 'host', 'for']);
        return { atUs, event, host: str(o, 'host', p, { allowed: hostIds }), forUs: forUs(), index };
      case 'host-recover':
        known(o, p, ['at', 'event', 'host']);
        return { atUs, event, host: str(o, 'host', p, { allowed: hostIds }), index };
      case 'wan-outage':
        known(o, p, ['at', 'event', 'for', 'reset']);
        if (!hasWan) fail(join(p, 'event'), 'an event other than wan-outage (this scenario has no wan: section)', event);
        return { atUs, event, forUs: duration(o, 'for', p), reset: bool(o, 'reset', p, false), index };
      case 'power-off':
      case 'power-on':
        known(o, p, ['at', 'event', 'vm']);
        return { atUs, event, vm: vmRef(o, p, vmNames), index };
      case 'snapshot':
        known(o, p, ['at', 'event', 'vm', 'name', 'memory']);
        return { atUs, event, vm: vmRef(o, p, vmNames), name: str(o, 'name', p, { default: `timeline-${index}` }), memory: bool(o, 'memory', p, false), index };
      default:
        return fail(join(p, 'event'), `one of ${EVENTS.join(', ')}`, event);
    }
  });
}

function vmRef(o: Raw, path: string, vmNames: string[]): string {
  const name = str(o, 'vm', path);
  if (!vmNames.includes(name)) fail(join(path, 'vm'), `a VM name (closest: ${closest(name, vmNames, 3).join(', ')})`, name);
  return name;
}

// ---- expectations -------------------------------------------------------------------

function parseExpect(raw: unknown, path: string, metricPaths: ReadonlySet<string> | null): Expectation[] {
  if (raw === undefined || raw === null) return [];
  const all = [...(metricPaths ?? [])];
  return list(raw, path).map((entry, i) => {
    const p = join(path, i);
    const o = obj(entry, p);
    known(o, p, ['id', 'metric', 'op', 'value']);
    const metric = str(o, 'metric', p);
    if (metricPaths && !metricPaths.has(metric)) {
      throw new InputError('E_UNKNOWN_METRIC', `${join(p, 'metric')}: "${metric}" is not a report metric; close matches: ${closest(metric, all).join(', ')}`, { details: { path: join(p, 'metric') } });
    }
    const op = str(o, 'op', p, { allowed: EXPECT_OPS }) as Expectation['op'];
    const value = o.value;
    if (!(typeof value === 'number' && Number.isFinite(value)) && typeof value !== 'boolean' && typeof value !== 'string' && value !== null) {
      fail(join(p, 'value'), 'a number, true/false, a string or null', value);
    }
    if (typeof value !== 'number' && op !== '==' && op !== '!=') fail(join(p, 'op'), '== or != (the value is not a number)', op);
    return { id: str(o, 'id', p, { default: `${metric} ${op} ${String(value)}` }), metric, op, value };
  });
}

// ---- placement --------------------------------------------------------------------

/**
 * Place every VM the way the run will, on a throwaway world, so a data center
 * that does not fit is a validation error rather than a failed run.
 */
function planPlacement(s: Scenario): void {
  const hv = new EmulatedHypervisor(new SimWorld(0), { hosts: s.datacenter.hosts });
  for (const vm of s.datacenter.vms) {
    hv.addVm({ id: vm.name, name: vm.name, vcpus: vm.vcpus, ramMiB: vm.ramMiB, workload: vm.workload, batch: false, disks: [], guest: PLACEMENT_ONLY_GUEST, dirtyRateBytesPerS: 0 });
    try {
      hv.placeRunning(vm.name, vm.host ?? undefined);
    } catch (err) {
      const field = join(join('datacenter.vms', vm.entry), vm.host ? 'host' : 'ramGiB');
      throw new InputError('E_NO_ROOM', `${field}: VM ${vm.name} does not fit: ${(err as Error).message}`, { details: { path: field } });
    }
  }
}

/** Placement checks only need CPU and RAM; the guest configuration plays no part in them. */
const PLACEMENT_ONLY_GUEST = {
  os: { family: 'linux' as const, distro: 'none', version: '0' }, bootDevice: '', devices: [], drivers: [], mounts: [],
  network: { hostname: '', domain: '', ipAddress: '', gateway: '', dns: [], dhcp: true },
  monitoringAgent: { installed: false, enabled: false, target: 'onprem' as const },
  identity: { machineName: '', machineId: '', domainJoined: false }, licences: [],
};

