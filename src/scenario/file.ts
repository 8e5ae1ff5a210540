import { z } from 'zod';
import { cloudSchema } from './cloud.js';
import { datacenterSchema } from './datacenter.js';
import { expectSchema } from './expect.js';
import { duration, int, mapping, text } from './fields.js';
import { policiesSchema } from './policies/index.js';
import { timelineSchema } from './timeline.js';
import { wanSchema } from './wan.js';
import { workloadsSchema } from './workloads.js';

/**
 * The whole scenario file, declared once: each section's schema gives its TypeScript type, its
 * defaults, its checks and its part of the JSON Schema (schemas/scenario.schema.json).
 * References between sections are checked after this parse (src/scenario/load.ts).
 */
export const scenarioFileSchema = mapping({
  name: text({ pattern: /^[\w.-]+$/ }).meta({ description: "the scenario's name; names the run in reports" }),
  description: text().default('').meta({ description: 'free text' }),
  seed: int({ min: 0, max: 2 ** 32 - 1 }).default(1).meta({ description: 'master seed; --seed overrides it' }),
  duration: duration({ check: (us) => (us <= 0 ? 'a positive duration' : null) }).prefault('1d')
    .meta({ description: 'virtual time simulated; --until overrides it' }),
  sampleEvery: duration({ check: (us) => (us < 1_000_000 ? 'at least 1s' : null) }).prefault('5m')
    .meta({ description: "sampling period of host.load, vm.progress and the report's series" }),
  tickEvery: duration({ check: (us) => (us < 1_000_000 ? 'at least 1s' : null) }).prefault('5m')
    .meta({ description: 'how often load curves are re-evaluated (demand is constant in between)' }),
  workloads: workloadsSchema,
  datacenter: datacenterSchema.meta({ description: 'hosts, storage tiers, images and VMs' }),
  wan: wanSchema.optional().meta({ description: 'the WAN link to the cloud; needed by bursting and wan-outage events' }),
  cloud: cloudSchema,
  policies: policiesSchema,
  timeline: timelineSchema,
  expect: expectSchema,
}).transform((o) => ({
  name: o.name, description: o.description, seed: o.seed,
  durationUs: o.duration,
  /** How often host load and task progress are sampled into the trace and report. */
  sampleEveryUs: o.sampleEvery,
  /** How often load curves are re-evaluated (demand is constant in between). */
  tickEveryUs: o.tickEvery,
  datacenter: o.datacenter, workloads: o.workloads,
  /** The WAN as the link model takes it; null when the scenario has no `wan:` section. */
  wan: o.wan ?? null,
  cloud: o.cloud, policies: o.policies, timeline: o.timeline, expect: o.expect,
}));

export type ScenarioFile = z.output<typeof scenarioFileSchema>;
