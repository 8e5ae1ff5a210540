import type { HostMonitor } from '../../ports/host-monitor.js';
import type { Hypervisor } from '../../ports/hypervisor.js';

export interface LoadSample {
  /** Sum of host demand over sum of capacity (failed hosts excluded). */
  clusterDemandRatio: number;
  maxHostDemandRatio: number;
  /** vCPUs of demand above what the hosts can grant. */
  excessVcpus: number;
}

const HISTORY_HOURS = 168;

/**
 * The monitoring service the controller reads: host load from the hypervisor
 * and each VM's CPU demand as its guest agent would report it, kept as an
 * hourly history (last week, the weekly strategy's input).
 */
export class MonitoringService {
  private readonly hourly = new Map<string, number[]>();
  private readonly acc = new Map<string, { sum: number; n: number; hour: number }>();

  constructor(private readonly hypervisor: Pick<Hypervisor, 'vms'> & Pick<HostMonitor, 'hostLoadNow'>) {}

  sample(nowUs = 0): LoadSample {
    let demand = 0;
    let capacity = 0;
    let max = 0;
    for (const h of this.hypervisor.hostLoadNow()) {
      if (h.failed) continue;
      demand += h.demand;
      capacity += h.capacity;
      max = Math.max(max, h.demand / h.capacity);
    }
    void nowUs;
    return { clusterDemandRatio: capacity > 0 ? demand / capacity : 0, maxHostDemandRatio: max, excessVcpus: Math.max(0, demand - capacity) };
  }

  /** Record every VM's demand for the hour containing `nowUs` (call once per tick). */
  record(hour: number): void {
    for (const vm of this.hypervisor.vms()) {
      const a = this.acc.get(vm.id) ?? { sum: 0, n: 0, hour };
      if (a.hour !== hour) {
        const h = this.hourly.get(vm.id) ?? [];
        h.push(a.n ? a.sum / a.n : 0);
        if (h.length > HISTORY_HOURS) h.shift();
        this.hourly.set(vm.id, h);
        a.sum = 0;
        a.n = 0;
        a.hour = hour;
      }
      a.sum += vm.cpuDemand;
      a.n++;
      this.acc.set(vm.id, a);
    }
  }

  history(vmId: string): number[] {
    return this.hourly.get(vmId) ?? [];
  }
}
