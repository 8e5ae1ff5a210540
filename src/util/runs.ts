/** Split sorted integers (block indices) into runs of consecutive ones: [1,2,3,7,8] → [[1,2,3],[7,8]]. */
export function consecutiveRuns(sorted: readonly number[]): number[][] {
  const out: number[][] = [];
  for (const b of sorted) {
    const cur = out[out.length - 1];
    if (cur && cur[cur.length - 1] === b - 1) cur.push(b);
    else out.push([b]);
  }
  return out;
}

/** The integers from..to-1, in order. */
export function range(from: number, to: number): number[] {
  const out: number[] = [];
  for (let i = from; i < to; i++) out.push(i);
  return out;
}
