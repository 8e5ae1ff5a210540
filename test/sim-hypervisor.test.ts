import { describe, expect, it } from 'vitest';
import { EmulatedHypervisor, type VmDef } from '../src/providers/emulated/hypervisor/hypervisor.js';
import type { GuestConfig } from '../src/ports/hypervisor.js';
import { shareCpu } from '../src/providers/emulated/hypervisor/cpu-share.js';
import { US_PER_H, US_PER_S } from '../src/util/units.js';
import { SimWorld } from '../src/world/sim-world.js';

const WEEK_US = 7 * 24 * US_PER_H;

const guest: GuestConfig = {
  os: { family: 'linux', distro: 'rhel', version: '8.9' }, bootDevice: '/dev/sda', devices: [{ id: 'scsi0', kind: 'pvscsi', enabled: true }],
  drivers: ['vmw_pvscsi'], mounts: [], network: { hostname: 'x', domain: 'corp.example', ipAddress: '10.0.0.2', gateway: '10.0.0.1', dns: [], dhcp: false },
  monitoringAgent: { installed: true, enabled: true, target: 'onprem' }, identity: { machineName: 'X', machineId: 'm', domainJoined: false }, licences: [],
};

function vm(id: string, vcpus: number, batch: boolean, ramMiB = 1024): VmDef {
  return { id, name: id, vcpus, ramMiB, workload: batch ? 'batch' : 'steady', batch, guest, dirtyRateBytesPerS: 0,
    disks: [{ id: `${id}-disk0`, sizeBytes: 1 << 30, tier: 'ssd', imageId: 'img' }] };
}

describe('shareCpu', () => {
  it('serves steady demand first and gives batch the leftover in proportion', () => {
    const granted: number[] = [];
    const r = shareCpu(110, [{ demand: 100, batch: false }, { demand: 30, batch: true }, { demand: 20, batch: true }], granted);
    expect(granted).toEqual([100, 6, 4]);
    expect(r.granted).toBe(110);
  });
  it('scales steady demand down when it alone exceeds the host', () => {
    const granted: number[] = [];
    shareCpu(50, [{ demand: 60, batch: false }, { demand: 40, batch: false }, { demand: 10, batch: true }], granted);
    expect(granted).toEqual([30, 20, 0]);
  });
});

describe('EmulatedHypervisor oversubscription', () => {
  it("turns the seed's two-week task into ten weeks: 50% extra demand on 10% headroom", async () => {
    // Average load 100 cores on a host sized 10% above it; the peak task wants 50 more cores for two weeks.
    const world = new SimWorld(1);
    const hv = new EmulatedHypervisor(world, { hosts: [{ id: 'h1', cpuCores: 110, ramMiB: 1 << 20 }] });
    hv.addVm(vm('steady', 100, false));
    hv.addVm(vm('peak', 50, true));
    hv.placeRunning('steady', 'h1');
    hv.placeRunning('peak', 'h1');
    hv.setDemand('steady', 100);
    let doneAt = -1;
    hv.startTask('peak', { name: 'quarter-close', workVcpuUs: 50 * 2 * WEEK_US, maxRate: 50 }, () => { doneAt = world.nowUs; });
    await world.run();
    expect(doneAt).toBe(10 * WEEK_US);
    const task = hv.stats().vms.find((v) => v.id === 'peak')!.task!;
    expect(task.unconstrainedUs).toBe(2 * WEEK_US);
    expect(task.finishedUs! - task.startedUs - task.unconstrainedUs).toBe(8 * WEEK_US);
    const host = hv.stats().hosts[0]!;
    expect(host.saturatedUs).toBe(10 * WEEK_US);
    expect(host.peakDemandRatio).toBeCloseTo(150 / 110, 12);
  });

  it('finishes in the unconstrained time when the host has room', async () => {
    const world = new SimWorld(1);
    const hv = new EmulatedHypervisor(world, { hosts: [{ id: 'h1', cpuCores: 160, ramMiB: 1 << 20 }] });
    hv.addVm(vm('steady', 100, false));
    hv.addVm(vm('peak', 50, true));
    hv.placeRunning('steady');
    hv.placeRunning('peak');
    hv.setDemand('steady', 100);
    hv.startTask('peak', { name: 't', workVcpuUs: 50 * 2 * WEEK_US, maxRate: 50 });
    await world.run();
    expect(hv.stats().vms[1]!.task!.finishedUs).toBe(2 * WEEK_US);
    expect(hv.stats().hosts[0]!.saturatedUs).toBe(0);
  });

  it('keeps a task going at the cores it gets elsewhere once its VM leaves (a burst)', async () => {
    const world = new SimWorld(1);
    const hv = new EmulatedHypervisor(world, { hosts: [{ id: 'h1', cpuCores: 110, ramMiB: 1 << 20 }] });
    hv.addVm(vm('steady', 100, false));
    hv.addVm(vm('peak', 50, true));
    hv.placeRunning('steady');
    hv.placeRunning('peak');
    hv.setDemand('steady', 100);
    hv.startTask('peak', { name: 't', workVcpuUs: 50 * 2 * WEEK_US, maxRate: 50 });
    // One week at 10 cores (1/10 of the work), then the VM moves to a 32-vCPU instance.
    world.clock.schedule(WEEK_US, () => {
      hv.runElsewhere('peak', 32);
      void hv.deactivate('peak');
    });
    await world.run();
    const peak = hv.stats().vms[1]!;
    // The remaining 90 vCPU-weeks at 32 cores: 90/32 weeks after the move.
    expect(peak.task!.finishedUs).toBe(WEEK_US + Math.ceil((90 * WEEK_US) / 32));
    expect(peak.placements.map((p) => p.where)).toEqual(['onprem', 'cloud']);
    expect(hv.hosts()[0]!.cpuDemand).toBe(100);
  });

  it('re-aims a task when its share changes mid-run', async () => {
    const world = new SimWorld(1);
    const hv = new EmulatedHypervisor(world, { hosts: [{ id: 'h1', cpuCores: 10, ramMiB: 1 << 20 }] });
    hv.addVm(vm('s', 10, false));
    hv.addVm(vm('b', 10, true));
    hv.placeRunning('s');
    hv.placeRunning('b');
    hv.setDemand('s', 5);
    hv.startTask('b', { name: 't', workVcpuUs: 10 * US_PER_H, maxRate: 10 }); // 1 h alone; 5 cores now
    world.clock.schedule(US_PER_H, () => { hv.setDemand('s', 0); hv.rebalance(); }); // half done; full speed for the rest
    await world.run();
    expect(hv.stats().vms[1]!.task!.finishedUs).toBe(US_PER_H + US_PER_H / 2);
  });
});

describe('EmulatedHypervisor operations', () => {
  function small(): { world: SimWorld; hv: EmulatedHypervisor } {
    const world = new SimWorld(7);
    const hv = new EmulatedHypervisor(world, {
      hosts: [{ id: 'h1', cpuCores: 16, ramMiB: 8192 }, { id: 'h2', cpuCores: 16, ramMiB: 8192 }],
      latencies: { powerOnUs: 30 * US_PER_S, powerOffUs: 8 * US_PER_S, snapshotUs: 3 * US_PER_S, memoryPerGiBUs: 2 * US_PER_S },
      ha: { enabled: true, restartUs: 120 * US_PER_S },
    });
    hv.addVm(vm('a', 4, false, 4096));
    hv.addVm(vm('b', 4, false, 4096));
    return { world, hv };
  }

  it('takes exactly the modeled time for power and snapshot operations', async () => {
    const { world, hv } = small();
    const at: Record<string, number> = {};
    const flow = (async () => {
      await hv.powerOn('a', 'h1');
      at.on = world.nowUs;
      await hv.snapshot('a', 'disk-only');
      at.snap = world.nowUs;
      const snap = await hv.snapshot('a', 'with-memory', { memory: true });
      at.snapMem = world.nowUs;
      expect(snap.hasMemory).toBe(true);
      await hv.powerOff('a');
      at.off = world.nowUs;
    })();
    await world.run();
    await flow;
    // 4 GiB of RAM at 2 s per GiB adds 8 s to the 3 s snapshot.
    expect(at).toEqual({ on: 30 * US_PER_S, snap: 33 * US_PER_S, snapMem: 44 * US_PER_S, off: 52 * US_PER_S });
    expect(hv.vm('a').power).toBe('stopped');
  });

  it('traces vm.power and vm.placed when a VM starts', async () => {
    const { world, hv } = small();
    const lines: string[] = [];
    world.trace.subscribe((e) => lines.push(`${e.t} ${e.src} ${e.type} ${JSON.stringify(e.data)}`));
    const p = hv.powerOn('a', 'h2');
    await world.run();
    await p;
    expect(lines).toEqual([
      `${30 * US_PER_S} vm/a vm.power {"power":"running","host":"h2"}`,
      `${30 * US_PER_S} vm/a vm.placed {"where":"onprem","host":"h2"}`,
    ]);
  });

  it('refuses a second writer with E_LEASE_HELD and allows it after release', async () => {
    const { hv } = small();
    const lease = hv.lockDisk('a-disk0', 'proxy/onprem');
    expect(() => hv.lockDisk('a-disk0', 'vm/a')).toThrow(expect.objectContaining({ code: 'E_LEASE_HELD' }));
    expect(hv.diskLeaseOwner('a-disk0')).toBe('proxy/onprem');
    lease.release();
    expect(hv.lockDisk('a-disk0', 'vm/a').owner).toBe('vm/a');
  });

  it('serves disk blocks from a sparse store and refuses writes without the lease', async () => {
    const { hv } = small();
    const disk = hv.openDisk('a-disk0');
    expect(disk.size()).toBe(1 << 30);
    await expect(disk.write(4096, Buffer.from('x'))).rejects.toMatchObject({ code: 'E_DISK_NOT_LOCKED' });
    const lease = hv.lockDisk('a-disk0', 'test');
    await disk.write(512 * 1024 * 1024, Buffer.from('hello'));
    expect((await hv.openDisk('a-disk0').read(512 * 1024 * 1024, 5)).toString()).toBe('hello');
    lease.release();
  });

  it('refuses power operations in the wrong state and hosts without RAM', async () => {
    const { world, hv } = small();
    hv.placeRunning('a', 'h1');
    await expect(hv.powerOn('a')).rejects.toMatchObject({ code: 'E_VM_STATE' });
    hv.addVm(vm('big', 4, false, 6000));
    await expect(hv.powerOn('big', 'h1')).rejects.toMatchObject({ code: 'E_HOST_RAM' });
    expect(world.nowUs).toBe(0);
  });

  it('restarts the VMs of a failed host elsewhere after the HA delay', async () => {
    const { world, hv } = small();
    hv.placeRunning('a', 'h1');
    hv.placeRunning('b', 'h2');
    world.clock.schedule(US_PER_H, () => hv.failHost('h1'));
    await world.run({ untilUs: US_PER_H });
    expect(hv.vm('a').power).toBe('stopped');
    await world.run({ untilUs: US_PER_H + 120 * US_PER_S });
    expect(hv.vm('a')).toMatchObject({ power: 'running', hostId: 'h2' });
    const placements = hv.stats().vms[0]!.placements;
    expect(placements.map((p) => [p.atUs, p.where, p.host])).toEqual([[0, 'onprem', 'h1'], [US_PER_H, 'none', null], [US_PER_H + 120 * US_PER_S, 'onprem', 'h2']]);
  });

  it('reverting a snapshot rolls the disk back to its blocks at snapshot time', async () => {
    const { world, hv } = small();
    const lease = hv.lockDisk('a-disk0', 'test');
    const disk = hv.openDisk('a-disk0');
    const flow = (async () => {
      await disk.write(0, Buffer.from('before'));
      const snap = await hv.snapshot('a', 'pre-change');
      await disk.write(0, Buffer.from('AFTER!'));
      await disk.write(1 << 20, Buffer.from('new data'));
      expect((await disk.read(0, 6)).toString()).toBe('AFTER!');
      await hv.revertToSnapshot(snap.id);
      expect((await disk.read(0, 6)).toString()).toBe('before');
      expect((await disk.read(1 << 20, 8)).every((b) => b === 0)).toBe(true);
      // Reverting twice to one snapshot gives the same state both times.
      await disk.write(0, Buffer.from('again!'));
      await hv.revertToSnapshot(snap.id);
      expect((await disk.read(0, 6)).toString()).toBe('before');
    })();
    await world.run();
    await flow;
    lease.release();
  });

  it('keeps guest changes, and revert restores the snapshot configuration', async () => {
    const { world, hv } = small();
    const flow = (async () => {
      const snap = await hv.snapshot('a', 'before');
      await hv.updateGuest('a', (g) => { g.drivers.push('nvme'); });
      expect(hv.vm('a').guest.drivers).toContain('nvme');
      await hv.revertToSnapshot(snap.id);
      expect(hv.vm('a').guest.drivers).not.toContain('nvme');
    })();
    await world.run();
    await flow;
  });
});
