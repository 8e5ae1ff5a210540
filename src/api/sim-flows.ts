import { errorCode } from '../errors.js';
import type { SimMachineEnv } from '../sim/machine-env.js';
import type { ScenarioSimulation } from '../sim/simulation.js';
import { ActionInbox, type ActionSlot, type RecordedAction } from '../world/action-inbox.js';
import type { FlowActions } from './backend.js';
import type { FlowAcceptedT, FlowRequestT, RollbackAcceptedT } from './schemas.js';

/** An operator action as it enters the run and as the trace records it (`api.action`). */
export type SimAction = { op: 'start'; request: FlowRequestT } | { op: 'rollback'; id: string };

/**
 * The act side of the API in a simulation. Every action is applied inside
 * the run at a virtual time (ActionInbox), is traced as `api.action` with
 * its slot, and starts or rolls back a lifecycle machine through the
 * simulation's MachineRuntime; a refusal is traced as `api.refused`. So a
 * run that replays the recorded actions (`spillway run --actions TRACE`)
 * gives the same trace, hash included.
 */
export class SimFlows implements FlowActions {
  readonly inbox: ActionInbox<SimAction, Promise<FlowAcceptedT | RollbackAcceptedT>>;
  private actions = 0;
  readonly origin = new Set<string>();

  constructor(private readonly sim: ScenarioSimulation, options: { virtualNowUs?: () => number | undefined; recorded?: ReadonlyArray<RecordedAction<SimAction>> } = {}) {
    this.inbox = new ActionInbox(sim.world, (action, slot) => this.apply(action, slot), options);
    sim.world.inbox = this.inbox;
  }

  knowsVm(name: string): boolean {
    return this.sim.hypervisor.vms().some((v) => v.id === name);
  }

  knowsFlow(id: string): boolean {
    return this.runtime()?.started.has(id) ?? false;
  }

  start(request: FlowRequestT): Promise<FlowAcceptedT> {
    return this.inbox.submit({ op: 'start', request }) as unknown as Promise<FlowAcceptedT>;
  }

  rollback(id: string): Promise<RollbackAcceptedT> {
    return this.inbox.submit({ op: 'rollback', id }) as unknown as Promise<RollbackAcceptedT>;
  }

  /** The machine runtime, once the run created it (reads never create it: that would change the run). */
  runtime(): SimMachineEnv['runtime'] | null {
    return this.sim.machineEnvIfCreated()?.runtime ?? null;
  }

  private apply(action: SimAction, slot: ActionSlot): Promise<FlowAcceptedT | RollbackAcceptedT> {
    const world = this.sim.world;
    const n = ++this.actions;
    world.trace.emit('api', 'api.action', { n, seq: slot.seq, ...(action.op === 'start' ? { op: 'start', request: action.request } : { op: 'rollback', id: action.id }) });
    const run = action.op === 'start' ? this.begin(`api-${n}-${action.request.kind}-${action.request.vm}`, action.request, slot) : this.abort(action.id, slot);
    return run.catch((err: unknown) => {
      world.trace.emit('api', 'api.refused', { n, code: errorCode(err) ?? 'E_UNKNOWN', message: (err as Error).message });
      throw err;
    });
  }

  private async begin(id: string, req: FlowRequestT, slot: ActionSlot): Promise<FlowAcceptedT> {
    const env = await this.sim.operatorFlows.env();
    const running = this.sim.operatorFlows.start(env, id, req);
    this.origin.add(id);
    return { id, kind: req.kind, vm: req.vm, machine: running.machineName, state: running.state, atUs: slot.t, seq: slot.seq };
  }

  private async abort(id: string, slot: ActionSlot): Promise<RollbackAcceptedT> {
    const env = await this.sim.operatorFlows.env();
    const state = this.sim.operatorFlows.rollback(env, id, 'operator rollback through the management API');
    return { id, state, atUs: slot.t, seq: slot.seq };
  }
}
