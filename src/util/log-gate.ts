/**
 * Lets a repeated warning through at most once per interval and counts the
 * occurrences it held back, so a flood (of connections, of failed attempts)
 * costs one log line per interval that says how many it stands for.
 */
export class LogGate {
  private lastUs = Number.NEGATIVE_INFINITY;
  private held = 0;

  constructor(private readonly everyUs: number) {}

  /** How many occurrences a line logged now stands for (this one included), or 0: hold it back. */
  pass(nowUs: number): number {
    if (nowUs - this.lastUs < this.everyUs) {
      this.held++;
      return 0;
    }
    this.lastUs = nowUs;
    const n = this.held + 1;
    this.held = 0;
    return n;
  }
}
