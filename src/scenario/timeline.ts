import { z } from 'zod';
import { fail, join } from '../util/check.js';
import { formatDurationUs } from '../util/units.js';
import { bool, duration, mapping, num, oneOf, refuseExpected, shown, size, text } from './fields.js';
import { closest, globToRegExp } from './names.js';

/**
 * `timeline:` — events in virtual time: load changes, host failures and recoveries, WAN
 * outages, power operations and snapshots, and the flows an operator starts on one VM
 * (transfer, reverse, clone, cutover, migrate, resize, containerize, and rollback of the one
 * running). Each event has `at` and `event`; the other fields depend on the event. References
 * (workloads, VMs, hosts, the WAN) are checked by checkTimeline.
 */

/** The flow a timeline event starts: the same fields as an API flow request (src/sim/operator-flows.ts FlowRequest). */
export interface TimelineFlow {
  kind: (typeof FLOW_EVENTS)[number];
  vm: string;
  to?: 'cloud' | 'onprem';
  transferKind?: 'stateless' | 'stateful' | 'run-time';
  host?: string;
  instanceType?: string;
  persistence?: 'on-prem' | 'cloud-only';
  target?: string;
  disk?: string;
  cacheBytes?: number;
  mode?: 'snapshot' | 'deactivate';
}

/** Timeline events that start an operator flow (the flow kinds of src/sim/operator-flows.ts). */
export const FLOW_EVENTS = ['transfer', 'reverse', 'clone', 'cutover', 'migrate', 'resize', 'containerize'] as const;
export const EVENTS = ['load', 'host-fail', 'host-recover', 'wan-outage', 'power-off', 'power-on', 'snapshot', ...FLOW_EVENTS, 'rollback'] as const;

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
  mapping({
    at, event: z.literal('transfer'), vm: text(),
    to: oneOf(['cloud', 'onprem']).default('cloud').meta({ description: 'O2C (cloud) or O2O (onprem, to `host`)' }),
    kind: oneOf(['stateless', 'stateful', 'run-time']).default('stateless').meta({ description: 'what of the running VM moves (§3.2)' }),
    host: text().optional().meta({ description: 'to: onprem: the target host' }),
    instanceType: text().optional().meta({ description: 'to: cloud: a type of cloud.catalog (default: chosen)' }),
  }),
  mapping({ at, event: z.literal('reverse'), vm: text(), host: text().optional().meta({ description: 'the on-prem host (default: where it came from)' }) }),
  mapping({
    at, event: z.literal('clone'), vm: text(),
    persistence: oneOf(['cloud-only', 'on-prem']).default('cloud-only').meta({ description: "where the clone's writes persist" }),
    instanceType: text().optional().meta({ description: 'a type of cloud.catalog (default: chosen)' }),
  }),
  mapping({ at, event: z.literal('cutover'), vm: text(), target: text().meta({ description: 'the standby clone to cut over to (<vm>-c<n>, from an earlier clone event)' }) }),
  mapping({ at, event: z.literal('migrate'), vm: text() }),
  mapping({
    at, event: z.literal('resize'), vm: text(),
    cache: size().meta({ description: "the cloud proxy's new cache capacity (>= 1MiB)" }),
    disk: text().optional().meta({ description: 'the disk whose proxy to resize (default: the first)' }),
  }),
  mapping({ at, event: z.literal('containerize'), vm: text(), mode: oneOf(['snapshot', 'deactivate']).default('snapshot') }),
  mapping({ at, event: z.literal('rollback'), vm: text().meta({ description: 'roll back the operator flow running on this VM' }) }),
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
      case 'transfer':
        return { atUs: e.at, event: e.event, index, flow: { kind: e.event, vm: e.vm, to: e.to, transferKind: e.kind, ...opt('host', e.host), ...opt('instanceType', e.instanceType) } as TimelineFlow };
      case 'reverse':
        return { atUs: e.at, event: e.event, index, flow: { kind: e.event, vm: e.vm, ...opt('host', e.host) } as TimelineFlow };
      case 'clone':
        return { atUs: e.at, event: e.event, index, flow: { kind: e.event, vm: e.vm, persistence: e.persistence, ...opt('instanceType', e.instanceType) } as TimelineFlow };
      case 'cutover':
        return { atUs: e.at, event: e.event, index, flow: { kind: e.event, vm: e.vm, target: e.target } as TimelineFlow };
      case 'migrate':
        return { atUs: e.at, event: e.event, index, flow: { kind: e.event, vm: e.vm } as TimelineFlow };
      case 'resize':
        return { atUs: e.at, event: e.event, index, flow: { kind: e.event, vm: e.vm, cacheBytes: e.cache, ...opt('disk', e.disk) } as TimelineFlow };
      case 'containerize':
        return { atUs: e.at, event: e.event, index, flow: { kind: e.event, vm: e.vm, mode: e.mode } as TimelineFlow };
      case 'rollback':
        return { atUs: e.at, event: e.event, vm: e.vm, index };
    }
  }))
  .meta({ description: 'events in virtual time' });

export type TimelineEvent = z.output<typeof timelineSchema>[number];

/** `{ [key]: value }` when the field was given, `{}` when not (optional fields stay absent, not undefined). */
function opt<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}

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
      default: {
        const flow = 'flow' in e ? e.flow : undefined;
        const vm = flow?.vm ?? (e as { vm: string }).vm;
        if (!s.vmNames.includes(vm)) fail(join(p, 'vm'), `a VM name (closest: ${closest(vm, s.vmNames, 3).join(', ')})`, vm);
        if ((flow || e.event === 'rollback') && !s.hasWan) fail(join(p, 'event'), `an event that moves no VM (${e.event} streams disks over the wan: section, which this scenario lacks)`, e.event);
        if (!flow) break;
        if (flow.host !== undefined && !s.hostIds.includes(flow.host)) fail(join(p, 'host'), `one of ${s.hostIds.join(', ')}`, flow.host);
        if (flow.cacheBytes !== undefined && flow.cacheBytes < 1024 * 1024) fail(join(p, 'cache'), 'a cache of at least 1MiB', flow.cacheBytes);
        if (flow.kind === 'transfer' && flow.to === 'onprem' && flow.host === undefined) fail(join(p, 'host'), 'the on-prem host to move the VM to (to: onprem)', undefined);
      }
    }
  }
}
