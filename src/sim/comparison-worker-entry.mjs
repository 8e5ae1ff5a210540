// Worker threads do not inherit the main thread's tsx loader hooks: register them
// here, then load the TypeScript worker (as bin/spillway.js and the suite's worker do).
import { register } from 'tsx/esm/api';

register();
await import('./comparison-worker.ts');
