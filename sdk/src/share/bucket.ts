/**
 * A token bucket: what the customer's browser lets the agent do per second (control actions,
 * pointer moves, typing, laser points, marks). It holds `perSecond` tokens at the most, starts
 * full, and refills continuously at `perSecond` tokens a second; each allowed action takes one.
 */
export class Bucket {
  private tokens: number;
  private last: number;

  /** `now`: a clock in milliseconds (the page's `performance.now()` unless a test gives one). */
  constructor(
    private readonly perSecond: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = perSecond;
    this.last = now();
  }

  /** Whether one more action is allowed now (and, if so, its token is taken). */
  take(): boolean {
    const now = this.now();
    this.tokens = Math.min(this.perSecond, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
