import type { Command } from './command.js';

/**
 * Every subcommand, loaded on demand so `spillway validate` never pays for the
 * AWS SDK or blessed.
 */
export const COMMANDS: Array<{ name: string; summary: string; load: () => Promise<Command> }> = [
  { name: 'run', summary: 'run a scenario and print its report', load: async () => (await import('./run.js')).runCommand },
  { name: 'validate', summary: 'check a scenario file and name any bad field', load: async () => (await import('./validate.js')).validateCommand },
  { name: 'test', summary: 'run every scenario in a folder against its expectations', load: async () => (await import('./test-suite.js')).testCommand },
  { name: 'fuzz', summary: 'fault-fuzz the proxy pair against a model of acknowledged writes', load: async () => (await import('./fuzz.js')).fuzzCommand },
  { name: 'tui', summary: 'watch a scenario run live in the terminal', load: async () => (await import('./tui.js')).tuiCommand },
  { name: 'replay', summary: 'replay a recorded trace in the terminal', load: async () => (await import('./replay.js')).replayCommand },
  { name: 'serve', summary: 'serve a real disk through the proxy pair (onprem | cloud | pair)', load: async () => (await import('./serve.js')).serveCommand },
  { name: 'api', summary: 'read a running --api server: VMs, flows, proxies, metrics, events', load: async () => (await import('./api.js')).apiCommand },
  { name: 'flow', summary: 'start, list and roll back flows of a run served with --api', load: async () => (await import('./flow.js')).flowCommand },
  { name: 'keygen', summary: 'write a new pairing key for the proxy link', load: async () => (await import('./keygen.js')).keygenCommand },
  { name: 'cloud', summary: 'live cloud tools: check permissions, clean up a run', load: async () => (await import('./cloud.js')).cloudCommand },
];
