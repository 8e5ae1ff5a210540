import type { AnyMachineSnapshot, StateValue } from 'xstate';
import type { FlowConfig, FlowOutput } from '../machines/flow.js';
import { report, type InstanceEvent, type InstanceGoal, type InstanceMachine, type InstanceReport, type InstanceState } from '../machines/instance.js';
import { statePath, type MachineRuntime, type RunningMachine } from '../machines/runtime.js';

/** Where a flow left the VM, as the instance machine hears it. */
export type FlowEnd = 'onprem' | 'cloud' | 'migrated' | { failed: { code: string; message: string } };

/**
 * The instance machines of one run (goal-state reporting, seed 001), one per
 * VM a controller moves, shared by the controllers: a controller sets the
 * VM's goal, the flows it runs report what happened, and the VM's state is
 * read from here instead of being kept by the controller. Actor ids are
 * `instance-<vm>`, trace source `vm/<vm>`.
 */
export class InstanceTracker {
  private readonly running = new Map<string, RunningMachine<InstanceMachine>>();

  constructor(private readonly runtime: MachineRuntime, private readonly machine: InstanceMachine, private readonly flow: FlowConfig) {}

  /** Set the VM's goal; its machine starts (on-prem) the first time. */
  want(vmId: string, goal: InstanceGoal): RunningMachine<InstanceMachine> {
    const known = this.running.get(vmId);
    if (known) {
      known.send({ type: 'SET_GOAL', goal });
      return known;
    }
    const id = `instance-${vmId}`;
    const m = this.runtime.start({ machine: this.machine, id, src: `vm/${vmId}` }, { id, config: this.flow, goal, instance: { vmId, initial: 'onprem' } });
    this.running.set(vmId, m);
    return m;
  }

  machineOf(vmId: string): RunningMachine<InstanceMachine> | undefined {
    return this.running.get(vmId);
  }

  /** The seed 001 status report: state, goal and how they relate (null: never moved). */
  reportOf(vmId: string): InstanceReport | null {
    const m = this.running.get(vmId);
    return m ? report(m.snapshot as never) : null;
  }

  stateOf(vmId: string): InstanceState | null {
    return this.reportOf(vmId)?.current ?? null;
  }

  /** True when the VM is where its goal says and nothing moves it. */
  atGoal(vmId: string, goal: InstanceGoal): boolean {
    const r = this.reportOf(vmId);
    return r !== null && r.goal === goal && r.relation === 'at-goal';
  }

  send(vmId: string, event: InstanceEvent): void {
    this.running.get(vmId)?.send(event);
  }

  /**
   * A transfer's progress: DEACTIVATED once it deactivated the VM, DECOUPLED
   * once the disks are mounted behind the on-prem proxy (FIG 7 703, 707).
   */
  followTransfer(vmId: string, transfer: { actor: { subscribe(fn: (s: unknown) => void): { unsubscribe(): void } }; snapshot: AnyMachineSnapshot }): () => void {
    const see = (snapshot: AnyMachineSnapshot): void => {
      const done = (snapshot.context as { completed?: string[] }).completed ?? [];
      const state = this.stateOf(vmId);
      if (state === 'onpremRunning' && done.includes('deactivate')) this.send(vmId, { type: 'DEACTIVATED' });
      if (this.stateOf(vmId) === 'deactivated' && done.includes('mount')) this.send(vmId, { type: 'DECOUPLED' });
    };
    see(transfer.snapshot);
    const sub = transfer.actor.subscribe((s) => see(s as AnyMachineSnapshot));
    return () => sub.unsubscribe();
  }

  /**
   * Where a flow left the VM. A report that comes after the machine's
   * watchdog already declared it stuck (`failed`) is a recovery.
   */
  ended(vmId: string, where: FlowEnd): void {
    const state = this.stateOf(vmId);
    if (typeof where === 'object') {
      this.send(vmId, { type: 'FAILED', ...where.failed });
    } else if (state === 'failed' && where !== 'migrated') {
      this.send(vmId, { type: 'RECOVERED', where });
    } else {
      this.send(vmId, { type: where === 'onprem' ? 'REACTIVATED' : where === 'cloud' ? 'STREAMING' : 'MIGRATED' });
    }
  }
}

/** Where a flow that moves a VM out left it, from its outcome: rolled back is where it started. */
export function endOf(out: FlowOutput<unknown>, onOk: FlowEnd, onRolledBack: FlowEnd): FlowEnd {
  if (out.outcome === 'ok') return onOk;
  if (out.outcome === 'rolled-back') return onRolledBack;
  return { failed: { code: out.failure?.code ?? 'E_FLOW_FAILED', message: out.failure?.message ?? 'the flow ended failed with no reason recorded' } };
}

/** Follow a running machine's states (its dotted paths) until the returned function is called. */
export function followStates(
  running: { state: string; actor: { subscribe(fn: (s: unknown) => void): { unsubscribe(): void } } },
  onState: (state: string) => void,
): () => void {
  let last = '';
  const see = (state: string): void => {
    if (state === last) return;
    last = state;
    onState(state);
  };
  see(running.state);
  const sub = running.actor.subscribe((s) => see(statePath((s as AnyMachineSnapshot).value as StateValue)));
  return () => sub.unsubscribe();
}
