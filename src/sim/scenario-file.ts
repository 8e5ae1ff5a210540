import { reportMetricPaths } from '../report/expectations.js';
import * as format from '../scenario/load.js';
import type { Scenario } from '../scenario/schema.js';

/**
 * A scenario as the runner takes it: the file format (src/scenario) plus the check that every
 * `expect:` clause names a metric of this scenario's report (src/report), which the format
 * cannot know without importing upward.
 */
export function loadScenarioFile(path: string): Scenario {
  return format.loadScenarioFile(path, { metricPaths: reportMetricPaths });
}

export function parseScenario(text: string, sourceName: string): Scenario {
  return format.parseScenario(text, sourceName, { metricPaths: reportMetricPaths });
}
