#!/usr/bin/env node
// Runs the TypeScript sources directly (tsx), so a fresh clone needs no build step.
import { register } from 'tsx/esm/api';

// The AWS SDK warns on every run under Node < 22 about SDK releases after January 2027. npx and
// npm scripts run on the pinned Node 22 (node_modules/.bin/node); a bare `node bin/spillway.js`
// may still be an older system Node, where the SDK version pinned here works and the warning is
// noise in every simulation's output. An explicit setting of the variable still wins.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
register();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
