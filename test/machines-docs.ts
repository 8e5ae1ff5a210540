import type { AnyStateMachine } from 'xstate';
import { cloneMachine } from '../src/machines/clone.js';
import { cloneDropMachine } from '../src/machines/clone-drop.js';
import { containerTransferMachine } from '../src/machines/container-transfer.js';
import { containerizeMachine } from '../src/machines/containerize.js';
import { cutoverMachine } from '../src/machines/cutover.js';
import { instanceMachine } from '../src/machines/instance.js';
import { migrationMachine } from '../src/machines/migration.js';
import { proxyResizeMachine } from '../src/machines/proxy-resize.js';
import { retireMachine } from '../src/machines/retire.js';
import { reverseMachine } from '../src/machines/reverse.js';
import { transferMachine } from '../src/machines/transfer.js';

/** docs/machines/<file>.md for each machine. */
export const MACHINE_DOCS: Array<[string, AnyStateMachine]> = [
  ['instance', instanceMachine], ['transfer', transferMachine], ['clone', cloneMachine], ['cutover', cutoverMachine],
  ['reverse', reverseMachine], ['migration', migrationMachine], ['proxy-resize', proxyResizeMachine],
  ['containerize', containerizeMachine], ['container-transfer', containerTransferMachine],
  ['clone-drop', cloneDropMachine], ['retire', retireMachine],
];
