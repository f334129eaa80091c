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
 * (an Event, an IntersectionObserverEntry): an object of the page's, or a Proxy, throws. A page
 * that targets Tandem itself, replacing the frame the SDK makes here (its `contentWindow`, the
 * functions inside) before the SDK reads them, is not ruled out: its own script on its own page
 * is the site's. Where no frame can be made, the page's own functions, as they are now, are used.
 */

type Getter = (this: unknown) => unknown;

interface Realm {
  apply: typeof Reflect.apply;
  now: Getter | null;
  visibilityState: Getter | null;
  currentTarget: Getter;
  detail: Getter;
  entryTarget: Getter;
  entryTime: Getter;
  isIntersecting: Getter;
  isVisible: Getter | null;
}

function take(win: typeof globalThis): Realm | null {
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
    entryTarget: entryTarget ?? noEntry, entryTime: entryTime ?? noEntry, isIntersecting: isIntersecting ?? noEntry,
    isVisible: getter(entry, "isVisible"),
  };
}

function freshRealm(): Realm | null {
  if (typeof document === "undefined") return null;
  try {
    const frame = document.createElement("iframe");
    frame.setAttribute("aria-hidden", "true");
    frame.style.setProperty("display", "none", "important");
    document.documentElement.append(frame);
    try {
      const win = frame.contentWindow as (typeof globalThis) | null;
      // Another realm's, not the page's own window handed back.
      return win && win !== (globalThis as unknown) && win.Event !== Event ? take(win) : null;
    } finally {
      frame.remove();
    }
  } catch {
    return null;
  }
}

const realm: Realm | null = freshRealm() ?? (typeof document === "undefined" ? null : take(globalThis));
/** This page's clock, as the SDK loads (a page may put another object in its place later). */
const clock: unknown = typeof performance === "undefined" ? null : performance;

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
 * browser's own function on the page's clock as it was when the SDK loaded. */
export function pageNow(): number {
  const now = read(realm?.now, clock);
  return now.ok && typeof now.value === "number" ? now.value : performance.now();
}

/** Whether this page is shown (its tab in front), as the browser says: a page that defined its
 * own `document.visibilityState` ("hidden") had the page's changes sent without waiting for the
 * cover watch. */
export function pageShown(): boolean {
  const state = read(realm?.visibilityState, typeof document === "undefined" ? null : document);
  return state.ok ? state.value === "visible" : document.visibilityState === "visible";
}
