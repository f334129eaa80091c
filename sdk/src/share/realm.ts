/**
 * The browser's own functions for the widget's few security decisions, taken from a fresh realm
 * (an empty frame made once as the SDK loads, and removed at once) rather than from the page's
 * globals and prototypes, which a script of the page's that ran first may have replaced
 * (docs/threat-model.md, "A page script that ran first"):
 *
 * - whether a click on one of the widget's questions is the customer's own: a page that wrapped
 *   `addEventListener` before the SDK holds the widget's listener, and called it with an object
 *   saying `isTrusted: true` (or with a real click of the customer's elsewhere on the page) to
 *   answer Allow for the customer;
 * - what the cover watch reports: a page that replaced `IntersectionObserver` (or its entries'
 *   `isVisible`) had it report Stop sharing shown under its cover.
 *
 * The getters of a fresh realm check that what they are given is the browser's own object
 * (an Event, an IntersectionObserverEntry): an object of the page's, or a Proxy, throws. The
 * frame fires no `load` as it is added (a page's listener for it patched the realm before it was
 * read). A page that targets Tandem itself, replacing the frame the SDK makes here (the page's
 * own `append`, `contentWindow` the SDK calls, the functions inside) before the SDK reads them,
 * is not ruled out: its own script on its own page is the site's. Where no frame can be made,
 * the page's own functions, as they are now, are used.
 */

type Getter = (this: unknown) => unknown;

interface Realm {
  apply: typeof Reflect.apply;
  now: Getter | null;
  performance: Getter | null;
  timeline: Getter | null;
  timelineTime: Getter | null;
  visibilityState: Getter | null;
  currentTarget: Getter;
  detail: Getter;
  entryTarget: Getter;
  entryTime: Getter;
  isIntersecting: Getter;
  isVisible: Getter | null;
  setInterval: ((this: unknown, run: () => void, ms: number) => unknown) | null;
  clearInterval: ((this: unknown, id: unknown) => void) | null;
  requestAnimationFrame: ((this: unknown, run: () => void) => unknown) | null;
  /** Taken from a fresh realm (not the page's own functions, where none could be made). */
  fresh: boolean;
}

/** Whether `fn` is a function of the browser's, as `win`'s own functions say (a script's
 * function shows its source to `Function.prototype.toString`); read with `win`'s only (the
 * page's `RegExp` or `Reflect`, replaced, cannot make it say no, and the widget fall back on
 * the page's observer). */
function native(win: typeof globalThis, fn: unknown): boolean {
  try {
    const apply = win.Reflect.apply;
    const source = apply(win.Function.prototype.toString, fn, []);
    const pattern = new win.RegExp("\\{\\s*\\[native code\\]\\s*\\}\\s*$");
    return typeof fn === "function" && apply(win.RegExp.prototype.test, pattern, [source]) === true;
  } catch {
    return false;
  }
}

function take(win: typeof globalThis, fresh: boolean): Realm | null {
  const describe = win.Object?.getOwnPropertyDescriptor;
  if (typeof describe !== "function") return null;
  const getter = (proto: object | undefined, name: string): Getter | null => {
    const get = proto ? describe(proto, name)?.get : undefined;
    return typeof get === "function" ? (get as Getter) : null;
  };
  const currentTarget = getter(win.Event?.prototype, "currentTarget");
  const detail = getter(win.UIEvent?.prototype, "detail");
  const entry = win.IntersectionObserverEntry?.prototype;
  const entryTarget = getter(entry, "target");
  const entryTime = getter(entry, "time");
  const isIntersecting = getter(entry, "isIntersecting");
  const apply = win.Reflect?.apply;
  const now = win.Performance?.prototype.now;
  if (!currentTarget || !detail || typeof apply !== "function") return null;
  // Without an occlusion test (Firefox, Safari) the entry's getters are not asked.
  const noEntry = () => undefined;
  return {
    apply, currentTarget, detail, now: typeof now === "function" ? (now as Getter) : null,
    visibilityState: getter(win.Document?.prototype, "visibilityState"),
    // The window's own `performance` (a [Global]'s attribute: on the window itself), and the
    // document's animation clock, which a page's fake timers leave alone.
    performance: getter(win, "performance"),
    timeline: getter(win.Document?.prototype, "timeline"),
    timelineTime: getter(win.AnimationTimeline?.prototype, "currentTime"),
    entryTarget: entryTarget ?? noEntry, entryTime: entryTime ?? noEntry, isIntersecting: isIntersecting ?? noEntry,
    isVisible: getter(entry, "isVisible"),
    // The window's own timers, set on the page's window (timers a page replaced or stopped, as
    // fake timers do, never ran the session's looks).
    setInterval: typeof win.setInterval === "function" ? (win.setInterval as Realm["setInterval"]) : null,
    clearInterval: typeof win.clearInterval === "function" ? (win.clearInterval as Realm["clearInterval"]) : null,
    // The window's own frame callbacks, set on the page's window (browserFrame()); not fake
    // timers' (Playwright's clock, installed in every frame, the fresh one too: in a frame
    // removed, theirs never run).
    requestAnimationFrame: native(win, win.requestAnimationFrame) ? (win.requestAnimationFrame as Realm["requestAnimationFrame"]) : null,
    fresh,
  };
}

function freshRealm(): Realm | null {
  if (typeof document === "undefined") return null;
  try {
    const frame = document.createElement("iframe");
    frame.setAttribute("aria-hidden", "true");
    // A frame with no document to load fires `load` as it is added, before the next line here: a
    // page's listener for it patched the fresh realm before it was read (the occlusion test said
    // Stop sharing shown under its cover). One with a document of its own to load (`srcdoc`,
    // loaded in a later task) fires none now, and is removed before it loads.
    frame.setAttribute("srcdoc", "");
    frame.style.setProperty("display", "none", "important");
    document.documentElement.append(frame);
    try {
      const win = frame.contentWindow as (typeof globalThis) | null;
      // Another realm's, not the page's own window handed back.
      return win && win !== (globalThis as unknown) && win.Event !== Event ? take(win, true) : null;
    } finally {
      frame.remove();
    }
  } catch {
    return null;
  }
}

const realm: Realm | null = freshRealm() ?? (typeof document === "undefined" ? null : take(globalThis, false));

function read(get: Getter | null | undefined, object: unknown): { ok: true; value: unknown } | { ok: false } {
  if (!realm || !get) return { ok: false };
  try {
    return { ok: true, value: realm.apply(get, object, []) };
  } catch {
    return { ok: false }; // not the browser's own object
  }
}

/** Whether `event` is the customer's own click (or key press) on `target`, as it is dispatched
 * there: a real Event, trusted, whose current target is `target`. `detail` 0: from the keyboard
 * or assistive technology; null when it is no such click. */
export function customersClick(event: Event, target: EventTarget): { detail: number } | null {
  const current = read(realm?.currentTarget, event);
  if (!current.ok || current.value !== target) return null;
  // A real Event (the getter above checked): `isTrusted` is its own unforgeable property, which
  // no page can redefine.
  if (event.isTrusted !== true) return null;
  const detail = read(realm?.detail, event);
  return { detail: detail.ok && typeof detail.value === "number" ? detail.value : 0 };
}

/** What a report of the cover watch says of `target`, read with the browser's own getters: null
 * when it is not the browser's own report on `target` (an object of the page's, another
 * element's report), else whether it is in view and visible (unknown: undefined) and when it was
 * made (the report's `time`, on the performance clock). */
export function coverReport(entry: IntersectionObserverEntry, target: Element):
  { intersecting: boolean; visible: boolean | undefined; time: number } | null {
  const of = read(realm?.entryTarget, entry);
  if (!of.ok || of.value !== target) return null;
  const intersecting = read(realm?.isIntersecting, entry);
  const time = read(realm?.entryTime, entry);
  if (!intersecting.ok || !time.ok || typeof time.value !== "number") return null;
  const visible = realm?.isVisible ? read(realm.isVisible, entry) : { ok: true as const, value: undefined };
  if (!visible.ok) return null;
  return { intersecting: intersecting.value === true, visible: typeof visible.value === "boolean" ? visible.value : undefined, time: time.value };
}

/** Whether this browser has the occlusion test (IntersectionObserver v2's `isVisible`), as the
 * browser says, not as the page's prototype does (a page that deleted it turned the cover watch
 * off). */
export function hasOcclusionTest(): boolean {
  return realm ? realm.isVisible !== null : typeof IntersectionObserverEntry === "function" && "isVisible" in IntersectionObserverEntry.prototype;
}

/** Now on this page's performance clock (a cover report's `time` is on it), read with the
 * browser's own functions, from the browser's own `performance` of this window: a page's fake
 * timers (Playwright's `page.clock`, Sinon's) put another object in its place, whose `now()` ran
 * ahead of the reports, and every report was "made before" the question (sharing never went
 * live). Where that cannot be read (the fake timers installed in every frame, the fresh one too),
 * the start of the frame last drawn (the document's animation clock), a little before now; null
 * where neither can be read (no report is then set against a time). */
export function pageNow(): number | null {
  return pageTime()?.time ?? null;
}

/** pageNow(), and whether it is the performance clock itself (`exact`), not the animation clock
 * standing in for it (which, read at a frame, says when that frame was due: a moment before a
 * report made at the frame before it, on a busy browser). */
export function pageTime(): { time: number; exact: boolean } | null {
  const own = read(realm?.performance, globalThis);
  const now = own.ok ? read(realm?.now, own.value) : own;
  if (now.ok && typeof now.value === "number") return { time: now.value, exact: true };
  const timeline = typeof document === "undefined" ? { ok: false as const } : read(realm?.timeline, document);
  const frame = timeline.ok ? read(realm?.timelineTime, timeline.value) : timeline;
  return frame.ok && typeof frame.value === "number" ? { time: frame.value, exact: false } : null;
}

/** Whether browserFrame() can be set (a fresh realm was made, with its frame callbacks). */
export function hasBrowserFrames(): boolean {
  return !!realm?.fresh && realm.requestAnimationFrame !== null && typeof window !== "undefined";
}

/** Run `run` as the next frame of this page's window is drawn, before it is (its frame
 * callbacks), with the browser's own `requestAnimationFrame` from the fresh realm, set on the
 * page's window: no wrapper of the page's sees `run` or calls it, nor holds it back. False where
 * there is no fresh realm or it cannot be set (`run` is then never called). */
export function browserFrame(run: () => void): boolean {
  if (!hasBrowserFrames() || !realm?.requestAnimationFrame) return false;
  try {
    realm.apply(realm.requestAnimationFrame, globalThis, [run]);
    return true;
  } catch {
    return false;
  }
}

/** Whether this page is shown (its tab in front), as the browser says: a page that defined its
 * own `document.visibilityState` ("hidden") had the page's changes sent without waiting for the
 * cover watch. */
export function pageShown(): boolean {
  const state = read(realm?.visibilityState, typeof document === "undefined" ? null : document);
  return state.ok ? state.value === "visible" : document.visibilityState === "visible";
}

/** Run `run` every `ms` with the browser's own timer of this page's window (from the fresh realm,
 * set on the page's window: the page's `setInterval` replaced, or stopped by its fake timers,
 * leaves it alone); null where there is no fresh realm, or it cannot be set (the call then never
 * runs `run`). Where the fresh realm's own timers were replaced too (fake timers put in every
 * frame, as Playwright's clock does), it is theirs: the page's own clock then drives it. */
export function browserEvery(ms: number, run: () => void): (() => void) | null {
  if (!realm?.setInterval || !realm.clearInterval || typeof window === "undefined") return null;
  const set = realm.setInterval;
  const clear = realm.clearInterval;
  try {
    const id = realm.apply(set, globalThis, [run, ms]);
    return () => {
      try {
        realm.apply(clear, globalThis, [id]);
      } catch {
        // nothing set
      }
    };
  } catch {
    return null;
  }
}
