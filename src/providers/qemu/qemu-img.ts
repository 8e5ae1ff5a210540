import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { SpillwayError } from '../../errors.js';

/** qemu-img, run as a child process: disk facts and internal (qcow2) snapshots of a stopped VM's disks. */

const run = promisify(execFile);

async function qemuImg(args: string[]): Promise<string> {
  try {
    return (await run('qemu-img', args, { encoding: 'utf8' })).stdout;
  } catch (err) {
    const e = err as { stderr?: string; message?: string; code?: string | number };
    const why = e.code === 'ENOENT' ? 'qemu-img is not installed (Debian: qemu-utils)' : (e.stderr || e.message || String(err)).trim();
    throw new SpillwayError('E_QEMU_IMG', `qemu-img ${args.join(' ')}: ${why}`, { cause: err });
  }
}

export interface ImageFacts {
  format: string;
  virtualSizeBytes: number;
  backingFile?: string;
}

export async function imageFacts(path: string): Promise<ImageFacts> {
  const info = JSON.parse(await qemuImg(['info', '--output=json', '-U', path])) as { format: string; 'virtual-size': number; 'backing-filename'?: string };
  return { format: info.format, virtualSizeBytes: info['virtual-size'], ...(info['backing-filename'] ? { backingFile: info['backing-filename'] } : {}) };
}

export function createSnapshot(path: string, name: string): Promise<string> {
  return qemuImg(['snapshot', '-c', name, path]);
}

export function applySnapshot(path: string, name: string): Promise<string> {
  return qemuImg(['snapshot', '-a', name, path]);
}

export function deleteSnapshot(path: string, name: string): Promise<string> {
  return qemuImg(['snapshot', '-d', name, path]);
}

/** Names of the image's internal snapshots. */
export async function listSnapshots(path: string): Promise<string[]> {
  const info = JSON.parse(await qemuImg(['info', '--output=json', '-U', path])) as { snapshots?: Array<{ name: string }> };
  return (info.snapshots ?? []).map((s) => s.name);
}
