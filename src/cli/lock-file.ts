import { hostname } from 'node:os';
import { readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { InputError } from '../errors.js';

/**
 * An exclusive lock of one spillway process on a path (a disk image, a cache
 * dir), held as a file beside it that names the holder. Node has no flock,
 * so this is advisory: it keeps a second spillway off the same image, not
 * other programs. A lock whose holder is no longer running on this host is
 * stale and taken over.
 */
export interface HeldLock {
  readonly path: string;
  release(): Promise<void>;
}

interface Holder {
  pid: number;
  host: string;
  what: string;
}

export const E_LOCKED = 'E_LOCKED';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readHolder(lockPath: string): Promise<Holder | undefined> {
  try {
    return JSON.parse(await readFile(lockPath, 'utf8')) as Holder;
  } catch {
    return undefined;
  }
}

/**
 * Take the lock `lockPath` for `what` (e.g. "serve onprem of disk.img"), or
 * refuse with E_LOCKED naming the process that holds it.
 */
export async function takeLock(lockPath: string, what: string, flag: string): Promise<HeldLock> {
  const me: Holder = { pid: process.pid, host: hostname(), what };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await writeFile(lockPath, JSON.stringify(me), { flag: 'wx', mode: 0o600 });
      return {
        path: lockPath,
        async release() {
          const holder = await readHolder(lockPath);
          if (holder?.pid === me.pid && holder.host === me.host) await unlink(lockPath).catch(() => undefined);
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new InputError('E_BAD_ARGUMENT', `${flag}: cannot create the lock ${lockPath}: ${(err as Error).message}`, { cause: err });
      }
    }
    const holder = await readHolder(lockPath);
    if (holder && holder.host === me.host && alive(holder.pid)) {
      throw new InputError(E_LOCKED, `${flag}: in use by another spillway (pid ${holder.pid}: ${holder.what}); stop it first. `
        + `If no such process runs, remove ${lockPath}`, { details: { ...holder } });
    }
    if (holder && holder.host !== me.host) {
      throw new InputError(E_LOCKED, `${flag}: locked by a spillway on host ${holder.host} (pid ${holder.pid}: ${holder.what}); `
        + `if it no longer runs, remove ${lockPath}`, { details: { ...holder } });
    }
    // Stale (its holder is gone) or unreadable: move it aside atomically, so of two takers only one removes it.
    await rename(lockPath, `${lockPath}.stale-${process.pid}`).then(() => unlink(`${lockPath}.stale-${process.pid}`), () => undefined);
  }
  throw new InputError(E_LOCKED, `${flag}: could not take the lock ${lockPath} (another process keeps taking it)`);
}
