import { describe, expect, it } from 'vitest';
import { createCloudProxy, memoryCloudStores } from '../src/proxy/cloud/index.js';
import { Layer } from '../src/proxy/layer.js';
import { Hints } from './helpers/hints-layer.js';
import { createOnpremProxy, Prioritizer } from '../src/proxy/onprem/index.js';
import { ReadAheadClip } from '../src/proxy/onprem/read-ahead-clip.js';
import { PrefetchLayer } from '../src/proxy/layers/prefetch.js';
import { ReadAheadLayer } from '../src/proxy/layers/read-ahead.js';
import { SparseStore } from '../src/proxy/stores/sparse-store.js';
import { SimWorld } from '../src/world/sim-world.js';
import { directLink } from '../src/world/sim-net.js';
import { PAIRING_KEY, randomBytes, simulate } from './proxy-link-helpers.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Reads take `latencyUs` of virtual time; records what went down and when. */
class SlowDisk extends Layer {
  readonly name = 'slow';
  log: Array<{ op: 'read' | 'prefetch'; offset: number; length: number; atUs: number }> = [];
  constructor(below: SparseStore, private readonly world: SimWorld, private readonly latencyUs: number) {
    super(below);
  }
  override async read(offset: number, length: number): Promise<Buffer> {
    this.log.push({ op: 'read', offset, length, atUs: this.world.nowUs });
    await this.world.clock.sleepUs(this.latencyUs);
    return this.below.read(offset, length);
  }
  override async prefetch(offset: number, length: number): Promise<void> {
    this.log.push({ op: 'prefetch', offset, length, atUs: this.world.nowUs });
  }
}

describe('read-ahead: confidence-gated windows', () => {
  it('reads ahead only as far as ended streams of the same length went', async () => {
    const hints = new Hints(new SparseStore('d', 256 * MiB));
    const ra = new ReadAheadLayer(hints, { firstWindowBytes: 64 * KiB, minWindowBytes: 64 * KiB, maxWindowBytes: 1 * MiB, confidence: 0.5, historyStreams: 4, streams: 1 });
    // Four streams of one 16 KiB read each: before the history is long enough, each still gets the first window.
    for (let i = 0; i < 4; i++) await ra.read(i * MiB, 16 * KiB);
    expect(hints.hints).toHaveLength(4);
    // The fifth new stream evicts the fourth: four ended streams, all 16 KiB long, so nothing past 16 KiB is likely read.
    await ra.read(10 * MiB, 16 * KiB);
    expect(ra.stats()).toMatchObject({ endedStreams: 4 });
    expect(hints.hints).toHaveLength(4);
    expect(ra.windows()[0]).toBe(0);
  });

  it('grows windows to where long streams went, capped at maxWindowBytes', async () => {
    const hints = new Hints(new SparseStore('d', 256 * MiB));
    const ra = new ReadAheadLayer(hints, { minWindowBytes: 64 * KiB, maxWindowBytes: 256 * KiB, confidence: 0.5, historyStreams: 2, streams: 1 });
    // Two ended streams of 512 KiB (32 sequential 16 KiB reads each).
    for (const base of [0, 8 * MiB]) for (let i = 0; i < 32; i++) await ra.read(base + i * 16 * KiB, 16 * KiB);
    await ra.read(16 * MiB, 16 * KiB);
    expect(ra.stats().endedStreams).toBe(2);
    // A new stream 16 KiB in: half of the ended streams reached 512 KiB, so the window is 496 KiB, capped to 256 KiB.
    expect(ra.windows()[0]).toBe(256 * KiB);
    expect(hints.hints.at(-1)).toEqual([16 * MiB + 16 * KiB, 256 * KiB]);
  });

  it('refuses a confidence outside (0, 1]', () => {
    expect(() => new ReadAheadLayer(new SparseStore('d', MiB), { confidence: 0 })).toThrow(/confidence/);
    expect(() => new ReadAheadLayer(new SparseStore('d', MiB), { confidence: 1.5 })).toThrow(/confidence/);
  });
});

describe('prefetch: a reader\'s window is not background work', () => {
  it('starts a read-ahead window while the foreground read is in flight, as one run; background blocks wait', async () => {
    const world = new SimWorld(3);
    const disk = new SlowDisk(new SparseStore('d', 16 * MiB), world, 40_000);
    const prefetch = new PrefetchLayer(disk, { blockBytes: 4 * KiB, maxConcurrent: 2 });
    const ra = new ReadAheadLayer(prefetch, { firstWindowBytes: 128 * KiB, minWindowBytes: 128 * KiB, maxWindowBytes: 128 * KiB });
    const read = ra.read(0, 16 * KiB);
    prefetch.enqueue(8 * MiB, 8 * KiB, 0); // background: must wait for the foreground read
    await world.run();
    await read;
    const atStart = disk.log.filter((e) => e.atUs === 0);
    // The window left with the read, in one request below (not 32 block-sized ones).
    expect(atStart).toContainEqual({ op: 'prefetch', offset: 16 * KiB, length: 128 * KiB, atUs: 0 });
    expect(atStart.filter((e) => e.op === 'prefetch')).toHaveLength(1);
    // The background entry went only once the foreground read was done, block by block.
    const background = disk.log.filter((e) => e.offset >= 8 * MiB);
    expect(background.map((e) => [e.length, e.atUs])).toEqual([[4 * KiB, 40_000], [4 * KiB, 40_000]]);
  });
});

describe('on-prem: read-ahead pushes stop at the end of the file', () => {
  it('clipToGroup keeps the part of a window inside the file the reader is in', () => {
    const p = new Prioritizer({ blockBytes: 4 * KiB });
    p.setGroups('img', [[{ offset: 0, length: 64 * KiB }], [{ offset: 64 * KiB, length: 64 * KiB }]]);
    // The reader ended at 16 KiB inside file 0: its window stops at the file's end.
    expect(p.clipToGroup('img', { offset: 16 * KiB, length: 128 * KiB })).toEqual({ offset: 16 * KiB, length: 48 * KiB });
    // The reader ended exactly at file 0's end: the next file is not where it goes next.
    expect(p.clipToGroup('img', { offset: 64 * KiB, length: 64 * KiB })).toEqual({ offset: 64 * KiB, length: 0 });
    // Outside every file nothing is known: the window is kept.
    expect(p.clipToGroup('img', { offset: 1 * MiB, length: 64 * KiB })).toEqual({ offset: 1 * MiB, length: 64 * KiB });
  });

  it('FIG 23 pushes what lies after the read; what lies behind it only with groupPushBehind', () => {
    const file = [{ offset: 0, length: 16 * KiB }, { offset: 64 * KiB, length: 16 * KiB }];
    const forward = new Prioritizer({ blockBytes: 4 * KiB });
    forward.setGroups('img', [file]);
    // A read at the file's start: the whole rest of the file.
    expect(forward.groupFor('img', 0, 4 * KiB)).toEqual([{ offset: 4 * KiB, length: 12 * KiB }, { offset: 64 * KiB, length: 16 * KiB }]);
    // A read that jumped into the second extent: only what follows it.
    expect(forward.groupFor('img', 68 * KiB, 4 * KiB)).toEqual([{ offset: 72 * KiB, length: 8 * KiB }]);
    const both = new Prioritizer({ blockBytes: 4 * KiB, groupPushBehind: true });
    both.setGroups('img', [file]);
    // (The extent the read falls in counts as after it: only its part past the read is pushed.)
    expect(both.groupFor('img', 68 * KiB, 4 * KiB)).toEqual([{ offset: 72 * KiB, length: 8 * KiB }, { offset: 0, length: 16 * KiB }]);
  });

  it('declines the follow-on windows past a cut until a demand read goes there', () => {
    const p = new Prioritizer({ blockBytes: 4 * KiB });
    p.setGroups('img', [[{ offset: 0, length: 64 * KiB }]]);
    const clip = new ReadAheadClip(p, 'img');
    expect(clip.clip([{ offset: 16 * KiB, length: 128 * KiB }])).toEqual([{ offset: 16 * KiB, length: 48 * KiB }]);
    // The peer does not know about the cut: its next window starts where its last one ended.
    expect(clip.clip([{ offset: 144 * KiB, length: 256 * KiB }])).toEqual([]);
    expect(clip.declinedBytes).toBe(80 * KiB + 256 * KiB);
    // The guest reads past the file after all: read-ahead from there is served again.
    clip.noteRead(200 * KiB, 4 * KiB);
    expect(clip.clip([{ offset: 400 * KiB, length: 64 * KiB }])).toEqual([{ offset: 400 * KiB, length: 64 * KiB }]);
  });
});

/** A cloud proxy booting over a 40 ms RTT link from an on-prem disk of random bytes with one 64 KiB file at 0. */
async function pushBed(options: { clipReadAhead?: boolean; bootFile?: boolean } = {}) {
  const world = new SimWorld(9);
  world.net.setLink('onprem:7000', directLink(world.clock, 20_000));
  const disk = new SparseStore('disk', 16 * MiB);
  disk.writeSync(0, randomBytes(world.rng('content'), 4 * MiB));
  const file = [{ offset: 0, length: 64 * KiB }];
  const onprem = await createOnpremProxy(world, {
    address: 'onprem:7000', pairingKey: PAIRING_KEY,
    ...(options.clipReadAhead === false ? { clipReadAhead: false } : {}),
    disks: [{
      id: 'vm1', device: disk, image: 'img', groups: [file],
      ...(options.bootFile ? { bootFiles: [{ path: '/boot/big', ranges: [{ offset: 1 * MiB, length: 512 * KiB }], firstAccess: 0 }] } : {}),
    }],
  });
  const proxy = await simulate(world, () => createCloudProxy(world, {
    name: 'vm1', onprem: 'onprem:7000', pairingKey: PAIRING_KEY, disk: { id: 'vm1', image: 'img' },
    stores: memoryCloudStores('vm1', 16 * MiB), cacheCapacityBytes: 8 * MiB,
    readAhead: { firstWindowBytes: 128 * KiB, minWindowBytes: 128 * KiB, maxWindowBytes: 256 * KiB },
  }));
  return { world, onprem, proxy };
}

describe('push policy end to end', () => {
  it('a read-ahead push past the end of a file is not sent, and neither is the window after it', async () => {
    const readFile = async (clipReadAhead: boolean) => {
      const { world, onprem, proxy } = await pushBed({ clipReadAhead });
      await simulate(world, async () => {
        for (let at = 0; at < 64 * KiB; at += 16 * KiB) await proxy.device.read(at, 16 * KiB);
        await world.clock.sleepUs(500_000);
      });
      return { pushed: proxy.link.stats.pushBytes, reads: onprem.stats().reads };
    };
    const clipped = await readFile(true);
    const unclipped = await readFile(false);
    // Only the file's 48 KiB after the first read are pushed (plus framing); without the clip the windows run 200+ KiB past it.
    expect(clipped.pushed).toBeLessThan(52 * KiB);
    expect(unclipped.pushed).toBeGreaterThan(200 * KiB);
    // Either way the guest's reads after the first were served without a READ of their own.
    expect(clipped.reads).toBe(1);
  });

  it('read-ahead over blocks the profile stream has queued does not send them twice', async () => {
    const { world, proxy } = await pushBed({ bootFile: true });
    await simulate(world, async () => {
      for (let at = 1 * MiB; at < 1 * MiB + 256 * KiB; at += 16 * KiB) await proxy.device.read(at, 16 * KiB);
      await world.clock.sleepUs(2_000_000);
    });
    // The profile is 512 KiB of random bytes; read-ahead windows fell inside it. Every block crossed once.
    const pushed = proxy.link.stats.pushBytes;
    const replied = proxy.remote.stats.readBytes;
    expect(pushed + replied).toBeGreaterThanOrEqual(512 * KiB);
    expect(pushed + replied).toBeLessThan(512 * KiB * 1.03);
    expect(proxy.prefetch.stats().completedBlocks).toBeGreaterThan(0);
  });
});
