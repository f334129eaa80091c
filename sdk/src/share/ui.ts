/**
 * The customer-facing UI: the help-code widget, the questions, the sharing banner, the outlines of
 * what the agent cannot see, the agent's pointer and notices of what the agent did.
 *
 * None of it may reach the agent (or a supervisor, or a recording). rrweb's `blockSelector`
 * alone does not ensure that: it stops at shadow boundaries, and rrweb watches the shadow root of
 * every host it serialises, blocked or not, so whatever is drawn in that root later (and its
 * adopted stylesheet) is recorded. Hence two shadow roots:
 *
 *   <div data-tandem-ui>            the outer host, in the page: blocked (an empty placeholder)
 *     #shadow-root                  known to rrweb; holds one element and never changes
 *       <div data-tandem-ui>        the inner host, built with its shadow root before the outer
 *         #shadow-root              host joins the page, so rrweb never learns of this root:
 *           stylesheet, <div data-tandem-ui> everything the customer sees
 *
 * rrweb only learns of a shadow root by serialising its host or seeing `attachShadow` on an
 * element already in the page; the inner host is neither. Clicks inside are dropped by rrweb too
 * (the inner container is blocked). Both roots are open so that assistive technology and browser
 * tests reach the UI as they reach the page. Styles use a constructed stylesheet (allowed under a
 * strict Content-Security-Policy, unlike inline styles).
 *
 * Issue 15: laid out phone first (320-430 px wide, a compact bar that always keeps Stop sharing on
 * screen) and for desktops; every string from ./messages/widget.ts in the page's language (Arabic right
 * to left); the site's brand (./brand.ts) as name, logo, colours and corner radius; dialogs trap
 * focus, Esc answers "no", focus returns where it was; codes are announced through a live region
 * and grouped for reading aloud.
 */

import { TANDEM_UI_ATTRIBUTE } from "../shared/masking.ts";
import { codeGroups, formatCode } from "../shared/protocol.ts";
import { type Locale, type Params, direction, pageLocale, translator } from "../shared/i18n.ts";
import { type Brand, NO_BRAND, brandCss } from "./brand.ts";
import { type Question, type Verdict, ask, heardFrame, heardShown } from "./first-frame.ts";
import { PopoverRaises } from "./popover-raises.ts";
import { browserEvery, browserFrame, coverReport, customersClick, hasBrowserFrames, hasOcclusionTest, pageNow, pageShown, pageTime } from "./realm.ts";
import { type WidgetMessage, messages, noticeKey } from "./messages/widget.ts";

const CSS = `
:host { all: initial; }
:host::backdrop { display: none; }
.root { --accent: var(--tandem-accent, #0b5fff); --accent-text: var(--tandem-accent-text, #fff);
  --banner: var(--tandem-banner, #12261a); --banner-text: var(--tandem-banner-text, #fff);
  --radius: var(--tandem-radius, 12px); --font: var(--tandem-font, system-ui, -apple-system, "Segoe UI", Roboto, sans-serif);
  font: 15px/1.45 var(--font); color: #1c2430; }
.root * { box-sizing: border-box; }
.sr-only { position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px; overflow: hidden;
  clip: rect(0 0 0 0); white-space: nowrap; border: 0; }
.panel { position: fixed; inset-inline-end: 16px; bottom: 16px; z-index: 2147483647;
  width: min(340px, calc(100vw - 32px)); max-height: calc(100vh - 32px); overflow: auto;
  font: 15px/1.45 var(--font); color: #1c2430; background: #fff; border: 1px solid #c9d1dc;
  border-radius: var(--radius); box-shadow: 0 10px 30px rgba(16, 24, 40, .18); padding: 14px 16px; }
.panel:focus, .dialog:focus { outline: none; }
.panel:focus-visible { outline: 3px solid #1d4ed8; outline-offset: 2px; }
.brand { display: flex; align-items: center; gap: 8px; margin: 0 0 8px; font-weight: 600; font-size: 14px; }
.brand img { width: 24px; height: 24px; object-fit: contain; flex: none; }
.label { margin: 0 0 2px; font-size: 13px; color: #4b5563; }
.code { margin: 0 0 8px; font: 600 28px/1.2 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
  letter-spacing: .04em; color: #102a5c; white-space: nowrap; }
.hint { margin: 0 0 12px; font-size: 13px; color: #4b5563; }
.row { display: flex; flex-wrap: wrap; gap: 8px; justify-content: flex-end; }
button { font: 600 14px/1.2 var(--font); border-radius: 8px; padding: 9px 14px; min-height: 40px;
  cursor: pointer; border: 1px solid #8a96a8; background: #fff; color: #1c2430; }
button.primary { background: var(--accent); border-color: var(--accent); color: var(--accent-text); }
button.danger { background: #b42318; border-color: #b42318; color: #fff; }
button:focus-visible { outline: 3px solid #1d4ed8; outline-offset: 2px; }
.banner button:focus-visible { outline-color: #fff; }
.backdrop { position: fixed; inset: 0; z-index: 2147483646; background: rgba(16, 24, 40, .45); }
.dialog { position: fixed; z-index: 2147483647; left: 50%; top: 50%; transform: translate(-50%, -50%);
  width: min(440px, calc(100vw - 24px)); max-height: calc(100vh - 24px); overflow: auto; background: #fff;
  border-radius: calc(var(--radius) + 2px); padding: 20px 22px; font: 15px/1.5 var(--font); color: #1c2430;
  box-shadow: 0 20px 50px rgba(16, 24, 40, .3); }
.dialog h2 { margin: 0 0 8px; font-size: 19px; line-height: 1.3; }
.dialog p { margin: 0 0 14px; }
.banner { position: fixed; left: 50%; bottom: 16px; transform: translateX(-50%); z-index: 2147483647;
  display: flex; flex-wrap: wrap; align-items: center; gap: 8px 12px; max-width: calc(100vw - 24px);
  width: max-content; padding: 8px 8px 8px 16px; padding-inline: 16px 8px; border-radius: 999px;
  background: var(--banner); color: var(--banner-text); font: 600 14px/1.3 var(--font);
  box-shadow: 0 6px 20px rgba(16, 24, 40, .3); }
.status { display: flex; align-items: center; gap: 8px; min-width: 0; flex: 1 1 auto; }
.status-text { min-width: 0; overflow-wrap: anywhere; }
.extras { display: flex; flex-wrap: wrap; gap: 8px; }
.dot { width: 9px; height: 9px; border-radius: 50%; background: #3ddc84; flex: none; }
.dot.paused { background: #f0b429; }
.recording { color: #ffb4ab; font-weight: 700; white-space: nowrap; }
.link-note { color: #f0b429; font-weight: 600; min-width: 0; overflow-wrap: anywhere; }
.banner button { border-color: transparent; }
.stop { flex: none; }
.verified { color: #166534; font-size: 13px; font-weight: 600; }
.pointer { position: fixed; width: 18px; height: 18px; margin: -9px 0 0 -9px; border-radius: 50%;
  background: rgba(239, 68, 68, .85); box-shadow: 0 0 0 6px rgba(239, 68, 68, .25); pointer-events: none;
  z-index: 2147483646; }
.toast { position: fixed; left: 50%; bottom: 76px; transform: translateX(-50%); z-index: 2147483646;
  max-width: calc(100vw - 24px); background: #1c2430; color: #fff; font: 600 13px/1.3 var(--font);
  padding: 8px 12px; border-radius: 8px; pointer-events: none; }
.overlay { position: fixed; inset: 0; pointer-events: none; z-index: 2147483645; }
.masked-outline { position: fixed; border: 1px dashed rgba(109, 40, 217, .55); border-radius: 6px;
  box-sizing: border-box; }
.masked-outline::after { content: ""; position: absolute; inset-inline-end: -4px; top: -4px; width: 8px;
  height: 8px; border-radius: 50%; background: rgba(109, 40, 217, .7); }
.error { color: #b42318; margin: 0 0 10px; }
.notice { margin: 0 0 10px; }
[dir="rtl"] .banner { padding-inline: 16px 8px; }
@media (max-width: 560px) {
  .panel { inset-inline: 8px; bottom: 8px; width: auto; padding: 12px 14px; }
  .banner { left: 8px; right: 8px; bottom: 8px; transform: none; width: auto; max-width: none;
    display: grid; grid-template-columns: minmax(0, 1fr) auto; gap: 6px 8px; border-radius: 16px;
    padding: 8px; padding-inline: 12px 8px; }
  .status { grid-column: 1; grid-row: 1; }
  .stop { grid-column: 2; grid-row: 1; }
  .extras { grid-column: 1 / -1; grid-row: 2; justify-content: flex-end; }
  .extras:empty { display: none; }
  .banner button { padding: 8px 10px; }
  .dialog { padding: 16px; }
  .dialog h2 { font-size: 18px; }
  .toast { bottom: 96px; }
}
@media (prefers-reduced-motion: reduce) { * { transition: none !important; animation: none !important; } }
`;

/** How many times the widget is put back where it must be, as the page's changes call for it,
 * between two of the session's looks (reachable(), every 300 ms). A page that takes it away
 * again each time (its own observer against the widget's) is left to those looks, and kept
 * paused: a put-back answered at once by the next would be an endless loop of microtasks, the
 * customer's tab frozen. */
const PUT_BACKS_PER_LOOK = 8;

/** How many times the widget is raised again over a popover the page shows, between two frames
 * drawn (the browser's own frame callback, realm.ts), or two looks where there is none.
 * Apart from the put-backs and larger: a page's tooltips shown one after another as the pointer
 * runs over a menu are shown a dozen at a time between two looks on a busy machine (a bound of 8
 * shared with the put-backs paused sharing for them, in CI). One raise for all the popovers shown
 * before a microtask, at most one for each (./popover-raises.ts). A page that shows one again
 * after each raise (a loop of microtasks: each raise at a popover's `beforetoggle` is one) is
 * left to the looks past it, and kept paused, as one taking the widget away is. Between two
 * looks only, it paused an honest page whose components each show a hint from an animation frame
 * of their own (three raises a frame spend it in 11 frames; a look is 300 ms or more). */
const RAISES_PER_LOOK = 32;

/** The customer's presses after which the widget is raised at the next frame (watchReach()):
 * what opens a picker or a menu, by pointer or by key. */
const PRESSES = ["pointerdown", "click", "keydown"] as const;

/** The customer's input after which what the page shows a while later (a tooltip) may be a layer
 * the widget does not hear of (watchReach(), UNHEARD_COVER_MS). */
const HOVERS = ["pointermove", "focusin"] as const;

/** How long after a cover report (one of the page's layers drawn over Stop sharing before the
 * widget was raised over it: one it did not hear of) the page is taken for one that shows such
 * layers, and the widget is raised at every frame for RAISE_FRAMES_MS after each of the
 * customer's inputs (watchReach()). A raise is about 0.6 ms of the customer's frame (hidden and
 * shown, laid out), so not every page pays it. */
const UNHEARD_COVER_MS = 30_000;

/** How long after each of the customer's inputs the widget is raised at every frame, on a page
 * that shows layers it does not hear of (UNHEARD_COVER_MS): a tooltip's delay, with room. */
const RAISE_FRAMES_MS = 1500;

/** The browser's `queueMicrotask` as the SDK loaded (the raises over the page's popovers,
 * ./popover-raises.ts): a page's script that runs later and replaces it does not hold them back.
 * One that replaced it before leaves them to the popovers' `toggle`, and the cover watch counts
 * the frames drawn meanwhile (sharing pauses: fail closed). */
const microtask: ((run: () => void) => void) | null = typeof queueMicrotask === "function" ? queueMicrotask.bind(globalThis) : null;

/** The page's open shadow roots the widget watches for its dialogs and popovers (watchShadowRoots),
 * at most: a dialog opened with showModal() or a popover shown in one is seen at that change, as
 * one of the page itself is, not at the next look. Past it (a page of thousands of components),
 * the rest are left to the looks and the cover watch. Not a setting: the server is not trusted
 * with how closely the page is watched. */
export const MAX_WATCHED_SHADOW_ROOTS = 256;

/** Reports of the cover watch, each after raising the widget, that must find Stop sharing
 * covered before it counts as out of reach (watchCover); counted until it has shown for
 * COVER_FORGET_MS on end, not only in a row (a page letting it show for the one report after each
 * raise, then covering it again, reset a count in a row each time: never paused). */
const COVERED_REPORTS = 3;

/** How long Stop sharing must have shown on end, after the cover watch found it covered, before
 * those reports are forgotten and sharing that paused for them goes on (watchCover). */
const COVER_FORGET_MS = 1000;

/** The cover watch's clock: the browser's own (a page's fake timers, frozen, kept sharing paused
 * for a cover long gone: COVER_FORGET_MS never passed). */
function watchNow(): number {
  return pageNow() ?? performance.now();
}

/** The fullscreen notice's own styles (fullscreenNotice: a shadow root of its own). */
const FULLSCREEN_CSS = `
dialog { font: 15px/1.4 system-ui, sans-serif; color: #111; background: #fff; border: 0;
  border-radius: 12px; padding: 16px 20px; max-width: min(28em, 90vw); box-shadow: 0 8px 30px rgba(0,0,0,.4); }
dialog::backdrop { background: rgba(0,0,0,.35); }
h2 { font-size: 17px; margin: 0 0 8px; }
p { margin: 0 0 14px; }
.actions { display: flex; gap: 8px; flex-wrap: wrap; }
button { font: inherit; font-weight: 600; border: 0; border-radius: 8px; padding: 8px 14px; cursor: pointer; }
.primary { background: #1f2937; color: #fff; }
.danger { background: #b91c1c; color: #fff; }
button:focus-visible { outline: 3px solid #2563eb; outline-offset: 2px; }
`;

/** The host's own inline style, as the browser writes it back (`style.cssText`). */
const HOST_STYLE = "all: initial !important;";

/** The page's modal elements that may be its topmost (a dialog opened with showModal(), the
 * fullscreen element), which makes the rest of the page inert: the fullscreen element when it is
 * one; else the page's last modal dialog and those in `roots` (the page's open shadow roots the
 * widget watches), whose order the page does not say: the widget tries each (putBack), the hit
 * test finds the one not inert. Empty when there is none. */
function pageModals(roots: Iterable<ShadowRoot>): Element[] {
  const fullscreen = document.fullscreenElement;
  if (fullscreen && fullscreen.matches(":modal")) return [fullscreen];
  const found: Element[] = [];
  try {
    const last = Array.from(document.querySelectorAll(":modal")).at(-1);
    if (last) found.push(last);
    for (const root of roots) {
      if (root.host.isConnected) found.push(...Array.from(root.querySelectorAll(":modal")).reverse());
    }
  } catch {
    return found; // a browser without :modal
  }
  return found;
}

function sameElements(a: readonly Element[], b: readonly Element[]): boolean {
  return a.length === b.length && a.every((el, i) => el === b[i]);
}

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K, props: { className?: string; text?: string; attrs?: Record<string, string> } = {},
  children: Node[] = [],
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (props.className) el.className = props.className;
  if (props.text !== undefined) el.textContent = props.text;
  for (const [name, value] of Object.entries(props.attrs ?? {})) el.setAttribute(name, value);
  el.append(...children);
  return el;
}

function button(label: string, className: string, onClick: () => void): HTMLButtonElement {
  const b = element("button", { className, text: label, attrs: { type: "button" } });
  b.addEventListener("click", onClick);
  return b;
}

/**
 * How long a question's allowing button takes no pointer click after the question appeared
 * (docs/threat-model.md, "A question answers only the customer"). A question can appear at a
 * moment of the agent's choosing (control, recording) or the relay's (a supervisor's watch), in
 * place of another one or over the page where the customer is about to click: the agent sees the
 * customer's pointer in the mirror. Without it, a click meant for "Refuse", for another
 * question's "Allow" or for the page would answer "Allow" to a question the customer never read.
 * A click in that time is not taken and starts the wait again (a customer clicking repeatedly
 * is not clicking on purpose). The keyboard needs none: a question takes focus itself, never a
 * button, so reaching "Allow" takes a Tab after it appeared. Chromium's own permission prompts
 * ignore input for as long. Not a setting: the server is not trusted with it.
 */
export const ANSWER_DELAY_MS = 500;

/** The question's allowing button: only the customer's own click (a script's `click()`, the
 * site's or an extension's, is no answer), and by pointer only ANSWER_DELAY_MS after it appeared
 * (`aria-disabled` until then, so assistive technology says so). `scripted`: the Tandem server's
 * own practice pages, whose customer is a script (docs/training.md): its clicks answer. */
function allowingButton(label: string, onAllow: () => void, scripted: boolean): HTMLButtonElement {
  const b = element("button", { className: "primary", text: label, attrs: { type: "button" } });
  let timer: ReturnType<typeof setTimeout> | undefined;
  let armed = false;
  const wait = () => {
    armed = false;
    b.setAttribute("aria-disabled", "true");
    clearTimeout(timer);
    timer = setTimeout(() => {
      armed = true;
      b.removeAttribute("aria-disabled");
    }, ANSWER_DELAY_MS);
  };
  wait();
  b.addEventListener("click", (event) => {
    if (scripted) return onAllow();
    // The customer's own click on this button, read with the browser's own functions: a page
    // that wrapped addEventListener before the SDK loaded holds this listener, and called it
    // with an object saying `isTrusted: true`, or a real click of the customer's elsewhere
    // (./realm.ts).
    const click = customersClick(event, b);
    if (!click) return;
    // detail 0: activated from the keyboard (Enter, Space) or by assistive technology.
    if (!armed && click.detail !== 0) return wait();
    onAllow();
  });
  return b;
}

/**
 * A button whose action is always safe (stop sharing, take back control, stop recording): a
 * mouse acts as it presses it, so a release elsewhere still counts. What the relay says redraws
 * the widget and changes its size, as often as the relay likes: a press on a button and its
 * release beside it (it moved) or on another one (made anew, or another question put in its
 * place) is no click. The click that follows a press finds the action done (nothing happens
 * twice: `act` does nothing once done); a touch's tap and the keyboard act on the click.
 */
function pressButton(label: string, className: string, act: () => void): HTMLButtonElement {
  const b = button(label, className, act);
  b.addEventListener("pointerdown", (event) => {
    if (event.isPrimary && event.button === 0 && event.pointerType !== "touch") act();
  });
  return b;
}

/** The element that has focus, looking into shadow roots. */
function deepActive(): Element | null {
  let active: Element | null = document.activeElement;
  while (active?.shadowRoot?.activeElement) active = active.shadowRoot.activeElement;
  return active;
}

const FOCUSABLE = "button, [href], input, select, textarea, [tabindex]:not([tabindex='-1'])";

/** "482913067125" read digit by digit, group by group: "4 8 2 9, 1 3 0 6, 7 1 2 5". */
export function spokenCode(code: string): string {
  return codeGroups(code).map((group) => [...group].join(" ")).join(", ");
}

/** The widget's options: set by start() and kept in this tab, so later pages look the same. */
export interface WidgetOptions {
  brand: Brand;
  /** An explicit locale (start's `locale`), else the page's `lang`. */
  locale: string | null;
}

const OPTIONS_KEY = "tandem.widget";

function loadOptions(): WidgetOptions {
  try {
    const raw = sessionStorage.getItem(OPTIONS_KEY);
    const saved = raw ? (JSON.parse(raw) as Partial<WidgetOptions>) : null;
    if (saved && typeof saved === "object" && saved.brand && typeof saved.brand === "object") {
      return { brand: { ...NO_BRAND, ...saved.brand }, locale: typeof saved.locale === "string" ? saved.locale : null };
    }
  } catch {
    // storage disabled or garbled: the defaults
  }
  return { brand: NO_BRAND, locale: null };
}

/** The questions' ids asked while sharing (`asking()` names the one open). */
export const RECORD_QUESTION = "tandem-record-title";
export const CONTROL_QUESTION = "tandem-control-title";
export const WATCH_QUESTION = "tandem-watch-title";

/** A note on the sharing banner: the agent's console is away (`peer`), or the server's link
 * between its processes is down (`link`), or (this browser's own finding, ./silence.ts) the
 * agent's console has not answered for a while; `agent` is the agent's name. */
export interface BannerNote {
  kind: "agent_away" | "link_down" | "agent_quiet";
  agent: string;
}

/** The sharing banner's parts that stay from redraw to redraw. */
interface Banner {
  el: HTMLElement;
  status: HTMLElement;
  extras: HTMLElement;
  stop: HTMLButtonElement;
  stopRecording: HTMLButtonElement;
  takeBack: HTMLButtonElement;
}

export class CustomerUI {
  /** `scriptedAnswers`: only on the Tandem server's own practice pages (index.ts), where the
   * customer is the server's script (docs/training.md), whose clicks answer the questions. */
  constructor(private readonly scriptedAnswers = false) {}

  private host: HTMLElement | null = null;
  /** The container of everything shown, inside the inner shadow root. */
  private root: HTMLElement | null = null;
  private innerRoot: ShadowRoot | null = null;
  /** The inner host: the popover in the top layer (mount()). */
  private layer: HTMLElement | null = null;
  private sheet: CSSStyleSheet | null = null;
  private overlay: HTMLElement | null = null;
  /** The outlines drawn last, as a key: unchanged outlines are not redrawn. */
  private overlayDrawn = "";
  private pointer: HTMLElement | null = null;
  private toast: HTMLElement | null = null;
  private toastTimer: ReturnType<typeof setTimeout> | undefined;
  /** A polite live region, kept across redraws, for what a screen reader must hear. */
  private live: HTMLElement | null = null;
  private announceTimer: ReturnType<typeof setTimeout> | undefined;
  /** The open dialog's focus trap, and where focus goes back to when it closes. */
  /** `answered`: the question was answered, what the answer shows next takes its place. */
  private trap: { dialog: HTMLElement; cancel: () => void; answered?: boolean } | null = null;
  private returnFocus: HTMLElement | null = null;
  /** What shows now, for `focusCurrent` (pressing Get help again shows this, never a second one). */
  private primary: HTMLElement | null = null;
  /** While this page shares (the banner, or "Reconnecting…", was shown): Stop sharing, which
   * every question asked meanwhile offers too. The banner is not shown while a question is, and
   * a question can be asked again as soon as it is answered (by the agent, or the relay): the
   * customer must not have to answer first to stop. */
  private stopSharing: (() => void) | null = null;
  /** The banner on screen (sharing, or reconnecting), redrawn in place: its buttons stay the same
   * elements, whatever calls for a redraw. A press on a button and its release on another one
   * made in between is no click, and the relay's `peer` or `link` redraws the banner as often as
   * it sends them: each made a new Stop sharing, which then never took a click. */
  private banner: Banner | null = null;
  /** What the banner's buttons do now (the latest redraw's). */
  private bannerActions: { stop?: () => void; stopRecording?: () => void; takeBack?: () => void } = {};
  private options: WidgetOptions = loadOptions();
  /** Stops watching what takes the widget away from the customer (watchReach). */
  private reachWatch: (() => void) | null = null;
  /** Where reachable() last found the widget out of reach: the page's modal elements then, and
   * where it left the host. */
  private gaveUp: { modals: Element[]; parent: Element | null } | null = null;
  /** The page's open shadow roots watched as the document is (MAX_WATCHED_SHADOW_ROOTS). */
  private watchedRoots: ShadowRoot[] = [];
  /** What is painted over Stop sharing (watchCover): the browser's own occlusion test, which
   * counts a layer that lets the pointer through (`pointer-events: none`) as the hit test does not. */
  private coverWatch: IntersectionObserver | null = null;
  private coverTarget: Element | null = null;
  /** What marks the first frame drawn after each question of the cover watch (./first-frame.ts):
   * the browser's own frame callbacks (realm.ts, browserFrame()), which no wrapper of the page's
   * sees or holds back (markFrame()); only where they cannot be set, an observer (no occlusion
   * test, the page's `IntersectionObserver`) observing the document afresh with each question,
   * whose first report is made at that frame. */
  private frameWatch: IntersectionObserver | null = null;
  /** Counts the questions asked: a frame callback marks only the question asked with it. */
  private asked = 0;
  /** The last report of the cover watch: something is painted over Stop sharing; and the reports
   * in a row that said so, each after a raise (COVERED_REPORTS). */
  private covered = false;
  private coverStreak = 0;
  /** When the cover watch last reported Stop sharing shown after it was covered (COVER_FORGET_MS). */
  private shownSince = 0;
  /** When the cover watch last found Stop sharing covered (UNHEARD_COVER_MS). */
  private unheardCoverAt = -Infinity;
  /** Told of each report of the cover watch that answers askShown() (session.ts holds the page's
   * changes back until one finds Stop sharing shown). */
  private coverHeard: { shown: () => void; covered: () => void } | null = null;
  /** The question asked (askShown()), until answered (./first-frame.ts): a report answers it only
   * if made after it (a report made before, handed over late by a page's own observer wrapping the
   * browser's, one kept from before its cover, answers nothing: its `time` against pageNow()) and
   * at the first frame drawn after it (a later one, kept back until the page lifted its cover,
   * neither: what was asked about is dropped, and the question asked again). */
  private question: Question | null = null;
  /** The time of the latest of the browser's own reports (the cover watch's, the frame marks) the
   * widget was given: a report answers only if made after the one latest as the question was
   * asked. A report the widget was given before (a page's wrapper handing it again), or made at a
   * frame before one it was given, answers nothing, whatever the clock says (pageNow() null: the
   * fresh realm's clocks taken away). */
  private lastReportAt = -Infinity;
  /** This browser has the occlusion test, and the page took away what the cover watch needs
   * (its IntersectionObserver): Stop sharing counts as covered (./realm.ts). */
  private coverBroken = false;
  /** Where the widget put its host last (the page may move it elsewhere). */
  private placedIn: Node | null = null;
  /** Put-backs the page's changes called for since the session's last look (PUT_BACKS_PER_LOOK),
   * and whether the page asked for more (it fights back: out of reach until a look finds the
   * widget left where it was put). */
  private putBacks = 0;
  /** Raises over the page's popovers since the session's last look or the last frame drawn
   * (RAISES_PER_LOOK), and whether the frame callback that forgets them is asked for. */
  private raises = 0;
  private raisesForgotAtFrame = false;
  private contested = false;
  /** Told at once when a change of the page's took the widget out of reach (whenOutOfReach). */
  private outOfReach: (() => void) | null = null;
  /** The notice of the widget's own over the page's fullscreen element (fullscreenNotice), and
   * the fullscreen element the customer closed it over (not shown again over that one). */
  private fullscreen: {
    host: HTMLElement; dialog: HTMLDialogElement; over: Element; text: HTMLElement; unwatch: () => void;
  } | null = null;
  private fullscreenClosed: Element | null = null;

  /** Brand and language from start(); kept in this tab for the session's later pages. */
  configure(brand: Brand, locale: string | null): void {
    this.options = { brand, locale };
    try {
      sessionStorage.setItem(OPTIONS_KEY, JSON.stringify(this.options));
    } catch {
      // storage disabled: this page still uses them
    }
    if (this.root) this.style();
  }

  get locale(): Locale {
    return pageLocale(this.options.locale);
  }

  /** `key` in the customer's language. */
  t(key: WidgetMessage, params?: Params): string {
    return translator(messages, this.locale)(key, params);
  }

  /** The company whose support this is: the brand's name, else the page's host name. */
  private company(): string {
    return this.options.brand.name ?? location.hostname;
  }

  private style(): void {
    if (!this.root || !this.innerRoot) return;
    const locale = this.locale;
    this.root.setAttribute("lang", locale);
    this.root.setAttribute("dir", direction(locale));
    const css = CSS + brandCss(this.options.brand);
    if (this.sheet) this.sheet.replaceSync(css);
    else this.innerRoot.querySelector("style")?.replaceChildren(css);
  }

  private mount(): HTMLElement {
    if (this.root && this.host) {
      // Taken out by the page: put back, as it was (what it shows, its focus trap, its buttons).
      if (!this.host.isConnected) this.putBack();
      return this.root;
    }
    // Built whole while detached: rrweb patches attachShadow and watches any root attached to
    // an element that is already in the page.
    const host = element("div", { attrs: { [TANDEM_UI_ATTRIBUTE]: "" } });
    // Page styles must not hide or move the UI (inline, set before the recorder can see it).
    host.style.setProperty("all", "initial", "important");
    const inner = element("div", { attrs: { [TANDEM_UI_ATTRIBUTE]: "" } });
    const innerRoot = inner.attachShadow({ mode: "open" });
    this.sheet = null;
    try {
      const sheet = new CSSStyleSheet();
      innerRoot.adoptedStyleSheets = [sheet];
      this.sheet = sheet;
    } catch {
      innerRoot.append(element("style"));
    }
    const root = element("div", { className: "root", attrs: { [TANDEM_UI_ATTRIBUTE]: "" } });
    this.live = element("div", { className: "sr-only", attrs: { role: "status", "aria-live": "polite", "aria-atomic": "true" } });
    root.append(this.live);
    innerRoot.append(root);
    // In the top layer (docs/threat-model.md, "Stop sharing stays within reach"): above any
    // z-index of the page, and raised again above what the page puts there later. A manual
    // popover: it closes no popover of the page's and is never light-dismissed. The inner host
    // is the popover: the page's own rules (a `::backdrop` rule of its dialogs', which would
    // paint over the whole page) do not reach into the outer shadow root.
    if (typeof inner.showPopover === "function") inner.setAttribute("popover", "manual");
    host.attachShadow({ mode: "open" }).append(inner);
    this.innerRoot = innerRoot;
    this.root = root;
    this.layer = inner;
    this.style();
    const container = document.body ?? document.documentElement;
    container.append(host);
    this.host = host;
    this.placedIn = container;
    this.raise();
    return root;
  }

  /** Show the widget on top of the top layer (again: what the page showed since is under it). */
  private raise(): void {
    const layer = this.layer;
    if (!layer?.isConnected || typeof layer.showPopover !== "function") return;
    // A manual popover hidden and shown keeps the focus inside it (Stop sharing, a question's).
    try {
      if (layer.matches(":popover-open")) layer.hidePopover();
      layer.showPopover();
    } catch {
      // not rendered (an ancestor not shown) or no longer a popover: reachable() finds out
    }
  }

  /** Whether the host is where it must be and as it must be: in the page, under the topmost
   * modal element if there is one, styled and shown as mount() left it. */
  private hostInPlace(): boolean {
    const host = this.host;
    if (!host?.isConnected || host.hasAttribute("inert") || host.hasAttribute("hidden")) return false;
    if (host.style.cssText !== HOST_STYLE) return false;
    if (this.marked().some((el) => !el.hasAttribute(TANDEM_UI_ATTRIBUTE))) return false;
    const layer = this.layer;
    if (layer && typeof layer.showPopover === "function" && !layer.matches(":popover-open")) return false;
    const modals = pageModals(this.watchedRoots);
    const parent = host.parentElement;
    // Which modal is topmost the page does not say: the hit test finds whether this one is.
    return modals.length ? parent !== null && modals.includes(parent) : parent === document.body || parent === document.documentElement;
  }

  /** The widget's elements the recorder blocks by their mark (masking.ts, TANDEM_UI): a page that
   * strips it (their shadow roots are open) would have the widget's own put-back send what it
   * shows, a new element to the recorder, to the agent. */
  private marked(): HTMLElement[] {
    return [this.host, this.layer, this.root].filter((el): el is HTMLElement => el !== null);
  }

  /** Put the host back as mount() made it (the page took it out, changed its style, made it
   * inert or hid it, stripped its mark), in `container`. */
  private restoreHost(container: Element): void {
    const host = this.host;
    if (!host) return;
    // Marked again before it moves: the recorder sees it added as a blocked, empty box.
    for (const el of this.marked()) if (!el.hasAttribute(TANDEM_UI_ATTRIBUTE)) el.setAttribute(TANDEM_UI_ATTRIBUTE, "");
    host.removeAttribute("inert");
    host.removeAttribute("hidden");
    if (host.style.cssText !== HOST_STYLE) {
      host.style.cssText = "";
      host.style.setProperty("all", "initial", "important");
    }
    const layer = this.layer;
    if (layer && typeof layer.showPopover === "function" && layer.getAttribute("popover") !== "manual") layer.setAttribute("popover", "manual");
    if (host.parentElement !== container) container.append(host);
    this.placedIn = container;
    this.raise();
  }

  /** React at once to what takes the widget away (a modal dialog, an element made inert, the
   * host taken out, fullscreen, a popover of the page's); reachable() also looks, periodically. */
  private watchReach(): void {
    if (this.reachWatch || typeof MutationObserver !== "function") return;
    const check = () => {
      const host = this.host;
      // In place is not within reach: `inert` on an ancestor (`<html>`) or a dialog of the
      // page's leaves the host where it was, out of the customer's reach; asked of the
      // browser's hit test, as the looks do (only at the changes that call for a check).
      if (!host || (this.hostInPlace() && this.hit())) return;
      // Where reachable() last gave up, with the page as it was then: not again at every change.
      if (this.gaveUp && sameElements(this.gaveUp.modals, pageModals(this.watchedRoots)) && this.gaveUp.parent === host.parentElement && host.isConnected) return;
      // Out of reach now (nowhere to put it, or a page that fights back): the session pauses
      // at once, not at its next look, up to 300 ms of the page later.
      if (!this.mayPutBack() || !this.putBack()) this.outOfReach?.();
    };
    const watched = { subtree: true, childList: true, attributes: true, attributeFilter: ["open", "inert"] };
    const observer = new MutationObserver((records) => {
      // The page's own changes to its content come by the thousand: only an attribute watched
      // (a dialog opened, an element made inert, the host restyled) or the host moved or taken
      // out call for a look.
      const host = this.host;
      const moved = !host?.isConnected || host.parentNode !== this.placedIn;
      // Components added with their shadow roots: watched too, while there is room.
      if (this.watchedRoots.length < MAX_WATCHED_SHADOW_ROOTS || this.pruneRoots()) {
        for (const record of records) for (const node of record.addedNodes) findRoots(node);
      }
      if (moved || records.some((record) => record.type === "attributes")) check();
      observer.takeRecords(); // our own moves
    });
    // The page's open shadow roots, watched as the document is: a dialog opened with showModal()
    // or a popover shown in one was found only by the next look (shared meanwhile; a popover
    // letting the pointer through, never). Not the widget's own (the fullscreen notice's dialog).
    const seen = new WeakSet<ShadowRoot>();
    const watchRoot = (root: ShadowRoot) => {
      if (seen.has(root) || this.watchedRoots.length >= MAX_WATCHED_SHADOW_ROOTS) return;
      seen.add(root);
      this.watchedRoots.push(root);
      observer.observe(root, watched);
      root.addEventListener("beforetoggle", onBeforeToggle, true);
      root.addEventListener("toggle", onToggle, true);
    };
    const findRoots = (node: Node) => {
      if (!(node instanceof Element) && !(node instanceof ShadowRoot)) return;
      const walker = document.createTreeWalker(node, NodeFilter.SHOW_ELEMENT);
      for (let el = node instanceof Element ? node : walker.nextNode(); el; el = walker.nextNode()) {
        const root = (el as Element).shadowRoot;
        if (!root || (el as Element).hasAttribute(TANDEM_UI_ATTRIBUTE) || seen.has(root)) continue;
        if (this.watchedRoots.length >= MAX_WATCHED_SHADOW_ROOTS) return;
        watchRoot(root);
        findRoots(root);
      }
    };
    observer.observe(document, watched);
    if (this.host) observer.observe(this.host, { attributes: true, attributeFilter: ["style", "hidden", TANDEM_UI_ATTRIBUTE] });
    if (this.layer) observer.observe(this.layer, { attributes: true, attributeFilter: ["popover", TANDEM_UI_ATTRIBUTE] });
    if (this.root) observer.observe(this.root, { attributes: true, attributeFilter: [TANDEM_UI_ATTRIBUTE] });
    // A popover of the page's shown over the widget (a `<details>` toggles too: not a layer):
    // the widget raised over it before the frame that shows it is drawn (at its `beforetoggle`,
    // in a microtask), else at its `toggle`, a task later (./popover-raises.ts).
    const raises = new PopoverRaises<Element>({
      popover: (target) => target instanceof Element && target !== this.layer && target.hasAttribute("popover") ? target : null,
      shown: (popover) => {
        try {
          return popover.matches(":popover-open");
        } catch {
          return true; // a browser without :popover-open: raised over all the same
        }
      },
      mayRaise: () => this.mayRaise(),
      raise: () => this.raise(),
      microtask: (run) => (microtask ?? ((later: () => void) => void Promise.resolve().then(later)))(run),
      beforeFrame: (run) => browserFrame(run),
    });
    const onBeforeToggle = (event: Event) => raises.beforeToggle(event);
    const onToggle = (event: Event) => {
      raises.toggle(event);
      check();
    };
    // What opens at the customer's press without an event the widget hears (a customisable
    // `<select>`'s picker, in the select's own shadow root; a popover of a closed shadow root) is
    // in the top layer before the next frame is drawn: the widget is raised over it then, at the
    // browser's own frame callback (one raise a frame, within RAISES_PER_LOOK). Else each one
    // was a frame drawn over Stop sharing (its transparent `::backdrop`) before the cover watch
    // raised the widget, and three within a second paused sharing for an honest page. A press on
    // the widget itself raises nothing (its focus and its click left alone).
    // On a page the cover watch found with such a layer lately (UNHEARD_COVER_MS), what shows a
    // while after the customer's input (a closed shadow root's tooltip, shown after its delay)
    // is raised over at every frame for RAISE_FRAMES_MS after each input: only more raises (no
    // report is excused), paid only by the pages that call for them.
    let raiseAtFrame = false;
    let everyFrameUntil = 0;
    let everyFrame = false;
    const tick = () => {
      everyFrame = false;
      if (!this.reachWatch || watchNow() > everyFrameUntil) return;
      if (this.mayRaise()) this.raise();
      everyFrame = browserFrame(tick);
    };
    const onInput = (event: Event) => {
      const host = this.host;
      if (host && event.composedPath().includes(host)) return;
      if (event.isTrusted && watchNow() - this.unheardCoverAt < UNHEARD_COVER_MS) {
        everyFrameUntil = watchNow() + RAISE_FRAMES_MS;
        if (!everyFrame) everyFrame = browserFrame(tick);
      }
      if (raiseAtFrame || everyFrame || !(PRESSES as readonly string[]).includes(event.type)) return;
      raiseAtFrame = browserFrame(() => {
        raiseAtFrame = false;
        if (this.mayRaise()) this.raise();
      });
    };
    document.addEventListener("fullscreenchange", check, true);
    document.addEventListener("beforetoggle", onBeforeToggle, true);
    document.addEventListener("toggle", onToggle, true);
    for (const type of [...PRESSES, ...HOVERS]) window.addEventListener(type, onInput, true);
    findRoots(document.documentElement);
    this.reachWatch = () => {
      observer.disconnect();
      document.removeEventListener("fullscreenchange", check, true);
      document.removeEventListener("beforetoggle", onBeforeToggle, true);
      document.removeEventListener("toggle", onToggle, true);
      for (const type of [...PRESSES, ...HOVERS]) window.removeEventListener(type, onInput, true);
      for (const root of this.watchedRoots) {
        root.removeEventListener("beforetoggle", onBeforeToggle, true);
        root.removeEventListener("toggle", onToggle, true);
      }
      this.watchedRoots = [];
    };
  }

  /** Forget the watched shadow roots no longer in the page; whether there is room for more. */
  private pruneRoots(): boolean {
    this.watchedRoots = this.watchedRoots.filter((root) => root.host.isConnected);
    return this.watchedRoots.length < MAX_WATCHED_SHADOW_ROOTS;
  }

  /**
   * Whether the customer can reach Tandem's Stop sharing now (Cancel, or what shows, when there
   * is none), after putting the widget back where the page took it from: out of the page, under
   * a modal dialog or a fullscreen element (which make the rest of the page inert: the widget
   * moves into it), under an inert ancestor (it moves up to `<html>`), covered by a later layer
   * of the top layer (it is raised again). Checked as the customer's pointer finds it: the
   * browser's own hit test at the button, which passes over inert and hidden elements. False
   * when the page still keeps it away (a fullscreen `<video>`, a page that fights back): the
   * session pauses sharing meanwhile (session.ts). True when nothing is shown.
   */
  reachable(): boolean {
    if (!this.host || !this.root) return true;
    // A page that took the widget away again at each put-back since the last look: not within
    // reach, even where the put-back below finds it (the page takes it away again right after).
    const contested = this.contested;
    this.putBacks = 0;
    this.raises = 0;
    this.contested = false;
    this.watchCover();
    // Kept covered (the page's layer over it again after each raise): one more raise and a
    // fresh report at each look, paused until Stop sharing has shown for COVER_FORGET_MS on end
    // (not at a report of it shown between two covers).
    const covered = this.coveredOften();
    if (covered) this.raiseUncovered();
    if (this.hostInPlace() && this.hit() && !covered && !this.coverBroken) return true;
    return this.putBack() && !contested && !covered && !this.coverBroken;
  }

  /** `listener` is called as soon as a change of the page's takes the widget out of the customer's
   * reach (it must not call reachable(): that would start the put-backs afresh). */
  whenOutOfReach(listener: (() => void) | null): void {
    this.outOfReach = listener;
  }

  /** Whether the page's changes may still move the widget before the session's next look. */
  private mayPutBack(): boolean {
    if (this.putBacks >= PUT_BACKS_PER_LOOK) {
      this.contested = true;
      return false;
    }
    this.putBacks++;
    return true;
  }

  /** Whether the widget may still be raised over the page's popovers before the next look. */
  private mayRaise(): boolean {
    if (this.raises >= RAISES_PER_LOOK) {
      this.contested = true;
      return false;
    }
    this.raises++;
    // Forgotten at the next frame (the browser's own callback, which no page holds back or
    // calls): a loop of raises is one within a frame; else at the next look.
    if (!this.raisesForgotAtFrame) {
      this.raisesForgotAtFrame = browserFrame(() => {
        this.raisesForgotAtFrame = false;
        this.raises = 0;
      });
    }
    return true;
  }

  /** Put the widget back where the customer can reach it, if anywhere (reachable()). */
  private putBack(): boolean {
    if (!this.host || !this.root) return true;
    this.gaveUp = null;
    if (this.hostInPlace() && this.hit()) return true;
    const modals = pageModals(this.watchedRoots);
    const page = [...(document.body ? [document.body] : []), document.documentElement];
    for (const container of [...modals, ...page]) {
      this.restoreHost(container);
      if (this.hit()) return true;
    }
    // Left in the page (not in a fullscreen `<video>`, which shows no children), to be found
    // there once the page lets it be.
    this.restoreHost(page[0]);
    this.gaveUp = { modals, parent: this.host.parentElement };
    return false;
  }

  /** What the customer must be able to reach: the banner's Stop sharing, else a shown dialog's or
   * panel's, else what shows; null when only layers (the pointer, a notice) show. */
  private reachTarget(): HTMLElement | null {
    const target = this.bannerShown() ? this.banner?.stop
      : this.root?.querySelector<HTMLElement>("button.danger") ?? this.root?.querySelector<HTMLElement>(".panel, .dialog, .banner");
    return target?.isConnected ? target : null;
  }

  /**
   * Follow whether anything is painted over reachTarget(), with the browser's own occlusion test
   * (IntersectionObserver `trackVisibility`, made against clickjacking): the hit test passes over
   * a layer that lets the pointer through (`pointer-events: none`), so an opaque one of the
   * page's top layer, shown after the widget where the widget was not told of it (in a shadow
   * root), hid Stop sharing from the eye while sharing went on. Reported covered, the widget is
   * raised again; still covered after COVERED_REPORTS raises (a page that shows its layer again
   * at every frame, or again after each raise), sharing pauses until it has shown for
   * COVER_FORGET_MS on end. Only what covers it counts (a report
   * of "not in view" is the hit test's to judge). A browser without it (Firefox, Safari) has the
   * hit test alone.
   */
  private watchCover(): void {
    const target = this.reachTarget();
    if (target === this.coverTarget) return;
    if (!this.coverWatch) {
      // Asked of the browser, not of the page's prototype (a page that deleted `isVisible`
      // turned the watch off): without the test (Firefox, Safari), the hit test alone.
      if (!hasOcclusionTest()) return;
      try {
        const options = { trackVisibility: true, delay: 100 } as IntersectionObserverInit;
        const coverWatch = new IntersectionObserver((entries) => this.onCoverReport(entries), options);
        // Only where the browser's own frame callbacks cannot be set (no fresh realm, or fake
        // timers' in it: realm.ts, hasBrowserFrames()): a page's
        // wrapper of IntersectionObserver held this observer's mark back, and handed one of its
        // own observer's, made after it lifted its cover
        // (tests/e2e/test_page_forges_frame_mark.py).
        if (!hasBrowserFrames()) this.frameWatch = new IntersectionObserver((entries) => this.onFrameMark(entries));
        this.coverWatch = coverWatch;
      } catch {
        // The page took the watch away (replaced IntersectionObserver): out of reach, as covered.
        this.coverBroken = true;
        return;
      }
    }
    if (this.coverTarget) this.coverWatch.unobserve(this.coverTarget);
    this.coverTarget = target;
    this.covered = false; // until the first report on it
    this.coverStreak = 0;
    this.shownSince = 0;
    if (target) this.coverWatch.observe(target);
    // A question asked about the target before: asked again of this one.
    if (target && this.question) this.askAgain();
  }

  /** Now on the browser's own clock of the page (realm.ts, pageNow()), which the page's `Date.now`
   * and fake timers leave alone; null where it cannot be read. */
  watchTime(): number | null {
    return pageNow();
  }

  /** Run `run` every `ms` on the browser's own timer (realm.ts, browserEvery()); the call that
   * stops it, or null. */
  everyOnBrowsersTimer(ms: number, run: () => void): (() => void) | null {
    return browserEvery(ms, run);
  }

  /** Whether the page's changes must wait for the cover watch to find Stop sharing shown
   * (askShown()) before they go: it runs (Chromium), watches a button on a page the customer sees
   * (a hidden tab renders nothing and reports nothing; its customer sees no page to be covered),
   * and the widget's own fullscreen notice (sharing paused meanwhile) is not shown. */
  confirmsShown(): boolean {
    return this.coverWatch !== null && this.coverTarget !== null && this.fullscreen === null && pageShown();
  }

  /** `heard` is told of each report of the cover watch from now on: Stop sharing `shown` (not
   * covered) or `covered`, as of a frame drawn after the call that asked (askShown()). */
  whenCoverReported(heard: { shown: () => void; covered: () => void } | null): void {
    this.coverHeard = heard;
  }

  /** Ask the cover watch for a fresh report on Stop sharing, made at a frame drawn after now (what
   * the page changed up to now is painted in it): a target observed afresh is reported at the next
   * frame, whatever the watch's `delay`. Reports already made and not yet delivered are taken
   * first: they are of frames before now, so one of them finding it covered counts, and one
   * finding it shown answers nothing (it was made before the changes asked about). Every report
   * the browser delivers later was made after this call (the queue is empty now); one made
   * before it can only come from a page's observer wrapping the browser's, which kept it back
   * (its `time` says so, against the browser's own clock: realm.ts, pageNow()). */
  askShown(): void {
    const target = this.coverTarget;
    if (!target || !this.coverWatch) return;
    // Asked now, before the reports due are taken: a page's wrapper of takeRecords called the
    // widget's callback from inside it with the report it kept that answered the question before
    // (made after that one was asked), and it answered this one too, made under its cover
    // (tests/e2e/test_page_ran_first.py).
    const askedAt = pageNow();
    this.question = ask(askedAt, this.lastReportAt);
    const stale = this.coverWatch.takeRecords();
    if (stale.length) this.onCoverReport(stale, false);
    const marks = this.frameWatch?.takeRecords() ?? [];
    if (marks.length) this.onFrameMark(marks, false);
    if (this.coverTarget !== target || !this.coverWatch) return; // a report ended the watch
    this.question = ask(askedAt, this.lastReportAt);
    this.observeAfresh(target);
  }

  /** Ask the cover watch again, now (the question's first frame found Stop sharing covered, or
   * its report was kept back: what was asked about is dropped). The cover watch's reports due are
   * left to come (made before now, none answers; one finding Stop sharing covered still counts);
   * the frame marks due are taken: made before now, none marks this question's frame. */
  private askAgain(): void {
    const target = this.coverTarget;
    if (!target || !this.coverWatch) return;
    const marks = this.frameWatch?.takeRecords() ?? [];
    if (marks.length) this.onFrameMark(marks, false);
    this.question = ask(pageNow(), this.lastReportAt);
    this.observeAfresh(target);
  }

  /** Observe Stop sharing afresh (reported at the next frame drawn, whatever the watch's `delay`),
   * and the document with it: the first frame drawn after now is marked (./first-frame.ts). */
  private observeAfresh(target: Element): void {
    this.coverWatch?.unobserve(target);
    this.coverWatch?.observe(target);
    if (!this.frameWatch) return this.markFrame();
    const frameTarget = document.documentElement;
    this.frameWatch.unobserve(frameTarget);
    this.frameWatch.observe(frameTarget);
  }

  /**
   * Mark the first frame drawn after the question asked now with the browser's own frame
   * callbacks (realm.ts, browserFrame()): the first runs as that frame is drawn, before the
   * cover watch makes its report of it (the browser runs a frame's callbacks, then draws it, then
   * makes the observers' reports); the next one runs as the frame after it is drawn, after that
   * report was made, and before any report of its own frame: the time then (the browser's own
   * clock) is the mark. A report made later than that one was made at a later frame. Where the
   * browser's clock cannot be read but the document's animation clock stands in for it (fake
   * timers in every frame: realm.ts, pageTime()), the one after (the animation clock says when a
   * frame was due, on a busy browser before the report of the frame before was made). No clock:
   * no report can be set against the frame, and the question is late.
   */
  private markFrame(): void {
    const asked = ++this.asked;
    const mine = (): boolean => asked === this.asked && this.question !== null;
    const mark = (frames: number): void => {
      if (!mine()) return;
      const now = pageTime();
      if (now && !now.exact && frames < 3) {
        browserFrame(() => mark(frames + 1));
        return;
      }
      const question = this.question;
      if (!question) return;
      if (!now) return this.heard({ kind: "late" });
      this.heard(heardFrame(question, now.time));
    };
    browserFrame(() => {
      if (mine()) browserFrame(() => mark(2));
    });
  }

  /** Raise the widget, and ask the cover watch afresh (it reports only changes: a layer the page
   * shows over it again before the next frame would be no change). */
  private raiseUncovered(): void {
    this.raise();
    this.askAgain();
  }

  /** The first frame drawn after the question, marked (observeAfresh()): read with the browser's
   * own getters, of the document only. `answers` false: made before the question. */
  private onFrameMark(entries: IntersectionObserverEntry[], answers = true): void {
    if (!Array.isArray(entries)) return;
    const frameTarget = document.documentElement;
    const marks = entries.map((entry) => coverReport(entry, frameTarget)).filter((mark) => mark !== null);
    const made = marks.at(0)?.time;
    if (made === undefined) return;
    for (const mark of marks) if (mark.time > this.lastReportAt) this.lastReportAt = mark.time;
    if (answers && this.question) this.heard(heardFrame(this.question, made));
  }

  /** What a report told of the question asked (./first-frame.ts). */
  private heard(verdict: Verdict): void {
    if (verdict.kind === "wait") {
      this.question = verdict.question;
      return;
    }
    this.question = null;
    if (verdict.kind === "shown") return this.coverHeard?.shown();
    // The first frame's report kept back: what the page changed before the question was drawn
    // under a cover the widget was not told of (session.ts drops it, as for a cover); asked again.
    this.coverHeard?.covered();
    this.askAgain();
  }

  /** `answers`: whether a report of Stop sharing shown answers the question asked (askShown()),
   * false for the reports made before it was asked. */
  private onCoverReport(entries: IntersectionObserverEntry[], answers = true): void {
    const target = this.coverTarget;
    if (!target || !Array.isArray(entries)) return;
    // Read with the browser's own getters (./realm.ts): a report that is not the browser's own
    // (a page that replaced IntersectionObserver before the SDK loaded) counts as covered.
    const reports = entries.map((entry) => coverReport(entry, target) ?? (entry?.target === target ? "forged" : null));
    const report = reports.filter((r) => r !== null).at(-1);
    if (!report) return;
    const covered = report === "forged" || (report.intersecting && report.visible === false);
    const made = report === "forged" ? null : report.time;
    if (made !== null && made > this.lastReportAt) this.lastReportAt = made;
    if (!covered) {
      if (this.covered || !this.shownSince) this.shownSince = watchNow();
      this.covered = false;
      // A report kept back from before the question by a page's observer answers nothing (the
      // question stays asked: the browser's own report still comes, if the page passes it on);
      // nor does one made after the question's first frame (./first-frame.ts).
      if (answers && made !== null && this.question) this.heard(heardShown(this.question, made));
      return;
    }
    // What the page changed before this frame was drawn under the cover: not to go (session.ts).
    this.coverHeard?.covered();
    this.unheardCoverAt = watchNow();
    // Shown on end for COVER_FORGET_MS since it was last covered: the reports before are forgotten.
    // A popover of the page's heard shown is no excuse (it reset the count: a page that showed a
    // tooltip before each of its covers was never paused): the widget is raised over it before
    // the frame that shows it is drawn (./popover-raises.ts).
    if (!this.covered && this.shownSince && watchNow() - this.shownSince >= COVER_FORGET_MS) this.coverStreak = 0;
    this.covered = true;
    // Under the widget's own fullscreen notice: paused for it already, and not to be covered.
    if (this.fullscreen) return;
    // Covered after COVERED_REPORTS raises (not forgotten: COVER_FORGET_MS): out of reach at
    // once (the looks try again).
    // A single report is no cover: a popover's transparent backdrop counts as one in the frame
    // before the widget is raised over it (one the widget does not hear: a closed shadow root's,
    // or heard only at its `toggle`), and each would pause.
    // Reports come a frame apart at least: no loop of microtasks with a page's observer.
    if (++this.coverStreak >= COVERED_REPORTS) return this.outOfReach?.();
    this.raiseUncovered();
  }

  /** Whether the cover watch found Stop sharing covered COVERED_REPORTS times, and it has not
   * shown for COVER_FORGET_MS on end since (then the count is forgotten). */
  private coveredOften(): boolean {
    if (this.coverStreak < COVERED_REPORTS) return false;
    if (this.covered || watchNow() - this.shownSince < COVER_FORGET_MS) return true;
    this.coverStreak = 0;
    return false;
  }

  private unwatchCover(): void {
    this.coverWatch?.disconnect();
    this.coverWatch = null;
    this.frameWatch?.disconnect();
    this.frameWatch = null;
    this.coverBroken = false;
    this.question = null;
    this.lastReportAt = -Infinity;
    this.coverTarget = null;
    this.covered = false;
    this.coverStreak = 0;
    this.shownSince = 0;
  }

  /** Whether the browser's hit test at the widget's Stop sharing (else what shows) finds it. */
  private hit(): boolean {
    const root = this.innerRoot;
    const target = this.reachTarget();
    if (!root || !target) return true; // only layers (the pointer, a notice) show
    const box = target.getBoundingClientRect();
    // The part on screen (a long question scrolls): its middle.
    const left = Math.max(box.left, 0);
    const right = Math.min(box.right, innerWidth);
    const top = Math.max(box.top, 0);
    const bottom = Math.min(box.bottom, innerHeight);
    if (right <= left || bottom <= top) return false;
    const found = root.elementFromPoint((left + right) / 2, (top + bottom) / 2);
    return found !== null && (found === target || target.contains(found));
  }

  private show(...nodes: Node[]): void {
    const root = this.mount();
    this.watchReach(); // again after a notice: a session starts anew
    const hadDialog = this.trap !== null;
    this.releaseTrap();
    const layers = [this.live, this.overlay, this.pointer, this.toast].filter((n): n is HTMLElement => n !== null);
    root.replaceChildren(...layers, ...nodes);
    this.watchCover();
    this.primary = null;
    if (hadDialog) this.restoreFocus();
  }

  /** Say `text` to screen readers (a moment after the region exists, so it is heard). */
  private announce(text: string): void {
    this.mount();
    clearTimeout(this.announceTimer);
    if (this.live) this.live.textContent = "";
    this.announceTimer = setTimeout(() => {
      if (this.live) this.live.textContent = text;
    }, 150);
  }

  /** The question (a modal dialog) open now, by its title's id (`tandem-record-title`...), or
   * null: while one is, the page behind it is not to be acted on. */
  asking(): string | null {
    const trap = this.trap;
    return trap && !trap.answered && trap.dialog.isConnected ? trap.dialog.getAttribute("aria-labelledby") : null;
  }

  /** Focus what is showing now: the dialog's answer, the banner's Stop sharing, the code panel. */
  focusCurrent(): void {
    const target = this.primary;
    if (!target?.isConnected) return;
    target.focus();
    const label = target.closest("[aria-label]")?.getAttribute("aria-label");
    if (label && !this.trap) this.announce(label);
  }

  private restoreFocus(): void {
    const target = this.returnFocus;
    this.returnFocus = null;
    if (target?.isConnected && typeof target.focus === "function") target.focus({ preventScroll: true });
  }

  private releaseTrap(): void {
    if (!this.trap) return;
    document.removeEventListener("focusin", this.keepFocus, true);
    this.trap = null;
  }

  /** Focus that leaves an open dialog (a click on the page behind) comes back to it. */
  private readonly keepFocus = (event: FocusEvent) => {
    const trap = this.trap;
    if (!trap || !trap.dialog.isConnected) return;
    const target = event.target as Node | null;
    if (target && this.host && (target === this.host || this.host.contains(target))) return;
    trap.dialog.focus();
  };

  private focusables(container: HTMLElement): HTMLElement[] {
    return Array.from(container.querySelectorAll<HTMLElement>(FOCUSABLE)).filter((el) => !el.hasAttribute("disabled"));
  }

  /** Make `dialog` modal: Tab cycles inside, Esc cancels, focus comes back to where it was. */
  private trapFocus(dialog: HTMLElement, cancel: () => void, first: HTMLElement): void {
    this.trap = { dialog, cancel };
    // A click on the backdrop or the dialog's text keeps focus where it is (in the dialog).
    for (const area of [dialog, dialog.previousElementSibling]) {
      area?.addEventListener("mousedown", (event) => {
        if (!(event.target as Element | null)?.closest?.(FOCUSABLE)) event.preventDefault();
      });
    }
    dialog.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation();
        cancel();
        return;
      }
      if (event.key !== "Tab") return;
      const items = this.focusables(dialog);
      if (!items.length) return;
      const current = this.innerRoot?.activeElement;
      const index = items.indexOf(current as HTMLElement);
      const next = event.shiftKey ? (index <= 0 ? items.length - 1 : index - 1) : (index === items.length - 1 ? 0 : index + 1);
      event.preventDefault();
      items[next].focus();
    });
    document.addEventListener("focusin", this.keepFocus, true);
    this.primary = first;
    first.focus();
  }

  /** The site's logo and name, when it set a brand (decorative: the text says it all). */
  private brandLine(): Node[] {
    const { logo, name } = this.options.brand;
    if (!logo && !name) return [];
    const line = element("p", { className: "brand" });
    if (logo) {
      line.append(element("img", {
        attrs: { src: logo, alt: "", referrerpolicy: "no-referrer", decoding: "async", width: "24", height: "24" },
      }));
    }
    line.append(element("span", { text: this.company() }));
    return [line];
  }

  /** Outline, on the customer's screen only, what the agent cannot see (null removes it). */
  setOverlay(rects: DOMRect[] | null): void {
    if (!rects) {
      this.overlay?.remove();
      this.overlay = null;
      this.overlayDrawn = "";
      return;
    }
    const shown = rects
      .filter((r) => r.width > 0 && r.height > 0 && r.bottom > 0 && r.top < innerHeight)
      .slice(0, 300);
    // Called four times a second: redraw only when the outlines move (scroll, layout).
    const drawn = shown.map((r) => `${r.left},${r.top},${r.width},${r.height}`).join(";");
    if (this.overlay?.isConnected && drawn === this.overlayDrawn) return;
    this.overlayDrawn = drawn;
    if (!this.overlay) {
      this.overlay = element("div", { className: "overlay", attrs: { "aria-hidden": "true" } });
    }
    if (!this.overlay.isConnected) this.mount().prepend(this.overlay);
    const boxes = shown.map((r) => {
      const box = element("div", { className: "masked-outline" });
      box.style.left = `${r.left - 2}px`;
      box.style.top = `${r.top - 2}px`;
      box.style.width = `${r.width + 4}px`;
      box.style.height = `${r.height + 4}px`;
      return box;
    });
    this.overlay.replaceChildren(...boxes);
  }

  /** A panel with a code to read out (the help code, or a supervisor's). */
  private codePanel(region: string, label: string, code: string, hint: string, announce: string, onCancel: () => void): void {
    const cancel = button(this.t("cancel"), "", onCancel);
    // A supervisor's code, while the page shares: it takes the banner's place (as long as the
    // relay likes, when the supervisor is its invention), so Stop sharing is here too.
    const stop = this.stopSharing ? [pressButton(this.t("stopSharing"), "danger", this.stopSharing)] : [];
    const panel = element("div", { className: "panel", attrs: { role: "region", "aria-label": region, tabindex: "-1" } }, [
      ...this.brandLine(),
      element("p", { className: "label", text: label }),
      // Shown in groups; heard digit by digit (a screen reader would read "4829" as a number).
      element("p", { className: "code", text: formatCode(code), attrs: { dir: "ltr", "aria-hidden": "true" } }),
      element("p", { className: "sr-only", text: spokenCode(code) }),
      element("p", { className: "hint", text: hint }),
      element("div", { className: "row" }, [...stop, cancel]),
    ]);
    panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.stopPropagation();
        onCancel();
      }
    });
    this.show(panel);
    this.primary = cancel;
    this.announce(announce);
    // Just asked for (a button pressed, nothing typed into): keyboard users land on it.
    const active = deepActive();
    const fromPage = active instanceof HTMLElement && document.activeElement !== this.host && active !== document.body;
    if (!active || active === document.body || active.matches("button, a, [role=button]")) {
      if (fromPage) this.returnFocus = active; // where focus goes back when the widget is done
      cancel.focus({ preventScroll: true });
    }
  }

  showCode(code: string, onCancel: () => void): void {
    this.stopSharing = null; // nothing is shared while the help code shows: Cancel ends it all
    this.codePanel(
      this.t("widget", { company: this.company() }), this.t("codeLabel"), code, this.t("codeHint"),
      this.t("codeAnnounce", { code: spokenCode(code) }), onCancel,
    );
  }

  /** A step under way (the code being checked with the agent), with Cancel when it may be
   * ended: the relay decides how long the step takes (it can withhold the agent's answer for
   * good), and a reload resumes it, so only Cancel gets the customer out. */
  showBusy(message: string, onCancel?: () => void): void {
    const key = message === messages.en.checking ? "checking" : null;
    const cancel = onCancel ? button(this.t("cancel"), "", onCancel) : null;
    this.show(
      element("div", { className: "panel" }, [
        element("p", { className: "hint", text: key ? this.t(key) : message, attrs: { role: "status" } }),
        ...(cancel ? [element("div", { className: "row" }, [cancel])] : []),
      ]),
    );
    this.primary = cancel;
  }

  /** Why the session ended (or why it could not start), in the customer's language. */
  showError(message: string, onClose: () => void): void {
    const key = noticeKey(message);
    this.showNotice(key ? this.t(key) : message, onClose, "alert");
  }

  /** The customer stopped sharing: say that nothing is shared any more. */
  showStopped(agent: string | null, onClose: () => void): void {
    this.showNotice(this.t("endedByYou", { agent: agent ?? this.t("theAgent") }), onClose, "status");
  }

  private showNotice(text: string, onClose: () => void, role: "alert" | "status"): void {
    const close = button(this.t("close"), "", onClose);
    const panel = element("div", {
      className: "panel", attrs: { role: "region", "aria-label": this.t("endedTitle"), tabindex: "-1" },
    }, [
      ...this.brandLine(),
      element("p", { className: role === "alert" ? "error" : "notice", text, attrs: { role } }),
      element("div", { className: "row" }, [close]),
    ]);
    panel.addEventListener("keydown", (event) => {
      if (event.key === "Escape") onClose();
    });
    this.show(panel);
    this.primary = close;
    // The session is over (or never began): nothing to stop, nothing more to watch for; no
    // observer of the page stays after a session (tests/e2e/test_story.py counts them).
    this.reachWatch?.();
    this.reachWatch = null;
    this.unwatchCover();
  }

  askConsent(agent: string, onAllow: () => void, onDecline: () => void): void {
    const name = agent === "An agent" ? this.t("anAgent") : agent;
    this.stopSharing = null; // nothing is shared before this answer: Decline ends it all
    this.ask(
      "tandem-title", this.t("consentTitle", { agent: name }),
      this.t("consentText", { agent: name, company: this.company() }),
      [this.t("decline"), onDecline], [this.t("allow"), onAllow], undefined, "tandem-desc",
    );
  }

  showSharing(
    agent: string, onStop: () => void, paused: boolean | "controls_hidden" = false, onRevokeControl?: () => void, onStopRecording?: () => void,
    note: BannerNote | null = null,
    watcher?: string,
  ): void {
    const named = agent === "the agent" ? this.t("theAgent") : agent;
    const who = watcher ? this.t("agentAndWatcher", { agent: named, watcher }) : named;
    // Paused for the page's layers: said as such (not "this private page"), to the customer
    // and to a screen reader, whenever the widget can be seen or read.
    const state = paused === "controls_hidden" ? this.t("pausedControls", { agent: who })
      : paused ? this.t("paused", { agent: who })
      : onRevokeControl ? this.t("inControl", { agent: who }) : this.t("sharing", { agent: who });
    // What the server says of a connection (the agent's console away, the link between its
    // processes down) is a note beside what the banner says, never in its place: the sharing
    // state, recording, control and Stop sharing stay shown (docs/threat-model.md).
    const name = note && (note.agent === "the agent" ? this.t("theAgent") : note.agent);
    const noteText = !note || !name ? null
      : note.kind === "agent_quiet" ? this.t("agentQuiet", { agent: name })
      : note.kind === "agent_away" ? this.t("reconnectingAgent", { agent: name }) : this.t("linkReconnecting", { agent: name });
    const text = noteText ? `${state}. ${noteText}` : state;
    this.stopSharing = onStop;
    const fresh = !this.bannerShown();
    const before = this.root?.querySelector(".banner")?.getAttribute("aria-label");
    const focused = this.innerRoot?.activeElement?.textContent ?? null;
    const banner = this.drawBanner(text, [
      element("span", { className: paused ? "dot paused" : "dot", attrs: { "aria-hidden": "true" } }),
      element("span", { className: "status-text", text: state }),
      ...(noteText ? [element("span", { className: "link-note", text: noteText })] : []),
      ...(onStopRecording ? [element("span", { className: "recording", text: `● ${this.t("recording")}` })] : []),
    ], { stop: onStop, stopRecording: onStopRecording, takeBack: onRevokeControl });
    if (before !== text) this.announce(text);
    this.fullscreenNotice(paused === "controls_hidden", who);
    // A banner made anew (after a question) puts keyboard focus back on the same button.
    if (fresh && focused) Array.from(banner.el.querySelectorAll("button")).find((b) => b.textContent === focused)?.focus();
  }

  /**
   * Sharing paused because the page's fullscreen element keeps the widget off screen (a
   * fullscreen `<video>` shows no children): the banner, raised over it, is drawn but inert
   * there, out of the accessibility tree, so the customer was not told in words a screen reader
   * says, and its Stop sharing took no click. A modal dialog of the widget's own, shown after the
   * fullscreen element, is the topmost modal: read, spoken and clicked, in the top layer above
   * it. It says sharing is paused and offers to leave full screen or stop; sharing stays paused
   * meanwhile (its banner stays out of reach). Closed when sharing goes on, stops, or the
   * customer closes it (not shown again over the same fullscreen element).
   */
  private fullscreenNotice(paused: boolean, agent: string): void {
    const over = document.fullscreenElement;
    const host = this.host;
    if (!paused || !over) this.fullscreenClosed = null;
    if (!paused || !over || !host || over.contains(host) || over === this.fullscreenClosed) return this.closeFullscreenNotice();
    const text = this.t("fullscreenText", { agent });
    const shown = this.fullscreen;
    if (shown && shown.over === over && shown.dialog.open && shown.host.isConnected) {
      shown.text.textContent = text;
      return;
    }
    this.closeFullscreenNotice();
    // Built whole while detached, marked as the widget is (the recorder blocks it; sharing is
    // paused while it shows in any case).
    const noticeHost = element("div", { attrs: { [TANDEM_UI_ATTRIBUTE]: "" } });
    noticeHost.style.setProperty("all", "initial", "important");
    const root = noticeHost.attachShadow({ mode: "open" });
    const locale = this.locale;
    const title = element("h2", { text: this.t("fullscreenTitle"), attrs: { id: "tandem-fullscreen-title" } });
    const said = element("p", { text, attrs: { id: "tandem-fullscreen-text" } });
    const leave = button(this.t("leaveFullscreen"), "primary", () => {
      void document.exitFullscreen?.().catch(() => undefined);
    });
    const stop = pressButton(this.t("stopSharing"), "danger", () => this.stopSharing?.());
    const dialog = element("dialog", {
      attrs: { [TANDEM_UI_ATTRIBUTE]: "", "aria-labelledby": title.id, "aria-describedby": said.id, lang: locale, dir: direction(locale) },
    }, [title, said, element("div", { className: "actions" }, [leave, stop])]);
    try {
      // A constructed sheet: a `<style>` element is refused by a page's CSP (style-src 'self').
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(FULLSCREEN_CSS);
      root.adoptedStyleSheets = [sheet];
    } catch {
      // an older browser: the browser's own dialog styles
    }
    root.append(dialog);
    // Followed as fullscreen changes, not only at the session's redraws: while it shows, the
    // banner is out of reach behind it, so no look finds the widget back within reach when
    // fullscreen is left (and sharing would stay paused behind a notice of a fullscreen gone).
    // Another fullscreen element over it: shown again, above that one.
    const changed = () => {
      if (this.fullscreen !== notice) return;
      const now = document.fullscreenElement;
      if (now === over) return;
      this.closeFullscreenNotice();
      if (now) this.fullscreenNotice(true, agent);
    };
    document.addEventListener("fullscreenchange", changed, true);
    const unwatch = () => document.removeEventListener("fullscreenchange", changed, true);
    const notice = { host: noticeHost, dialog, over, text: said, unwatch };
    dialog.addEventListener("close", () => {
      if (this.fullscreen !== notice) return;
      this.fullscreenClosed = over; // the customer closed it (Esc): not again over this one
      this.closeFullscreenNotice();
    });
    document.documentElement.append(noticeHost);
    try {
      dialog.showModal();
    } catch {
      unwatch();
      noticeHost.remove(); // not rendered: the banner says it, as before
      return;
    }
    this.fullscreen = notice;
  }

  private closeFullscreenNotice(): void {
    const shown = this.fullscreen;
    this.fullscreen = null;
    if (!shown) return;
    shown.unwatch();
    if (shown.dialog.open) shown.dialog.close();
    shown.host.remove();
  }

  /** Whether the banner is what shows now (no question, notice or code took its place). */
  private bannerShown(): boolean {
    return this.banner !== null && this.root !== null && this.banner.el.parentNode === this.root;
  }

  /**
   * Show the banner saying `text` (its status line made of `status`), with the buttons `actions`
   * names: in place when it shows already (its buttons are the same elements), else anew.
   */
  private drawBanner(
    text: string, status: Node[], actions: { stop: () => void; stopRecording?: () => void; takeBack?: () => void },
  ): Banner {
    let banner = this.banner;
    if (!banner || !this.bannerShown()) {
      // Each acts at a press (pressButton); the click after it finds the action gone (the
      // redraw it made took it away), so nothing happens twice.
      const act = (name: keyof CustomerUI["bannerActions"]) => () => this.bannerActions[name]?.();
      banner = {
        el: element("div", { className: "banner", attrs: { role: "region" } }),
        status: element("div", { className: "status" }),
        extras: element("div", { className: "extras" }),
        stop: pressButton("", "danger stop", act("stop")),
        stopRecording: pressButton("", "", act("stopRecording")),
        takeBack: pressButton("", "", act("takeBack")),
      };
      banner.el.append(banner.status, banner.extras, banner.stop);
      this.show(banner.el);
      this.banner = banner;
    }
    this.bannerActions = actions;
    banner.el.setAttribute("aria-label", text);
    banner.status.replaceChildren(...status);
    banner.stop.textContent = this.t("stopSharing");
    banner.stopRecording.textContent = this.t("stopRecording");
    banner.takeBack.textContent = this.t("takeBack");
    const extras = [...(actions.stopRecording ? [banner.stopRecording] : []), ...(actions.takeBack ? [banner.takeBack] : [])];
    // Only when they change: a button taken out and put back would lose a press on it too.
    if (extras.length !== banner.extras.children.length || extras.some((b, i) => banner.extras.children[i] !== b)) {
      banner.extras.replaceChildren(...extras);
    }
    this.primary = banner.stop;
    return banner;
  }

  /** This page's own connection is being restored (the agent's is a note on the sharing
   * banner); Stop sharing still works. */
  showReconnecting(onStop: () => void): void {
    this.stopSharing = onStop;
    const text = this.t("reconnectingSelf");
    // The same landmark as the sharing banner (a region named by its text), announced the same way.
    const before = this.root?.querySelector(".banner")?.getAttribute("aria-label");
    this.drawBanner(text, [
      element("span", { className: "dot paused", attrs: { "aria-hidden": "true" } }),
      element("span", { className: "status-text", text }),
    ], { stop: onStop });
    if (before !== text) this.announce(text);
  }

  /** The agent asked (inside the encrypted channel) and `site`'s own page pinned the key. */
  askRecording(agent: string, site: string, onAllow: () => void, onRefuse: () => void): void {
    this.ask(
      RECORD_QUESTION, this.t("recordTitle", { agent }), this.t("recordText"),
      [this.t("dontRecord"), onRefuse], [this.t("allowRecording"), onAllow], this.t("recordVerified", { site }),
    );
  }

  /**
   * A modal question with a refusing and an allowing button. Focus goes to the dialog itself, not
   * to a button: a key the customer meant for the page (Enter, Space) must never answer, least of
   * all allow. Tab reaches the answers and stays inside; Esc refuses; focus returns where it was
   * when the question is answered. "Allow" takes no click a script made, and no pointer click
   * until ANSWER_DELAY_MS after the question appeared. While the page shares, the question offers
   * Stop sharing too (the banner is not shown meanwhile).
   */
  private ask(
    id: string, title: string, text: string, refuse: [string, () => void], allow: [string, () => void], note?: string,
    describedBy = `${id}-text`,
  ): void {
    // Answered, the question no longer counts as open (asking()): what the answer shows next
    // (the banner, another question) takes its place.
    const answer = (then: () => void) => () => {
      if (this.trap?.dialog === dialog) this.trap.answered = true;
      then();
    };
    const yes = allowingButton(allow[0], answer(allow[1]), this.scriptedAnswers);
    const no = button(refuse[0], "", answer(refuse[1])); // refusing is always safe, at once
    const stop = this.stopSharing;
    const dialog = element("div", {
      className: "dialog",
      attrs: {
        role: "dialog", "aria-modal": "true", "aria-labelledby": id, "aria-describedby": describedBy, tabindex: "-1",
      },
    }, [
      ...this.brandLine(),
      element("h2", { text: title, attrs: { id } }),
      element("p", { text, attrs: { id: describedBy } }),
      ...(note ? [element("p", { className: "verified", text: `✓ ${note}` })] : []),
      element("div", { className: "row" }, [...(stop ? [pressButton(this.t("stopSharing"), "danger", stop)] : []), no, yes]),
    ]);
    this.show(element("div", { className: "backdrop" }), dialog);
    // Where focus was (after a question it replaced gave it back): it returns there.
    const active = deepActive();
    const outside = active instanceof HTMLElement && active !== document.body && document.activeElement !== this.host;
    if (outside) this.returnFocus = active; // else: where the widget took focus from, if it did
    this.trapFocus(dialog, answer(refuse[1]), dialog);
  }

  askWatch(watcher: string, onAllow: () => void, onRefuse: () => void): void {
    this.ask(
      WATCH_QUESTION, this.t("watchTitle", { watcher }), this.t("watchText", { watcher }),
      [this.t("refuse"), onRefuse], [this.t("allow"), onAllow],
    );
  }

  showWatchCode(watcher: string, code: string, onCancel: () => void): void {
    this.codePanel(
      this.t("watchRegion"), this.t("watchCodeLabel", { watcher }), code, this.t("watchCodeHint", { watcher }),
      this.t("watchCodeAnnounce", { watcher, code: spokenCode(code) }), onCancel,
    );
  }

  askControl(agent: string, onAllow: () => void, onRefuse: () => void): void {
    this.ask(
      CONTROL_QUESTION, this.t("controlTitle", { agent }), this.t("controlText", { agent }),
      [this.t("refuse"), onRefuse], [this.t("allowControl"), onAllow],
    );
  }

  /**
   * The agent's laser pointer, at viewport coordinates (null hides it). A new element each move:
   * changing an element's style in place makes rrweb compute a style diff with an inline style,
   * which a strict page CSP reports as a violation.
   */
  point(x: number | null, y = 0): void {
    const old = this.pointer;
    this.pointer = null;
    if (x !== null) {
      const dot = element("div", { className: "pointer", attrs: { "aria-hidden": "true" } });
      dot.style.left = `${x}px`;
      dot.style.top = `${y}px`;
      this.pointer = dot;
      if (old) old.replaceWith(dot);
      else this.mount().append(dot);
    } else {
      old?.remove();
    }
  }

  /** A short notice of what the agent just did, from the catalogue. */
  notifyKey(key: WidgetMessage, params?: Params): void {
    this.notify(this.t(key, params));
  }

  /** A short notice of what the agent just did. */
  notify(text: string): void {
    if (!this.toast) {
      this.toast = element("div", { className: "toast", attrs: { role: "status", "aria-live": "polite" } });
      this.mount().append(this.toast);
    }
    this.toast.textContent = text;
    clearTimeout(this.toastTimer);
    this.toastTimer = setTimeout(() => {
      this.toast?.remove();
      this.toast = null;
    }, 2500);
  }

  /** Take the widget off the page. The session is over (or never began): its stored options go
   * too, so nothing of it stays in this tab; this page keeps them for a last notice. */
  remove(): void {
    try {
      sessionStorage.removeItem(OPTIONS_KEY);
    } catch {
      // storage disabled: nothing was kept
    }
    const hadDialog = this.trap !== null;
    this.releaseTrap();
    this.stopSharing = null;
    this.banner = null;
    this.bannerActions = {};
    this.overlay = null;
    this.overlayDrawn = "";
    this.pointer = null;
    this.toast = null;
    this.live = null;
    this.primary = null;
    clearTimeout(this.toastTimer);
    clearTimeout(this.announceTimer);
    this.closeFullscreenNotice();
    this.fullscreenClosed = null;
    this.reachWatch?.();
    this.reachWatch = null;
    this.unwatchCover();
    this.gaveUp = null;
    this.placedIn = null;
    this.putBacks = 0;
    this.raises = 0;
    this.contested = false;
    this.host?.remove();
    this.host = null;
    this.root = null;
    this.innerRoot = null;
    this.layer = null;
    this.sheet = null;
    if (hadDialog || this.focusLost()) this.restoreFocus();
    this.returnFocus = null;
  }

  /** Focus was in the widget (now gone) or nowhere. */
  private focusLost(): boolean {
    return document.activeElement === null || document.activeElement === document.body || document.activeElement === this.host;
  }
}
