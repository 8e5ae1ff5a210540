import { runPlan, type FuzzResult } from './run.js';
import type { FuzzPlan } from './schedule.js';

/**
 * Make a failing plan smaller while it still breaks the same invariant:
 * first drop fault steps one at a time (last first), then drop runs of I/O
 * steps, halving the run length (delta debugging), within a budget of runs.
 */
export async function shrinkPlan(plan: FuzzPlan, failed: FuzzResult, budgetRuns = 60): Promise<{ plan: FuzzPlan; result: FuzzResult; runs: number }> {
  const invariant = failed.violation?.invariant;
  let best = plan;
  let bestResult = failed;
  let runs = 0;
  const stillFails = async (candidate: FuzzPlan): Promise<boolean> => {
    if (runs >= budgetRuns) return false;
    runs++;
    const r = await runPlan(candidate);
    if (r.verdict === 'violation' && r.violation?.invariant === invariant) {
      best = candidate;
      bestResult = r;
      return true;
    }
    return false;
  };
  for (let i = best.steps.length - 1; i >= 0; i--) {
    if (best.steps[i]!.kind !== 'fault') continue;
    await stillFails({ ...best, steps: best.steps.filter((_, j) => j !== i) });
  }
  for (let chunk = Math.max(1, Math.floor(best.steps.length / 2)); chunk >= 1 && runs < budgetRuns; chunk = Math.floor(chunk / 2)) {
    for (let start = 0; start < best.steps.length && runs < budgetRuns;) {
      const candidate = { ...best, steps: [...best.steps.slice(0, start), ...best.steps.slice(start + chunk)] };
      if (!await stillFails(candidate)) start += chunk;
    }
    if (chunk === 1) break;
  }
  return { plan: best, result: bestResult, runs };
}
