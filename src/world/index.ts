export type { Clock, Listener, LogLevel, Net, Rng, Timer, Trace, TraceData, TraceEvent, Transport, World } from './types.js';
export { SimWorld, type LogLine, type RunOptions, type RunResult } from './sim-world.js';
export { SimNet, DelayPipe, directLink, type Pipe, type LinkModel, type ConnectionControl } from './sim-net.js';
export { TraceRecorder, canonicalJson, hashTraceLines } from './trace.js';
export { createRng } from './rng.js';
