import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';

/**
 * Shared by the interop tests: which Debian NBD tools are here, and a loud
 * message (or a failure, when SPILLWAY_REQUIRE_INTEROP=1 as .ci/run sets)
 * for each one that is missing.
 */
export const TOOL_PACKAGES: Record<string, string> = {
  nbdinfo: 'libnbd-bin', nbdcopy: 'libnbd-bin', 'qemu-img': 'qemu-utils', 'qemu-io': 'qemu-utils',
  'qemu-nbd': 'qemu-utils', nbdkit: 'nbdkit', fio: 'fio', nbdfuse: 'libnbd-bin', 'qemu-system-x86_64': 'qemu-system-x86',
};

export const requireInterop = process.env.SPILLWAY_REQUIRE_INTEROP === '1';

function has(tool: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const present = new Map<string, boolean>();
export function haveTool(tool: string): boolean {
  if (!present.has(tool)) present.set(tool, has(tool));
  return present.get(tool)!;
}

/**
 * True when the tools are present. When some are missing, says so loudly and
 * returns false (the caller skips), or throws under SPILLWAY_REQUIRE_INTEROP=1.
 */
export function toolsAvailable(tools: string[], what: string): boolean {
  const missing = tools.filter((t) => !haveTool(t));
  if (missing.length === 0) return true;
  const pkgs = [...new Set(missing.map((t) => TOOL_PACKAGES[t] ?? t))].join(' ');
  const message = `INTEROP TOOLS MISSING for "${what}": ${missing.join(', ')} — install with: apt-get install -y ${pkgs}`;
  if (requireInterop) throw new Error(`${message} (SPILLWAY_REQUIRE_INTEROP=1 turns this skip into a failure)`);
  console.warn(`\n!!! ${message} — SKIPPING\n`);
  return false;
}

const execFileP = promisify(execFile);

/** Run a tool without blocking the event loop (the server under test lives in this process). */
export async function run(tool: string, args: string[], timeoutMs = 60_000): Promise<string> {
  try {
    const { stdout } = await execFileP(tool, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new Error(`${tool} ${args.join(' ')} failed: ${e.message}\n${e.stderr ?? ''}${e.stdout ?? ''}`);
  }
}

export function nbdUri(socketPath: string, exportName = ''): string {
  return `nbd+unix:///${exportName}?socket=${socketPath}`;
}
