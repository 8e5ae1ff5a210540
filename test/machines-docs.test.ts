import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { mermaid } from './helpers/machine-diagram.js';
import { MACHINE_DOCS } from './machines-docs.js';

describe('docs/machines', () => {
  it.each(MACHINE_DOCS)('%s.md shows the machine as it is', (file, machine) => {
    const text = readFileSync(join(import.meta.dirname, '..', 'docs', 'machines', `${file}.md`), 'utf8');
    expect(text).toContain(`\`\`\`mermaid\n${mermaid(machine)}\n\`\`\``);
    for (const section of ['## States', '## Timeouts', '## Failure paths and rollback', '## Limits']) expect(text).toContain(section);
  });
});
