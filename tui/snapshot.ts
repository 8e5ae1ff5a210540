/**
 * What the views may see: frozen plain objects, built by the model from trace
 * events. A view renders one of these and nothing else (k9s style), so the
 * whole data layer is testable without a terminal.
 */

export interface HostView {
  readonly id: string;
  readonly cpuDemand: number;
  readonly cpuCapacity: number;
  readonly ramUsedMiB: number;
  readonly ramMiB: number;
  readonly vms: number;
  readonly failed: boolean;
}

export interface InstanceView {
  readonly id: string;
  readonly type: string;
  readonly state: string;
  /** The VM placed on this instance, when a vm.placed event named it. */
  readonly vm: string | null;
  readonly sinceUs: number;
}

export interface IoRates {
  readonly readBps: number;
  readonly writeBps: number;
  readonly readIops: number;
  readonly writeIops: number;
}

export type Where = 'onprem' | 'cloud' | 'unknown';

export interface VmView {
  readonly name: string;
  readonly where: Where;
  readonly host: string | null;
  readonly instance: string | null;
  readonly instanceType: string | null;
  readonly power: string | null;
  /** The lifecycle machine that last changed state, and its dotted state path. */
  readonly machine: string | null;
  readonly state: string | null;
  readonly stateSinceUs: number;
  readonly io: IoRates;
  /** Outcome of the last finished lifecycle (ok, rolled-back, failed). */
  readonly outcome: string | null;
  /** Code of the last machine error, cleared when the machine moves on. */
  readonly error: string | null;
  /** The running batch task's progress (vm.progress), null when none is reported. */
  readonly progress: Progress | null;
}

export interface Progress {
  /** Work units done and in total (the hypervisor reports vCPU-hours). */
  readonly done: number;
  readonly total: number;
  readonly rate: number;
}

export interface WanSample {
  readonly t: number;
  readonly upBps: number;
  readonly downBps: number;
  readonly rttUs: number;
  readonly lossPct: number;
  readonly up: boolean;
}

export interface WanView {
  readonly current: WanSample | null;
  readonly series: readonly WanSample[];
  readonly outage: boolean;
  readonly outages: number;
}

export interface ProxyView {
  readonly src: string;
  readonly vm: string;
  readonly cacheHits: number;
  readonly cacheMisses: number;
  /** hits / (hits + misses), null before any read. */
  readonly hitRatio: number | null;
  readonly cacheBytes: number;
  readonly cacheCapacity: number;
  readonly prefetchQueued: number;
  readonly prefetchHits: number;
  readonly wbBacklogBytes: number;
  readonly wbLagUs: number;
  readonly wireBytes: number;
  readonly guestBytes: number;
}

export interface ProxiesView {
  readonly hitRatio: number | null;
  readonly prefetchQueued: number;
  readonly wbBacklogBytes: number;
  readonly wbLagUsMax: number;
  readonly byVm: readonly ProxyView[];
}

export interface CostSample {
  readonly t: number;
  readonly cloudUsd: number;
  readonly onpremUsd: number;
}

export interface CostView {
  readonly cloudUsd: number;
  readonly onpremUsd: number;
  readonly series: readonly CostSample[];
}

export type LogLevel = 'info' | 'warn' | 'error';

export interface LogEntry {
  /** Position in the trace (0-based event number). */
  readonly seq: number;
  readonly t: number;
  readonly src: string;
  readonly type: string;
  /** One line, built from the event's data; untrusted (escape before drawing). */
  readonly text: string;
  readonly level: LogLevel;
}

export interface ClockView {
  readonly nowUs: number;
  readonly seed: number | null;
  readonly scenario: string | null;
  readonly ended: boolean;
  readonly endReason: string | null;
}

export interface StateEntry {
  readonly t: number;
  readonly machine: string;
  readonly state: string;
}

export interface IoSample extends IoRates {
  readonly t: number;
}

export interface BlocksSample {
  readonly t: number;
  readonly fetched: number;
  readonly pushed: number;
  readonly bytes: number;
}

export interface VmDetail {
  readonly vm: VmView;
  readonly states: readonly StateEntry[];
  readonly io: readonly IoSample[];
  readonly blocks: readonly BlocksSample[];
  readonly blocksTotal: { readonly fetched: number; readonly pushed: number; readonly bytes: number };
  readonly proxy: ProxyView | null;
  /** Decisions, errors and outcomes that name this VM. */
  readonly events: readonly LogEntry[];
}

export interface Snapshot {
  /** Increases with every applied event or clock move; equal versions mean equal content. */
  readonly version: number;
  readonly eventCount: number;
  readonly clock: ClockView;
  readonly hosts: readonly HostView[];
  readonly instances: readonly InstanceView[];
  readonly vms: readonly VmView[];
  readonly wan: WanView;
  readonly proxies: ProxiesView;
  readonly cost: CostView;
  readonly log: readonly LogEntry[];
  /** Detail of the VM asked for, or null. */
  readonly detail: VmDetail | null;
}
