// Tests reach the real clock through the live modules, like the CLI does.
export { realTimePacer } from '../../src/world/live-pacer.js';
export { wallMs } from '../../src/world/live-world.js';
