/**
 * How much of a customer's page the mirror holds. The page is hostile content in the agent's
 * (and an auditor's) browser, and what it sends is not bounded by what it holds itself: a page
 * that rewrites the SDK's events (or a huge one) adds nodes to the mirror by the hundred thousand
 * in each payload, payload after payload, while its own document stays small, until the agent's
 * tab (the console and its same-origin mirror share one renderer) runs out of memory. The
 * mirror takes at most MAX_MIRROR_NODES nodes and MAX_MIRROR_CHARS characters of text,
 * attributes and style rules: beyond, the live console drops it and says so
 * (the customer's next page, a full snapshot that fits, shows again), and the player does not
 * play the recording.
 *
 * Both are counted from the events as rrweb applies them: a full snapshot's tree replaces the
 * document, a mutation's removals take whole subtrees (from the node's own parent only: rrweb
 * leaves the others in the page), its additions add theirs (a node added again without its
 * removal leaves the one it was counted, and its subtree as deep as at the new place), a changed
 * attribute or text replaces what it was. Style rules added to a sheet count until the next
 * full snapshot (their removal does not say how long they were).
 */

import {
  ADOPTED_STYLE_SHEET, FULL_SNAPSHOT, INCREMENTAL_SNAPSHOT, MUTATION, STYLE_SHEET_RULE,
} from "../shared/rrweb-events.ts";

/** Nodes (elements, text, comments) the mirror holds at most: several times a large real page
 * (a long product list or a big table: tens of thousands), far from what fills a tab's memory. */
export const MAX_MIRROR_NODES = 250_000;
/** Characters of text, attribute values and style rules the mirror holds at most (a large page's
 * text and inline images are a few million; 32 Mi characters are 64 MiB as the browser keeps
 * them, several times over in the DOM, the replayer and its copies). */
export const MAX_MIRROR_CHARS = 32 * 1024 * 1024;
/** Elements nested at most this deep in the mirror: twice what Chromium's own HTML parser builds
 * (512), far beyond a real page. A chain of a few thousand (one mutation, or a node at a time)
 * crashed the agent's renderer in Chromium (2 000 held, 5 000 crashed the tab, console and
 * mirror with it), whichever way rrweb inserted it. */
export const MAX_MIRROR_DEPTH = 1_000;

/** One node: its id (while the mirror still knows it by that id), where it is, its children
 * (once it has some), its text, and each attribute's length (a style's properties apart, as rrweb
 * changes them one by one). One object a node: the count costs little beside the replayer's own
 * copy of each node. Parent and children are the nodes themselves, not ids: an id the page names
 * again is another node, and the one it named stays where it is (see `add`, `remove`). */
interface Held {
  id: number;
  parent: Held | null;
  /** Below the page's root (0), as added. */
  depth: number;
  kids: Set<Held> | null;
  /** The node its id named before it was added again without its removal (rrweb may have moved
   * that one here, children and all). */
  from: Held | null;
  text: number;
  attrs: Map<string, number> | null;
}

const STYLE_PROPERTY = "style\u0000";

function length(value: unknown): number {
  return typeof value === "string" ? value.length : 0;
}

/** The characters of the style rules an event adds to a sheet. */
function ruleChars(value: unknown): number {
  let chars = 0;
  const stack: unknown[] = [value];
  while (stack.length) {
    const item = stack.pop();
    if (typeof item === "string") chars += item.length;
    else if (Array.isArray(item)) for (const inner of item) stack.push(inner);
    else if (item && typeof item === "object") for (const inner of Object.values(item)) stack.push(inner);
  }
  return chars;
}

interface Serialized {
  id?: unknown;
  childNodes?: unknown;
}

/** The nodes a replayed page holds, by id, with their children and what they hold: kept from
 * its events. */
export class NodeCount {
  /** The nodes the mirror knows by id. */
  private readonly held = new Map<number, Held>();
  /** The nodes the mirror's page holds: those it knows by id, and those it lost the id of but
   * still shows (an id added again, a removal from a parent that is not the node's). */
  private nodes = 0;
  private nodeChars = 0;
  private sheetChars = 0;
  private deepestAdded = 0;
  private movedNodes = 0;

  get size(): number {
    return this.nodes;
  }

  /** The deepest any node was added since the page's full snapshot (a removal does not lower it:
   * what it took away is not looked through again). */
  get deepest(): number {
    return this.deepestAdded;
  }

  /** Nodes looked through again since the page's full snapshot because their ancestor was added
   * again without its removal (rrweb's recorder removes a node before adding it elsewhere). */
  get moved(): number {
    return this.movedNodes;
  }

  /** Characters of text, attribute values and style rules. */
  get chars(): number {
    return this.nodeChars + this.sheetChars;
  }

  /** Follow one rrweb event (any other than a snapshot or a mutation changes nothing). */
  apply(event: unknown): void {
    const e = event as { type?: unknown; data?: Record<string, unknown> } | null;
    if (!e || typeof e !== "object" || !e.data || typeof e.data !== "object") return;
    if (e.type === FULL_SNAPSHOT) {
      this.held.clear();
      this.nodes = 0;
      this.nodeChars = 0;
      this.sheetChars = 0;
      this.deepestAdded = 0;
      this.movedNodes = 0;
      this.add(e.data.node, null);
      return;
    }
    if (e.type !== INCREMENTAL_SNAPSHOT) return;
    if (e.data.source === STYLE_SHEET_RULE) this.sheetChars += ruleChars(e.data.adds) + ruleChars(e.data.replace);
    if (e.data.source === ADOPTED_STYLE_SHEET) this.sheetChars += ruleChars(e.data.styles);
    if (e.data.source !== MUTATION) return;
    if (Array.isArray(e.data.removes)) {
      for (const removal of e.data.removes) {
        const { id, parentId } = (removal ?? {}) as { id?: unknown; parentId?: unknown };
        if (typeof id === "number") this.remove(id, parentId);
      }
    }
    if (Array.isArray(e.data.adds)) {
      for (const addition of e.data.adds) {
        const { node, parentId } = (addition ?? {}) as { node?: unknown; parentId?: unknown };
        this.add(node, typeof parentId === "number" ? parentId : null);
      }
    }
    if (Array.isArray(e.data.texts)) {
      for (const change of e.data.texts) {
        const { id, value } = (change ?? {}) as { id?: unknown; value?: unknown };
        const held = typeof id === "number" ? this.held.get(id) : undefined;
        if (!held) continue;
        this.nodeChars += length(value) - held.text;
        held.text = length(value);
      }
    }
    if (Array.isArray(e.data.attributes)) {
      for (const change of e.data.attributes) {
        const { id, attributes } = (change ?? {}) as { id?: unknown; attributes?: unknown };
        const held = typeof id === "number" ? this.held.get(id) : undefined;
        if (held && attributes && typeof attributes === "object") this.changeAttributes(held, attributes as Record<string, unknown>);
      }
    }
  }

  private setAttribute(held: Held, key: string, chars: number | null): void {
    const attrs = held.attrs ?? (held.attrs = new Map());
    this.nodeChars -= attrs.get(key) ?? 0;
    if (chars === null) attrs.delete(key);
    else {
      attrs.set(key, chars);
      this.nodeChars += chars;
    }
  }

  private changeAttributes(held: Held, attributes: Record<string, unknown>): void {
    for (const [name, value] of Object.entries(attributes)) {
      const diff = value && typeof value === "object" && !Array.isArray(value);
      if (name === "style" && !diff && held.attrs) {
        // A whole style replaces the properties set one by one before it.
        for (const key of [...held.attrs.keys()]) if (key.startsWith(STYLE_PROPERTY)) this.setAttribute(held, key, null);
      }
      if (diff) {
        // Properties set one by one (the whole style they change is still counted: never less).
        for (const [property, set] of Object.entries(value)) {
          const chars = set === false || set === null ? null : property.length + ruleChars(set);
          this.setAttribute(held, `${STYLE_PROPERTY}${property}`, chars);
        }
      } else {
        this.setAttribute(held, name, value === null || value === undefined ? null : name.length + length(value));
      }
    }
  }

  /** `root` and all below it (iteratively: a page may nest deeply). An id the mirror already
   * knows names the new node from now on; the node it named stays in the page, with its children
   * (rrweb's replayer builds the new node and leaves the old one where it is: a node moved is
   * removed first, as rrweb's recorder sends it). */
  private add(root: unknown, parentId: number | null): void {
    const stack: [unknown, Held | null][] = [[root, parentId === null ? null : this.held.get(parentId) ?? null]];
    while (stack.length) {
      const [node, parent] = stack.pop() as [Serialized | null, Held | null];
      if (!node || typeof node !== "object" || typeof node.id !== "number") continue;
      const id = node.id;
      const { attributes, textContent } = node as { attributes?: unknown; textContent?: unknown };
      const before = this.held.get(id);
      const from = before && (before.kids?.size || before.from) ? before : null;
      const held: Held = { id, parent, depth: parent ? parent.depth + 1 : 0, kids: null, from, text: length(textContent), attrs: null };
      if (held.depth > this.deepestAdded) this.deepestAdded = held.depth;
      if (from) this.moveDepths(from, held.depth);
      this.nodes++;
      this.nodeChars += held.text;
      this.held.set(id, held);
      if (attributes && typeof attributes === "object") {
        for (const [name, value] of Object.entries(attributes)) this.setAttribute(held, name, name.length + length(value));
      }
      if (parent) (parent.kids ?? (parent.kids = new Set())).add(held);
      if (Array.isArray(node.childNodes)) for (const child of node.childNodes) stack.push([child, held]);
    }
  }

  /** A node added again without its removal may be moved by rrweb's replayer, children and all
   * (when the page describes it as before, rrweb reuses it): its subtree counts as deep as it
   * would be at the new place (and stays counted where it was, in case rrweb built a new one).
   * Each such walk is work the page makes the console do: `moved` counts it. */
  private moveDepths(top: Held, depth: number): void {
    const stack: [Held, number][] = [[top, depth]];
    while (stack.length) {
      const [held, at] = stack.pop() as [Held, number];
      this.movedNodes++;
      if (at > held.depth) held.depth = at;
      if (held.depth > this.deepestAdded) this.deepestAdded = held.depth;
      if (held.from) stack.push([held.from, held.depth]);
      if (held.kids) for (const child of held.kids) stack.push([child, held.depth + 1]);
    }
  }

  /** A removal, as rrweb's replayer applies it: nothing if it does not know the node or the
   * parent named; the node and its subtree if that parent is the node's; otherwise the mirror
   * forgets their ids but the page keeps them (rrweb's removeChild fails): still counted. */
  private remove(id: number, parentId: unknown): void {
    const top = this.held.get(id);
    const parent = typeof parentId === "number" ? this.held.get(parentId) : undefined;
    if (!top || !parent) return;
    const gone = top.parent === parent;
    if (gone) parent.kids?.delete(top);
    const stack = [top];
    while (stack.length) {
      const held = stack.pop() as Held;
      if (this.held.get(held.id) === held) this.held.delete(held.id);
      if (gone) {
        this.nodes--;
        this.nodeChars -= held.text;
        if (held.attrs) for (const chars of held.attrs.values()) this.nodeChars -= chars;
      }
      if (held.kids) for (const child of held.kids) stack.push(child);
    }
  }
}

/** Whether the mirror may take each next event of a page. */
export class MirrorBudget {
  private readonly count = new NodeCount();

  constructor(private readonly maxNodes = MAX_MIRROR_NODES, private readonly maxChars = MAX_MIRROR_CHARS,
    private readonly maxDepth = MAX_MIRROR_DEPTH) {}

  /** False: with `event`, the page is beyond a bound (a full snapshot that fits starts afresh). */
  admit(event: unknown): boolean {
    this.count.apply(event);
    return this.count.size <= this.maxNodes && this.count.chars <= this.maxChars && this.count.deepest <= this.maxDepth &&
      this.count.moved <= this.maxNodes;
  }
}

/** Characters of CSS a page may have the mirror parse again per STYLE_WINDOW_MS: texts changed in
 * or added to a `<style>` (rrweb's replayer rewrites each with PostCSS for replay, far slower
 * than the browser's own parser) and whole `style` attributes set again. A page that rewrote a
 * large style text over and over kept the agent's console busy without end. An honest page's
 * changes (an animation's properties, set one by one, which are not counted; a theme switch) are
 * a few tens of KiB a second; a full snapshot is counted apart (SNAPSHOT_STYLE_CHARS). */
export const STYLE_REWRITE_CHARS = 512 * 1024;
/** A single style text (or sheet) larger than STYLE_REWRITE_CHARS is parsed when nothing is owed
 * (a route's CSS chunk, a theme: an honest page's is rarely over a MiB), up to this size; what it
 * is over the window's budget is owed by the windows after it, so that the mirror's rate stays
 * STYLE_REWRITE_CHARS a window. Beyond this size, always held. */
export const OVERSIZED_STYLE_CHARS = 2 * 1024 * 1024;
/** Style rules a page may have the mirror shift per STYLE_WINDOW_MS: a rule inserted (or removed)
 * at `index` in a sheet of `n` rules moves the `n - index` after it. A page that inserted rules at
 * the front of a sheet of a hundred thousand, again and again, froze the console; an honest page
 * (CSS-in-JS) appends its rules, shifting none. */
export const RULE_SHIFTS = 50_000_000;
/** Characters of CSS parsed again a recording may have the auditor's player do in all (beside
 * STYLE_REWRITE_CHARS a window of its time): a seek plays every event before the position at
 * once, so a recording that used its budget every window for an hour (or stamped its events a
 * window apart) froze the auditor's tab for minutes on a seek to its end. An honest recording's
 * style texts and theme switches are a few MiB. */
export const RECORDING_STYLE_CHARS = 8 * 1024 * 1024;
/** Rules a recording may have the player shift in all (RULE_SHIFTS, for the same reason). */
export const RECORDING_RULE_SHIFTS = 10 * RULE_SHIFTS;
/** Characters of style texts and whole styles held that are kept to be given once a window takes
 * them (StyleBudget.defer): a page's few changing styles, several windows' worth. Beyond (and
 * beyond MAX_DEFERRED_STYLES of them), the oldest are not given later: the styles stay behind
 * until the page's next full snapshot. */
export const DEFERRED_STYLE_CHARS = 4 * STYLE_REWRITE_CHARS;
/** Nodes whose held style text or whole style is kept to be given later, at most. */
export const MAX_DEFERRED_STYLES = 1_000;
/** The window both style budgets are counted in. */
export const STYLE_WINDOW_MS = 10_000;

/** A style text, or a whole attribute (`style`), held: its node, and its latest value. */
interface Deferred {
  id: number;
  attribute: string | null;
  value: string;
}

/**
 * How much style work a page's events make the mirror do (STYLE_REWRITE_CHARS, RULE_SHIFTS), in
 * windows of STYLE_WINDOW_MS on the console's clock. Beyond either bound, style rewrites and rule
 * changes are held (dropped: the neutraliser, ./assets.ts, takes them out of the event) until the
 * window ends, and `takeHeld` says so once, so that the agent is told that the mirror's styles
 * are behind the page's. Nothing else in the event is held. A style text or whole style held is
 * kept (its latest value by node, `defer`) and given again once a window starts
 * (`takeDeferred`): the mirror's styles catch up without waiting for the page's next full
 * snapshot. A rule change held cannot be given later (each names an index in the sheet as it
 * was): the styles stay behind until the next full snapshot (`behind`).
 */
export class StyleBudget {
  private windowStart = Number.NEGATIVE_INFINITY;
  private chars = 0;
  private shifts = 0;
  private held = false;
  private totalChars = 0;
  private totalShifts = 0;
  private readonly deferred = new Map<string, Deferred>();
  private deferredChars = 0;
  /** A change held that cannot be given later (a rule's, a carried sheet's) since the page's
   * last full snapshot. */
  private lost = false;

  /** `maxTotalChars`, `maxTotalShifts`: bounds over all windows (a recording's: RECORDING_STYLE_CHARS,
   * RECORDING_RULE_SHIFTS), none by default (the live mirror's windows pass in real time). */
  constructor(private readonly now: () => number, private readonly maxChars = STYLE_REWRITE_CHARS,
    private readonly maxShifts = RULE_SHIFTS, private readonly windowMs = STYLE_WINDOW_MS,
    private readonly maxTotalChars = Number.POSITIVE_INFINITY, private readonly maxTotalShifts = Number.POSITIVE_INFINITY,
    private readonly maxOversized = OVERSIZED_STYLE_CHARS) {}

  private roll(): void {
    const now = this.now();
    // A clock that goes back (or is not a number) starts a window too: never a window without end.
    if (!(now >= this.windowStart)) {
      this.windowStart = Number.isFinite(now) ? now : 0;
      this.chars = 0;
      this.shifts = 0;
    } else if (now >= this.windowStart + this.windowMs) {
      // Each window passed pays STYLE_REWRITE_CHARS of what an oversized text left owed.
      const windows = Math.floor((now - this.windowStart) / this.windowMs);
      this.chars = Math.max(0, this.chars - windows * this.maxChars);
      this.windowStart = Number.isFinite(now) ? now : 0;
      this.shifts = 0;
    }
  }

  /** Whether the mirror may parse `chars` characters of CSS again now (counted if so). */
  rewrite(chars: number): boolean {
    this.roll();
    // Within the window's budget, or one text over it when nothing is owed (up to maxOversized).
    const fits = this.chars + chars <= this.maxChars || (this.chars === 0 && chars <= this.maxOversized);
    if (!fits || this.totalChars + chars > this.maxTotalChars) return this.hold();
    this.chars += chars;
    this.totalChars += chars;
    return true;
  }

  /** Whether the mirror may shift `shifts` rules now (counted if so). */
  shift(shifts: number): boolean {
    this.roll();
    if (this.shifts + shifts > this.maxShifts || this.totalShifts + shifts > this.maxTotalShifts) return this.hold();
    this.shifts += shifts;
    this.totalShifts += shifts;
    return true;
  }

  private hold(): false {
    this.held = true;
    return false;
  }

  /** Whether anything was held since the last call. */
  takeHeld(): boolean {
    const held = this.held;
    this.held = false;
    return held;
  }

  /** A style text (`attribute` null) or whole attribute of node `id` was held: its latest value
   * is given again once a window takes it (`takeDeferred`). */
  defer(id: unknown, attribute: string | null, value: string): void {
    // One no window ever takes (beyond OVERSIZED_STYLE_CHARS, or the recording's whole budget): lost.
    if (typeof id !== "number" || value.length > this.maxOversized || this.totalChars + value.length > this.maxTotalChars) return this.lose();
    const key = `${id}\u0000${attribute ?? ""}`;
    this.forget(key); // the newest last: given first (takeDeferred)
    this.deferred.set(key, { id, attribute, value });
    this.deferredChars += value.length;
    // Kept within DEFERRED_STYLE_CHARS and MAX_DEFERRED_STYLES: the oldest beyond are lost.
    while (this.deferredChars > DEFERRED_STYLE_CHARS || this.deferred.size > MAX_DEFERRED_STYLES) {
      const oldest = this.deferred.keys().next().value as string;
      this.forget(oldest);
      this.lose();
    }
  }

  /** A newer value of node `id`'s text (`attribute` null) or attribute was shown: one held is
   * older. `partly`: it changed only part of it (a style's properties), which one held would undo
   * if given later: dropped, and the styles stay behind until the next full snapshot. */
  shown(id: unknown, attribute: string | null, partly = false): void {
    if (!this.deferred.size || typeof id !== "number") return;
    if (this.forget(`${id}\u0000${attribute ?? ""}`) && partly) this.lose();
  }

  /** Drop what is kept under `key`; whether there was something. */
  private forget(key: string): boolean {
    const held = this.deferred.get(key);
    if (!held) return false;
    this.deferred.delete(key);
    this.deferredChars -= held.value.length;
    return true;
  }

  /** Node `id` was removed from the page: what was held of it shows nowhere. */
  removed(id: unknown): void {
    if (!this.deferred.size || typeof id !== "number") return;
    this.forget(`${id}\u0000`);
    this.forget(`${id}\u0000style`);
  }

  /** A change held that cannot be given later: the styles are behind until the next full snapshot. */
  lose(): void {
    this.lost = true;
  }

  /** The page's full snapshot: its styles as they are; nothing held of the page before it. */
  reset(): void {
    this.deferred.clear();
    this.deferredChars = 0;
    this.lost = false;
  }

  /** Whether the mirror's styles are behind the page's: changes held and not given since. */
  get behind(): boolean {
    return this.lost || this.deferred.size > 0;
  }

  /** When (on the clock) the next window starts, while changes are kept to be given; else null. */
  get nextWindow(): number | null {
    return this.deferred.size ? this.windowStart + this.windowMs : null;
  }

  /** The changes kept, as one mutation event for the neutraliser (which counts them again, and
   * holds again what does not fit) and then the mirror, once a window after the one that held
   * them started; else null. */
  takeDeferred(): { type: number; timestamp: number; data: Record<string, unknown> } | null {
    if (!this.deferred.size) return null;
    const now = this.now();
    if (!(now >= this.windowStart + this.windowMs)) return null;
    const texts: { id: number; value: string }[] = [];
    const attributes: { id: number; attributes: Record<string, string> }[] = [];
    // The newest first: what a window does not take is held again, the oldest values.
    for (const { id, attribute, value } of [...this.deferred.values()].reverse()) {
      if (attribute === null) texts.push({ id, value });
      else attributes.push({ id, attributes: { [attribute]: value } });
    }
    this.deferred.clear();
    this.deferredChars = 0;
    return { type: INCREMENTAL_SNAPSHOT, timestamp: now, data: { source: MUTATION, texts, attributes, adds: [], removes: [] } };
  }
}

/** Characters of CSS in full snapshots a page may have the mirror build per STYLE_WINDOW_MS (beside
 * STYLE_REWRITE_CHARS for its changes): each full snapshot rebuilds the whole mirror, and rrweb's
 * replayer rewrites every style text in it with PostCSS (about 1 MB a second in Node on the
 * 2-core test machine, half that in a busy Chromium). A page (or its script) that made the SDK
 * send one of several MB of CSS again and again (a mask class added late, ../shared/masking.ts,
 * onMarkedLate; a backlog; a page shown again) froze the agent's tab for good. An honest page's
 * snapshots (the first page, each page it opens, sharing resumed) carry its CSS, a few hundred
 * KiB at most for most sites: several a window fit. */
export const SNAPSHOT_STYLE_CHARS = 2 * 1024 * 1024;
/** Nodes of full snapshots a page may have the mirror build per STYLE_WINDOW_MS (most pages have
 * a few thousand; a large table tens of thousands). */
export const SNAPSHOT_NODES = 200_000;
/** Events kept behind a full snapshot held for the window (they apply to its page, and go with
 * it): an honest page sends a few hundred in the seconds a snapshot may wait. Beyond, the held
 * snapshot and its events are dropped, and the mirror waits for the page's next full snapshot. */
export const MAX_HELD_EVENTS = 20_000;

/** What a full snapshot makes the mirror build: its nodes, and the characters of CSS rrweb's
 * replayer rewrites for replay (texts flagged as style or in a `<style>`, sheets carried in
 * `_cssText`). Iterative: a page may nest deeply. */
export function snapshotCost(event: unknown): { chars: number; nodes: number } {
  let chars = 0;
  let nodes = 0;
  const root = (event as { data?: { node?: unknown } } | null)?.data?.node;
  const stack: [unknown, boolean][] = [[root, false]];
  while (stack.length) {
    const [item, inStyle] = stack.pop() as [unknown, boolean];
    if (!item || typeof item !== "object") continue;
    const node = item as { tagName?: unknown; isStyle?: unknown; textContent?: unknown; attributes?: unknown; childNodes?: unknown };
    nodes++;
    if ((inStyle || node.isStyle) && typeof node.textContent === "string") chars += node.textContent.length;
    const cssText = (node.attributes as { _cssText?: unknown } | null | undefined)?._cssText;
    if (typeof cssText === "string") chars += cssText.length;
    const tag = typeof node.tagName === "string" ? node.tagName.toLowerCase() : "";
    const style = /(^|:)(style|link)$/.test(tag);
    if (Array.isArray(node.childNodes)) for (const child of node.childNodes) stack.push([child, style]);
  }
  return { chars, nodes };
}

/**
 * Whether each full snapshot of a page may be built in the mirror now (SNAPSHOT_STYLE_CHARS and
 * SNAPSHOT_NODES per STYLE_WINDOW_MS, paid back continuously on the given clock: the console's,
 * or the recording's time in the auditor's player). A snapshot goes at once when it fits what is
 * left of the allowance, or when nothing is owed (one larger than the allowance, as a first page
 * of much CSS: what it is over is owed by the windows after it). Beyond, it is held, with every
 * event after it (they apply to its page), until the allowance takes it (`due`, `release`); a
 * newer full snapshot replaces a held one and what followed it, so the mirror shows the page's
 * latest, never an older one after it. Nothing before a held snapshot is held.
 */
export class SnapshotGate {
  private owedChars = 0;
  private owedNodes = 0;
  private paidAt = Number.NEGATIVE_INFINITY;
  private held: unknown[] | null = null;
  private heldCost = { chars: 0, nodes: 0 };
  /** The held snapshot was dropped (MAX_HELD_EVENTS): events wait for the page's next one. */
  private lost = false;
  private told = false;

  constructor(private readonly now: () => number, private readonly maxChars = SNAPSHOT_STYLE_CHARS,
    private readonly maxNodes = SNAPSHOT_NODES, private readonly windowMs = STYLE_WINDOW_MS,
    private readonly maxHeld = MAX_HELD_EVENTS) {}

  /** Whether the mirror is behind the page: a full snapshot held (or dropped, and none since). */
  get behind(): boolean {
    return this.held !== null || this.lost;
  }

  /** When (on the clock) the held snapshot may be built; null when none is held. */
  get due(): number | null {
    if (!this.held) return null;
    this.pay();
    const { chars, nodes } = this.heldCost;
    // Within what is left of the allowance, or (larger than it) once nothing is owed.
    const fitsAllowance = chars <= this.maxChars && nodes <= this.maxNodes;
    const charsWait = Math.max(0, this.owedChars - (fitsAllowance ? this.maxChars - chars : 0)) / this.maxChars;
    const nodesWait = Math.max(0, this.owedNodes - (fitsAllowance ? this.maxNodes - nodes : 0)) / this.maxNodes;
    // (Whole milliseconds, not a hair early: at `due`, `release` takes it.)
    return this.paidAt + Math.max(0, Math.ceil(Math.max(charsWait, nodesWait) * this.windowMs - 1e-6));
  }

  /** The events to give the mirror now, in order, for `event`: itself; or none, while a full
   * snapshot is held (it waits with it); or, for a full snapshot the allowance takes, itself. */
  pass(event: unknown): unknown[] {
    const type = (event as { type?: unknown } | null)?.type;
    if (type === FULL_SNAPSHOT) {
      this.lost = false;
      this.held = [event]; // one held before, and what followed it, are older than this page
      this.heldCost = snapshotCost(event);
      return this.release();
    }
    if (this.lost) return [];
    if (!this.held) return [event];
    this.held.push(event);
    if (this.held.length > this.maxHeld) {
      this.held = null;
      this.lost = true;
      return [];
    }
    return this.release();
  }

  /** The held snapshot and the events after it, once the allowance takes it (else none). */
  release(): unknown[] {
    const held = this.held;
    if (!held) return [];
    const due = this.due as number;
    if (!(this.now() >= due)) {
      this.told = true;
      return [];
    }
    this.owedChars += this.heldCost.chars;
    this.owedNodes += this.heldCost.nodes;
    this.held = null;
    return held;
  }

  /** Whether a full snapshot was held since the last call. */
  takeHeld(): boolean {
    const told = this.told;
    this.told = false;
    return told;
  }

  /** A new mirror (a private page, a page too large): what is held is dropped; what is owed stays. */
  clear(): void {
    this.held = null;
    this.lost = false;
  }

  /** Pay back the allowance for the time passed since the last look. */
  private pay(): void {
    const now = this.now();
    // A clock that goes back (or is no number) pays nothing: never a debt forgiven early.
    if (Number.isFinite(now) && now > this.paidAt) {
      const windows = Number.isFinite(this.paidAt) ? (now - this.paidAt) / this.windowMs : Number.POSITIVE_INFINITY;
      this.owedChars = Math.max(0, this.owedChars - windows * this.maxChars);
      this.owedNodes = Math.max(0, this.owedNodes - windows * this.maxNodes);
      this.paidAt = now;
    } else if (!Number.isFinite(this.paidAt)) {
      this.paidAt = Number.isFinite(now) ? now : 0;
    }
  }
}
