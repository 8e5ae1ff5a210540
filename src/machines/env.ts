import type { Cloud } from '../ports/cloud.js';
import type { ContainerPlatform } from '../ports/container-platform.js';
import type { Directory } from '../ports/directory.js';
import type { Hypervisor } from '../ports/hypervisor.js';
import type { ProxyControl } from '../ports/proxy-control.js';
import type { World } from '../world/types.js';

/**
 * What the lifecycle machines need from the world outside them: the ports
 * (src/ports). `wiring.ts` turns a MachineEnv into the named actors every
 * machine invokes; the emulated adapters, the proxy core and the test
 * doubles all plug in here.
 */
/** Everything the machines' actors are built from (see wiring.ts). */
export interface MachineEnv {
  world: World;
  hypervisor: Hypervisor;
  cloud: Cloud;
  proxy: ProxyControl;
  directory: Directory;
  containers: ContainerPlatform;
  /** How often to poll the cloud while waiting for a state, microseconds of World time. */
  pollEveryUs?: number;
}
