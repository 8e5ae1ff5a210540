import { z } from 'zod';
import { scenarioFileSchema } from './file.js';

/**
 * The scenario format as a JSON Schema (draft 7, what YAML editors read), generated from the
 * same declarations the loader checks with: it describes the text a user writes (units as
 * strings, keys before defaults are filled). Published as schemas/scenario.schema.json
 * (`spillway validate --schema` writes it); a scenario opts in with
 * `# yaml-language-server: $schema=../schemas/scenario.schema.json`. References between
 * sections (a VM's workload, a timeline's host) are beyond a JSON Schema: `spillway validate`
 * checks those.
 */
export function scenarioJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(scenarioFileSchema, { io: 'input', target: 'draft-7', unrepresentable: 'any' });
  return {
    $schema: schema.$schema,
    title: 'spillway scenario',
    description: 'A spillway scenario file (docs/scenarios.md). Generated from src/scenario by `spillway validate --schema`; do not edit.',
    ...Object.fromEntries(Object.entries(schema).filter(([k]) => k !== '$schema')),
  };
}
