import type { Clock } from '../../world/types.js';

/**
 * A token bucket on the World's clock: `rateBytesPerS` sustained, up to
 * `burstBytes` at once. `delayUs(n)` says how long to wait before `n` bytes
 * may go; `take(n)` spends them (the balance may go negative for a frame
 * bigger than the burst, which then pays its debt before the next one).
 */
export class TokenBucket {
  private tokens: number;
  private lastUs: number;

  constructor(private readonly clock: Clock, readonly rateBytesPerS: number, readonly burstBytes: number) {
    this.tokens = burstBytes;
    this.lastUs = clock.nowUs();
  }

  private refill(): void {
    const now = this.clock.nowUs();
    this.tokens = Math.min(this.burstBytes, this.tokens + ((now - this.lastUs) * this.rateBytesPerS) / 1e6);
    this.lastUs = now;
  }

  delayUs(): number {
    this.refill();
    if (this.tokens >= 0) return 0;
    return Math.ceil((-this.tokens * 1e6) / this.rateBytesPerS);
  }

  take(n: number): void {
    this.refill();
    this.tokens -= n;
  }
}
