import { describe, expect, it } from 'vitest';
import { SparseStore } from '../src/proxy/sparse-store.js';
import { StoreJournal } from '../src/proxy/journal.js';
import { PersistentBitmap } from '../src/proxy/persistent-bitmap.js';

const rec = (s: string): Buffer => Buffer.from(s);

describe('StoreJournal', () => {
  it('recovers appended records in order after a reopen, and drops a truncated prefix', async () => {
    const store = new SparseStore('j', 8192 + 16 * 1024);
    const j = await StoreJournal.open(store);
    const lsns = await Promise.all(['a', 'bb', 'ccc'].map((s, i) => j.append(rec(s), i * 10)));
    expect(lsns).toEqual([1, 2, 3]);
    const again = await StoreJournal.open(store);
    expect(again.recovered.map((r) => [r.lsn, r.tUs, r.payload.toString()])).toEqual([[1, 0, 'a'], [2, 10, 'bb'], [3, 20, 'ccc']]);
    await again.truncate(2, 42);
    const third = await StoreJournal.open(store);
    expect(third.meta).toBe(42);
    expect(third.recovered.map((r) => r.payload.toString())).toEqual(['ccc']);
    expect(await third.append(rec('d'), 0)).toBe(4);
  });

  it('ignores a torn tail: a record whose bytes did not all land ends the log', async () => {
    const store = new SparseStore('j', 8192 + 16 * 1024);
    const j = await StoreJournal.open(store);
    await j.append(rec('kept'), 0);
    await j.append(rec('torn record payload'), 0);
    // Corrupt one payload byte of the second record (header 28 bytes + 'kept' 4, then its own header).
    const at = 8192 + 28 + 4 + 28 + 3;
    store.writeSync(at, Buffer.from([store.readSync(at, 1)[0]! ^ 0xff]));
    const again = await StoreJournal.open(store);
    expect(again.recovered.map((r) => r.payload.toString())).toEqual(['kept']);
    expect(again.nextLsn).toBe(2);
  });

  it('wraps around its ring and refuses what does not fit', async () => {
    const store = new SparseStore('j', 8192 + 4096);
    const j = await StoreJournal.open(store);
    let last = 0;
    for (let i = 0; i < 40; i++) {
      last = await j.append(Buffer.alloc(500, i), i);
      await j.truncate(last - 1, last - 1);
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
});
