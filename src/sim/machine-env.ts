import { InstanceTracker } from '../controller/instance-tracker.js';
import type { MachineKit } from '../controller/machine-kit.js';
import type { FlowConfig } from '../machines/flow.js';
import type { MachineEnv } from '../machines/env.js';
import { MachineRuntime, MemorySnapshotStore, type SnapshotStore } from '../machines/runtime.js';
import { wireMachines } from '../machines/wiring.js';
import type { Cloud } from '../ports/cloud.js';
import type { GuestBootModel } from '../ports/guest-boot.js';
import { EmulatedContainerPlatform, type ContainerPlatformOptions } from '../providers/emulated/container-platform.js';
import { EmulatedDirectory } from '../providers/emulated/directory.js';
import type { EmulatedHypervisor } from '../providers/emulated/hypervisor/hypervisor.js';
import { bootModelFromImages, createProxyControl, type CoreProxyControl, type ProxyControlOptions } from '../providers/proxy-control/index.js';
import type { GuestImage } from '../providers/emulated/guest/image.js';
import type { World } from '../world/types.js';
import { ContentMemo } from '../proxy/content-memo.js';

const S = 1_000_000;

/**
 * Step timeouts and retries of the lifecycle machines in a simulation. The
 * boot steps get minutes: a cold boot streams its working set over the WAN.
 * Launch faults (capacity, limits) are not retried here: the controller
 * decides where to try next (see src/controller/burst/controller.ts).
 */
export const SIM_FLOW_CONFIG: FlowConfig = {
  timeoutsUs: {
    loadStagingImage: 900 * S, stageBoot: 900 * S, targetBoot: 1800 * S,
    deactivateRemote: 600 * S, releaseRemote: 300 * S, flushWrites: 3600 * S, remount: 3600 * S,
    // The instance machine's watchdogs: a whole transfer, reverse or migration, retries included.
    deactivated: 3600 * S, decoupled: 3 * 3600 * S, returning: 4 * 3600 * S, migrating: 3 * 24 * 3600 * S,
  },
  defaultTimeoutUs: 300 * S,
  retry: { maxAttempts: 4, backoffBaseUs: 2 * S, backoffMaxUs: 60 * S, backoffFactor: 2 },
};

export interface SimMachineEnvOptions {
  world: World;
  hypervisor: EmulatedHypervisor;
  cloud: Cloud;
  /** Where the on-prem proxy listens; route it over the WAN with world.net.setLink first. */
  onpremAddress: string;
  /** Where the on-prem run-state server listens (FIG 15 mirroring); route it over the WAN too. */
  runStateAddress: string;
  /** The guest images by id: their boot files (FIG 21) and per-VM boot reads. */
  images: ReadonlyMap<string, GuestImage>;
  /** Per disk proxy; see ProxyControlOptions.cache. */
  cache?: { capacityBytes?: number; maxCapacityBytes?: number; blockBytes?: number };
  boot?: { depth?: number; thinkUs?: number };
  /** 64 hex characters shared by both proxies. */
  pairingKey?: string;
  /** What startPrefetch streams (ProxyControlOptions.prefetch); default true. */
  prefetch?: boolean | 'recorded';
  /** Write-behind recovery point objective of each cloud proxy. */
  rpoUs?: number;
  flow?: FlowConfig;
  /** Directory domains; default: every domain a VM's guest config names. */
  domains?: string[];
  /** Container frameworks and templates (none by default), and how to count a disk's I/O operations. */
  containers?: Partial<Pick<ContainerPlatformOptions, 'frameworks' | 'templates' | 'containers' | 'diskOps' | 'storeAddress' | 'latencies'>>;
  /** How often machine steps poll the cloud. Default 2 s. */
  pollEveryUs?: number;
  store?: SnapshotStore;
}

/**
 * One simulation's lifecycle machinery, shared by every controller that
 * moves VMs: the controllers see it as a MachineKit (ports only); tests and
 * the runner also reach the concrete adapters behind it.
 */
export interface SimMachineEnv extends MachineKit {
  proxy: CoreProxyControl;
  directory: EmulatedDirectory;
  containers: EmulatedContainerPlatform;
}

const DEFAULT_KEY = '5b'.repeat(32);

/**
 * The machines' environment of a simulation: the emulated hypervisor and
 * cloud, the real proxy core behind CoreProxyControl (every block a cloud
 * instance reads crosses the emulated WAN), the emulated directory (clones
 * re-join their domain) and the emulated container platform. Resolves once
 * the on-prem proxy and run-state server listen, so the caller must let the
 * world run (it is created from inside a scheduled event or awaited while
 * `world.run` advances).
 */
export async function createSimMachineEnv(opts: SimMachineEnvOptions): Promise<SimMachineEnv> {
  const { world, hypervisor, cloud, images } = opts;
  const guestBoot: GuestBootModel = bootModelFromImages(images);
  const proxyOptions: ProxyControlOptions = {
    hypervisor,
    pairingKey: opts.pairingKey ?? DEFAULT_KEY,
    onpremAddress: opts.onpremAddress,
    runStateAddress: opts.runStateAddress,
    guest: guestBoot,
    ...(opts.cache ? { cache: opts.cache } : {}),
    ...(opts.boot ? { boot: opts.boot } : {}),
    ...(opts.prefetch !== undefined ? { prefetch: opts.prefetch } : {}),
    ...(opts.rpoUs ? { rpoUs: opts.rpoUs } : {}),
    // Every VM of an image reads the same blocks: the run hashes and inflates each distinct block once.
    contentMemo: new ContentMemo(),
  };
  const proxy = await createProxyControl(world, proxyOptions);
  const domains = opts.domains ?? [...new Set(hypervisor.vms().map((vm) => vm.guest.network.domain.toLowerCase()))].sort();
  const directory = new EmulatedDirectory(world, { domains: domains.length > 0 ? domains : ['local'] });
  directory.enrolFrom(hypervisor);
  const c = opts.containers ?? {};
  const containers = new EmulatedContainerPlatform(world, {
    hypervisor,
    frameworks: c.frameworks ?? [],
    templates: c.templates ?? [],
    ...(c.containers ? { containers: c.containers } : {}),
    ...(c.latencies ? { latencies: c.latencies } : {}),
    fileViewOf: (vmId) => {
      const vm = hypervisor.vm(vmId);
      const root = vm.guest.mounts.find((m) => m.mountPoint === '/' || m.mountPoint.toUpperCase() === 'C:')?.diskId ?? vm.diskIds[0];
      return root ? images.get(hypervisor.disk(root).imageId)?.files : undefined;
    },
    diskOps: c.diskOps ?? (() => 0),
    storeAddress: c.storeAddress ?? 'onprem:image-store',
  });
  const env: MachineEnv = { world, hypervisor, cloud, proxy, directory, containers, pollEveryUs: opts.pollEveryUs ?? 2 * S };
  const machines = wireMachines(env);
  const runtime = new MachineRuntime(world, opts.store ?? new MemorySnapshotStore());
  const flow = opts.flow ?? SIM_FLOW_CONFIG;
  return { env, proxy, machines, runtime, flow, guestBoot, instances: new InstanceTracker(runtime, machines.instance, flow), directory, containers };
}
