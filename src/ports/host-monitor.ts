import type { PowerState } from './hypervisor.js';

/**
 * The HostMonitor port: what a controller watches on the on-prem hosts, next
 * to the Hypervisor port it acts through. Load and power are what vCenter's
 * performance manager or libvirt's domain stats report; the emulated
 * hypervisor implements it from its CPU model
 * (src/providers/emulated/hypervisor).
 */

/** One host's CPU right now, in vCPU-equivalents. */
export interface HostLoad {
  id: string;
  /** What the running VMs want (0 while the host is failed). */
  demand: number;
  /** What the host gives them. */
  granted: number;
  capacity: number;
  failed: boolean;
}

/** A VM's batch task as far as the controllers care: whether it is done. */
export interface TaskProgress {
  finishedUs: number | null;
}

export interface HostMonitor {
  hostLoadNow(): HostLoad[];
  /** Per-VM CPU figures; `task` is the VM's batch task, null when it runs none. */
  stats(): { vms: Array<{ id: string; task: TaskProgress | null }> };
  /** The VM's power state, without building its whole VmInfo (called per VM per tick). */
  powerOf(vmId: string): PowerState;
  /**
   * The VM's work now runs on a remote server with `vcpus` vCPUs (null: it
   * runs there no more). A real platform sees that by itself; the emulated
   * CPU model moves the VM's demand off its host and counts its progress at
   * min(vcpus, demand).
   */
  runElsewhere(vmId: string, vcpus: number | null): void;
}
