import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { SpillwayError } from '../../errors.js';
import type { BlockDevice } from '../../proxy/block-device.js';
import { FileStore } from '../../proxy/stores/file-store.js';
import type {
  DiskInfo, DiskLease, GuestConfig, HostInfo, Hypervisor, MemoryImage, PowerState, SnapshotInfo, VmInfo,
} from '../../ports/hypervisor.js';
import type { World } from '../../world/types.js';
import { LeaseGuard } from '../emulated/hypervisor/lease-guard.js';
import type { QemuInventory, QemuVmSpec } from './inventory.js';
import { OpeningDevice } from './opening-device.js';
import { QmpClient } from './qmp.js';
import * as img from './qemu-img.js';

/**
 * The Hypervisor port on real qemu processes on this machine (the one host):
 * power on spawns `qemu-system-x86_64` with a QMP socket, power off asks the
 * guest (ACPI) and quits it after `shutdownTimeoutUs`; snapshots are qcow2
 * internal snapshots (QMP while running, qemu-img while stopped); the guest
 * configuration is what the inventory says, changed only through
 * updateGuest; disks open as files (raw images only).
 */

export interface QemuHypervisorOptions {
  /** How long a guest gets to power itself off after the ACPI request. */
  shutdownTimeoutUs?: number;
  /** How long QEMU gets to open its QMP socket. */
  startTimeoutUs?: number;
  binary?: string;
}

interface Running {
  process: ChildProcess;
  qmp: QmpClient;
  exited: Promise<number | null>;
}

interface VmState {
  spec: QemuVmSpec;
  hostId: string | null;
  guest: GuestConfig;
  running: Running | null;
}

interface DiskState {
  info: DiskInfo;
  path: string;
  format: string;
  lease: DiskLease | null;
}

const POLL_US = 50_000;

/** Open the inventory's hypervisor; every disk image is looked at (format, size) first, so a missing one fails now. */
export async function openQemuHypervisor(world: World, inventory: QemuInventory, options: QemuHypervisorOptions = {}): Promise<QemuHypervisor> {
  const disks = new Map<string, DiskState>();
  for (const vm of inventory.vms) {
    for (const d of vm.disks) {
      const facts = await img.imageFacts(d.path);
      disks.set(d.id, {
        info: { id: d.id, vmId: vm.id, sizeBytes: facts.virtualSizeBytes, tier: 'local', imageId: facts.backingFile ?? d.id },
        path: d.path, format: facts.format, lease: null,
      });
    }
  }
  mkdirSync(inventory.runDir, { recursive: true });
  return new QemuHypervisor(world, inventory, disks, options);
}

export class QemuHypervisor implements Hypervisor {
  private readonly vmStates = new Map<string, VmState>();
  private readonly snapshots = new Map<string, SnapshotInfo>();
  private readonly shutdownTimeoutUs: number;
  private readonly startTimeoutUs: number;
  private readonly binary: string;

  constructor(private readonly world: World, private readonly inventory: QemuInventory, private readonly disks: Map<string, DiskState>, options: QemuHypervisorOptions) {
    for (const spec of inventory.vms) this.vmStates.set(spec.id, { spec, hostId: inventory.host.id, guest: structuredClone(spec.guest), running: null });
    this.shutdownTimeoutUs = options.shutdownTimeoutUs ?? 60_000_000;
    this.startTimeoutUs = options.startTimeoutUs ?? 20_000_000;
    this.binary = options.binary ?? 'qemu-system-x86_64';
  }

  hosts(): HostInfo[] {
    const running = [...this.vmStates.values()].filter((v) => v.running);
    const { id, cpuCores, ramMiB } = this.inventory.host;
    // No guest metrics here: a running VM is counted at its vCPUs.
    return [{ id, cpuCores, ramMiB, cpuDemand: running.reduce((s, v) => s + v.spec.vcpus, 0), ramAllocatedMiB: running.reduce((s, v) => s + v.spec.ramMiB, 0), failed: false }];
  }

  vms(): VmInfo[] {
    return [...this.vmStates.keys()].map((id) => this.vm(id));
  }

  vm(vmId: string): VmInfo {
    const v = this.state(vmId);
    return {
      id: v.spec.id, name: v.spec.name, hostId: v.hostId, power: this.power(v), vcpus: v.spec.vcpus, ramMiB: v.spec.ramMiB,
      diskIds: v.spec.disks.map((d) => d.id), workload: '', cpuDemand: v.running ? v.spec.vcpus : 0, guest: structuredClone(v.guest),
    };
  }

  disk(diskId: string): DiskInfo {
    return { ...this.diskState(diskId).info };
  }

  async powerOn(vmId: string, hostId?: string): Promise<void> {
    const v = this.state(vmId);
    if (v.running) return;
    if (hostId !== undefined && hostId !== this.inventory.host.id) throw new SpillwayError('E_NO_HOST', `host ${hostId}: this qemu hypervisor has one host, ${this.inventory.host.id}`);
    if (v.hostId === null) throw new SpillwayError('E_VM_STATE', `VM ${vmId} is deactivated; reactivate it on ${this.inventory.host.id} first`);
    for (const d of v.spec.disks) {
      const lease = this.diskState(d.id).lease;
      if (lease) throw new SpillwayError('E_LEASE_HELD', `disk ${d.id} is locked for writing by ${lease.owner}; VM ${vmId} cannot start on it`);
    }
    const socket = `${this.inventory.runDir}/${vmId}.qmp`;
    const args = [
      '-accel', this.inventory.accel, '-nodefaults', '-no-user-config', '-display', 'none', '-name', vmId,
      '-m', String(v.spec.ramMiB), '-smp', String(v.spec.vcpus),
      '-qmp', `unix:${socket},server=on,wait=off`, '-serial', `file:${this.inventory.runDir}/${vmId}.serial.log`,
      ...v.spec.disks.flatMap((d) => ['-drive', `file=${d.path.replace(/,/g, ',,')},format=${this.diskState(d.id).format},if=virtio,id=${d.id}`]),
      ...v.spec.args,
    ];
    const child = spawn(this.binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (c: Buffer) => { stderr = (stderr + c.toString('utf8')).slice(-2000); });
    let exitCode: number | null | undefined;
    const exited = new Promise<number | null>((resolve) => {
      child.on('error', (err) => { stderr += err.message; exitCode = null; resolve(null); });
      child.on('exit', (code) => { exitCode = code; resolve(code); });
    });
    const deadlineUs = this.world.clock.nowUs() + this.startTimeoutUs;
    for (;;) {
      if (exitCode !== undefined) throw new SpillwayError('E_QEMU_START', `qemu for ${vmId} exited (${exitCode}) before it opened QMP: ${stderr.trim()}`);
      try {
        const qmp = await QmpClient.connect(this.world, socket);
        v.running = { process: child, qmp, exited };
        void exited.then(() => { if (v.running?.process === child) { v.running.qmp.close(); v.running = null; } });
        return;
      } catch (err) {
        if (this.world.clock.nowUs() >= deadlineUs) {
          child.kill('SIGKILL');
          throw new SpillwayError('E_QEMU_START', `qemu for ${vmId} opened no QMP socket at ${socket} within ${this.startTimeoutUs / 1e6} s`, { cause: err });
        }
        await this.world.clock.sleepUs(POLL_US);
      }
    }
  }

  async powerOff(vmId: string): Promise<void> {
    const r = this.state(vmId).running;
    if (!r) return;
    // Ask the guest first (ACPI power button); a guest that does not listen is quit.
    await r.qmp.execute('system_powerdown').catch(() => undefined);
    const done = await this.waitExit(r, this.shutdownTimeoutUs);
    if (done) return;
    await r.qmp.execute('quit').catch(() => undefined);
    if (!(await this.waitExit(r, 10_000_000))) r.process.kill('SIGKILL');
    await r.exited;
  }

  async deactivate(vmId: string): Promise<void> {
    const v = this.state(vmId);
    this.expectStopped(v, 'deactivate');
    v.hostId = null;
  }

  async reactivate(vmId: string, hostId: string): Promise<void> {
    const v = this.state(vmId);
    if (hostId !== this.inventory.host.id) throw new SpillwayError('E_NO_HOST', `host ${hostId}: this qemu hypervisor has one host, ${this.inventory.host.id}`);
    v.hostId = hostId;
    return this.powerOn(vmId, hostId);
  }

  async snapshot(vmId: string, name: string, options: { memory?: boolean } = {}): Promise<SnapshotInfo> {
    const v = this.state(vmId);
    if (options.memory) throw new SpillwayError('E_QEMU_UNSUPPORTED', `snapshot of ${vmId} with memory: this adapter takes disk-only snapshots (qcow2 internal)`);
    const id = `${vmId}@${name}`;
    if (this.snapshots.has(id)) throw new SpillwayError('E_DUPLICATE_SNAPSHOT', `VM ${vmId} already has a snapshot named ${name}`);
    this.expectQcow2(v, 'snapshot');
    for (const d of v.spec.disks) {
      if (v.running) await v.running.qmp.execute('blockdev-snapshot-internal-sync', { device: d.id, name });
      else await img.createSnapshot(d.path, name);
    }
    const snap: SnapshotInfo = { id, vmId, name, takenAtUs: this.world.clock.nowUs(), guest: structuredClone(v.guest), diskIds: v.spec.disks.map((d) => d.id), hasMemory: false };
    this.snapshots.set(id, snap);
    return structuredClone(snap);
  }

  async revertToSnapshot(snapshotId: string): Promise<void> {
    const snap = this.snapshot_(snapshotId);
    const v = this.state(snap.vmId);
    // A disk-only snapshot leaves the VM powered off, as on the emulated hypervisor.
    await this.powerOff(snap.vmId);
    for (const d of v.spec.disks) await img.applySnapshot(d.path, snap.name);
    v.guest = structuredClone(snap.guest);
  }

  async deleteSnapshot(snapshotId: string): Promise<void> {
    const snap = this.snapshot_(snapshotId);
    const v = this.state(snap.vmId);
    for (const d of v.spec.disks) {
      if (v.running) await v.running.qmp.execute('blockdev-snapshot-delete-internal-sync', { device: d.id, name: snap.name });
      else await img.deleteSnapshot(d.path, snap.name);
    }
    this.snapshots.delete(snapshotId);
  }

  async updateGuest(vmId: string, change: (guest: GuestConfig) => void): Promise<GuestConfig> {
    const v = this.state(vmId);
    const next = structuredClone(v.guest);
    change(next);
    v.guest = next;
    return structuredClone(next);
  }

  captureMemory(vmId: string): Promise<MemoryImage> {
    this.state(vmId);
    return Promise.reject(new SpillwayError('E_QEMU_UNSUPPORTED', `captureMemory of ${vmId}: live memory transfer is not built for qemu; cut over with the VM stopped`));
  }

  restoreMemory(vmId: string, image: MemoryImage): Promise<void> {
    this.state(vmId);
    return Promise.reject(new SpillwayError('E_QEMU_UNSUPPORTED', `restoreMemory of ${image.vmId} into ${vmId}: live memory transfer is not built for qemu`));
  }

  lockDisk(diskId: string, owner: string): DiskLease {
    const d = this.diskState(diskId);
    if (d.lease) throw new SpillwayError('E_LEASE_HELD', `disk ${diskId} is locked for writing by ${d.lease.owner}; ${owner} is refused (one writer per disk)`, { details: { diskId, holder: d.lease.owner, requester: owner } });
    if (this.state(d.info.vmId).running) throw new SpillwayError('E_LEASE_HELD', `disk ${diskId} is written by its running VM ${d.info.vmId}; ${owner} is refused (one writer per disk)`, { details: { diskId, holder: 'qemu', requester: owner } });
    const lease: DiskLease = { diskId, owner, release: () => { if (d.lease === lease) d.lease = null; } };
    d.lease = lease;
    return lease;
  }

  diskLeaseOwner(diskId: string): string | null {
    return this.diskState(diskId).lease?.owner ?? null;
  }

  openDisk(diskId: string): BlockDevice {
    const d = this.diskState(diskId);
    if (d.format !== 'raw') throw new SpillwayError('E_DISK_FORMAT', `disk ${diskId} is ${d.format}; openDisk reads raw images only (serve a ${d.format} image with qemu-nbd, or convert it with qemu-img convert -O raw)`);
    const file = new OpeningDevice(`file:${diskId}`, d.info.sizeBytes, FileStore.open(d.path, { mustExist: true }));
    return new LeaseGuard(file, () => d.lease !== null, diskId);
  }

  /** Stop every VM this adapter started (for shutdown and tests). */
  async close(): Promise<void> {
    await Promise.all([...this.vmStates.values()].filter((v) => v.running).map((v) => this.powerOff(v.spec.id)));
  }

  private async waitExit(r: Running, timeoutUs: number): Promise<boolean> {
    const deadlineUs = this.world.clock.nowUs() + timeoutUs;
    let gone = false;
    void r.exited.then(() => { gone = true; });
    while (!gone && this.world.clock.nowUs() < deadlineUs) await this.world.clock.sleepUs(POLL_US);
    return gone;
  }

  private power(v: VmState): PowerState {
    return v.running ? 'running' : 'stopped';
  }

  private expectStopped(v: VmState, what: string): void {
    if (v.running) throw new SpillwayError('E_VM_STATE', `${what} of ${v.spec.id} needs it stopped; it is running`);
  }

  private expectQcow2(v: VmState, what: string): void {
    const raw = v.spec.disks.filter((d) => this.diskState(d.id).format !== 'qcow2').map((d) => d.id);
    if (raw.length) throw new SpillwayError('E_DISK_FORMAT', `${what} of ${v.spec.id}: disks ${raw.join(', ')} are not qcow2; internal snapshots need qcow2 (qemu-img convert -O qcow2)`);
  }

  private state(vmId: string): VmState {
    const v = this.vmStates.get(vmId);
    if (!v) throw new SpillwayError('E_NO_VM', `no VM ${vmId} in the inventory (known: ${[...this.vmStates.keys()].join(', ')})`);
    return v;
  }

  private diskState(diskId: string): DiskState {
    const d = this.disks.get(diskId);
    if (!d) throw new SpillwayError('E_NO_DISK', `no disk ${diskId} in the inventory`);
    return d;
  }

  private snapshot_(snapshotId: string): SnapshotInfo {
    const s = this.snapshots.get(snapshotId);
    if (!s) throw new SpillwayError('E_NO_SNAPSHOT', `no snapshot ${snapshotId} (taken by this adapter: ${[...this.snapshots.keys()].join(', ') || 'none'})`);
    return s;
  }
}
