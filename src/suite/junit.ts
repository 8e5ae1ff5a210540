import type { SuiteResult } from './result.js';

/**
 * JUnit XML as CI systems read it (Jenkins, GitLab, GitHub test reporters):
 * one <testsuite> per scenario, one <testcase> per (seed, expectation), a
 * <failure> for an expectation that did not hold and an <error> for a run
 * that threw. Each failure carries the command that replays it.
 */
export function renderJUnit(results: readonly SuiteResult[], options: { name?: string; replay: (r: SuiteResult) => string }): string {
  const byScenario = new Map<string, SuiteResult[]>();
  for (const r of results) {
    const key = `${r.item.scenario}\u0000${r.item.file}`;
    byScenario.set(key, [...(byScenario.get(key) ?? []), r]);
  }
  let tests = 0;
  let failures = 0;
  let errors = 0;
  let totalMs = 0;
  const suites: string[] = [];
  for (const group of byScenario.values()) {
    const first = group[0]!.item;
    const cases: string[] = [];
    let sTests = 0;
    let sFailures = 0;
    let sErrors = 0;
    let sMs = 0;
    for (const r of group) {
      sMs += r.wallMs;
      const caseName = (what: string): string => `seed ${r.item.seed}: ${what}`;
      if (r.status === 'error') {
        sTests++;
        sErrors++;
        cases.push(`    <testcase classname="${attr(first.scenario)}" name="${attr(caseName('run'))}" time="${secs(r.wallMs)}">\n` +
          `      <error type="${attr(r.error!.code)}" message="${attr(r.error!.message)}">${text(`${r.error!.message}\nreplay: ${options.replay(r)}`)}</error>\n    </testcase>`);
        continue;
      }
      // The run's wall time belongs to the run, not to each expectation: it goes on the first case.
      const cases0 = r.expectations.length === 0 ? [null] : r.expectations;
      cases0.forEach((e, k) => {
        sTests++;
        const time = k === 0 ? secs(r.wallMs) : '0.000';
        if (e === null) {
          cases.push(`    <testcase classname="${attr(first.scenario)}" name="${attr(caseName('runs (no expectations)'))}" time="${time}"/>`);
          return;
        }
        const head = `    <testcase classname="${attr(first.scenario)}" name="${attr(caseName(e.id))}" time="${time}"`;
        if (e.pass) {
          cases.push(`${head}/>`);
          return;
        }
        sFailures++;
        const message = `${e.metric} ${e.op} ${JSON.stringify(e.value)}: actual ${JSON.stringify(e.actual)}`;
        cases.push(`${head}>\n      <failure type="expectation" message="${attr(message)}">${text(`${message}\nreplay: ${options.replay(r)}`)}</failure>\n    </testcase>`);
      });
    }
    tests += sTests;
    failures += sFailures;
    errors += sErrors;
    totalMs += sMs;
    suites.push(`  <testsuite name="${attr(first.scenario)}" file="${attr(first.file)}" tests="${sTests}" failures="${sFailures}" errors="${sErrors}" skipped="0" time="${secs(sMs)}">\n${cases.join('\n')}\n  </testsuite>`);
  }
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="${attr(options.name ?? 'spillway')}" tests="${tests}" failures="${failures}" errors="${errors}" time="${secs(totalMs)}">\n${suites.join('\n')}\n</testsuites>\n`;
}

const secs = (ms: number): string => (ms / 1000).toFixed(3);

/** XML 1.0 cannot carry most control characters even escaped: drop them. */
const clean = (s: string): string => s.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '');

export function text(s: string): string {
  return clean(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function attr(s: string): string {
  return text(s).replace(/"/g, '&quot;').replace(/'/g, '&apos;').replace(/\n/g, '&#10;').replace(/\r/g, '&#13;').replace(/\t/g, '&#9;');
}
