import type { Trace } from '../world/types.js';
import type { ProxyFigures } from './proxy-figures.js';
import type {
  CloudT, CostT, FlowAcceptedT, FlowRequestT, FlowT, HealthT, OnpremLinkT, RollbackAcceptedT, VmT, WanT,
} from './schemas.js';

/**
 * What the routes need from whatever serves them: a simulation
 * (sim-backend.ts) or live proxy daemons (serve-backend.ts). Reads never
 * change what they read; actions go through `actions`, which a daemon
 * without lifecycle machines does not offer.
 */
export interface ApiBackend {
  health(): Omit<HealthT, 'ok' | 'events' | 'actions'>;
  /** The trace the SSE stream and the read model follow. */
  readonly trace: Trace;
  vms(): VmT[];
  /** undefined: no such VM (404). */
  vm(name: string): VmT | undefined;
  flows(): FlowT[];
  flow(id: string): FlowT | undefined;
  proxies(): ProxyFigures[];
  onprem(): OnpremLinkT | null;
  wan(): WanT;
  cloud(): CloudT;
  cost(): CostT;
  readonly actions: FlowActions | null;
}

export interface FlowActions {
  /** True when the VM exists (checked before anything reaches the run: unknown is a 404). */
  knowsVm(name: string): boolean;
  knowsFlow(id: string): boolean;
  /** Applied at a virtual time, through the lifecycle machines; rejects with an ApiRefusal (409). */
  start(request: FlowRequestT): Promise<FlowAcceptedT>;
  rollback(id: string): Promise<RollbackAcceptedT>;
}
