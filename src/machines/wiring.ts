import { cloneMachine } from './clone.js';
import { cloneDropMachine } from './clone-drop.js';
import { containerTransferMachine } from './container-transfer.js';
import { containerizeMachine } from './containerize.js';
import { cutoverMachine } from './cutover.js';
import type { MachineEnv } from './env.js';
import { instanceMachine } from './instance.js';
import { migrationMachine } from './migration.js';
import { proxyResizeMachine } from './proxy-resize.js';
import { retireMachine } from './retire.js';
import { reverseMachine } from './reverse.js';
import { transferMachine } from './transfer.js';
import { cloneActors } from './actors/clone.js';
import { cloneDropActors } from './actors/clone-drop.js';
import { containerTransferActors } from './actors/container-transfer.js';
import { containerizeActorsFor } from './actors/containerize.js';
import { cutoverActors } from './actors/cutover.js';
import { migrationActors } from './actors/migration.js';
import { proxyResizeActors } from './actors/proxy-resize.js';
import { retireActors } from './actors/retire.js';
import { reverseActors } from './actors/reverse.js';
import { transferActors } from './actors/transfer.js';

/**
 * Every lifecycle machine with its actors provided from a MachineEnv (a
 * Hypervisor, a Cloud, the proxy control port, a directory and the container
 * platform): what a controller starts through the runtime. The machines are
 * pure definitions (src/machines/<lifecycle>.ts); their side effects live in
 * src/machines/actors/<lifecycle>.ts. The same wiring serves the emulated
 * adapters, live AWS and the test doubles: only the MachineEnv changes. The
 * instance machine has no side effects: it records what the flows report.
 */
export function wireMachines(env: MachineEnv) {
  return {
    instance: instanceMachine,
    transfer: transferMachine.provide({ actors: transferActors(env) }),
    reverse: reverseMachine.provide({ actors: reverseActors(env) }),
    clone: cloneMachine.provide({ actors: cloneActors(env) }),
    cloneDrop: cloneDropMachine.provide({ actors: cloneDropActors(env) }),
    cutover: cutoverMachine.provide({ actors: cutoverActors(env) }),
    migration: migrationMachine.provide({ actors: migrationActors(env) }),
    retire: retireMachine.provide({ actors: retireActors(env) }),
    proxyResize: proxyResizeMachine.provide({ actors: proxyResizeActors(env) }),
    containerize: containerizeMachine.provide({ actors: containerizeActorsFor(env) }),
    containerTransfer: containerTransferMachine.provide({ actors: containerTransferActors(env) }),
  };
}

export type WiredMachines = ReturnType<typeof wireMachines>;
