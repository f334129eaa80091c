/**
 * Private pages inside frames (docs/privacy.md, "pages"): rrweb records the documents of
 * same-origin frames as part of the page, so a shared page that frames a page the policies keep
 * private (`<iframe src="/private-wallet">`) would send it. The session checks the top page's
 * address itself (session.ts); this checks every frame document a recorded event touches, by its
 * live address, when the event is recorded:
 * - a frame document being attached (a frame that loaded or navigated) arrives empty: the agent
 *   sees an empty frame in its place, and the frame's earlier content is gone from the mirror;
 * - any other change, input or style of a node inside such a document is dropped;
 * - a frame inside a private frame is private too; and anything that cannot be read (a frame
 *   that is gone, an address that does not parse) counts as private (fails closed).
 * A frame that navigates within its document (`history.pushState`) is checked again on its
 * next event, by the address it has then. A frame element's `src` that names a private page is
 * sent as about:blank (the path alone can tell as much).
 */

import { FULL_SNAPSHOT, INCREMENTAL_SNAPSHOT, MUTATION } from "../shared/rrweb-events.ts";

/** rrweb's serialized Document node (NodeType.Document). */
const SERIALIZED_DOCUMENT = 0;

type Getter = (self: unknown) => unknown;

/** A getter of the top page's prototypes (a frame's page can shadow what its own objects say). */
function getter(owner: string, property: string): Getter {
  let found: (() => unknown) | undefined;
  return (self) => {
    if (!found) {
      // On the interface itself in browsers; some DOM implementations define it further up.
      let proto: object | null | undefined = (globalThis as unknown as Record<string, { prototype: object } | undefined>)[owner]?.prototype;
      for (; proto && !found; proto = Object.getPrototypeOf(proto) as object | null) {
        found = Object.getOwnPropertyDescriptor(proto, property)?.get as (() => unknown) | undefined;
      }
      if (!found) throw new TypeError(`${owner}.${property} has no getter`);
    }
    return found.call(self);
  };
}

const ownerDocumentOf = getter("Node", "ownerDocument");
const nodeTypeOf = getter("Node", "nodeType");
const defaultViewOf = getter("Document", "defaultView");
const urlOf = getter("Document", "URL");
/** Window's attributes live on each window itself ([Global]), not on its prototype: the top
 * window's own getter, which a framed page's script cannot replace. */
let frameElementGetter: (() => unknown) | undefined;
function frameElementOf(view: unknown): unknown {
  frameElementGetter ??= Object.getOwnPropertyDescriptor(globalThis, "frameElement")?.get as (() => unknown) | undefined;
  if (!frameElementGetter) throw new TypeError("Window.frameElement has no getter");
  return frameElementGetter.call(view);
}

const DOCUMENT_NODE = 9;

/**
 * Whether `node` (a live node, or null when unknown) lies in a frame document the policies keep
 * private, or in a frame inside one. Nodes of `top` (the page itself) are not: the session
 * decides about the top page. Never throws: unreadable counts as private.
 */
export function inPrivateFrame(node: unknown, top: Document, isPrivate: (url: URL) => boolean): boolean {
  try {
    if (node === null || typeof node !== "object") return true;
    let doc = (nodeTypeOf(node) === DOCUMENT_NODE ? node : ownerDocumentOf(node)) as Document | null;
    // Bounded: frames nest, but never hundreds deep in a real page.
    for (let depth = 0; depth < 100; depth++) {
      if (!doc) return true;
      if (doc === top) return false;
      const href = String(urlOf(doc));
      // about:blank and about:srcdoc frames are the framing page's own content: judged by it.
      if (!/^about:/i.test(href) && isPrivate(new URL(href))) return true;
      const view = defaultViewOf(doc);
      const frame = view ? frameElementOf(view) : null;
      if (!frame) return true; // detached, or framed by a page we cannot see
      doc = ownerDocumentOf(frame) as Document | null;
    }
    return true;
  } catch {
    return true;
  }
}

interface Add { parentId?: unknown; node?: { type?: unknown; id?: unknown; childNodes?: unknown } }

interface Serialized { type?: unknown; id?: unknown; tagName?: unknown; attributes?: unknown; childNodes?: unknown }

const SERIALIZED_ELEMENT = 2;
const FRAME_TAGS = new Set(["iframe", "frame"]);
const localNameOf = getter("Element", "localName");
/** Where a frame's address goes: rrweb drops `src` of a frame it records and keeps it as
 * `rr_src` for one whose document it cannot read (not loaded yet, or another origin). */
const SOURCE_KEYS = ["src", "rr_src"];

/** A frame's `src` that names a private page (its path can say as much as the page): about:blank.
 * One that does not parse counts as private. */
function frameSource(src: string, top: Document, isPrivate: (url: URL) => boolean): string {
  try {
    const url = new URL(src, top.baseURI);
    return /^about:/i.test(url.href) || !isPrivate(url) ? src : "about:blank";
  } catch {
    return "about:blank";
  }
}

/** Every frame element's `src` in a serialized tree, through frameSource. */
function frameSources(root: unknown, top: Document, isPrivate: (url: URL) => boolean): void {
  const stack: unknown[] = [root];
  while (stack.length) {
    const node = stack.pop() as Serialized | null;
    if (!node || typeof node !== "object") continue;
    if (node.type === SERIALIZED_ELEMENT && typeof node.tagName === "string" && FRAME_TAGS.has(node.tagName.toLowerCase()) &&
      node.attributes && typeof node.attributes === "object") {
      const attrs = node.attributes as Record<string, unknown>;
      for (const key of SOURCE_KEYS) if (typeof attrs[key] === "string") attrs[key] = frameSource(attrs[key], top, isPrivate);
    }
    if (Array.isArray(node.childNodes)) stack.push(...(node.childNodes as unknown[]));
  }
}

/**
 * `event` without what private frames hold (see above), or null when nothing of it may go.
 * `lookup` finds the live node for a recorded id (rrweb's mirror). Mutates `event`.
 */
export function withoutPrivateFrames<T>(
  event: T, lookup: (id: number) => unknown, top: Document, isPrivate: (url: URL) => boolean,
): T | null {
  const e = event as { type?: unknown; data?: Record<string, unknown> } | null;
  if (!e || typeof e !== "object") return event;
  const privateId = (id: unknown) => typeof id !== "number" || inPrivateFrame(lookup(id), top, isPrivate);
  if (e.type === FULL_SNAPSHOT) {
    // rrweb attaches frame documents by mutations, after the snapshot; should one be inside it
    // all the same, it is checked as those are.
    const stack: unknown[] = [e.data?.node];
    while (stack.length) {
      const node = stack.pop() as { type?: unknown; id?: unknown; childNodes?: unknown } | null;
      if (!node || typeof node !== "object" || !Array.isArray(node.childNodes)) continue;
      if (node !== e.data?.node && node.type === SERIALIZED_DOCUMENT && privateId(node.id)) node.childNodes = [];
      else stack.push(...(node.childNodes as unknown[]));
    }
    frameSources(e.data?.node, top, isPrivate);
    return event;
  }
  if (e.type !== INCREMENTAL_SNAPSHOT) return event;
  if (!e.data || typeof e.data !== "object") return null;
  const data = e.data;
  if (data.source !== MUTATION) {
    // Input, scroll, selection, style rules...: those that name a node go by its document.
    return data.id === undefined || !privateId(data.id) ? event : null;
  }
  if (Array.isArray(data.adds)) {
    data.adds = (data.adds as Add[]).filter((add) => {
      const node = add?.node;
      if (node && node.type === SERIALIZED_DOCUMENT) {
        // A frame's document attached: the frame is shown empty when that document is private.
        if (privateId(node.id) || privateId(add.parentId)) node.childNodes = [];
        return true;
      }
      return !privateId(add?.parentId);
    });
    for (const add of data.adds as Add[]) frameSources(add?.node, top, isPrivate);
  }
  for (const key of ["texts", "attributes"]) {
    if (Array.isArray(data[key])) data[key] = (data[key] as { id?: unknown }[]).filter((change) => !privateId(change?.id));
  }
  for (const change of (Array.isArray(data.attributes) ? data.attributes : []) as { id?: unknown; attributes?: unknown }[]) {
    const attrs = change?.attributes as Record<string, unknown> | undefined;
    if (!attrs || !SOURCE_KEYS.some((key) => typeof attrs[key] === "string") || typeof change.id !== "number") continue;
    let frame = true; // unknown: treated as a frame (its src checked)
    try {
      frame = FRAME_TAGS.has(String(localNameOf(lookup(change.id))).toLowerCase());
    } catch {
      // not an element we can read
    }
    if (!frame) continue;
    for (const key of SOURCE_KEYS) if (typeof attrs[key] === "string") attrs[key] = frameSource(attrs[key] as string, top, isPrivate);
  }
  return event;
}

/**
 * A frame that turns private in place (its page calls `history.pushState` or `replaceState` onto
 * an address the policies keep private): nothing new of it goes (withoutPrivateFrames judges
 * each event by the live address), but what it showed before stayed in the agent's mirror. This
 * remembers the frame documents the sent events attached (`sent`), and `check` (on every
 * recorded event and on the session's page watch) answers, for each one now private that was
 * sent with content, an event that attaches it again empty: the mirror empties the frame as it
 * does for a frame that loads a private page. One attached empty (private) that is now shown
 * cannot be filled by events (rrweb sends its content only as it loads): `reshow` is called
 * (the session records afresh, a full snapshot), at most once per RESHOW_MS.
 */
export class FramePrivacyWatch {
  /** By the frame element's id: its document's id, and whether it went with content. */
  private frames = new Map<number, { docId: number; shown: boolean; compatMode: unknown }>();
  private lastReshow = -Infinity;

  constructor(
    private readonly lookup: (id: number) => unknown,
    private readonly top: Document,
    private readonly isPrivate: (url: URL) => boolean,
    private readonly reshow: () => void,
    private readonly now: () => number = () => Date.now(),
  ) {}

  /** Note the frame documents `event` attaches (an event as it is sent, after masking). */
  sent(event: unknown): void {
    const e = event as { type?: unknown; data?: { source?: unknown; adds?: unknown; node?: unknown } } | null;
    if (!e || typeof e !== "object" || !e.data || typeof e.data !== "object") return;
    if (e.type === FULL_SNAPSHOT) {
      this.frames.clear(); // rrweb attaches the frames of a new snapshot afresh
      return;
    }
    if (e.type !== INCREMENTAL_SNAPSHOT || e.data.source !== MUTATION || !Array.isArray(e.data.adds)) return;
    for (const add of e.data.adds as Add[]) {
      const node = add?.node;
      if (!node || node.type !== SERIALIZED_DOCUMENT || typeof node.id !== "number" || typeof add.parentId !== "number") continue;
      const shown = Array.isArray(node.childNodes) && node.childNodes.length > 0;
      this.frames.set(add.parentId, { docId: node.id, shown, compatMode: (node as { compatMode?: unknown }).compatMode });
    }
  }

  /** Events that empty, in the mirror, the frames sent with content whose page is private now. */
  check(): unknown[] {
    const out: unknown[] = [];
    let reshow = false;
    for (const [frameId, frame] of this.frames) {
      const doc = this.lookup(frame.docId);
      if (!this.current(doc, this.lookup(frameId))) {
        this.frames.delete(frameId); // gone, or another document loaded: rrweb attaches that one
        continue;
      }
      const now = inPrivateFrame(doc, this.top, this.isPrivate);
      if (now && frame.shown) {
        frame.shown = false;
        out.push({
          type: INCREMENTAL_SNAPSHOT,
          timestamp: this.now(),
          data: {
            source: MUTATION, removes: [], texts: [], attributes: [], isAttachIframe: true,
            adds: [{ parentId: frameId, nextId: null, node: emptyDocument(frame.docId, frame.compatMode) }],
          },
        });
      } else if (!now && !frame.shown) {
        reshow = true;
      }
    }
    if (reshow && this.now() - this.lastReshow >= RESHOW_MS) {
      this.lastReshow = this.now();
      this.reshow();
    }
    return out;
  }

  /** Whether `doc` is the document `frame` shows now. */
  private current(doc: unknown, frame: unknown): boolean {
    try {
      if (!doc || !frame) return false;
      const view = defaultViewOf(doc);
      return view !== null && view !== undefined && frameElementOf(view) === frame;
    } catch {
      return false;
    }
  }
}

/**
 * An empty serialized document of id `id`. rrweb's replayer keeps a node it already has when
 * the new one looks the same (for a document: its `compatMode`), so this one says another
 * (a standards document's, or none): the replayer builds it afresh, which empties the frame.
 */
function emptyDocument(id: number, compatMode: unknown): Record<string, unknown> {
  return compatMode === undefined
    ? { type: SERIALIZED_DOCUMENT, id, childNodes: [], compatMode: "CSS1Compat" }
    : { type: SERIALIZED_DOCUMENT, id, childNodes: [] };
}

/** How often a frame shown again may make the session record afresh. */
export const RESHOW_MS = 1000;
