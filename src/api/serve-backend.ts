import type { CloudProxy } from '../proxy/cloud/index.js';
import type { LinkServer } from '../proxy/link/server.js';
import type { World } from '../world/types.js';
import type { ApiBackend } from './backend.js';
import { onpremLink, proxyFigures, type ProxyFigures } from './proxy-figures.js';
import type { CloudT, CostT, FlowT, HealthT, OnpremLinkT, VmT, WanT } from './schemas.js';

export interface ServeParts {
  /** onprem, cloud or pair. */
  mode: string;
  world: World;
  clouds: Array<{ name: string; disk: string; proxy: CloudProxy }>;
  onprem: { readonly server: Pick<LinkServer, 'stats' | 'wireBytes'> } | null;
}

/**
 * The API over live proxy daemons (`spillway serve ... --api`): the proxies'
 * own counters and the daemon's trace. A daemon runs no lifecycle machines
 * and no VMs, so those lists are empty and flows cannot be started here.
 */
export class ServeBackend implements ApiBackend {
  readonly actions = null;

  constructor(private readonly parts: ServeParts) {}

  get trace(): World['trace'] {
    return this.parts.world.trace;
  }

  health(): Omit<HealthT, 'ok' | 'events' | 'actions'> {
    return { kind: 'serve', name: this.parts.mode, seed: null, nowUs: this.parts.world.clock.nowUs(), endUs: null, done: false };
  }

  vms(): VmT[] {
    return [];
  }

  vm(): VmT | undefined {
    return undefined;
  }

  flows(): FlowT[] {
    return [];
  }

  flow(): FlowT | undefined {
    return undefined;
  }

  proxies(): ProxyFigures[] {
    return this.parts.clouds.map((c) => proxyFigures(c.name, null, c.disk, c.proxy));
  }

  onprem(): OnpremLinkT | null {
    return this.parts.onprem ? onpremLink(this.parts.onprem.server) : null;
  }

  wan(): WanT {
    // The link is the WAN here: what crossed it is what the proxies counted.
    const o = this.parts.onprem?.server.wireBytes();
    const up = o ? o.out : this.parts.clouds.reduce((a, c) => a + c.proxy.link.wireBytes().in, 0);
    const down = o ? o.in : this.parts.clouds.reduce((a, c) => a + c.proxy.link.wireBytes().out, 0);
    return { up: true, outages: 0, upBps: null, downBps: null, rttUs: null, lossPct: null, sampledUs: null, bytesUp: up, bytesDown: down };
  }

  cloud(): CloudT {
    return { instances: [], calls: [] };
  }

  cost(): CostT {
    return { cloudUsd: 0, onpremUsd: 0, sampledUs: null };
  }
}
