import type { ScenarioFile } from './file.js';

/**
 * A scenario after validation: every default filled in, every duration in microseconds, every
 * size in bytes, name patterns expanded. The types come from the declarations of the format
 * (src/scenario/file.ts and the section files it lists); docs/scenarios.md describes the YAML.
 */
export type Scenario = ScenarioFile & {
  /** The file (or name) the scenario was read from, for messages. */
  sourceName: string;
};

export type { DatacenterSpec, DiskSpec, HostSpec, ImageSpec, MountSpec, Persistence, VmSpec } from './datacenter.js';
export type { BurstPolicy, Policies } from './policies/index.js';
export type { TimelineEvent } from './timeline.js';
export { EXPECT_OPS, type ExpectOp, type Expectation } from './expect.js';

/** A storage tier as the storage model takes it (src/providers/emulated/hypervisor/storage-tier.ts). */
export type { TierConfig as StorageTierSpec } from '../providers/emulated/hypervisor/storage-tier.js';

export type OsSpec = import('./datacenter.js').ImageSpec['os'];
export type BurstSelection = import('./policies/index.js').BurstPolicy['selection'];
export type BurstRates = import('./policies/index.js').BurstPolicy['rates'];
