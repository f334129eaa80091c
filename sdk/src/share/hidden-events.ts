/**
 * What rrweb records beside the page's nodes, kept from speaking of hidden content (docs/privacy.md,
 * "Web components and frames"). A region rrweb blocks (`hide`, `.rr-block`, Tandem's own UI, a
 * blocked image or video) reaches the agent as an empty box, and masking drops what its web
 * components and frames draw later (../shared/masking.ts). rrweb still records, about nodes in
 * there (in a blocked host's open shadow root, in a frame inside, or never serialised at all):
 * - style sheets: rules inserted or deleted, declarations set, sheets replaced or adopted by a
 *   shadow root (its host's id), then changed by their `styleId`. A rule carries text
 *   (`content: "…"`), attribute selectors that test values, addresses;
 * - what the customer does: pointer moves (each position names a node), clicks, focus and blur,
 *   touches, drags, typing (its value masked, but where and when), scrolling, playing media, and
 *   selections (their ends name nodes).
 * Each is dropped here when the node it names is a blocked region or inside one, or unknown (a
 * node rrweb never serialised is in content it blocked: fails closed); a move keeps only its
 * positions over shown content, a selection only its ranges there. A sheet adopted by hidden
 * content is remembered with its rules (and the changes made to it meanwhile, up to a bound): if
 * shown content adopts the same sheet later, its rules go with that adoption, so a design
 * system's sheet shared by a hidden and a shown component still styles the shown one.
 * Removals of nodes inside a hidden region (their parent is one or inside one) are dropped too:
 * they name nodes the agent never had.
 */

import { inBlockedRegion } from "../shared/masking.ts";
import {
  ADOPTED_STYLE_SHEET, DRAG, FULL_SNAPSHOT, INCREMENTAL_SNAPSHOT, MOUSE_MOVE, MUTATION, SELECTION, STYLE_DECLARATION,
  STYLE_SHEET_RULE, TOUCH_MOVE,
} from "../shared/rrweb-events.ts";

/** How many changes of sheets only hidden content adopted are kept (to replay if shown content
 * adopts one later); beyond it such a sheet is never sent (its rules would be stale). */
export const MAX_WITHHELD_SHEET_CHANGES = 500;

type Data = Record<string, unknown>;

interface WithheldSheet {
  /** rrweb's `{styleId, rules}` of the sheet, as the hidden adoption carried it. */
  style: unknown;
  /** Rule and declaration events about it since (their `data`), in order. */
  changes: Data[];
}

/** One recording's filter (rrweb's style ids start again with each full snapshot). */
export class HiddenRegionEvents {
  /** Sheets that only hidden content adopted, by rrweb's `styleId`. */
  private withheld = new Map<number, WithheldSheet>();
  /** Sheets never to send: more changes were kept back than MAX_WITHHELD_SHEET_CHANGES. */
  private lost = new Set<number>();
  private changeCount = 0;

  constructor(
    /** The live node of a recorded id (rrweb's mirror), or null. */
    private readonly lookup: (id: number) => unknown,
    /** Whether a live node (or null: unknown) is hidden content. */
    private readonly hidden: (node: unknown) => boolean = inBlockedRegion,
  ) {}

  /** What of `event` may go, in order: `event` without what it says about hidden content
   * (mutated), or nothing; after an adoption by shown content, the changes made meanwhile to the
   * sheets it takes from hidden content. */
  filter(event: unknown): unknown[] {
    const kept = this.keep(event);
    const after = this.after;
    this.after = [];
    return kept === null ? [] : [kept, ...after];
  }

  private after: unknown[] = [];

  private keep<T>(event: T): T | null {
    const e = event as { type?: unknown; data?: unknown; timestamp?: unknown } | null;
    if (!e || typeof e !== "object") return event;
    if (e.type === FULL_SNAPSHOT) {
      this.withheld = new Map();
      this.lost = new Set();
      this.changeCount = 0;
      return event;
    }
    if (e.type !== INCREMENTAL_SNAPSHOT) return event;
    if (!e.data || typeof e.data !== "object") return null;
    const data = e.data as Data;
    const hiddenId = (id: unknown) => typeof id !== "number" || this.hidden(this.lookup(id));
    switch (data.source) {
      case MUTATION:
        if (Array.isArray(data.removes)) {
          data.removes = data.removes.filter((remove: { parentId?: unknown } | null) => {
            const parent = typeof remove?.parentId === "number" ? this.lookup(remove.parentId) : null;
            // A parent gone too (a removed subtree) says nothing: rrweb's replayer drops it.
            return parent === null || parent === undefined || !this.hidden(parent);
          });
        }
        return event;
      case MOUSE_MOVE:
      case TOUCH_MOVE:
      case DRAG: {
        if (!Array.isArray(data.positions)) return null;
        data.positions = data.positions.filter((p: { id?: unknown } | null) => !hiddenId(p?.id));
        return (data.positions as unknown[]).length ? event : null;
      }
      case SELECTION: {
        if (!Array.isArray(data.ranges)) return null;
        const all = data.ranges.length;
        data.ranges = data.ranges.filter((r: { start?: unknown; end?: unknown } | null) => !hiddenId(r?.start) && !hiddenId(r?.end));
        // A selection cleared goes; one made only in hidden content does not.
        return all > 0 && !(data.ranges as unknown[]).length ? null : event;
      }
      case STYLE_SHEET_RULE:
      case STYLE_DECLARATION:
        if (data.id !== undefined && data.id !== null) return hiddenId(data.id) ? null : event;
        return this.sheetChange(data) ? event : null;
      case ADOPTED_STYLE_SHEET:
        return this.adoption(data, hiddenId(data.id), e.timestamp) ? event : null;
      default:
        // Clicks, focus, scrolling, typing, media, canvas...: by the node they name, if any.
        return data.id === undefined || !hiddenId(data.id) ? event : null;
    }
  }

  /** A change of a constructed sheet (by `styleId`): kept back if only hidden content has it. */
  private sheetChange(data: Data): boolean {
    const styleId = data.styleId;
    if (typeof styleId !== "number") return false;
    if (this.lost.has(styleId)) return false;
    const sheet = this.withheld.get(styleId);
    if (!sheet) return true;
    if (this.changeCount >= MAX_WITHHELD_SHEET_CHANGES) {
      this.withheld.delete(styleId);
      this.lost.add(styleId);
      return false;
    }
    this.changeCount++;
    sheet.changes.push(data);
    return false;
  }

  /** Sheets adopted by a document or shadow root: by hidden content, remembered and dropped; by
   * shown content, sent, with the rules of any it adopts that hidden content had first. */
  private adoption(data: Data, hidden: boolean, timestamp: unknown): boolean {
    const styles = Array.isArray(data.styles) ? (data.styles as { styleId?: unknown }[]) : [];
    if (hidden) {
      for (const style of styles) {
        if (typeof style?.styleId === "number" && !this.lost.has(style.styleId)) {
          this.withheld.set(style.styleId, { style, changes: [] });
        }
      }
      return false;
    }
    let ids = Array.isArray(data.styleIds) ? (data.styleIds as unknown[]) : [];
    if (ids.some((id) => typeof id === "number" && this.lost.has(id))) {
      ids = data.styleIds = ids.filter((id) => !(typeof id === "number" && this.lost.has(id)));
    }
    const shownNow: WithheldSheet[] = [];
    for (const id of ids) {
      const sheet = typeof id === "number" ? this.withheld.get(id) : undefined;
      if (!sheet || typeof id !== "number") continue;
      this.withheld.delete(id);
      shownNow.push(sheet);
    }
    if (shownNow.length) {
      data.styles = [...styles, ...shownNow.map((sheet) => sheet.style)];
      // The changes made to those sheets meanwhile follow the adoption (rrweb's own order).
      for (const sheet of shownNow) {
        for (const change of sheet.changes) this.after.push({ type: INCREMENTAL_SNAPSHOT, data: change, timestamp });
      }
    }
    return true;
  }
}
