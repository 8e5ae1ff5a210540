import type { FlowConfig } from '../../src/machines/flow.js';
import { MachineRuntime, MemorySnapshotStore } from '../../src/machines/runtime.js';
import type { TraceEvent } from '../../src/world/types.js';
import { SimWorld } from '../../src/world/sim-world.js';
import { makeEnv, type TestEnv } from '../machines-doubles.js';

/** A SimWorld with the machine doubles, a runtime over a memory store, and every trace line: what the machine flow tests run on. */

export const S = 1_000_000;

export function config(overrides: Partial<FlowConfig> = {}): FlowConfig {
  return {
    timeoutsUs: { stageBoot: 60 * S, targetBoot: 120 * S, loadStagingImage: 120 * S, rollback: 300 * S, sync: 120 * S, paused: 600 * S, awaitWindow: 3600 * S },
    defaultTimeoutUs: 90 * S,
    retry: { maxAttempts: 4, backoffBaseUs: 2 * S, backoffMaxUs: 30 * S, backoffFactor: 2 },
    ...overrides,
  };
}

export interface Harness {
  world: SimWorld;
  env: TestEnv;
  rt: MachineRuntime;
  store: MemorySnapshotStore;
  events: TraceEvent[];
  states: (machine: string) => string[];
}

export function harness(seed = 7): Harness {
  const world = new SimWorld(seed);
  const env = makeEnv(world);
  const store = new MemorySnapshotStore();
  const rt = new MachineRuntime(world, store);
  const events: TraceEvent[] = [];
  world.trace.subscribe((e) => events.push(e));
  const states = (machine: string): string[] =>
    events.filter((e) => e.type === 'machine.state' && e.data.machine === machine).map((e) => String(e.data.state));
  return { world, env, rt, store, events, states };
}

