import type { ReportInput } from '../types.js';
import { buildBurstSection } from './burst.js';
import { buildMigrationSection } from './migration-wave.js';
import { buildFlowsSection } from './flows.js';
import { buildResourcesLeftSection } from './resources-left.js';
import { buildScaleOutSection } from './scale-out.js';

export type SectionBuilder = (input: ReportInput) => Record<string, unknown>;

/**
 * The report's sections after the core figures, in this order (the import-time registration
 * order was burst, scaleOut, migration; the JSON report's key order depends on it).
 * A new section adds a line here and a summary in ../text/render.ts.
 */
export const REPORT_SECTIONS: ReadonlyArray<readonly [string, SectionBuilder]> = [
  ['burst', buildBurstSection],
  ['scaleOut', buildScaleOutSection],
  ['migration', buildMigrationSection],
  ['flows', buildFlowsSection],
  ['resourcesLeft', buildResourcesLeftSection],
];
