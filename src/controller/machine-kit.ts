import type { MachineEnv } from '../machines/env.js';
import type { FlowConfig } from '../machines/flow.js';
import type { MachineRuntime } from '../machines/runtime.js';
import type { WiredMachines } from '../machines/wiring.js';
import type { GuestBootModel } from '../ports/guest-boot.js';
import type { ProxyControl, ProxyObservation } from '../ports/proxy-control.js';
import type { InstanceTracker } from './instance-tracker.js';

/**
 * What a controller moves VMs with, all typed by ports: the machines wired
 * to one MachineEnv, the runtime that runs them on the World clock, their
 * step timeouts and retries, the proxies (to drive and to read), what is
 * known of guests' boots, and the instance machine of every VM a controller
 * moved (where each VM is, against its goal). The runner builds one per run and shares it
 * between controllers (src/sim/machine-env.ts builds the simulation's).
 */
export interface MachineKit {
  env: MachineEnv;
  machines: WiredMachines;
  runtime: MachineRuntime;
  flow: FlowConfig;
  proxy: ProxyControl & ProxyObservation;
  guestBoot: GuestBootModel;
  instances: InstanceTracker;
}
