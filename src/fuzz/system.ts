import { errorCode } from '../errors.js';
import { WanLink, wanConfig } from '../providers/emulated/wan/wan-link.js';
import { createCloudProxy, type CloudProxy, type CloudStores } from '../proxy/cloud/index.js';
import { createOnpremProxy, type OnpremProxy } from '../proxy/onprem/index.js';
import type { SimWorld } from '../world/sim-world.js';
import type { Rng } from '../world/types.js';
import { FaultyStore } from './faulty-store.js';
import { indexStoreBytes } from '../proxy/layers/cache-index.js';
import type { FuzzPlan } from './schedule.js';

export const FUZZ_KEY = '5f'.repeat(32);
const ONPREM = 'onprem:7000';
const DISK_ID = 'vm-disk0';
/** Start-up failures that mean "on-prem is not reachable right now". */
const UNREACHABLE: ReadonlySet<string> = new Set(['E_LINK_DOWN', 'E_LINK_TIMEOUT', 'E_CONNECT', 'ECONNRESET']);

export interface FaultyCloudStores extends CloudStores {
  writeStore: FaultyStore;
  writeMap: FaultyStore;
  journal: FaultyStore;
  cache: FaultyStore;
  cacheIndex: FaultyStore;
}

/**
 * The proxy pair under test, on a SimWorld: an on-prem proxy over a faulty
 * disk and apply journal, an emulated WAN, and a cloud proxy over faulty
 * stores, with the faults of FAULT_KINDS as methods. Everything that
 * survives a crash is a FaultyStore the system keeps, as a real disk would.
 */
export class ProxySystem {
  readonly disk: FaultyStore;
  readonly applyJournal: FaultyStore;
  readonly wan: WanLink;
  onprem!: OnpremProxy;
  cloud: CloudProxy | null = null;
  stores: FaultyCloudStores;
  private generation = 0;
  private readonly faultRng: Rng;

  constructor(readonly world: SimWorld, readonly plan: FuzzPlan, original: Buffer) {
    this.faultRng = world.rng('fuzz/crash');
    this.wan = new WanLink(world, wanConfig({ name: 'wan', rttUs: plan.rttUs, downBytesPerS: plan.bytesPerS, upBytesPerS: plan.bytesPerS }));
    world.net.setLink(ONPREM, this.wan);
    this.disk = this.watched(new FaultyStore('onprem-disk', plan.diskBytes));
    this.disk.writeSync(0, original);
    this.applyJournal = this.watched(new FaultyStore('apply-journal', 8 * 1024 * 1024));
    this.stores = this.freshStores();
  }

  freshStores(): FaultyCloudStores {
    const g = ++this.generation;
    const { diskBytes, journalBytes, cacheBytes } = this.plan;
    return {
      writeStore: this.watched(new FaultyStore(`wb-store:${g}`, diskBytes)),
      writeMap: this.watched(new FaultyStore(`wb-map:${g}`, Math.max(4096, Math.ceil(diskBytes / 4096 / 8)))),
      journal: this.watched(new FaultyStore(`wb-journal:${g}`, 8192 + journalBytes)),
      cache: this.watched(new FaultyStore(`cache:${g}`, 4096 + Math.ceil(cacheBytes / 4096) * (4096 + 16) + 4096)),
      cacheIndex: this.watched(new FaultyStore(`cache-index:${g}`, indexStoreBytes(Math.ceil(cacheBytes / 4096)))),
    };
  }

  /** What faults do to a store goes to the world's log (shown by `spillway fuzz --verbose`). */
  private watched(store: FaultyStore): FaultyStore {
    store.onFault = (what) => this.world.log('info', 'fuzz/store', what);
    return store;
  }

  async startOnprem(): Promise<void> {
    this.onprem = await createOnpremProxy(this.world, {
      address: ONPREM, pairingKey: FUZZ_KEY,
      disks: [{ id: DISK_ID, device: this.disk, applyJournal: this.applyJournal }],
    });
  }

  /** Start a cloud proxy over `stores` (the current ones by default); rejects as the proxy would. */
  openCloud(stores: FaultyCloudStores = this.stores, takeOver = false): Promise<CloudProxy> {
    const p = this.plan;
    return createCloudProxy(this.world, {
      name: `vm-${stores.journal.name}`, onprem: ONPREM, pairingKey: FUZZ_KEY,
      disk: { id: DISK_ID, persistence: 'on-prem', ...(p.nonPersistent ? { nonPersistent: [p.nonPersistent] } : {}) },
      stores, cacheCapacityBytes: p.cacheBytes, rpoUs: p.rpoUs, shipThresholdBytes: p.shipThresholdBytes,
      reconnectMinUs: 10_000, reconnectMaxUs: 500_000, ...(takeOver ? { takeOver: true } : {}),
    });
  }

  /**
   * Start the cloud proxy over the current stores, trying again (every
   * second, as a supervisor would) while on-prem cannot be reached.
   */
  async startCloud(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        this.cloud = await this.openCloud();
        return;
      } catch (err) {
        if (!UNREACHABLE.has(errorCode(err) ?? '') || attempt >= 600) throw err;
        await this.world.clock.sleepUs(1_000_000);
      }
    }
  }

  /** kill -9 of the cloud proxy: no goodbye, and its stores lose a random suffix of unflushed writes. */
  crashCloud(): void {
    this.cloud?.crash();
    this.cloud = null;
    for (const s of Object.values(this.stores)) s.crash(this.faultRng);
  }

  /**
   * SIGTERM: everything acknowledged ships, then the session ends cleanly. A
   * flush that fails (an injected I/O error) is tried again, as an operator
   * would after a failed stop.
   */
  async stopCloud(): Promise<void> {
    const c = this.cloud;
    if (!c) return;
    await retry(() => c.device.flush());
    await retry(() => c.drain());
    this.cloud = null;
    await c.close();
  }

  /** kill -9 of the on-prem proxy: its connections reset, its disk and apply journal lose unflushed writes. */
  async crashOnprem(): Promise<void> {
    await this.onprem.close();
    this.disk.crash(this.faultRng);
    this.applyJournal.crash(this.faultRng);
  }

  /** Try to become a second writer with an empty cache; returns the refusal code, or null if it was admitted. */
  async secondWriter(): Promise<string | null> {
    try {
      const intruder = await this.openCloud(this.freshStores());
      await intruder.close();
      return null;
    } catch (err) {
      return errorCode(err) ?? 'E_UNKNOWN';
    }
  }
}

/** Try `op` up to `attempts` times (for faults that are a moment's, like an injected I/O error). */
export async function retry<T>(op: () => Promise<T>, attempts = 5): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await op();
    } catch (err) {
      if (i >= attempts) throw err;
    }
  }
}
