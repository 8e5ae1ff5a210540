import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { wallMs } from '../src/world/live-world.js';

/** A long-running helper process; resolves once `ready` matches its stdout (or a socket appears). */
export async function daemon(cmd: string, args: string[], ready: RegExp | { socket: string }, env: NodeJS.ProcessEnv = {}): Promise<{ child: ChildProcess; out: () => string; stop: () => Promise<void> }> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const t0 = wallMs();
  for (;;) {
    if (ready instanceof RegExp ? ready.test(out) : existsSync(ready.socket)) break;
    if (child.exitCode !== null) throw new Error(`${cmd} ${args.join(' ')} exited early: ${out}`);
    if (wallMs() - t0 > 60_000) throw new Error(`${cmd} did not become ready: ${out}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    child,
    out: () => out,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(killer);
    },
  };
}
