import type { CloudConfig } from '../../providers/emulated/ec2/config.js';

/** What a policy parser may look at besides its own block. */
export interface PolicyContext {
  workloads: readonly string[];
  cloud: CloudConfig;
  /** Workload name → kind (batch, web, …), for policies that only apply to some kinds. */
  kinds?: Readonly<Record<string, string>>;
  /** The data center's VMs, for policies that name one. */
  vms?: ReadonlyArray<{ name: string; workload: string }>;
}
