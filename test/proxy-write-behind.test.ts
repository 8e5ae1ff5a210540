import { describe, expect, it } from 'vitest';
import { SparseStore } from '../src/proxy/stores/sparse-store.js';
import { StoreJournal } from '../src/proxy/journal.js';
import { GroupApplier } from '../src/proxy/onprem/group-applier.js';
import { WriteBehind, type WriteBehindOptions } from '../src/proxy/layers/write-behind.js';
import { coalesce, type GroupOp, type WriteGroup, type WriteSink } from '../src/proxy/write-group.js';
import { SimWorld } from '../src/world/sim-world.js';
import { Layer } from '../src/proxy/layer.js';
import { BlockError } from '../src/proxy/block-device.js';
import { signatureOf } from '../src/proxy/layers/secure-cache-seal.js';
import type { Rng } from '../src/world/types.js';
import type { BlockDevice } from '../src/proxy/block-device.js';

const KiB = 1024;

/** A sink in front of the applier that fails before delivery or loses the ack after it. */
class FlakySink implements WriteSink {
  failBefore = 0;
  loseAck = 0;
  calls = 0;
  constructor(public applier: GroupApplier, private readonly rng?: Rng) {}
  async applyGroup(group: WriteGroup): Promise<void> {
    this.calls++;
    if (this.rng?.chance(this.failBefore)) throw new Error('link dropped before delivery');
    await this.applier.applyGroup(group);
    if (this.rng?.chance(this.loseAck)) throw new Error('link dropped before the ack');
  }
}

/**
 * A disk with a volatile write cache: writes are visible at once but reach
 * stable storage only on flush. A crash keeps a random prefix of the
 * unflushed writes (in order) and drops the rest — so it tests that every
 * "durable" claim is backed by a flush in the right order.
 */
class CrashableStore implements BlockDevice {
  private live: SparseStore;
  private readonly durable: SparseStore;
  private pending: Array<(s: SparseStore) => void> = [];
  constructor(readonly name: string, private readonly sizeBytes: number) {
    this.live = new SparseStore(name, sizeBytes);
    this.durable = new SparseStore(name, sizeBytes);
  }
  size(): number { return this.sizeBytes; }
  readSync(offset: number, length: number): Buffer { return this.live.readSync(offset, length); }
  /** Setup only: the bytes are on stable storage from the start. */
  writeSync(offset: number, data: Uint8Array): void { this.live.writeSync(offset, data); this.durable.writeSync(offset, data); }
  async read(offset: number, length: number): Promise<Buffer> { return this.live.readSync(offset, length); }
  async write(offset: number, data: Uint8Array): Promise<void> {
    const copy = Buffer.from(data);
    this.live.writeSync(offset, copy);
    this.pending.push((s) => s.writeSync(offset, copy));
  }
  async trim(offset: number, length: number): Promise<void> { await this.writeZeroes(offset, length); }
  async writeZeroes(offset: number, length: number): Promise<void> {
    this.live.zeroSync(offset, length, false);
    this.pending.push((s) => s.zeroSync(offset, length, false));
  }
  async flush(): Promise<void> {
    for (const p of this.pending) p(this.durable);
    this.pending = [];
  }
  async prefetch(): Promise<void> {}
  async extents(offset: number, length: number) { return this.live.extents(offset, length); }
  async close(): Promise<void> {}
  crash(rng: Rng): void {
    const keep = rng.int(0, this.pending.length + 1);
    for (const p of this.pending.slice(0, keep)) p(this.durable);
    this.pending = [];
    this.live = new SparseStore(this.name, this.sizeBytes);
    this.live.writeSync(0, this.durable.readSync(0, this.sizeBytes));
  }
}

type TestStore = SparseStore | CrashableStore;

/** Resolve `p` while advancing virtual time (shipping retries live on the world clock). */
async function settleOn<T>(world: SimWorld, p: Promise<T>, stepUs = 1_000_000, maxSteps = 10_000): Promise<T> {
  let done = false;
  let value: T | undefined;
  let error: unknown;
  p.then((v) => { done = true; value = v; }, (e) => { done = true; error = e ?? new Error('rejected'); });
  for (let i = 0; i < maxSteps && !done; i++) await world.advance(stepUs);
  if (!done) throw new Error('did not settle');
  if (error) throw error;
  return value as T;
}

interface Rig {
  world: SimWorld;
  onprem: TestStore;
  cloud: TestStore;
  map: TestStore;
  journalStore: TestStore;
  applierStore: TestStore;
  sink: FlakySink;
  wb: WriteBehind;
  options: Omit<WriteBehindOptions, 'journal' | 'sink'>;
}

async function makeRig(seed: number, sizeBytes: number, extra: Partial<WriteBehindOptions> = {}, journalBytes = 64 * KiB, crashable = false): Promise<Rig> {
  const world = new SimWorld(seed);
  const store = (name: string, size: number): TestStore => (crashable ? new CrashableStore(name, size) : new SparseStore(name, size));
  const onprem = store('onprem', sizeBytes);
  const init = world.rng('init');
  const original = Buffer.alloc(sizeBytes);
  for (let i = 0; i < sizeBytes; i++) original[i] = init.int(0, 256);
  onprem.writeSync(0, original);
  const cloud = store('cloud', sizeBytes);
  const map = store('map', 64 * KiB);
  const journalStore = store('journal', 8 * KiB + journalBytes);
  const applierStore = store('applier', 1024 * KiB);
  const applier = await GroupApplier.open(onprem, await StoreJournal.open(applierStore), 'd1');
  const sink = new FlakySink(applier, world.rng('faults'));
  const options = { world, diskId: 'd1', persistence: 'on-prem' as const, store: cloud, mapStore: map, ...extra };
  const wb = await WriteBehind.open(onprem, { ...options, journal: await StoreJournal.open(journalStore), sink });
  return { world, onprem, cloud, map, journalStore, applierStore, sink, wb, options };
}

async function restart(rig: Rig, alsoOnPrem: boolean): Promise<void> {
  rig.wb.kill();
  await rig.world.advance(0);
  const crash = (s: TestStore): void => { if (s instanceof CrashableStore) s.crash(rig.world.rng('crash')); };
  [rig.cloud, rig.map, rig.journalStore].forEach(crash);
  if (alsoOnPrem) [rig.onprem, rig.applierStore].forEach(crash);
  if (alsoOnPrem) rig.sink.applier = await GroupApplier.open(rig.onprem, await StoreJournal.open(rig.applierStore), 'd1');
  rig.wb = await WriteBehind.open(rig.onprem, { ...rig.options, journal: await StoreJournal.open(rig.journalStore), sink: rig.sink });
}

describe('coalesce', () => {
  it('lets later writes win, sorts by address and merges neighbours', () => {
    const ops: GroupOp[] = [
      { offset: 100, data: Buffer.from('aaaaaaaaaa') },
      { offset: 0, data: Buffer.from('bbbb') },
      { offset: 104, data: Buffer.from('cc') },
      { offset: 4, length: 6, zero: true },
      { offset: 10, data: Buffer.from('d') },
    ];
    const out = coalesce(ops);
    expect(out.map((o) => (o.zero ? `${o.offset}z${o.length}` : `${o.offset}:${Buffer.from(o.data).toString()}`)))
      .toEqual(['0:bbbb', '4z6', '10:d', '100:aaaaccaaaa']);
  });
});

async function modelRun(seeds: number, crashable: boolean): Promise<{ crashes: number; groups: number; duplicates: number; failures: number }> {
    const SIZE = 64 * KiB;
    const G = 512;
    const NP = { offset: 56 * KiB, length: 8 * KiB };
    const npEnd = NP.offset + NP.length;
    const totals = { crashes: 0, groups: 0, duplicates: 0, failures: 0 };
    for (let seed = 1; seed <= seeds; seed++) {
      const rig = await makeRig(seed, SIZE, { granuleBytes: G, rpoUs: 2_000_000, shipThresholdBytes: 6 * KiB, retryUs: 100_000, nonPersistent: [NP] }, 24 * KiB, crashable);
      const original = rig.onprem.readSync(0, SIZE);
      const model = Buffer.from(original);
      // Per non-persistent granule: every value it held since the last flush (any may survive a crash).
      const npHist: Buffer[][] = [];
      const resetHist = (): void => { for (let g = NP.offset; g < npEnd; g += G) npHist[(g - NP.offset) / G] = [Buffer.from(model.subarray(g, g + G))]; };
      const noteNp = (): void => { for (let g = NP.offset; g < npEnd; g += G) npHist[(g - NP.offset) / G]!.push(Buffer.from(model.subarray(g, g + G))); };
      resetHist();
      const rng = rig.world.rng('ops');
      rig.sink.failBefore = 0.15;
      rig.sink.loseAck = 0.15;
      const where = (op: string): string => `seed ${seed} after ${op}`;
      const ops: string[] = [];
      for (let step = 0; step < 120; step++) {
        const r = rng.next();
        const off = rng.chance(0.5) ? rng.int(0, SIZE / G) * G : rng.int(0, SIZE - 1);
        const len = Math.min(SIZE - off, rng.chance(0.5) ? rng.int(1, 4) * G : rng.int(1, 3 * G));
        if (r < 0.35) {
          const data = Buffer.alloc(len);
          for (let i = 0; i < len; i++) data[i] = rng.int(0, 256);
          await rig.wb.write(off, data, { fua: rng.chance(0.1) });
          data.copy(model, off);
          noteNp();
          ops.push(`write ${off}+${len}`);
        } else if (r < 0.45) {
          const burst = Array.from({ length: rng.int(2, 5) }, () => {
            const o = rng.int(0, SIZE - 2 * G);
            return { o, d: Buffer.alloc(rng.int(1, 2 * G), rng.int(0, 256)) };
          });
          await Promise.all(burst.map((b) => rig.wb.write(b.o, b.d)));
          for (const b of burst) { b.d.copy(model, b.o); noteNp(); }
          ops.push('burst');
        } else if (r < 0.55) {
          await (rng.chance(0.5) ? rig.wb.trim(off, len) : rig.wb.writeZeroes(off, len));
          model.fill(0, off, off + len);
          noteNp();
          ops.push(`zero ${off}+${len}`);
        } else if (r < 0.75) {
          const got = await rig.wb.read(off, len);
          if (!got.equals(model.subarray(off, off + len))) throw new Error(`${where(ops.join(', '))}: read ${off}+${len} is not the latest acknowledged write`);
        } else if (r < 0.82) {
          await rig.wb.flush();
          resetHist();
          ops.push('flush');
        } else if (r < 0.92) {
          await rig.world.advance(rng.int(0, 3_000_000));
        } else {
          await restart(rig, rng.chance(0.5));
          ops.push('crash');
          // Persistent regions: every acknowledged write survived. A non-persistent granule written
          // since the last flush may hold any value it had since then, or (its map bit lost) the original.
          const got = await rig.wb.read(0, SIZE);
          if (!got.subarray(0, NP.offset).equals(model.subarray(0, NP.offset))) throw new Error(`${where(ops.join(', '))}: persistent data lost in the crash`);
          for (let g = NP.offset; g < npEnd; g += G) {
            const now = got.subarray(g, g + G);
            const ok = npHist[(g - NP.offset) / G]!.some((v) => v.equals(now)) || now.equals(original.subarray(g, g + G));
            if (!ok) throw new Error(`${where(ops.join(', '))}: non-persistent granule ${g} holds a value it never had since the last flush`);
          }
          got.copy(model, NP.offset, NP.offset, npEnd);
          resetHist();
        }
      }
      await settleOn(rig.world, rig.wb.flush());
      await settleOn(rig.world, rig.wb.drain());
      const onprem = rig.onprem.readSync(0, SIZE);
      const expect = (v: unknown, msg: string) => ({ toBe: (want: unknown) => { if (v !== want) throw new Error(`${msg}: got ${String(v)}, want ${String(want)}`); } });
      expect(onprem.subarray(0, NP.offset).equals(model.subarray(0, NP.offset)), `seed ${seed}: on-prem equals the model`).toBe(true);
      expect(onprem.subarray(NP.offset).equals(original.subarray(NP.offset)), `seed ${seed}: swap never shipped`).toBe(true);
      expect((await rig.wb.read(0, SIZE)).equals(model), `seed ${seed}: cloud view equals the model`).toBe(true);
      for (const [s, n] of rig.sink.applier.applications) expect(n, `seed ${seed}: group ${s} applied once`).toBe(1);
      expect(rig.wb.stats().backlogBytes, `seed ${seed}: backlog`).toBe(0);
      expect(rig.wb.stats().lagUs, `seed ${seed}: lag`).toBe(0);
      totals.crashes += ops.filter((o) => o === 'crash').length;
      totals.groups += rig.sink.applier.appliedSeq;
      totals.duplicates += rig.sink.applier.duplicates;
      totals.failures += rig.sink.calls - rig.sink.applier.appliedSeq;
    }
    return totals;
}

describe('WriteBehind', () => {
  it('journals before acking, ships on the RPO timer, and applies on-prem', async () => {
    const rig = await makeRig(1, 64 * KiB, { rpoUs: 5_000_000, shipThresholdBytes: 1024 * KiB });
    await rig.wb.write(4096, Buffer.alloc(4096, 7));
    expect(rig.wb.stats().backlogBytes).toBe(4096);
    expect(rig.sink.calls).toBe(0);
    await rig.world.advance(4_000_000);
    expect(rig.wb.stats().lagUs).toBe(4_000_000);
    expect(rig.sink.calls).toBe(0);
    await rig.world.advance(1_000_000);
    expect(rig.sink.calls).toBe(1);
    expect(rig.onprem.readSync(4096, 4096).equals(Buffer.alloc(4096, 7))).toBe(true);
    expect(rig.wb.stats()).toMatchObject({ backlogBytes: 0, lagUs: 0, groupsShipped: 1, lastAckedSeq: 1 });
  });

  it('ships early when the size threshold is met, as one coalesced group', async () => {
    const rig = await makeRig(2, 64 * KiB, { rpoUs: 60_000_000, shipThresholdBytes: 12 * KiB });
    await rig.wb.write(0, Buffer.alloc(4096, 1));
    await rig.wb.write(0, Buffer.alloc(4096, 2)); // overwrites: coalesced away
    await rig.wb.write(4096, Buffer.alloc(4096, 3));
    await rig.world.advance(0);
    expect(rig.sink.calls).toBe(1);
    expect(rig.sink.applier.applications.get('0:1')).toBe(1);
    expect(rig.wb.stats().bytesShipped).toBe(8192);
    expect(rig.onprem.readSync(0, 8192).equals(Buffer.concat([Buffer.alloc(4096, 2), Buffer.alloc(4096, 3)]))).toBe(true);
  });

  it('keeps cloud-only disks and non-persistent regions off the wire', async () => {
    const rig = await makeRig(3, 64 * KiB, { nonPersistent: [{ offset: 32 * KiB, length: 16 * KiB }] });
    const before = rig.onprem.readSync(0, 64 * KiB);
    await rig.wb.write(30 * KiB, Buffer.alloc(4 * KiB, 9)); // straddles the edge of the swap region
    await settleOn(rig.world, rig.wb.drain());
    const after = rig.onprem.readSync(0, 64 * KiB);
    expect(after.subarray(30 * KiB, 32 * KiB).equals(Buffer.alloc(2 * KiB, 9))).toBe(true);
    expect(after.subarray(32 * KiB).equals(before.subarray(32 * KiB))).toBe(true);
    expect((await rig.wb.read(30 * KiB, 4 * KiB)).equals(Buffer.alloc(4 * KiB, 9))).toBe(true);
    expect(rig.wb.stats().cloudOnlyBytes).toBe(2 * KiB);

    const world = new SimWorld(4);
    const disk = new SparseStore('onprem', 64 * KiB);
    const wb = await WriteBehind.open(disk, { world, diskId: 'c', persistence: 'cloud-only', store: new SparseStore('cloud', 64 * KiB), mapStore: new SparseStore('m', 4096) });
    await wb.write(100, Buffer.from('cloud only'));
    await wb.flush();
    await world.advance(3_600_000_000);
    expect(disk.allocatedBytes()).toBe(0);
    expect((await wb.read(100, 10)).toString()).toBe('cloud only');
  });

  it('survives a kill after the ack: the journal replays and ships', async () => {
    const rig = await makeRig(5, 64 * KiB, { rpoUs: 10_000_000 });
    await rig.wb.write(1000, Buffer.from('acknowledged before the crash'));
    await restart(rig, false);
    expect((await rig.wb.read(1000, 29)).toString()).toBe('acknowledged before the crash');
    await settleOn(rig.world, rig.wb.drain());
    expect(rig.onprem.readSync(1000, 29).toString()).toBe('acknowledged before the crash');
  });

  it('loses nothing and applies nothing twice when the link drops mid-batch', async () => {
    const rig = await makeRig(6, 64 * KiB, { rpoUs: 1_000_000, retryUs: 50_000 });
    rig.sink.failBefore = 0.3;
    rig.sink.loseAck = 0.3;
    const model = rig.onprem.readSync(0, 64 * KiB);
    const rng = rig.world.rng('ops');
    for (let i = 0; i < 60; i++) {
      const off = rng.int(0, 60 * KiB);
      const data = Buffer.alloc(rng.int(1, 4 * KiB), rng.int(1, 256));
      await rig.wb.write(off, data);
      data.copy(model, off);
      await rig.world.advance(rng.int(0, 500_000));
    }
    await settleOn(rig.world, rig.wb.drain());
    expect(rig.sink.calls).toBeGreaterThan(rig.wb.stats().groupsShipped);
    expect(rig.onprem.readSync(0, 64 * KiB).equals(model)).toBe(true);
    for (const [, n] of rig.sink.applier.applications) expect(n).toBe(1);
    expect(rig.sink.applier.duplicates).toBeGreaterThan(0);
  });

  it('applies back-pressure when the journal is full: it ships to make room instead of failing', async () => {
    const rig = await makeRig(8, 64 * KiB, { rpoUs: 3_600_000_000, shipThresholdBytes: 1024 * KiB }, 8 * KiB);
    for (let i = 0; i < 12; i++) await rig.wb.write(i * 2048, Buffer.alloc(2048, i + 1));
    expect(rig.sink.calls).toBeGreaterThan(0);
    await settleOn(rig.world, rig.wb.drain());
    for (let i = 0; i < 12; i++) expect(rig.onprem.readSync(i * 2048, 2048).equals(Buffer.alloc(2048, i + 1))).toBe(true);
  });

  it('never fails a write on a full journal: an op leaves room for the cut that closes its group', async () => {
    // Writes of every size into an 8 KiB journal: some leave fewer free bytes than a cut record needs.
    const rig = await makeRig(10, 64 * KiB, { rpoUs: 3_600_000_000, shipThresholdBytes: 1024 * KiB }, 8 * KiB);
    const model = rig.onprem.readSync(0, 64 * KiB);
    const rng = rig.world.rng('sizes');
    for (let i = 0; i < 300; i++) {
      const at = rng.int(0, 60 * KiB);
      const data = Buffer.alloc(rng.int(1, 2048), i & 0xff);
      await settleOn(rig.world, rig.wb.write(at, data));
      data.copy(model, at);
    }
    await settleOn(rig.world, rig.wb.drain());
    expect(rig.onprem.readSync(0, 64 * KiB).equals(model)).toBe(true);
    // A write the journal can never hold is refused up front, saying why, not left to wait forever.
    await expect(rig.wb.write(0, Buffer.alloc(8 * KiB))).rejects.toMatchObject({ code: 'E_NOSPC', message: expect.stringMatching(/needs \d+ bytes of journal/) });
  });

  it('fails an unaligned write cleanly when below cannot supply the rest of the granule: nothing is journaled', async () => {
    const rig = await makeRig(9, 64 * KiB);
    const broken = new (class extends Layer {
      readonly name = 'broken';
      override async read(): Promise<Buffer> { throw new BlockError('E_IO', 'link down'); }
    })(rig.onprem);
    const wb = await WriteBehind.open(broken, { ...rig.options, store: new SparseStore('c2', 64 * KiB), mapStore: new SparseStore('m2', 4096), journal: await StoreJournal.open(new SparseStore('j2', 64 * KiB)), sink: rig.sink });
    await expect(wb.write(100, Buffer.from('unaligned'))).rejects.toMatchObject({ code: 'E_IO' });
    expect(wb.stats()).toMatchObject({ backlogBytes: 0, backlogOps: 0 });
    await wb.write(4096, Buffer.alloc(4096, 5)); // aligned: needs nothing from below
    expect(wb.stats().backlogOps).toBe(1);
  });

  it('is deterministic: the same seed gives the same on-prem disk, stats and virtual time', async () => {
    const once = async (): Promise<string> => {
      const rig = await makeRig(21, 64 * KiB, { rpoUs: 1_000_000 });
      rig.sink.failBefore = 0.3;
      const rng = rig.world.rng('ops');
      for (let i = 0; i < 50; i++) {
        await rig.wb.write(rng.int(0, 60 * KiB), Buffer.alloc(rng.int(1, 4096), rng.int(0, 256)));
        await rig.world.advance(rng.int(0, 400_000));
      }
      await settleOn(rig.world, rig.wb.drain());
      return JSON.stringify([rig.wb.stats(), rig.world.nowUs, rig.sink.calls, signatureOf(rig.onprem.readSync(0, 64 * KiB)).toString('hex')]);
    };
    expect(await once()).toBe(await once());
  });

  it('reports written ranges as data in extents even where the disk below is a hole', async () => {
    const world = new SimWorld(12);
    const disk = new SparseStore('onprem', 256 * KiB);
    disk.writeSync(0, Buffer.alloc(64 * KiB, 1));
    const wb = await WriteBehind.open(disk, { world, diskId: 'e', persistence: 'cloud-only', store: new SparseStore('c', 256 * KiB), mapStore: new SparseStore('m', 4096) });
    await wb.write(128 * KiB, Buffer.alloc(8 * KiB, 2));
    await wb.trim(0, 64 * KiB);
    // The trimmed range (data below) reads as zeros now: a hole; the new write is data over a hole below.
    expect(await wb.extents(0, 256 * KiB)).toEqual([
      { offset: 0, length: 128 * KiB, type: 'hole' },
      { offset: 128 * KiB, length: 8 * KiB, type: 'data' },
      { offset: 136 * KiB, length: 120 * KiB, type: 'hole' },
    ]);
  });

  it('refuses a bad configuration with the field named', async () => {
    const world = new SimWorld(1);
    const base = { world, diskId: 'x', store: new SparseStore('c', 8192), mapStore: new SparseStore('m', 4096) };
    await expect(WriteBehind.open(new SparseStore('d', 8192), { ...base, persistence: 'sometimes' as never })).rejects.toThrow(/persistence must be/);
    await expect(WriteBehind.open(new SparseStore('d', 8192), { ...base, persistence: 'on-prem' })).rejects.toThrow(/needs a journal and a sink/);
    await expect(WriteBehind.open(new SparseStore('d', 8192), { ...base, persistence: 'cloud-only', nonPersistent: [{ offset: 100, length: 4096 }] })).rejects.toThrow(/nonPersistent\[0\]/);
  });

  it('model-based: random read/write/trim/flush/crash-restart against a reference model, many seeds', async () => {
    const totals = await modelRun(40, false);
    // The run must actually have exercised crashes, shipping, lost acks and retries.
    expect(totals.crashes).toBeGreaterThan(50);
    expect(totals.groups).toBeGreaterThan(200);
    expect(totals.duplicates).toBeGreaterThan(10);
    expect(totals.failures).toBeGreaterThan(20);
  });

  it('model-based, on disks that lose unflushed writes when they crash (random prefix kept)', async () => {
    const totals = await modelRun(20, true);
    expect(totals.crashes).toBeGreaterThan(25);
    expect(totals.groups).toBeGreaterThan(100);
  });
});
