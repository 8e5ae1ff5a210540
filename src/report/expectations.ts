import type { Expectation, Scenario } from '../scenario/schema.js';
import { buildReport, emptyReportInput } from './report.js';
import type { ExpectationResult, Report } from './types.js';

/**
 * `expect:` clauses against the report: the dotted paths a clause may name
 * (derived from the report of an empty run, so a misspelt metric fails
 * validation before the run), a path's value, and the verdicts.
 */

/** Every dotted path an `expect:` clause may name (scalar leaves; lists are not addressable). */
export function reportMetricPaths(scenario: Scenario): Set<string> {
  const out = new Set<string>();
  const walk = (value: unknown, path: string): void => {
    if (Array.isArray(value)) return;
    if (value !== null && typeof value === 'object') {
      for (const [k, v] of Object.entries(value)) walk(v, path ? `${path}.${k}` : k);
      return;
    }
    out.add(path);
  };
  const report = buildReport(emptyReportInput(scenario));
  const { expectations: _e, series: _s, ...rest } = report;
  walk(rest, '');
  return out;
}

export function metricValue(report: Report, path: string): unknown {
  let cur: unknown = report;
  for (const key of path.split('.')) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur)) return undefined;
    cur = (cur as Record<string, unknown>)[key];
  }
  return cur;
}

export function evaluateExpectation(e: Expectation, actual: unknown): boolean {
  const v = e.value;
  if (e.op === '==') return actual === v;
  if (e.op === '!=') return actual !== v;
  if (typeof actual !== 'number' || typeof v !== 'number') return false;
  switch (e.op) {
    case '<': return actual < v;
    case '<=': return actual <= v;
    case '>': return actual > v;
    case '>=': return actual >= v;
  }
}

export function evaluateExpectations(report: Report, expectations: readonly Expectation[]): ExpectationResult[] {
  return expectations.map((e) => {
    const actual = metricValue(report, e.metric) ?? null;
    return { ...e, actual, pass: evaluateExpectation(e, actual) };
  });
}
