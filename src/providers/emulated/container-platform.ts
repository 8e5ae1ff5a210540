import { createHash } from 'node:crypto';
import { SpillwayError } from '../../errors.js';
import type { ContainerFramework, ContainerManifest, ContainerPlatform, RunStats } from '../../ports/container-platform.js';
import type { FileRole, FileView } from './guest/file-view.js';
import { US_PER_S } from '../../util/units.js';
import type { Listener, Transport, World } from '../../world/types.js';
import { FrameworkCatalogue, templateName, type ContainerDef, type Framework, type FrameworkDef, type Site, type TemplateDef } from './container-frameworks.js';
import { ContainerPlatformError, receiveImage, serveImage } from './container-image-store.js';
import type { EmulatedHypervisor } from './hypervisor/hypervisor.js';

export { templateName, type ContainerDef, type FrameworkDef, type Site, type TemplateDef } from './container-frameworks.js';
export { ContainerPlatformError } from './container-image-store.js';

/**
 * Emulated container frameworks on both sides (seed 002 §7, FIG 24-27), on the
 * World clock and on the emulated hypervisor's own data:
 *
 * - run-time statistics (FIG 25 step 2503) are the hypervisor's CPU integrals
 *   over the VM's recent running time, its RAM allocation and its disks' I/O
 *   counters;
 * - an image built from a VM (FIG 25) holds the OS template by reference, a
 *   root-filesystem layer made of the VM's boot-disk files minus what the host
 *   kernel provides (its file view), the run state (the VM's memory, when it
 *   was running) and a manifest; `image(id)` shows what went in;
 * - loading an image on a remote framework (FIG 26/27 steps 2625/2725) moves
 *   its bytes over `world.net` to the local image store's address, so behind
 *   `world.net.setLink(address, wan)` they cross the emulated WAN and take
 *   its serialization, propagation, loss and outages;
 * - a container running a VM's workload makes that workload progress at the
 *   container's cores (`runElsewhere`), and its framework's load (idle and
 *   busy containers, §7.4) comes from the workload's demand.
 *
 * The frameworks and templates are in container-frameworks.ts, the image
 * store's wire protocol in container-image-store.ts.
 */

export interface ContainerLatencies {
  statsUs: number;
  templateUs: number;
  /** Fixed part of an image build; the layer is then packed at `packBytesPerS`. */
  buildUs: number;
  packBytesPerS: number;
  deleteImageUs: number;
  checkpointUs: number;
  /** Memory persisted per second at a checkpoint. */
  checkpointBytesPerS: number;
  provisionFrameworkUs: number;
  /** Fixed part of a container start; the image is then read at `loadBytesPerS`. */
  startUs: number;
  loadBytesPerS: number;
  stopUs: number;
}

export const DEFAULT_CONTAINER_LATENCIES: Readonly<ContainerLatencies> = {
  statsUs: 2 * US_PER_S,
  templateUs: 200_000,
  buildUs: 15 * US_PER_S,
  packBytesPerS: 200 * 1024 ** 2,
  deleteImageUs: 1 * US_PER_S,
  checkpointUs: 3 * US_PER_S,
  checkpointBytesPerS: 500 * 1024 ** 2,
  provisionFrameworkUs: 120 * US_PER_S,
  startUs: 4 * US_PER_S,
  loadBytesPerS: 400 * 1024 ** 2,
  stopUs: 2 * US_PER_S,
};


export interface ImageLayer {
  kind: 'template' | 'rootfs' | 'run-state' | 'manifest';
  bytes: number;
  /** template: its name; rootfs: sha256 over the file map (path, size, extents). */
  ref: string;
  files?: number;
}

export interface ContainerImage {
  id: string;
  sourceId: string;
  manifest: ContainerManifest;
  layers: ImageLayer[];
  /** Bytes a site without the template must receive; the template is counted only where it is missing. */
  bytesWithoutTemplate: number;
  /** From the guest config: what the container keeps of the VM's identity and OS. */
  guest: { os: { family: string; distro: string; version: string }; hostname: string; domain: string; machineName: string } | null;
  sites: Site[];
  builtAtUs: number;
  /** A checkpointed container's workload demand, carried to where it runs next; null for images of VMs (their VM says). */
  demandVcpus: number | null;
}

export interface ContainerInfo {
  id: string;
  frameworkId: string;
  imageId: string;
  state: 'running' | 'checkpointed' | 'stopped';
  vcpus: number;
  ramMiB: number;
  storageAddress: string;
  /** The VM whose workload it runs, if it was built from one. */
  vmId: string | null;
  startedAtUs: number;
}

export interface TransferRecord {
  imageId: string;
  bytes: number;
  startedUs: number;
  durationUs: number;
}

export interface ContainerPlatformOptions {
  hypervisor: EmulatedHypervisor;
  frameworks: FrameworkDef[];
  templates: TemplateDef[];
  containers?: ContainerDef[];
  /** The file view of a VM's boot disk (FIG 25 reads it to build the root-filesystem layer). */
  fileViewOf: (vmId: string) => FileView | undefined;
  /** Cumulative I/O operations of a disk (e.g. its StorageTier's reads + writes + other). */
  diskOps: (diskId: string) => number;
  /** Where the local image store serves images; route it over the WAN with world.net.setLink. */
  storeAddress: string;
  /** A container whose workload uses less than this share of its vCPUs counts as idle (§7.4). */
  idleBelow?: number;
  /** How far back "recent" run-time statistics look. */
  lookbackUs?: number;
  /** Size of a framework created by provisionFramework, at least what was asked. */
  provisionSize?: { vcpus: number; ramMiB: number };
  latencies?: Partial<ContainerLatencies>;
}

/** Files a system container leaves to its host: it boots no kernel and pages to the host's swap. */
const HOST_ROLES: ReadonlySet<FileRole> = new Set<FileRole>(['loader', 'kernel', 'initrd', 'module', 'driver', 'swap']);

interface Mark {
  atUs: number;
  demandVcpuUs: Map<string, number>;
  ops: Map<string, number>;
}

type FrameworkState = Framework<ContainerState>;

interface ContainerState extends ContainerInfo {
  fixedDemand: number | null;
  diskIds: string[];
  manifest: ContainerManifest;
  demandAtStartVcpuUs: number;
}


export class EmulatedContainerPlatform implements ContainerPlatform {
  readonly latencies: ContainerLatencies;
  readonly transfers: TransferRecord[] = [];
  private readonly hv: EmulatedHypervisor;
  private readonly catalogue: FrameworkCatalogue<ContainerState>;
  private readonly images = new Map<string, ContainerImage>();
  private readonly containers = new Map<string, ContainerState>();
  private readonly tokens = new Map<string, string>();
  private readonly marks: Mark[] = [];
  private listener: Listener | null = null;
  private seq = 0;

  constructor(private readonly world: World, private readonly options: ContainerPlatformOptions) {
    this.hv = options.hypervisor;
    this.latencies = { ...DEFAULT_CONTAINER_LATENCIES, ...options.latencies };
    for (const [k, v] of Object.entries(this.latencies)) {
      if (!(v >= 0) || (k.endsWith('PerS') && !(v > 0))) throw new SpillwayError('E_BAD_CONFIG', `containers latencies.${k}: expected a positive number, got ${v}`);
    }
    const idle = options.idleBelow ?? 0.05;
    if (!(idle >= 0 && idle < 1)) throw new SpillwayError('E_BAD_CONFIG', `containers idleBelow: expected a share in [0, 1), got ${idle}`);
    this.catalogue = new FrameworkCatalogue(options.frameworks, options.templates);
    for (const c of options.containers ?? []) this.addContainer(c);
    this.observe();
  }

  /** Serve the local image store on `storeAddress` (call once before remote loads). */
  async listen(): Promise<void> {
    if (this.listener) return;
    this.listener = await this.world.net.listen(this.options.storeAddress, (t) => this.serveImage(t));
  }

  async close(): Promise<void> {
    await this.listener?.close();
    this.listener = null;
  }

  /** Record every VM's CPU and disk counters now; statistics are taken between such marks (a simulation marks every sample). */
  observe(): void {
    const stats = this.hv.stats();
    const ops = new Map<string, number>();
    for (const vm of this.hv.vms()) for (const d of vm.diskIds) ops.set(d, this.options.diskOps(d));
    this.marks.push({ atUs: this.world.clock.nowUs(), demandVcpuUs: new Map(stats.vms.map((v) => [v.id, v.demandVcpuUs])), ops });
    const keepFrom = this.world.clock.nowUs() - 2 * this.lookbackUs;
    while (this.marks.length > 2 && this.marks[1]!.atUs <= keepFrom) this.marks.shift();
  }

  image(imageId: string): ContainerImage {
    const img = this.images.get(imageId);
    if (!img) throw new ContainerPlatformError('E_NO_IMAGE', `no container image ${imageId}`, false);
    return structuredClone(img);
  }

  container(containerId: string): ContainerInfo {
    const c = this.containerState(containerId);
    return { id: c.id, frameworkId: c.frameworkId, imageId: c.imageId, state: c.state, vcpus: c.vcpus, ramMiB: c.ramMiB, storageAddress: c.storageAddress, vmId: c.vmId, startedAtUs: c.startedAtUs };
  }

  // ---- ContainerPlatform port ------------------------------------------------------

  async collectStats(req: { vmId: string }): Promise<RunStats> {
    const vm = this.hv.vm(req.vmId);
    await this.world.clock.sleepUs(this.latencies.statsUs);
    const now = this.world.clock.nowUs();
    const mark = this.windowStart(now);
    const vmStats = this.hv.stats().vms.find((v) => v.id === req.vmId)!;
    const runningUs = runningTimeIn(vmStats.placements, mark.atUs, now);
    const demand = vmStats.demandVcpuUs - (mark.demandVcpuUs.get(req.vmId) ?? 0);
    // A VM that did not run in the window is sized at its allocation: nothing better is known.
    const cpuUsed = runningUs > 0 ? demand / runningUs : vm.vcpus;
    let ops = 0;
    for (const d of vm.diskIds) ops += this.options.diskOps(d) - (mark.ops.get(d) ?? 0);
    const iops = runningUs > 0 ? ops / (runningUs / US_PER_S) : 0;
    // The hypervisor models no guest memory use: a container gets the VM's allocation.
    return { vcpus: vm.vcpus, cpuUsed: round3(cpuUsed), ramMiB: vm.ramMiB, ramUsedMiB: vm.ramMiB, iops: round3(iops) };
  }

  async templateFor(req: { family: string; distro: string; version: string }): Promise<{ template: string }> {
    await this.world.clock.sleepUs(this.latencies.templateUs);
    const templates = this.catalogue.templates;
    const t = templates.find((x) => x.family === req.family && x.distro === req.distro && x.version === req.version);
    if (!t) {
      throw new ContainerPlatformError('E_NO_TEMPLATE', `no system-container template for ${req.family}/${req.distro}:${req.version}; the catalogue has ${templates.map(templateName).join(', ') || 'none'}`, false);
    }
    return { template: templateName(t) };
  }

  async buildImage(req: { token: string; sourceId: string; manifest: ContainerManifest }): Promise<{ imageId: string }> {
    const known = this.tokens.get(req.token);
    if (known && this.images.has(known)) return { imageId: known };
    const template = this.catalogue.templateNamed(req.manifest.template);
    if (!template) throw new ContainerPlatformError('E_NO_TEMPLATE', `manifest template ${req.manifest.template} is not in the catalogue`, false);
    const vm = this.hv.vm(req.sourceId);
    const view = this.options.fileViewOf(req.sourceId);
    if (!view) throw new ContainerPlatformError('E_NO_FILE_VIEW', `VM ${req.sourceId} has no file view: its root filesystem cannot be imaged`, false);
    const kept = view.files.filter((f) => !HOST_ROLES.has(f.role));
    const rootBytes = kept.reduce((s, f) => s + f.sizeBytes, 0);
    const fileMap = createHash('sha256');
    for (const f of kept) fileMap.update(`${f.path}\0${f.sizeBytes}\0${f.extents.map((e) => `${e.offset}+${e.length}`).join(',')}\n`);
    // Run state: the memory of a VM still running (snapshot mode, §7.3); a VM shut down left none.
    const runStateBytes = vm.power === 'running' ? (await this.hv.captureMemory(req.sourceId)).bytes : 0;
    await this.world.clock.sleepUs(this.latencies.buildUs + Math.ceil(((rootBytes + runStateBytes) / this.latencies.packBytesPerS) * US_PER_S));
    const manifest: ContainerManifest = { ...structuredClone(req.manifest), runStateBytes };
    const manifestBytes = Buffer.byteLength(JSON.stringify(manifest));
    const layers: ImageLayer[] = [
      { kind: 'template', bytes: template.sizeBytes, ref: templateName(template) },
      { kind: 'rootfs', bytes: rootBytes, ref: fileMap.digest('hex'), files: kept.length },
      { kind: 'run-state', bytes: runStateBytes, ref: `memory:${req.sourceId}` },
      { kind: 'manifest', bytes: manifestBytes, ref: 'manifest.json' },
    ];
    const g = vm.guest;
    const id = `cimg-${++this.seq}`;
    this.images.set(id, {
      id, sourceId: req.sourceId, manifest, layers, bytesWithoutTemplate: rootBytes + runStateBytes + manifestBytes,
      guest: { os: { ...g.os }, hostname: g.network.hostname, domain: g.network.domain, machineName: g.identity.machineName },
      sites: ['local'], builtAtUs: this.world.clock.nowUs(), demandVcpus: null,
    });
    this.tokens.set(req.token, id);
    this.world.trace.emit('containers/local', 'container.image', { image: id, source: req.sourceId, bytes: rootBytes + runStateBytes + manifestBytes, rootfsFiles: kept.length, runStateBytes });
    return { imageId: id };
  }

  async deleteImage(req: { imageId: string }): Promise<void> {
    await this.world.clock.sleepUs(this.latencies.deleteImageUs);
    this.images.delete(req.imageId);
  }

  async checkpoint(req: { containerId: string }): Promise<{ imageId: string; manifest: ContainerManifest }> {
    const c = this.containerState(req.containerId);
    const existing = this.tokens.get(`checkpoint:${c.id}`);
    if (c.state === 'checkpointed' && existing && this.images.has(existing)) return { imageId: existing, manifest: structuredClone(this.images.get(existing)!.manifest) };
    if (c.state !== 'running') throw new ContainerPlatformError('E_CONTAINER_STATE', `checkpoint needs container ${c.id} running; it is ${c.state}`, false);
    const runStateBytes = c.ramMiB * 1024 * 1024;
    await this.world.clock.sleepUs(this.latencies.checkpointUs + Math.ceil((runStateBytes / this.latencies.checkpointBytesPerS) * US_PER_S));
    this.settleStop(c, 'checkpointed');
    const site = this.frameworkState(c.frameworkId).site;
    // Its storage stays on the framework host's disks; the image names them for FIG 27 step 2713.
    const manifest: ContainerManifest = {
      ...structuredClone(c.manifest), vcpus: c.vcpus, ramMiB: c.ramMiB, runStateBytes,
      mounts: c.manifest.mounts.length > 0 ? structuredClone(c.manifest.mounts) : c.diskIds.map((d, i) => ({ mountPoint: `/srv/vol${i}`, source: `disk:${d}`, persistence: 'persistent' as const })),
    };
    const template = this.catalogue.templateNamed(manifest.template);
    const manifestBytes = Buffer.byteLength(JSON.stringify(manifest));
    const id = `ckpt-${c.id}-${++this.seq}`;
    this.images.set(id, {
      id, sourceId: c.id, manifest,
      layers: [
        { kind: 'template', bytes: template?.sizeBytes ?? 0, ref: manifest.template },
        { kind: 'run-state', bytes: runStateBytes, ref: `memory:${c.id}` },
        { kind: 'manifest', bytes: manifestBytes, ref: 'manifest.json' },
      ],
      bytesWithoutTemplate: runStateBytes + manifestBytes, guest: null, sites: [site], builtAtUs: this.world.clock.nowUs(),
      demandVcpus: this.containerDemand(c),
    });
    this.tokens.set(`checkpoint:${c.id}`, id);
    this.world.trace.emit(`container/${c.id}`, 'container.state', { state: 'checkpointed', framework: c.frameworkId, image: id });
    return { imageId: id, manifest: structuredClone(manifest) };
  }

  async restart(req: { containerId: string }): Promise<void> {
    const c = this.containerState(req.containerId);
    if (c.state === 'running') return;
    const fw = this.frameworkState(c.frameworkId);
    this.checkRoom(fw, c.vcpus, c.ramMiB);
    await this.world.clock.sleepUs(this.latencies.startUs);
    this.checkRoom(fw, c.vcpus, c.ramMiB);
    this.settleStart(c, fw);
  }

  async frameworks(req: { site: Site }): Promise<ContainerFramework[]> {
    return this.catalogue.at(req.site).map((f) => this.describe(f));
  }

  async provisionFramework(req: { token: string; site: Site; vcpus: number; ramMiB: number }): Promise<ContainerFramework> {
    const known = this.tokens.get(`framework:${req.token}`);
    if (known) return this.describe(this.frameworkState(known));
    await this.world.clock.sleepUs(this.latencies.provisionFrameworkUs);
    const size = this.options.provisionSize ?? { vcpus: 8, ramMiB: 32768 };
    const id = `cfw-${++this.seq}`;
    this.catalogue.add({ id, hostId: `${req.site === 'remote' ? 'cloud' : 'onprem'}-host-${id}`, site: req.site, kind: 'system', vcpus: Math.max(size.vcpus, req.vcpus), ramMiB: Math.max(size.ramMiB, req.ramMiB) });
    this.tokens.set(`framework:${req.token}`, id);
    this.world.trace.emit(`containers/${req.site}`, 'container.framework', { framework: id, vcpus: Math.max(size.vcpus, req.vcpus) });
    return this.describe(this.frameworkState(id));
  }

  async run(req: { token: string; frameworkId: string; imageId: string; storageAddress: string }): Promise<{ containerId: string }> {
    const known = this.tokens.get(`run:${req.token}`);
    if (known && this.containers.get(known)?.state === 'running') return { containerId: known };
    const fw = this.frameworkState(req.frameworkId);
    const img = this.images.get(req.imageId);
    if (!img) throw new ContainerPlatformError('E_NO_IMAGE', `no container image ${req.imageId}`, false);
    const { vcpus, ramMiB } = img.manifest;
    this.checkRoom(fw, vcpus, ramMiB);
    const twin = img.guest ? [...this.containers.values()].find((c) => c.vmId === img.sourceId && c.state === 'running') : undefined;
    // One VM's workload runs in one place: the hypervisor keeps one placement per VM.
    if (twin) throw new ContainerPlatformError('E_WORKLOAD_RUNNING', `the workload of VM ${img.sourceId} already runs in container ${twin.id}`, false, { container: twin.id });
    if (!img.sites.includes(fw.site)) {
      if (fw.site !== 'remote') throw new ContainerPlatformError('E_IMAGE_NOT_HERE', `image ${img.id} is not at the ${fw.site} site and images only travel from the local store`, false);
      const template = this.catalogue.templateNamed(img.manifest.template);
      const bytes = img.bytesWithoutTemplate + (template && !template.sites!.includes('remote') ? template.sizeBytes : 0);
      await this.fetchRemote(img, bytes);
      img.sites.push('remote');
    }
    const loadBytes = img.layers.filter((l) => l.kind !== 'template').reduce((s, l) => s + l.bytes, 0);
    await this.world.clock.sleepUs(this.latencies.startUs + Math.ceil((loadBytes / this.latencies.loadBytesPerS) * US_PER_S));
    this.checkRoom(fw, vcpus, ramMiB);
    const vmId = img.guest ? img.sourceId : null;
    const id = known ?? `ctr-${++this.seq}`;
    // A token whose container was stopped starts it again under the same id: forget the old record.
    const old = known ? this.containers.get(known) : undefined;
    if (old) this.frameworkState(old.frameworkId).containers.delete(old);
    const c: ContainerState = {
      id, frameworkId: fw.id, imageId: img.id, state: 'stopped', vcpus, ramMiB, storageAddress: req.storageAddress, vmId,
      startedAtUs: 0, fixedDemand: img.demandVcpus, diskIds: vmId ? this.hv.vm(vmId).diskIds : [], manifest: structuredClone(img.manifest), demandAtStartVcpuUs: 0,
    };
    this.containers.set(id, c);
    this.tokens.set(`run:${req.token}`, id);
    this.settleStart(c, fw);
    return { containerId: id };
  }

  async stop(req: { containerId: string }): Promise<void> {
    const c = this.containerState(req.containerId);
    if (c.state !== 'running') return;
    await this.world.clock.sleepUs(this.latencies.stopUs);
    this.settleStop(c, 'stopped');
  }

  // ---- internals -------------------------------------------------------------------

  private get lookbackUs(): number {
    return this.options.lookbackUs ?? 3600 * US_PER_S;
  }

  private windowStart(now: number): Mark {
    let chosen = this.marks[0]!;
    for (const m of this.marks) if (m.atUs <= now - this.lookbackUs) chosen = m;
    return chosen;
  }

  private addContainer(def: ContainerDef): void {
    if (this.containers.has(def.id)) throw new SpillwayError('E_BAD_CONFIG', `containers: ${def.id} is defined twice`);
    const fw = this.frameworkState(def.frameworkId);
    this.checkRoom(fw, def.manifest.vcpus, def.manifest.ramMiB);
    const c: ContainerState = {
      id: def.id, frameworkId: fw.id, imageId: `seed:${def.id}`, state: 'stopped', vcpus: def.manifest.vcpus, ramMiB: def.manifest.ramMiB,
      storageAddress: '', vmId: null, startedAtUs: 0, fixedDemand: def.demandVcpus, diskIds: [...def.diskIds], manifest: structuredClone(def.manifest), demandAtStartVcpuUs: 0,
    };
    this.containers.set(c.id, c);
    this.settleStart(c, fw);
  }

  private settleStart(c: ContainerState, fw: FrameworkState): void {
    if (c.frameworkId !== fw.id) this.frameworkState(c.frameworkId).containers.delete(c);
    c.frameworkId = fw.id;
    c.state = 'running';
    c.startedAtUs = this.world.clock.nowUs();
    fw.containers.add(c);
    if (c.vmId) {
      this.hv.runElsewhere(c.vmId, c.vcpus);
      c.demandAtStartVcpuUs = this.demandOf(c.vmId);
      this.world.trace.emit(`vm/${c.vmId}`, 'vm.placed', fw.site === 'remote' ? { where: 'cloud', container: c.id, framework: fw.id } : { where: 'onprem', host: fw.hostId, container: c.id });
    }
    this.world.trace.emit(`container/${c.id}`, 'container.state', { state: 'running', framework: fw.id });
  }

  private settleStop(c: ContainerState, state: 'stopped' | 'checkpointed'): void {
    c.state = state;
    if (c.vmId) this.hv.runElsewhere(c.vmId, null);
    this.world.trace.emit(`container/${c.id}`, 'container.state', { state, framework: c.frameworkId });
  }

  private demandOf(vmId: string): number {
    return this.hv.stats().vms.find((v) => v.id === vmId)?.demandVcpuUs ?? 0;
  }

  /** vCPUs the container's workload has wanted on average since it started (a container that just started counts as busy). */
  private containerDemand(c: ContainerState): number {
    if (c.fixedDemand !== null) return c.fixedDemand;
    const dt = this.world.clock.nowUs() - c.startedAtUs;
    if (!c.vmId || dt <= 0) return c.vcpus;
    return (this.demandOf(c.vmId) - c.demandAtStartVcpuUs) / dt;
  }

  private describe(f: FrameworkState): ContainerFramework {
    let usedVcpus = 0;
    let usedRam = 0;
    let idle = 0;
    let busy = 0;
    const idleBelow = this.options.idleBelow ?? 0.05;
    for (const c of f.containers) {
      if (c.state !== 'running') continue;
      usedVcpus += c.vcpus;
      usedRam += c.ramMiB;
      if (this.containerDemand(c) < idleBelow * c.vcpus) idle++;
      else busy++;
    }
    return { id: f.id, hostId: f.hostId, kind: f.kind, idleContainers: idle, busyContainers: busy, freeVcpus: f.vcpus - usedVcpus, freeRamMiB: f.ramMiB - usedRam };
  }

  private checkRoom(fw: FrameworkState, vcpus: number, ramMiB: number): void {
    const d = this.describe(fw);
    if (d.freeVcpus < vcpus || d.freeRamMiB < ramMiB) {
      throw new ContainerPlatformError('E_FRAMEWORK_FULL', `framework ${fw.id} has ${d.freeVcpus} vCPUs and ${d.freeRamMiB} MiB free; the container needs ${vcpus} and ${ramMiB}`, false,
        { framework: fw.id, freeVcpus: d.freeVcpus, freeRamMiB: d.freeRamMiB });
    }
  }

  /** The remote framework pulls the image from the local store over world.net (the WAN when a link is set). */
  private async fetchRemote(img: ContainerImage, bytes: number): Promise<void> {
    if (!this.listener) throw new ContainerPlatformError('E_NO_IMAGE_STORE', `the local image store is not serving ${this.options.storeAddress}; call listen() first`, false);
    const started = this.world.clock.nowUs();
    let conn: Transport;
    try {
      conn = await this.world.net.connect(this.options.storeAddress);
    } catch (err) {
      throw new ContainerPlatformError('E_LINK_DOWN', `cannot reach the image store at ${this.options.storeAddress}: ${(err as Error).message}`, true);
    }
    const received = await receiveImage(conn, img.id, bytes);
    const durationUs = this.world.clock.nowUs() - started;
    this.transfers.push({ imageId: img.id, bytes: received, startedUs: started, durationUs });
    this.world.trace.emit('containers/remote', 'container.transfer', { image: img.id, bytes: received, durationUs });
  }

  private serveImage(t: Transport): void {
    serveImage(t, (imageId) => {
      const img = this.images.get(imageId);
      return img && img.sites.includes('local') ? img.manifest : undefined;
    });
  }

  private containerState(id: string): ContainerState {
    const c = this.containers.get(id);
    if (!c) throw new ContainerPlatformError('E_NO_CONTAINER', `no container ${id}`, false);
    return c;
  }

  private frameworkState(id: string): FrameworkState {
    const f = this.catalogue.find(id);
    if (!f) throw new ContainerPlatformError('E_NO_FRAMEWORK', `no container framework ${id}; the frameworks are ${this.catalogue.ids().join(', ')}`, false);
    return f;
  }
}

/** Microseconds within [from, to] during which the placement timeline says the VM ran (on-prem or elsewhere). */
function runningTimeIn(placements: Array<{ atUs: number; where: string }>, from: number, to: number): number {
  let total = 0;
  for (let i = 0; i < placements.length; i++) {
    const p = placements[i]!;
    if (p.where === 'none') continue;
    const end = placements[i + 1]?.atUs ?? to;
    total += Math.max(0, Math.min(end, to) - Math.max(p.atUs, from));
  }
  return total;
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;
