import { z } from 'zod';
import { fail, join } from '../util/check.js';
import { formatDurationUs } from '../util/units.js';
import { bool, duration, mapping, num, refuseExpected, shown, text } from './fields.js';
import { closest, globToRegExp } from './names.js';

/**
 * `timeline:` — events in virtual time: load changes, host failures and recoveries, WAN
 * outages, power operations and snapshots. Each event has `at` and `event`; the other fields
 * depend on the event. References (workloads, VMs, hosts, the WAN) are checked by checkTimeline.
 */

export const EVENTS = ['load', 'host-fail', 'host-recover', 'wan-outage', 'power-off', 'power-on', 'snapshot'] as const;

const at = duration().meta({ description: "virtual time since the run began, within the scenario's duration" });
const forAt = duration().optional();

const events = z.discriminatedUnion('event', [
  mapping({
    at, event: z.literal('load'),
    workload: text().optional().meta({ description: 'a steady workload' }),
    vms: text().optional().meta({ description: 'a VM name glob with * ("web-*")' }),
    factor: num({ min: 0, max: 100 }).meta({ description: 'multiplies the demand of the matching VMs' }),
    for: forAt.meta({ description: 'how long (default: to the end)' }),
  }),
  mapping({ at, event: z.literal('host-fail'), host: text(), for: forAt.meta({ description: 'recovers after this long' }) }),
  mapping({ at, event: z.literal('host-recover'), host: text() }),
  mapping({
    at, event: z.literal('wan-outage'), for: duration(),
    reset: bool().default(false).meta({ description: 'drop open connections' }),
  }),
  mapping({ at, event: z.literal('power-off'), vm: text() }),
  mapping({ at, event: z.literal('power-on'), vm: text() }),
  mapping({
    at, event: z.literal('snapshot'), vm: text(),
    name: text().optional().meta({ description: 'default: timeline-<index>' }),
    memory: bool().default(false),
  }),
], {
  error: (iss) => (iss.code === 'invalid_union'
    ? `expected one of ${EVENTS.join(', ')}, got ${shown((iss.input as { event?: unknown } | undefined)?.event)}`
    : `expected a mapping (key: value), got ${shown(iss.input)}`),
});

export const timelineSchema = z.array(events, { error: (iss) => `expected a list, got ${shown(iss.input)}` }).default([])
  .transform((list) => list.map((e, index) => {
    switch (e.event) {
      case 'load':
        return { atUs: e.at, event: e.event, workload: e.workload ?? null, vms: e.vms ?? null, factor: e.factor, forUs: e.for ?? null, index };
      case 'host-fail':
        return { atUs: e.at, event: e.event, host: e.host, forUs: e.for ?? null, index };
      case 'host-recover':
        return { atUs: e.at, event: e.event, host: e.host, index };
      case 'wan-outage':
        return { atUs: e.at, event: e.event, forUs: e.for, reset: e.reset, index };
      case 'power-off':
      case 'power-on':
        return { atUs: e.at, event: e.event, vm: e.vm, index };
      case 'snapshot':
        return { atUs: e.at, event: e.event, vm: e.vm, name: e.name ?? `timeline-${index}`, memory: e.memory, index };
    }
  }))
  .meta({ description: 'events in virtual time' });

export type TimelineEvent = z.output<typeof timelineSchema>[number];

/** Every event refers to things the scenario has, and happens within its duration. */
export function checkTimeline(events: readonly TimelineEvent[], path: string, s: {
  durationUs: number; hasWan: boolean; hostIds: string[]; vmNames: string[]; workloadKinds: Record<string, string>;
}): void {
  for (const e of events) {
    const p = join(path, e.index);
    if (e.atUs > s.durationUs) fail(join(p, 'at'), `a time within the scenario's duration (${formatDurationUs(s.durationUs)})`, formatDurationUs(e.atUs));
    switch (e.event) {
      case 'load': {
        const workloads = Object.keys(s.workloadKinds);
        if (e.workload !== null && !workloads.includes(e.workload)) fail(join(p, 'workload'), `one of ${workloads.join(', ')}`, e.workload);
        if (e.workload !== null && s.workloadKinds[e.workload] === 'batch') {
          fail(join(p, 'workload'), `a steady workload (batch work is fixed: set workloads.${e.workload}.work and .start instead)`, e.workload);
        }
        if (e.vms !== null) {
          const re = globToRegExp(e.vms);
          if (!s.vmNames.some((n) => re.test(n))) fail(join(p, 'vms'), `a VM name or glob matching at least one VM (e.g. ${s.vmNames[0]}, web-*)`, e.vms);
        }
        if (e.workload === null && e.vms === null) fail(p, 'a workload or a vms glob to apply the load change to', { at: formatDurationUs(e.atUs), event: e.event, factor: e.factor });
        break;
      }
      case 'host-fail':
      case 'host-recover':
        if (!s.hostIds.includes(e.host)) fail(join(p, 'host'), `one of ${s.hostIds.join(', ')}`, e.host);
        break;
      case 'wan-outage':
        if (!s.hasWan) fail(join(p, 'event'), 'an event other than wan-outage (this scenario has no wan: section)', e.event);
        break;
      default:
        if (!s.vmNames.includes(e.vm)) fail(join(p, 'vm'), `a VM name (closest: ${closest(e.vm, s.vmNames, 3).join(', ')})`, e.vm);
    }
  }
}
