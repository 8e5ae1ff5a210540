import { timingSafeEqual, createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { InputError } from '../errors.js';

/** Shortest token accepted: a guessable token is no authentication. */
export const MIN_TOKEN_CHARS = 16;

/**
 * Read the API's bearer token from a file only its owner can read (0600 or
 * stricter). A file others can read is refused: the token is the only thing
 * between the network and the operator's actions.
 */
export function readTokenFile(path: string, flag = '--api-token-file'): string {
  let mode: number;
  let text: string;
  try {
    mode = statSync(path).mode;
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new InputError('E_BAD_TOKEN_FILE', `${flag}: cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  if ((mode & 0o077) !== 0) {
    throw new InputError('E_TOKEN_FILE_OPEN', `${flag}: ${path} is readable by others (mode ${(mode & 0o777).toString(8).padStart(3, '0')}); allowed: 600 or stricter (chmod 600 ${path})`);
  }
  const token = text.trim();
  if (token.length < MIN_TOKEN_CHARS || /\s/.test(token)) {
    throw new InputError('E_BAD_TOKEN', `${flag}: ${path} must hold one token of at least ${MIN_TOKEN_CHARS} characters without spaces`);
  }
  return token;
}

/** Compares bearer tokens in constant time (digests, so lengths do not leak either). */
export function tokenChecker(token: string): (header: string | undefined) => boolean {
  const want = createHash('sha256').update(token).digest();
  return (header) => {
    const m = /^Bearer (\S+)$/.exec(header ?? '');
    if (!m) return false;
    return timingSafeEqual(createHash('sha256').update(m[1]!).digest(), want);
  };
}
