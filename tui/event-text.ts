import { formatDurationUs } from '../src/util/units.js';
import type { TraceEvent } from '../src/world/types.js';
import type { LogLevel } from './snapshot.js';

/**
 * Sampled series feed the panels, not the event log: one line per sample
 * would push every real happening off the screen within seconds.
 */
const SAMPLED = new Set(['host.load', 'wan.stats', 'proxy.stats', 'proxy.blocks', 'vm.io', 'vm.progress', 'cost.tick']);

export interface LogLine {
  text: string;
  level: LogLevel;
}

const str = (v: unknown): string => (typeof v === 'string' ? v : v === undefined || v === null ? '?' : JSON.stringify(v));
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

/** One log line for an event, or null when the event only feeds a panel. */
export function describeEvent(e: TraceEvent): LogLine | null {
  if (SAMPLED.has(e.type)) return null;
  const d = e.data;
  switch (e.type) {
    case 'run.start':
      return { level: 'info', text: `run start: scenario ${str(d.scenario)}, seed ${str(d.seed)}, ${str(d.vms)} VMs, ${str(d.hosts)} hosts` };
    case 'run.end':
      return { level: 'info', text: `run end: ${str(d.reason)} (${str(d.events)} events)` };
    case 'host.failed':
      return { level: 'error', text: 'host failed' };
    case 'host.recovered':
      return { level: 'info', text: 'host recovered' };
    case 'vm.power':
      return { level: 'info', text: `power ${str(d.power)}${d.host !== undefined ? ` on ${str(d.host)}` : ''}` };
    case 'vm.placed':
      return d.where === 'cloud'
        ? { level: 'info', text: `placed in cloud on ${str(d.instance)}${d.instanceType !== undefined ? ` (${str(d.instanceType)})` : ''}` }
        : { level: 'info', text: `placed on-prem on ${str(d.host)}` };
    case 'vm.task.done':
      return { level: num(d.delayedUs) > 0 ? 'warn' : 'info', text: `task ${str(d.task)} done${num(d.delayedUs) > 0 ? `, delayed ${formatDurationUs(num(d.delayedUs))}` : ''}` };
    case 'machine.state':
      return { level: 'info', text: `${str(d.machine)} → ${str(d.state)}` };
    case 'machine.error':
      return { level: 'error', text: `${str(d.machine)} error in ${str(d.state)}: ${str(d.code)} ${typeof d.message === 'string' ? d.message : ''}`.trimEnd() };
    case 'machine.done':
      return { level: d.outcome === 'ok' ? 'info' : d.outcome === 'failed' ? 'error' : 'warn', text: `${str(d.machine)} done: ${str(d.outcome)}` };
    case 'wan.outage':
      return { level: 'warn', text: d.start ? `WAN outage started${d.reset ? ' (connections reset)' : ''}` : 'WAN outage ended' };
    case 'cloud.call':
      if (d.ok) return null;
      return { level: 'error', text: `${str(d.api)} failed: ${str(d.code)} after ${formatDurationUs(num(d.latencyUs))}` };
    case 'cloud.instance':
      return { level: 'info', text: `instance ${str(d.id)} (${str(d.type)}) → ${str(d.state)}` };
    case 'controller.decision':
      return { level: 'info', text: `${str(d.action)} ${str(d.vm)}: ${str(d.reason)}${typeof d.score === 'number' ? ` (score ${d.score.toFixed(2)})` : ''}` };
    case 'expect.result':
      return { level: d.pass ? 'info' : 'error', text: `expect ${str(d.id)}: ${d.pass ? 'pass' : 'FAIL'} (actual ${str(d.actual)}, expected ${str(d.expected)})` };
    default: {
      // A type this TUI does not know yet still shows, compactly, so new producers are visible.
      const parts = Object.keys(d).slice(0, 6).map((k) => `${k}=${str(d[k])}`);
      return { level: 'info', text: `${e.type} ${parts.join(' ')}`.trimEnd() };
    }
  }
}
