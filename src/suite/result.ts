import type { SuiteItem } from './plan.js';

/** One expectation as the suite reports it (the report's own result, minus nothing). */
export interface SuiteExpectation {
  id: string;
  metric: string;
  op: string;
  value: unknown;
  actual: unknown;
  pass: boolean;
}

/** What a worker sends back for one (scenario, seed) run. */
export interface SuiteResult {
  item: SuiteItem;
  /** `pass`: every expectation held; `fail`: one did not; `error`: the run itself threw. */
  status: 'pass' | 'fail' | 'error';
  expectations: SuiteExpectation[];
  traceHash: string | null;
  wallMs: number;
  simulatedHours: number | null;
  error: { code: string; message: string } | null;
}

export function passedCount(r: SuiteResult): number {
  return r.expectations.filter((e) => e.pass).length;
}
