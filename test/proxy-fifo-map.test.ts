import { describe, expect, it } from 'vitest';
import { FifoMap } from '../src/util/fifo-map.js';

describe('FifoMap', () => {
  it('shifts entries in first-insertion order; set on a present key keeps its place, delete then set moves it last', () => {
    const m = new FifoMap<number, string>();
    m.set(1, 'a').set(2, 'b').set(3, 'c');
    m.set(1, 'A');
    m.delete(2);
    m.set(2, 'B');
    expect(m.size).toBe(3);
    expect(m.get(1)).toBe('A');
    expect(m.peek()).toEqual([1, 'A']);
    expect([m.shift(), m.shift(), m.shift(), m.shift()]).toEqual([[1, 'A'], [3, 'c'], [2, 'B'], undefined]);
    expect(m.size).toBe(0);
  });

  it('stays correct as a bounded window through many drops and deletes, and clear empties it', () => {
    const m = new FifoMap<number, number>();
    const ref = new Map<number, number>();
    for (let i = 0; i < 50_000; i++) {
      m.set(i, i * 2);
      ref.set(i, i * 2);
      if (i % 7 === 3) { m.delete(i - 2); ref.delete(i - 2); }
      while (m.size > 1000) {
        const [k, v] = m.shift()!;
        const [rk, rv] = ref.entries().next().value!;
        ref.delete(rk);
        expect([k, v]).toEqual([rk, rv]);
      }
    }
    expect(m.size).toBe(ref.size);
    for (const [k, v] of ref) expect(m.get(k)).toBe(v);
    m.clear();
    expect(m.size).toBe(0);
    expect(m.shift()).toBeUndefined();
  });
});
