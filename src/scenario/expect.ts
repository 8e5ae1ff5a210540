import { z } from 'zod';
import { InputError } from '../errors.js';
import { join } from '../util/check.js';
import { mapping, oneOf, refuseExpected, shown, text } from './fields.js';
import { closest } from './names.js';

/**
 * `expect:` — assertions on the report, evaluated at the end of a run. The metric paths a
 * scenario's report has are known only to the report (src/report), which passes them in:
 * checkExpectations refuses the others and lists the closest.
 */

export const EXPECT_OPS = ['<', '<=', '>', '>=', '==', '!='] as const;
export type ExpectOp = (typeof EXPECT_OPS)[number];

const expectation = mapping({
  id: text().optional().meta({ description: 'name in output (default: "<metric> <op> <value>")' }),
  metric: text().meta({ description: 'a dotted path of a scalar in the report (spillway run --json)' }),
  op: oneOf(EXPECT_OPS).meta({ description: 'comparison; only == and != for values that are not numbers' }),
  value: z.union([z.number(), z.boolean(), z.string(), z.null()], {
    error: (iss) => `expected a number, true/false, a string or null, got ${shown(iss.input)}`,
  }).meta({ description: 'the expected value' }),
}).transform((o, ctx) => {
  if (typeof o.value !== 'number' && o.op !== '==' && o.op !== '!=') return refuseExpected(ctx, o.op, '== or != (the value is not a number)', ['op']);
  return { id: o.id ?? `${o.metric} ${o.op} ${String(o.value)}`, metric: o.metric, op: o.op, value: o.value };
});

export const expectSchema = z.array(expectation, { error: (iss) => `expected a list, got ${shown(iss.input)}` }).default([])
  .meta({ description: 'assertions on the report' });

export type Expectation = z.output<typeof expectation>;

export function checkExpectations(list: readonly Expectation[], path: string, metricPaths: ReadonlySet<string>): void {
  const all = [...metricPaths];
  list.forEach((e, i) => {
    const p = join(join(path, i), 'metric');
    if (!metricPaths.has(e.metric)) {
      throw new InputError('E_UNKNOWN_METRIC', `${p}: "${e.metric}" is not a report metric; close matches: ${closest(e.metric, all).join(', ')}`, { details: { path: p } });
    }
  });
}
