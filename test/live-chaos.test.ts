import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createRng } from '../src/world/rng.js';
import { nbdUri, run, toolsAvailable } from './interop-tools.js';
import { Procs, kill9, stop, type Proc } from './helpers/serve-procs.js';

/**
 * Live chaos beside the simulated fuzzer: real `serve onprem` and `serve
 * cloud` processes with a 20 ms shaped link between them, and qemu-io as the
 * guest. At seeded moments either proxy is killed and restarted, the link is
 * partitioned (the on-prem process stopped), the cloud proxy is replaced by one
 * with an empty cache after a clean stop, or a byte of the cloud journal is
 * flipped while it is down. Every write qemu-io got acknowledged (and flushed)
 * goes into a model; reads are checked against it as the run goes, and at the
 * end the on-prem image must equal it.
 */
const MiB = 1024 * 1024;
const DISK = 16 * MiB;
const dir = mkdtempSync(join(tmpdir(), 'spillway-chaos-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const procs = new Procs(dir);
afterEach(() => procs.killAll());

const key = join(dir, 'pair.key');
writeFileSync(key, `${'c4'.repeat(32)}\n`, { mode: 0o600 });

describe('live chaos: real proxies, real files, qemu-io', () => {
  it.each([20261207, 41, 97])('keeps every acknowledged write through seeded kills, restarts, partitions, new sessions and journal damage (seed %i)', async (seed) => {
    if (!toolsAvailable(['qemu-io', 'nbdcopy'], 'live chaos')) return;
    const rng = createRng(seed, 'live-chaos');
    const img = join(dir, `chaos-${seed}.img`);
    writeFileSync(img, '');
    truncateSync(img, DISK);
    const model = Buffer.alloc(DISK);
    const faults: string[] = [];

    let onprem = await procs.ready(['serve', 'onprem', '--disk', img, '--listen', '127.0.0.1:0', '--pair-key', key]);
    let link = /onprem link listening on (\S+)/.exec(onprem.out())![1]!;
    let cache = 0;
    let sock = '';
    const startCloud = async (): Promise<Proc> => {
      sock = join(dir, `cloud-${seed}-${cache}-${faults.length}.sock`);
      return procs.ready(['serve', 'cloud', '--onprem', link, '--disk', `chaos-${seed}`, '--pair-key', key, '--nbd', `unix:${sock}`,
        '--cache-dir', join(dir, `cache-${seed}-${cache}`), '--cache-size', '8M', '--rpo', '2s', '--wan-rtt', '20ms', '--wan-mbit', '200']);
    };
    let cloud = await startCloud();

    const write = async (): Promise<void> => {
      const at = rng.int(0, DISK / 4096 - 64) * 4096;
      const len = rng.int(1, 64) * 4096;
      const pattern = rng.int(1, 256);
      await run('qemu-io', ['-f', 'raw', nbdUri(sock, `chaos-${seed}`), '-c', `write -P ${pattern} ${at} ${len}`, '-c', 'flush']);
      model.fill(pattern, at, at + len);
    };
    const check = async (): Promise<void> => {
      const out = join(dir, `read-${seed}.bin`);
      rmSync(out, { force: true });
      await run('nbdcopy', [nbdUri(sock, `chaos-${seed}`), out]);
      const got = readFileSync(out);
      let at = 0;
      while (at < DISK && got[at] === model[at]) at++;
      expect(at, `the guest's view differs from its acknowledged writes at byte ${at} after ${faults.join(', ') || 'no fault'}`).toBe(DISK);
    };

    for (let round = 0; round < 7; round++) {
      for (let i = rng.int(2, 5); i > 0; i--) await write();
      await check();
      const fault = rng.pick(['kill-cloud', 'kill-onprem', 'partition', 'new-session', 'journal-flip']);
      faults.push(fault);
      if (fault === 'kill-cloud') {
        await kill9(cloud);
        cloud = await startCloud();
      } else if (fault === 'kill-onprem') {
        await kill9(onprem);
        onprem = await procs.ready(['serve', 'onprem', '--disk', img, '--listen', link, '--pair-key', key]);
      } else if (fault === 'partition') {
        onprem.child.kill('SIGSTOP');
        await write().catch(() => undefined).then(() => undefined);
        onprem.child.kill('SIGCONT');
      } else if (fault === 'new-session') {
        expect(await stop(cloud), cloud.err()).toBe(0);
        cache++;
        cloud = await startCloud();
      } else {
        await kill9(cloud);
        flipJournalByte(join(dir, `cache-${seed}-${cache}`, `chaos-${seed}.journal`), rng.int(0, 1 << 30));
        const restarted = procs.start(['serve', 'cloud', '--onprem', link, '--disk', `chaos-${seed}`, '--pair-key', key, '--nbd', `unix:${join(dir, `flip-${seed}-${round}.sock`)}`,
          '--cache-dir', join(dir, `cache-${seed}-${cache}`), '--cache-size', '8M', '--rpo', '2s']);
        const code = await Promise.race([restarted.exited, new Promise<'up'>((r) => { const t = setInterval(() => { if (/ready/.test(restarted.out())) { clearInterval(t); r('up'); } }, 50); })]);
        if (code === 'up') {
          // The flip hit nothing acknowledged: the journal recovered whole.
          sock = join(dir, `flip-${seed}-${round}.sock`);
          cloud = restarted;
        } else {
          // Damage to acknowledged records is refused loudly, never skipped; the run cannot go on from that cache.
          expect(restarted.err()).toMatch(/E_JOURNAL_CORRUPT/);
          console.log(`live chaos: ${faults.join(', ')}; the journal flip was refused (E_JOURNAL_CORRUPT)`);
          return;
        }
      }
    }
    await check();
    expect(await stop(cloud), cloud.err()).toBe(0);
    expect(await stop(onprem)).toBe(0);
    expect(readFileSync(img).equals(model), `on-prem image after ${faults.join(', ')}`).toBe(true);
    console.log(`live chaos: ${faults.join(', ')}; on-prem image equals every acknowledged write`);
  }, 600_000);
});

/** Flip one byte among the written bytes of a journal file (its head is at the start). */
function flipJournalByte(path: string, pick: number): void {
  const size = statSync(path).size;
  const fd = openSync(path, 'r+');
  try {
    // Look for written bytes in the first MiBs: a fresh ring is sparse zeros.
    const scan = Buffer.alloc(Math.min(size, 4 * MiB));
    readSync(fd, scan, 0, scan.length, 0);
    const written: number[] = [];
    for (let i = 8192; i < scan.length; i += 64) if (scan[i] !== 0) written.push(i);
    if (written.length === 0) return;
    const at = written[pick % written.length]!;
    writeSync(fd, Buffer.from([scan[at]! ^ 0x10]), 0, 1, at);
  } finally {
    closeSync(fd);
  }
}
