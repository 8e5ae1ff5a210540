import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SpillwayError } from '../src/errors.js';
import { openQemuHypervisor, type QemuHypervisor } from '../src/providers/qemu/hypervisor.js';
import { loadInventory } from '../src/providers/qemu/inventory.js';
import { listSnapshots } from '../src/providers/qemu/qemu-img.js';
import { LiveWorld } from '../src/world/live-world.js';
import { run, toolsAvailable } from './interop-tools.js';

/**
 * The Hypervisor port on real qemu processes (TCG): an inventory file, power
 * on and off through QMP, qcow2 snapshots while running (QMP) and stopped
 * (qemu-img), leases against the running VM, and a raw disk's blocks. The
 * guests have no OS (SeaBIOS finds nothing to boot), which is all the port
 * needs to be exercised; booting a real guest is the staging work's test.
 */
const present = toolsAvailable(['qemu-system-x86_64', 'qemu-img', 'qemu-io'], 'qemu hypervisor');

let hv: QemuHypervisor | undefined;
let dir = '';
afterEach(async () => {
  await hv?.close();
  hv = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function lab(): Promise<{ world: LiveWorld; file: string }> {
  dir = mkdtempSync(join(tmpdir(), 'spillway-qemu-'));
  await run('qemu-img', ['create', '-f', 'raw', join(dir, 'data.raw'), '4M']);
  await run('qemu-img', ['create', '-f', 'qcow2', join(dir, 'root.qcow2'), '16M']);
  const file = join(dir, 'inventory.yaml');
  writeFileSync(file, [
    'host: { id: lab-1, cpuCores: 2, ramMiB: 2048 }',
    'runDir: run',
    'vms:',
    '  - { id: raw-1, ramMiB: 64, disks: [{ id: raw-1-data, path: data.raw }] }',
    '  - { id: qcow-1, ramMiB: 64, disks: [{ id: qcow-1-root, path: root.qcow2 }], guest: { distro: debian, version: "12" } }',
    '',
  ].join('\n'));
  return { world: new LiveWorld(1, () => {}), file };
}

describe.skipIf(!present)('qemu hypervisor (real qemu, TCG)', () => {
  it('powers a VM on and off through QMP, with its disk attached, and refuses a second writer while it runs', async () => {
    const { world, file } = await lab();
    hv = await openQemuHypervisor(world, loadInventory(file), { shutdownTimeoutUs: 1_000_000 });
    expect(hv.disk('raw-1-data')).toMatchObject({ vmId: 'raw-1', sizeBytes: 4 << 20 });
    expect(hv.vm('qcow-1').guest.os).toEqual({ family: 'linux', distro: 'debian', version: '12' });

    // Blocks written through the port while the VM is off, under its lease.
    const lease = hv.lockDisk('raw-1-data', 'test');
    expect(hv.diskLeaseOwner('raw-1-data')).toBe('test');
    const disk = hv.openDisk('raw-1-data');
    await disk.write(512, Buffer.from('spillway was here'));
    await disk.flush();
    const back = await disk.read(512, 17);
    await disk.close();
    expect(back.toString()).toBe('spillway was here');
    await expect(hv.powerOn('raw-1')).rejects.toMatchObject({ code: 'E_LEASE_HELD' });
    lease.release();
    expect(hv.diskLeaseOwner('raw-1-data')).toBeNull();

    await hv.powerOn('raw-1');
    expect(hv.vm('raw-1').power).toBe('running');
    expect(hv.hosts()[0]).toMatchObject({ id: 'lab-1', ramAllocatedMiB: 64 });
    // QEMU itself has the image open: its own lock refuses another writer.
    await expect(run('qemu-io', ['-f', 'raw', '-c', 'write 0 512', join(dir, 'data.raw')])).rejects.toThrow(/lock/);
    expect(() => hv!.lockDisk('raw-1-data', 'proxy')).toThrow(SpillwayError);
    await hv.powerOff('raw-1');
    expect(hv.vm('raw-1').power).toBe('stopped');
    expect(readFileSync(join(dir, 'data.raw')).subarray(512, 529).toString()).toBe('spillway was here');
    hv.lockDisk('raw-1-data', 'proxy').release();
  }, 60_000);

  it('takes qcow2 snapshots running (QMP) and stopped (qemu-img), reverts and deletes them; memory is refused', async () => {
    const { world, file } = await lab();
    hv = await openQemuHypervisor(world, loadInventory(file), { shutdownTimeoutUs: 1_000_000 });
    await hv.powerOn('qcow-1');
    const live = await hv.snapshot('qcow-1', 'while-running');
    await expect(hv.snapshot('qcow-1', 'mem', { memory: true })).rejects.toMatchObject({ code: 'E_QEMU_UNSUPPORTED' });
    await expect(hv.captureMemory('qcow-1')).rejects.toMatchObject({ code: 'E_QEMU_UNSUPPORTED' });
    await expect(hv.snapshot('raw-1', 'x')).rejects.toMatchObject({ code: 'E_DISK_FORMAT' });
    await hv.powerOff('qcow-1');
    await hv.updateGuest('qcow-1', (g) => { g.network.hostname = 'renamed'; });
    const offline = await hv.snapshot('qcow-1', 'while-stopped');
    expect(await listSnapshots(join(dir, 'root.qcow2'))).toEqual(['while-running', 'while-stopped']);
    await hv.revertToSnapshot(live.id);
    expect(hv.vm('qcow-1').guest.network.hostname).toBe('qcow-1');
    await hv.deleteSnapshot(live.id);
    await hv.deleteSnapshot(offline.id);
    expect(await listSnapshots(join(dir, 'root.qcow2'))).toEqual([]);
    await expect(hv.deleteSnapshot(live.id)).rejects.toMatchObject({ code: 'E_NO_SNAPSHOT' });
    expect(() => hv!.openDisk('qcow-1-root')).toThrow(/qemu-nbd/);
  }, 60_000);

  it('a deactivated VM runs nowhere until reactivated; a bad inventory names the field', async () => {
    const { world, file } = await lab();
    hv = await openQemuHypervisor(world, loadInventory(file), { shutdownTimeoutUs: 1_000_000 });
    await hv.deactivate('raw-1');
    expect(hv.vm('raw-1').hostId).toBeNull();
    await expect(hv.powerOn('raw-1')).rejects.toMatchObject({ code: 'E_VM_STATE' });
    await hv.reactivate('raw-1', 'lab-1');
    expect(hv.vm('raw-1')).toMatchObject({ hostId: 'lab-1', power: 'running' });
    await expect(hv.deactivate('raw-1')).rejects.toMatchObject({ code: 'E_VM_STATE' });
    writeFileSync(file, 'host: { id: lab-1, cpuCores: 2, ramMiB: 2048 }\nvms: [{ id: a, disks: [{ id: d, path: x.raw }], vcpu: 2 }]\n');
    expect(() => loadInventory(file)).toThrow(/vms\[0\]\.vcpu: unknown field/);
  }, 60_000);
});
