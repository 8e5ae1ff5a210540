// Worker threads do not inherit the main thread's tsx loader hooks: register them
// here, then load the TypeScript worker (same approach as bin/spillway.js).
import { register } from 'tsx/esm/api';

register();
await import('./worker.ts');
