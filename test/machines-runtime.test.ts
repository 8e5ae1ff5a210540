import { describe, expect, it } from 'vitest';
import { fromPromise } from 'xstate';
import { InputError } from '../src/errors.js';
import { cutoverMachine } from '../src/machines/cutover.js';
import type { FlowConfig } from '../src/machines/flow.js';
import { MachineRuntime, MemorySnapshotStore, statePath } from '../src/machines/runtime.js';
import { transferMachine } from '../src/machines/transfer.js';
import { SimWorld } from '../src/world/sim-world.js';

const config: FlowConfig = { timeoutsUs: {}, defaultTimeoutUs: 10_000_000, retry: { maxAttempts: 2, backoffBaseUs: 1_000_000, backoffMaxUs: 1_000_000, backoffFactor: 1 } };

/** A transfer whose every step takes 1 ms of World time. */
function quickTransfer(world: SimWorld) {
  const names = ['captureState', 'deactivate', 'snapshot', 'mount', 'classify', 'analyse', 'disableDevices', 'installDrivers', 'remapMounts', 'rewriteNetwork', 'enableMonitoring', 'prioritizeBlocks', 'chooseServer', 'provision', 'startCacheFill', 'loadStagingImage', 'stageBoot', 'targetBoot', 'restoreState', 'rollback'];
  const actors: Record<string, unknown> = {};
  for (const n of names) actors[n] = fromPromise(async () => { await world.clock.sleepUs(1000); return { [`${n}Done`]: true }; });
  return transferMachine.provide({ actors: actors as never });
}

describe('machine runtime', () => {
  it('names the deepest state and drops a step\'s run leaf', () => {
    expect(statePath('running')).toBe('running');
    expect(statePath({ adapt: { installDrivers: 'run' } })).toBe('adapt.installDrivers');
    expect(statePath({ provision: 'backoff' })).toBe('provision.backoff');
  });

  it('traces every state entry with the fixed id, never a sessionId, and persists a JSON-safe snapshot at each step', async () => {
    const world = new SimWorld(3);
    const store = new MemorySnapshotStore();
    const rt = new MachineRuntime(world, store);
    const lines: string[] = [];
    world.trace.subscribe((_e, l) => lines.push(l));
    const run = rt.start({ machine: quickTransfer(world), id: 'vm1-transfer', src: 'vm/vm1' }, { id: 'vm1-transfer', config, transfer: { vmId: 'vm1', kind: 'stateless', direction: 'O2C' } });
    await world.run();
    expect((await run.done).outcome).toBe('ok');
    expect(lines.filter((l) => l.includes('"machine.state"'))).toHaveLength(18);
    expect(lines.join('\n')).not.toMatch(/sessionId|x:\d+/);
    expect(lines.at(-1)).toBe('{"t":17000,"src":"vm/vm1","type":"machine.done","data":{"machine":"transfer","outcome":"ok"}}');
    const record = store.load('vm1-transfer')!;
    expect(record).toMatchObject({ machine: 'transfer', src: 'vm/vm1', savedAtUs: 17000 });
    expect((record.snapshot as { status: string }).status).toBe('done');
    expect(store.saves).toBeGreaterThan(18);
  });

  it('restores mid-flow and continues to the same end as an uninterrupted run', async () => {
    const run = async (crashAtUs: number | null) => {
      const world = new SimWorld(3);
      const rt = new MachineRuntime(world, new MemorySnapshotStore());
      const states: string[] = [];
      world.trace.subscribe((e) => { if (e.type === 'machine.state') states.push(String(e.data.state)); });
      const spec = { machine: quickTransfer(world), id: 'vm1-transfer', src: 'vm/vm1' };
      let r = rt.start(spec, { id: 'vm1-transfer', config, transfer: { vmId: 'vm1', kind: 'stateful', direction: 'O2C' } });
      if (crashAtUs !== null) {
        await world.run({ untilUs: crashAtUs });
        r.crash();
        r = rt.restore(spec);
      }
      await world.run();
      return { out: await r.done, states, nowUs: world.nowUs };
    };
    const plain = await run(null);
    const restarted = await run(7500);
    expect(restarted.out).toEqual(plain.out);
    // The step in flight at the crash ran again from its start: 0.5 ms later than without the crash.
    expect(restarted.nowUs).toBe(plain.nowUs + 500);
    expect(restarted.states).toEqual(plain.states);
  });

  it('refuses to restore what it does not have, or a snapshot of another machine', () => {
    const world = new SimWorld(1);
    const store = new MemorySnapshotStore();
    const rt = new MachineRuntime(world, store);
    expect(() => rt.restore({ machine: transferMachine, id: 'nope', src: 'vm/x' })).toThrow(/no persisted snapshot for machine "nope"/);
    store.save({ id: 'x', machine: 'clone', src: 'vm/x', savedAtUs: 0, snapshot: {} });
    expect(() => rt.restore({ machine: transferMachine, id: 'x', src: 'vm/x' })).toThrow(/belongs to machine "clone"/);
  });

  it('hands a bad input back to the caller as an InputError naming the field', () => {
    const rt = new MachineRuntime(new SimWorld(1));
    expect(() => rt.start({ machine: cutoverMachine, id: 'c', src: 'vm/c' }, {
      id: 'c', config, cutover: { sourceVmId: 'vm', targetId: 'i', maxRounds: 0, switchBudgetUs: 1, stallRatio: 0.5, stallRounds: 1 },
    })).toThrow(InputError);
  });
});
