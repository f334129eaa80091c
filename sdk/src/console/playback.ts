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
 *
 * Style work beyond the budgets of ./budget.ts (STYLE_REWRITE_CHARS, RULE_SHIFTS) is held as in
 * the live console (style texts and whole styles played late, at the start of a window that takes
 * them), counted in windows of the recording's own time, and over the whole recording
 * (RECORDING_STYLE_CHARS, RECORDING_RULE_SHIFTS: a seek plays it all at once); `notes.stylesHeld` says so,
 * for the player to tell the auditor.
 */

import { type AssetLookup, StyleParents, neutralizeEvent } from "./assets.ts";
import {
  MirrorBudget, RECORDING_RULE_SHIFTS, RECORDING_STYLE_CHARS, RULE_SHIFTS, STYLE_REWRITE_CHARS, STYLE_WINDOW_MS, SnapshotGate,
  StyleBudget,
} from "./budget.ts";

/** The events to give rrweb's Replayer, in its order, neutralised in place; null when the page
 * they make is beyond what the mirror holds (the player does not play it). */
export function playableEvents(
  events: unknown[], assets?: AssetLookup, notes?: { stylesHeld: boolean; snapshotsHeld?: boolean },
): unknown[] | null {
  const timed = events.filter((event) => Number.isFinite((event as { timestamp?: unknown } | null)?.timestamp));
  const ordered = (timed as { timestamp: number }[]).sort((a, b) => a.timestamp - b.timestamp);
  const budget = new MirrorBudget();
  if (!ordered.every((event) => budget.admit(event))) return null;
  const styles = new StyleParents();
  let now = 0;
  // A window of the recording's time each, and the whole: a seek plays all before it at once.
  const styleBudget = new StyleBudget(() => now, STYLE_REWRITE_CHARS, RULE_SHIFTS, STYLE_WINDOW_MS, RECORDING_STYLE_CHARS,
    RECORDING_RULE_SHIFTS);
  const snapshots = new SnapshotGate(() => now);
  const played: unknown[] = [];
  // Neutralised as played, in the order played (a snapshot it replaced, and what followed it,
  // never are: the next snapshot starts the neutraliser's page afresh).
  const play = (event: { timestamp: number }) => {
    now = event.timestamp;
    neutralizeEvent(event, assets, styles, styleBudget);
    played.push(event);
  };
  // A held snapshot and what followed it play at the time the allowance takes it (before any
  // later event), stamped so: rrweb's Replayer sorts by time (stably: their order stays).
  const releaseUntil = (time: number) => {
    const due = snapshots.due;
    if (due === null || due > time) return;
    now = due;
    for (const event of snapshots.release() as { timestamp: number }[]) {
      event.timestamp = due;
      play(event);
    }
  };
  // Style texts and whole styles held play (their latest values) once a window of the
  // recording's time takes them, at its start: before any later event.
  const catchUp = (time: number) => {
    for (let next = styleBudget.nextWindow; next !== null && next <= time; next = styleBudget.nextWindow) {
      now = next;
      const deferred = styleBudget.takeDeferred();
      if (!deferred) return;
      play(deferred);
      if (styleBudget.nextWindow === next) return; // no later window: never a loop
    }
  };
  for (const event of ordered) {
    catchUp(event.timestamp);
    releaseUntil(event.timestamp);
    now = event.timestamp;
    for (const ready of snapshots.pass(event) as { timestamp: number }[]) play(ready);
  }
  releaseUntil(Number.POSITIVE_INFINITY);
  catchUp(Number.POSITIVE_INFINITY);
  if (notes) {
    notes.stylesHeld = styleBudget.takeHeld();
    notes.snapshotsHeld = snapshots.takeHeld();
  }
  return played;
}
