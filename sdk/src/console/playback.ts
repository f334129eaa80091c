/**
 * A recording's events made ready for the auditor's player (./recordings.ts): the page it shows
 * must fit the mirror (./budget.ts) and fetch nothing (./assets.ts).
 *
 * rrweb's Replayer plays a recording's events by their `timestamp` (it sorts them), which the
 * customer's SDK sets: a hostile page's SDK lists them in any order it likes. The budget and the
 * neutraliser follow the page event by event (a full snapshot starts a new page, a text added to
 * an earlier event's <style> is CSS), so they must see the events in the order they are played:
 * they are sorted here as the Replayer sorts them (a stable sort, which sorts them again to the
 * same order), and one with no time of its own (not a number) is not played, as no sort puts it
 * in one place.
 */

import { type AssetLookup, StyleParents, neutralizeEvent } from "./assets.ts";
import { MirrorBudget } from "./budget.ts";

/** The events to give rrweb's Replayer, in its order, neutralised in place; null when the page
 * they make is beyond what the mirror holds (the player does not play it). */
export function playableEvents(events: unknown[], assets?: AssetLookup): unknown[] | null {
  const timed = events.filter((event) => Number.isFinite((event as { timestamp?: unknown } | null)?.timestamp));
  const ordered = (timed as { timestamp: number }[]).sort((a, b) => a.timestamp - b.timestamp);
  const budget = new MirrorBudget();
  if (!ordered.every((event) => budget.admit(event))) return null;
  const styles = new StyleParents();
  for (const event of ordered) neutralizeEvent(event, assets, styles);
  return ordered;
}
