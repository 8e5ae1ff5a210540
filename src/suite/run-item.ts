import { errorCode } from '../errors.js';
import { loadScenarioFile } from '../sim/scenario-file.js';
import { createSimulation } from '../sim/simulation.js';
import { wallMs } from '../world/live-world.js';
import type { SuiteItem } from './plan.js';
import type { SuiteResult } from './result.js';

/** Run one (scenario, seed) to the end and judge its expectations. Never throws. */
export async function runSuiteItem(item: SuiteItem, onProgress?: (pct: number, wallMs: number) => void): Promise<SuiteResult> {
  const started = wallMs();
  try {
    const scenario = loadScenarioFile(item.file);
    const sim = await createSimulation(scenario, { seed: item.seed });
    // Long runs report how far they are, at most every 5 s of wall time.
    let lastMs = started;
    const report = await sim.runToEnd(onProgress ? (nowUs, endUs) => {
      const now = wallMs();
      if (now - lastMs < 5000) return;
      lastMs = now;
      onProgress(Math.floor((100 * nowUs) / endUs), Math.round(now - started));
    } : undefined);
    const expectations = report.expectations.map((e) => ({ id: e.id, metric: e.metric, op: e.op, value: e.value, actual: e.actual ?? null, pass: e.pass }));
    return {
      item,
      status: expectations.every((e) => e.pass) ? 'pass' : 'fail',
      expectations,
      traceHash: report.traceHash,
      wallMs: Math.round(wallMs() - started),
      simulatedHours: report.simulatedHours,
      error: null,
    };
  } catch (err) {
    return {
      item, status: 'error', expectations: [], traceHash: null, wallMs: Math.round(wallMs() - started), simulatedHours: null,
      error: { code: errorCode(err) ?? 'E_UNKNOWN', message: err instanceof Error ? err.message : String(err) },
    };
  }
}
