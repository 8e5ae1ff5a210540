import { describe, expect, it } from 'vitest';
import { SparseStore } from '../src/proxy/stores/sparse-store.js';
import { StoreJournal } from '../src/proxy/journal.js';
import { PersistentBitmap } from '../src/proxy/stores/persistent-bitmap.js';
import { FaultyStore } from '../src/fuzz/faulty-store.js';

const rec = (s: string): Buffer => Buffer.from(s);

describe('StoreJournal', () => {
  it('recovers appended records in order after a reopen, and drops a truncated prefix', async () => {
    const store = new SparseStore('j', 8192 + 16 * 1024);
    const j = await StoreJournal.open(store);
    const lsns = await Promise.all(['a', 'bb', 'ccc'].map((s, i) => j.append(rec(s), i * 10)));
    expect(lsns).toEqual([1, 2, 3]);
    const again = await StoreJournal.open(store);
    expect(again.recovered.map((r) => [r.lsn, r.tUs, r.payload.toString()])).toEqual([[1, 0, 'a'], [2, 10, 'bb'], [3, 20, 'ccc']]);
    await again.truncate(2, Buffer.from('42'));
    const third = await StoreJournal.open(store);
    expect(third.meta.toString()).toBe('42');
    expect(third.recovered.map((r) => r.payload.toString())).toEqual(['ccc']);
    expect(await third.append(rec('d'), 0)).toBe(4);
  });

  it('ignores a torn tail: a record whose bytes did not all land ends the log', async () => {
    const store = new SparseStore('j', 8192 + 16 * 1024);
    const j = await StoreJournal.open(store);
    await j.append(rec('kept'), 0);
    // A crash while the second commit was written: its record landed with one payload byte missing.
    const torn = await wholeJournal(['kept', 'torn record payload']);
    const second = 8192 + 36 + 4;
    store.writeSync(second, torn.readSync(second, 36 + 19));
    store.writeSync(second + 36 + 3, Buffer.from([torn.readSync(second + 36 + 3, 1)[0]! ^ 0xff]));
    const again = await StoreJournal.open(store);
    expect(again.recovered.map((r) => r.payload.toString())).toEqual(['kept']);
    expect(again.nextLsn).toBe(2);
  });

  it('one flipped byte in the last acknowledged commit fails the open loudly: its seal proves it was acknowledged', async () => {
    const store = new SparseStore('j', 8192 + 16 * 1024);
    const j = await StoreJournal.open(store);
    await j.append(rec('first'), 0);
    await j.append(rec('last, acknowledged'), 0);
    const at = 8192 + 36 + 5 + 36 + 3;
    store.writeSync(at, Buffer.from([store.readSync(at, 1)[0]! ^ 0x01]));
    await expect(StoreJournal.open(store)).rejects.toMatchObject({ code: 'E_JOURNAL_CORRUPT', details: { lsn: 2, laterLsn: 3 } });
  });

  it('an open that recovered records seals them: damage to the last commit after a crash that lost its seal is still refused', async () => {
    const store = new FaultyStore('j', 8192 + 16 * 1024);
    const j = await StoreJournal.open(store);
    await j.append(rec('acknowledged'), 0);
    // The machine died before the kernel wrote the seal back (the seal is the one unflushed write)...
    expect(store.unflushedOps).toBe(1);
    store.crash({ int: () => 0 } as never);
    // ...the restart recovers the commit, and then the stores are damaged before the next crash.
    expect((await StoreJournal.open(store)).recovered.map((r) => r.payload.toString())).toEqual(['acknowledged']);
    store.crash({ int: () => 0 } as never);
    store.flipBit(8192 + 36 + 3, 0);
    await expect(StoreJournal.open(store)).rejects.toMatchObject({ code: 'E_JOURNAL_CORRUPT', details: { lsn: 1, laterLsn: 2 } });
  });

  it('one flipped byte in an acknowledged record with later commits after it fails the open loudly, never drops them', async () => {
    const store = new SparseStore('j', 8192 + 64 * 1024);
    const j = await StoreJournal.open(store);
    for (let i = 0; i < 10; i++) await j.append(Buffer.alloc(100, i), i); // ten commits, each acknowledged
    // Flip one payload byte of record 3 (records are 36-byte headers + 100 bytes).
    const at = 8192 + 2 * 136 + 36 + 50;
    store.writeSync(at, Buffer.from([store.readSync(at, 1)[0]! ^ 0x01]));
    await expect(StoreJournal.open(store)).rejects.toMatchObject({ code: 'E_JOURNAL_CORRUPT', details: { lsn: 3, laterLsn: 4 } });
    // A flipped magic byte is caught too.
    store.writeSync(at, Buffer.from([store.readSync(at, 1)[0]! ^ 0x01]));
    store.writeSync(8192 + 5 * 136, Buffer.from([0x00]));
    await expect(StoreJournal.open(store)).rejects.toMatchObject({ code: 'E_JOURNAL_CORRUPT', details: { lsn: 6 } });
  });

  it('a torn record followed by intact records of its own (unacknowledged) commit is a tail, not damage', async () => {
    const store = new SparseStore('j', 8192 + 64 * 1024);
    const j = await StoreJournal.open(store);
    await j.append(rec('acked'), 0);
    // A crash while the next commit of three records was written: all landed but a byte of its first.
    const whole = new SparseStore('whole', store.size());
    const w = await StoreJournal.open(whole);
    const acked = w.append(rec('acked'), 0);
    await Promise.all([acked, w.append(Buffer.alloc(100, 1), 0), w.append(Buffer.alloc(100, 2), 0), w.append(Buffer.alloc(100, 3), 0)]);
    const second = 8192 + 36 + 5;
    store.writeSync(second, whole.readSync(second, 3 * 136));
    store.writeSync(second + 36 + 10, Buffer.from([0xee]));
    const again = await StoreJournal.open(store);
    expect(again.recovered.map((r) => r.payload.toString())).toEqual(['acked']);
    expect(again.nextLsn).toBe(2);
  });

  it('reads a journal an earlier version wrote (records without a batch field, meta as one number)', async () => {
    const store = new SparseStore('j', 8192 + 16 * 1024);
    const crc = (await import('node:zlib')).crc32;
    const header = Buffer.alloc(40);
    header.writeUInt32BE(0x53504a48, 0);
    header.writeDoubleBE(1, 4);
    header.writeDoubleBE(0, 12);
    header.writeDoubleBE(5, 20);
    header.writeDoubleBE(4, 28);
    header.writeUInt32BE(crc(header.subarray(0, 36)), 36);
    store.writeSync(4096, header);
    let pos = 8192;
    for (const [lsn, text] of [[5, 'e'], [6, 'f']] as const) {
      const payload = Buffer.from(text);
      const h = Buffer.alloc(28);
      h.writeUInt32BE(0x53504a52, 0);
      h.writeUInt32BE(payload.length, 4);
      h.writeDoubleBE(lsn, 8);
      h.writeDoubleBE(0, 16);
      const lt = Buffer.alloc(16);
      lt.writeDoubleBE(lsn, 0);
      h.writeUInt32BE(crc(payload, crc(lt)), 24);
      store.writeSync(pos, Buffer.concat([h, payload]));
      pos += 28 + payload.length;
    }
    const j = await StoreJournal.open(store);
    expect(JSON.parse(j.meta.toString())).toEqual({ seq: 4 });
    expect(j.recovered.map((r) => [r.lsn, r.payload.toString()])).toEqual([[5, 'e'], [6, 'f']]);
    expect(await j.append(rec('g'), 0)).toBe(7);
    const again = await StoreJournal.open(store);
    expect(again.recovered.map((r) => r.payload.toString())).toEqual(['e', 'f', 'g']);
  });

  it('wraps around its ring and refuses what does not fit', async () => {
    const store = new SparseStore('j', 8192 + 4096);
    const j = await StoreJournal.open(store);
    let last = 0;
    for (let i = 0; i < 40; i++) {
      last = await j.append(Buffer.alloc(500, i), i);
      await j.truncate(last - 1, Buffer.from(String(last - 1)));
    }
    const again = await StoreJournal.open(store);
    expect(again.recovered).toHaveLength(1);
    expect(again.recovered[0]!.payload.equals(Buffer.alloc(500, 39))).toBe(true);
    await expect(again.append(Buffer.alloc(5000), 0)).rejects.toMatchObject({ code: 'E_NOSPC' });
    for (let i = 0; i < 6; i++) await again.append(Buffer.alloc(500), 0);
    await expect(again.append(Buffer.alloc(500), 0)).rejects.toMatchObject({ code: 'E_JOURNAL_FULL' });
  });
});

describe('PersistentBitmap', () => {
  it('keeps bits across reopen only after persist', async () => {
    const store = new SparseStore('b', 8192);
    const b = await PersistentBitmap.open(store, 50_000);
    b.setRange(10, 20);
    b.set(40_000);
    await b.persist();
    b.set(7);
    const again = await PersistentBitmap.open(store, 50_000);
    expect(again.count).toBe(11);
    expect(again.get(40_000)).toBe(true);
    expect(again.get(7)).toBe(false);
    expect(again.nextClear(10)).toBe(20);
    expect(again.allSet(10, 20)).toBe(true);
    await expect(PersistentBitmap.open(new SparseStore('small', 10), 1000)).rejects.toMatchObject({ code: 'E_NOSPC' });
  });

  it('holds only pages with bits set: the map of a 500 GiB disk with two writes, across a reopen', async () => {
    const bits = (500 * 1024 ** 3) / 4096;
    const store = new SparseStore('big', PersistentBitmap.bytesFor(bits));
    const b = await PersistentBitmap.open(store, bits);
    expect(b.nextClear(0)).toBe(0);
    b.set(5);
    b.set(bits - 1);
    b.clear(1_000_000);
    await b.persist();
    // Two 4 KiB pages written: the first and the last.
    expect(store.allocatedBytes()).toBeLessThanOrEqual(2 * 64 * 1024);
    const again = await PersistentBitmap.open(store, bits);
    expect(again.count).toBe(2);
    expect(again.get(5) && again.get(bits - 1)).toBe(true);
    expect(again.get(6) || again.get(bits - 2)).toBe(false);
    again.clear(5);
    await again.persist();
    expect((await PersistentBitmap.open(store, bits)).count).toBe(1);
  });

  it('a persist that failed leaves its pages dirty: the next persist writes them', async () => {
    const store = new FaultyStore('b', 8192);
    const b = await PersistentBitmap.open(store, 50_000);
    b.set(3);
    b.set(40_000);
    store.failNext(1);
    await expect(b.persist()).rejects.toMatchObject({ code: 'E_IO' });
    await b.persist();
    const again = await PersistentBitmap.open(store, 50_000);
    expect([again.get(3), again.get(40_000)]).toEqual([true, true]);
  });
});

describe('StoreJournal under store faults', () => {
  it('a batch whose write failed leaves no hole: later acknowledged records survive a reopen', async () => {
    const store = new FaultyStore('j', 8192 + 64 * 1024);
    const j = await StoreJournal.open(store);
    await j.append(Buffer.from('one'), 0);
    store.failNext(1);
    await expect(j.append(Buffer.from('lost'), 0)).rejects.toMatchObject({ code: 'E_IO' });
    await j.append(Buffer.from('two'), 0);
    await j.append(Buffer.from('three'), 0);
    const again = await StoreJournal.open(store);
    expect(again.recovered.map((r) => r.payload.toString())).toEqual(['one', 'two', 'three']);
  });

  it('a journal whose only header is damaged refuses to open as if it were new', async () => {
    const store = new SparseStore('j', 8192 + 16 * 1024);
    const j = await StoreJournal.open(store);
    await j.append(Buffer.from('a'), 0);
    await j.truncate(0, Buffer.from('{"seq":3}'));
    const gen1 = 4096; // generation 1 lives in slot 1
    store.writeSync(gen1 + 10, Buffer.from([store.readSync(gen1 + 10, 1)[0]! ^ 0x40]));
    await expect(StoreJournal.open(store)).rejects.toMatchObject({ code: 'E_JOURNAL_CORRUPT' });
    expect((await StoreJournal.open(new SparseStore('fresh', 8192 + 4096))).meta.length).toBe(0);
  });
});

/** A store holding a journal with these records, each its own commit: the bytes a crash may have left half-written. */
async function wholeJournal(records: string[]): Promise<SparseStore> {
  const store = new SparseStore('whole', 8192 + 16 * 1024);
  const j = await StoreJournal.open(store);
  for (const r of records) await j.append(rec(r), 0);
  return store;
}
