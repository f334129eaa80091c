/**
 * Which elements the customer's overlay outlines (what the agent cannot see), kept fresh at a
 * bounded cost.
 *
 * Finding them (`hiddenFromAgent`: every field's masking, and a walk of every element for open
 * shadow roots) costs in proportion to the page: about 1 ms on a normal page, 130 ms on a
 * 5,000-field form. Done at every tick of the overlay (four times a second) it took a third of
 * such a page's main thread for as long as it was shared, in long tasks. So the search runs again
 * only once `SEARCH_COST_FACTOR` times its last cost has passed since it ended (a normal page
 * still every tick; the 5,000-field form about every 1.5 s, under a tenth of its main thread), while the
 * boxes of what it found are measured at every tick (cheap: scrolls and layout follow at once),
 * and an element taken out of the page loses its outline at the next tick.
 *
 * Masking itself is not touched by this: it decides what is sent, field by field, as rrweb
 * records. The outlines are what the customer is shown of it; between two searches a field that
 * became hidden gets its outline at the next search (after at most ten times the last search's
 * cost), one that became shown keeps its outline until then (shown as hidden: the safe side).
 */

/** How many times the last search's cost passes before the next search (bounds the search to
 * about 1 / (1 + 10) of the main thread, whatever the page's size). */
export const SEARCH_COST_FACTOR = 10;

export class HiddenOutlines {
  private found: Element[] = [];
  private nextSearchAt = Number.NEGATIVE_INFINITY;

  /** `find`: the search (`hiddenFromAgent(document)`); `now`: a clock in milliseconds (the
   * page's `performance.now()` unless a test gives one). */
  constructor(
    private readonly find: () => Element[],
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** The elements to outline now: searched again when the cost bound allows, else the last
   * search's, less those no longer in the page. */
  current(): Element[] {
    const start = this.now();
    if (start >= this.nextSearchAt) {
      this.found = this.find();
      const end = this.now();
      this.nextSearchAt = end + SEARCH_COST_FACTOR * Math.max(0, end - start);
      return this.found;
    }
    this.found = this.found.filter((el) => el.isConnected);
    return this.found;
  }

  /** Search again at the next call (sharing starts or goes on: nothing old is kept). */
  reset(): void {
    this.found = [];
    this.nextSearchAt = Number.NEGATIVE_INFINITY;
  }
}
