/**
 * `npm run bench`: runs every bench/*.bench.ts (or those named on the command
 * line) and prints their figures. Each bench module exports
 * `run(): Promise<BenchFigure[]>`. Figures from virtual time are exact; wall
 * times are medians of repeated runs.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

export interface BenchFigure {
  name: string;
  value: number;
  unit: string;
  /** Optional target, printed next to the figure with pass/fail. */
  target?: { op: '<=' | '>='; value: number };
  note?: string;
}

const dir = import.meta.dirname;
const only = process.argv.slice(2);
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
  .sort();

let missed = 0;
for (const file of files) {
  const mod = (await import(pathToFileURL(join(dir, file)).href)) as { title?: string; run: () => Promise<BenchFigure[]> };
  console.log(`\n== ${mod.title ?? file} ==`);
  for (const f of await mod.run()) {
    const value = Math.abs(f.value) >= 100 ? f.value.toFixed(0) : f.value.toPrecision(3);
    let verdict = '';
    if (f.target) {
      const ok = f.target.op === '<=' ? f.value <= f.target.value : f.value >= f.target.value;
      if (!ok) missed++;
      verdict = `  [target ${f.target.op} ${f.target.value}: ${ok ? 'met' : 'MISSED'}]`;
    }
    console.log(`  ${f.name.padEnd(52)} ${value.padStart(12)} ${f.unit}${verdict}${f.note ? `  (${f.note})` : ''}`);
  }
}
console.log(`\n${missed === 0 ? 'all targets met' : `${missed} target(s) missed`}`);
