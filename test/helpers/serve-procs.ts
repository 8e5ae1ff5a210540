import { spawn, type ChildProcess } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Real `spillway` processes for CLI-level tests: start one and wait until it
 * prints its ready line, stop it the way an operator does (SIGTERM), or kill
 * it the way a crash does (SIGKILL).
 */
const REPO = join(import.meta.dirname, '..', '..');

export interface Proc {
  child: ChildProcess;
  out(): string;
  err(): string;
  exited: Promise<number | null>;
}

export class Procs {
  private readonly all: Proc[] = [];

  constructor(private readonly cwd: string) {}

  /** Start `spillway …` without waiting for anything. */
  start(args: string[]): Proc {
    const child = spawn(process.execPath, [join(REPO, 'bin/spillway.js'), ...args], { cwd: this.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const p: Proc = { child, out: () => out, err: () => err, exited };
    this.all.push(p);
    return p;
  }

  /** Start `spillway …` and wait until it prints `ready`; throws with its output if it exits first. */
  async ready(args: string[], ready = /ready/, timeoutMs = 45_000): Promise<Proc> {
    const p = this.start(args);
    for (let waited = 0; !ready.test(p.out()); waited += 50) {
      if (p.child.exitCode !== null || waited > timeoutMs) throw new Error(`spillway ${args.join(' ')} did not get ready:\n${p.out()}\n${p.err()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return p;
  }

  /** SIGKILL whatever is still running (afterEach). */
  async killAll(): Promise<void> {
    for (const p of this.all.splice(0)) {
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
      await p.exited;
    }
  }
}

export async function stop(p: Proc): Promise<number | null> {
  p.child.kill('SIGTERM');
  return p.exited;
}

export async function kill9(p: Proc): Promise<void> {
  p.child.kill('SIGKILL');
  await p.exited;
}

/** A raw image of random bytes. */
export function randomImage(dir: string, name: string, bytes: number): { path: string; data: Buffer } {
  const data = Buffer.alloc(bytes);
  randomFillSync(data);
  const path = join(dir, name);
  writeFileSync(path, data);
  return { path, data };
}

/** Poll (real time) until `cond` holds, e.g. a line in a process's output; throws naming `what` after `timeoutMs`. */
export async function until(what: string, cond: () => boolean, timeoutMs = 30_000): Promise<void> {
  for (let waited = 0; !cond(); waited += 50) {
    if (waited > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
