import { writeFileSync } from 'node:fs';
import { ERROR_CATALOGUE, type ErrorCodeGroup } from '../../src/error-codes.js';

/**
 * docs/errors.md, rendered from the catalogue in src/error-codes.ts, so the page lists every
 * code once with its meaning. test/error-codes.test.ts checks the page is current; to rewrite it:
 *   npm run docs:errors
 */
export const ERRORS_DOC = 'docs/errors.md';

export function renderErrorsDoc(): string {
  const out = [
    '# Error codes',
    '',
    '<!-- generated from src/error-codes.ts by test/helpers/errors-doc.ts (npm run docs:errors); do not edit -->',
    '',
    'Every spillway error carries a stable `code` (`SpillwayError.code`; the CLI prints it in brackets',
    'after the message of a failure, reports and traces record it). Branch on codes, never on messages.',
    'A code that starts with `E_BAD_` is a mistake in what you gave (a flag, a file, a field): the CLI',
    'exits 2 for it, as for every input error. When an error wraps another failure, that failure is its',
    '`cause`; a connect or listen failure keeps the kernel\'s errno (ECONNREFUSED…) in `details.errno`.',
    '',
    'Not spillway codes: errno names passed through from sockets and files (ECONNRESET, ENOENT…), and',
    'a cloud provider\'s own error names (InsufficientInstanceCapacity, RequestLimitExceeded…), which',
    '`CloudError` keeps as the provider spells them ([cloud.md](cloud.md)).',
  ];
  for (const group of Object.values(ERROR_CATALOGUE) as ErrorCodeGroup[]) {
    out.push('', `## ${group.title}`, '', '| Code | Meaning |', '| --- | --- |');
    for (const [code, meaning] of Object.entries(group.codes)) out.push(`| \`${code}\` | ${meaning.replace(/\|/g, '\\|')} |`);
  }
  return out.join('\n') + '\n';
}

if (process.argv.includes('--write')) writeFileSync(ERRORS_DOC, renderErrorsDoc());
