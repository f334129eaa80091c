/**
 * Remote control on the customer's side: only with its own consent, only on what the agent can
 * see, every action shown to the customer, rate-limited, revocable at any moment (Esc or the
 * banner's "Take back control").
 *
 * Commands arrive encrypted from the agent (../shared/e2e/channel.ts, CommandReceiver). They name
 * elements by rrweb's node ids, looked up in the recorder's mirror of this page.
 */

import { record } from "rrweb";
import { ELEMENT_NODE, frameElementOf, isConnectedNode, nodeTypeOf } from "../shared/dom.ts";
import { frameView } from "../shared/frame-view.ts";
import { agentMayTouch, insideTandemUi } from "../shared/masking.ts";
import type { ActionRefusal, ControlPayload, ControlState } from "../shared/payload.ts";
import type { CustomerView } from "./ports.ts";
import { CONTROL_QUESTION } from "./ui.ts";
import { Bucket } from "./bucket.ts";
import { inPrivateFrame } from "./frames.ts";

/** Clicks and scrolls per second. Typing (each command sets the whole value) and pointer moves
 * have their own, larger allowances. */
const ACTIONS_PER_SECOND = 5;
const TYPING_PER_SECOND = 20;
const POINTS_PER_SECOND = 40;
const MAX_TYPED = 1000;

export interface ControlHost {
  agent(): string;
  reply(payload: ControlPayload): void;
  /** Redraw the banner for the new control state. */
  changed(): void;
  isPrivate(url: URL): boolean;
}

const SVG_NS = "http://www.w3.org/2000/svg";
const XLINK_NS = "http://www.w3.org/1999/xlink";
const XHTML_NS = "http://www.w3.org/1999/xhtml";

/** An address the browser could not parse: off the pages (its origin is "null"). */
const UNPARSABLE = "about:invalid";

function parsed(href: string, base?: string): URL {
  try {
    return new URL(href, base);
  } catch {
    return new URL(UNPARSABLE);
  }
}

/** The element a click's event goes through after `node`, as the browser dispatches it: a
 * slotted element's slot, a shadow root's host, otherwise the parent element. By node type, not
 * `instanceof`: an element of a same-origin frame's document is of the frame's realm (its links
 * went unread, and a click on a link's text in a frame was not checked). */
function composedParent(node: Element): Element | null {
  if (node.assignedSlot) return node.assignedSlot;
  const parent = node.parentNode;
  if (nodeTypeOf(parent) === ELEMENT_NODE) return parent as Element;
  const host = (parent as ShadowRoot | null)?.host;
  return nodeTypeOf(host) === ELEMENT_NODE ? (host as Element) : null;
}

/** A GET form loads its action with its fields as the query, as the browser builds it (a submit
 * button's own `formaction`, `formmethod`, name and value count): a query-routed site's private
 * page is `?page=checkout`, whatever the action's own query says. The action's fragment stays. */
function submission(form: HTMLFormElement, submitter: HTMLButtonElement | HTMLInputElement, base: string): URL {
  // The action as the browser resolves it: against the base URL (a `<base href>` counts), the
  // document's own address when there is none or it is empty.
  const action = submitter.hasAttribute("formaction") ? submitter.getAttribute("formaction") : form.getAttribute("action");
  const method = submitter.hasAttribute("formmethod") ? submitter.formMethod : form.method;
  const target = action ? parsed(action, submitter.baseURI || base) : parsed(base);
  if (method.toLowerCase() !== "get") return target;
  const Data = (form.ownerDocument.defaultView as (Window & typeof globalThis) | null)?.FormData ?? FormData;
  let data: FormData;
  try {
    data = new Data(form, submitter); // throws for a submitter that submits nothing
  } catch {
    data = new Data(form);
  }
  const query = new URLSearchParams();
  for (const [name, value] of data) query.append(name, typeof value === "string" ? value : value.name);
  target.search = query.toString();
  return target;
}

/** A button that submits its form when clicked (a submit or image button). */
function submitter(el: Element): HTMLButtonElement | HTMLInputElement | null {
  const tag = el.localName;
  if (el.namespaceURI === SVG_NS || (tag !== "button" && tag !== "input")) return null;
  const button = el as HTMLButtonElement | HTMLInputElement;
  const type = button.type.toLowerCase();
  const submits = tag === "button" ? type === "submit" : type === "submit" || type === "image";
  return submits && !button.disabled && button.form ? button : null;
}

/**
 * The addresses a click on `el` may load: every link and every form submission the click goes
 * through, as the browser dispatches it (from `el` up, through slots and shadow roots' hosts). A
 * link (`<a href>`, `<area href>`, an SVG `<a href>` or `<a xlink:href>`) loads its address as
 * the browser resolves it (against the document's base URL: a `<base href>` counts); a submit or
 * image button, or a label of one, submits its form (`submission`). All of them are checked:
 * which one the browser acts on is the first with an "activation behaviour", and reading them
 * all fails closed. An address that does not parse is "about:invalid" (no page's origin).
 */
export function clickTargets(el: Element, base: string): URL[] {
  const found: URL[] = [];
  for (let node: Element | null = el; node; node = composedParent(node)) {
    const tag = node.localName;
    if (node.namespaceURI === SVG_NS) {
      if (tag !== "a") continue;
      const href = node.getAttribute("href") ?? node.getAttributeNS(XLINK_NS, "href") ?? node.getAttribute("xlink:href");
      if (href !== null) found.push(parsed(href, node.baseURI || base));
      continue;
    }
    const href = tag === "a" || tag === "area" ? node.getAttribute("href") : null;
    if (href !== null) {
      found.push(parsed(href, node.baseURI || base));
      continue;
    }
    const control = tag === "label" ? (node as HTMLLabelElement).control : node;
    const button = control ? submitter(control) : null;
    if (button?.form) found.push(submission(button.form, button, base));
  }
  return found;
}

/** The first address a click on `el` loads (clickTargets), or null: none. */
export function clickTarget(el: Element, base: string): URL | null {
  return clickTargets(el, base)[0] ?? null;
}

function describe(el: Element): string {
  const aria = el.getAttribute("aria-label");
  const labelled = (el as HTMLInputElement).labels?.[0]?.textContent;
  const text = aria || labelled || el.textContent || el.getAttribute("placeholder") || el.tagName.toLowerCase();
  return text.trim().replace(/\s+/g, " ").slice(0, 40);
}

/** Frames nest, but never this deep in a real page. */
const MAX_FRAME_DEPTH = 16;

/**
 * The frames between an element of this page and the page: [] for an element of this document,
 * the `<iframe>`s from the innermost out for an element of a same-origin frame's document (rrweb
 * records those with the page, in the same mirror), each shown in the next and the last in this
 * document, all connected. Null for anything else: a node that is no element (an element of a
 * frame's document is no `instanceof Element` of this realm), one no longer in its document, or
 * in a frame removed from the page or shown by a page we cannot see.
 */
function framesAround(node: unknown): Element[] | null {
  if (nodeTypeOf(node) !== ELEMENT_NODE || !isConnectedNode(node as Node)) return null;
  const frames: Element[] = [];
  let doc = (node as Element).ownerDocument;
  try {
    for (let depth = 0; depth < MAX_FRAME_DEPTH; depth++) {
      if (doc === document) return frames;
      const frame = frameElementOf(doc);
      if (!frame || !isConnectedNode(frame)) return null;
      frames.push(frame);
      doc = frame.ownerDocument;
    }
  } catch {
    // a document without a window (a removed frame's)
  }
  return null;
}

/**
 * Whether Tandem's own UI (a question, the banner) covers the middle of `el` on the customer's
 * screen. The agent's mirror never shows that UI, so the agent cannot know the customer does not
 * see what it would act on; and while a question is open, the page behind it is not to be touched.
 * The outlines, pointer and notices let clicks through and do not count. An element in a frame
 * (`frames`: framesAround) is looked for where its frame shows it on the page, moved and scaled
 * by a CSS transform on the frame or around it (frameView: the frame's own pixels were taken for
 * the page's, so an element a scaled frame draws under the banner was looked for elsewhere).
 * A frame turned or skewed by a transform cannot be mapped: counts as covered.
 */
function coveredByTandemUi(el: Element, frames: Element[]): boolean {
  const box = el.getBoundingClientRect();
  let x = box.left + box.width / 2;
  let y = box.top + box.height / 2;
  for (const frame of frames) {
    const view = frameView(frame);
    if (!view) return true;
    x = view.left + x * view.scaleX;
    y = view.top + y * view.scaleY;
  }
  if (!(x >= 0 && y >= 0 && x < innerWidth && y < innerHeight)) return false;
  const hit = document.elementFromPoint(x, y); // a shadow host stands for what is inside it
  return hit !== null && insideTandemUi(hit);
}

const TYPEABLE = new Set(["", "text", "search", "email", "tel", "url", "number"]);

export class RemoteControl {
  granted = false;
  private asking = false;
  private readonly actions = new Bucket(ACTIONS_PER_SECOND);
  private readonly points = new Bucket(POINTS_PER_SECOND);
  private readonly typing = new Bucket(TYPING_PER_SECOND);
  private readonly onKey = (event: KeyboardEvent) => {
    if (event.key === "Escape" && this.granted) this.revoke();
  };

  constructor(private readonly ui: CustomerView, private readonly host: ControlHost, granted = false) {
    this.granted = granted;
    addEventListener("keydown", this.onKey, true);
  }

  private setState(state: ControlState): void {
    this.granted = state === "granted";
    if (!this.granted) this.ui.point(null);
    this.host.reply({ k: "control", state });
    this.host.changed();
  }

  revoke(): void {
    if (this.granted) this.setState("revoked");
  }

  dispose(): void {
    removeEventListener("keydown", this.onKey, true);
    this.granted = false;
    this.ui.point(null);
  }

  /** `reason` in English (older consoles show it as it is); `code` names it for the console's
   * catalogue (the agent's language). */
  private refuse(reason: string, code: ActionRefusal): void {
    this.host.reply({ k: "action_refused", reason, code });
  }

  handle(command: unknown): void {
    if (typeof command !== "object" || command === null) return;
    const c = command as { k?: unknown; id?: unknown; x?: unknown; y?: unknown; text?: unknown };
    if (c.k === "control_request") {
      if (this.granted) return this.setState("granted");
      // Asked once while its question shows; asked again if something took its place (a page
      // of the session's that reconnected, another question): the agent can ask anew.
      if (this.asking && this.ui.asking() === CONTROL_QUESTION) return;
      this.asking = true;
      this.ui.askControl(
        this.host.agent(),
        () => { this.asking = false; this.setState("granted"); },
        () => { this.asking = false; this.setState("refused"); },
      );
      return;
    }
    if (c.k === "control_release") return this.granted ? this.setState("revoked") : undefined;
    if (!this.granted) return this.refuse("The customer has not given you control.", "not_granted");
    if (c.k === "pointer") {
      if (typeof c.x === "number" && typeof c.y === "number" && Number.isFinite(c.x + c.y) && this.points.take()) {
        this.ui.point(c.x, c.y);
      }
      return;
    }
    // While the customer answers a question (a supervisor's, recording), nothing acts on the page
    // behind it: not what the question's backdrop covers, and neither what is scrolled out of
    // view nor the scrolling itself (coveredByTandemUi looks at what is on the screen only).
    if (this.ui.asking()) {
      return this.refuse("That is covered by the customer's Tandem controls: ask them to scroll or answer first.", "covered");
    }
    if (!(c.k === "type" ? this.typing : this.actions).take()) return this.refuse("Too many actions: slow down.", "too_many");
    if (c.k === "scroll" && typeof c.x === "number" && typeof c.y === "number" && Number.isFinite(c.x + c.y)) {
      scrollTo({ left: c.x, top: c.y });
      this.ui.notifyKey("scrolled", { agent: this.host.agent() });
      return;
    }
    const node = typeof c.id === "number" ? record.mirror.getNode(c.id) : null;
    // An element of this page or of a same-origin frame in it (the agent's mirror shows those).
    const frames = framesAround(node);
    if (!frames) return this.refuse("That part of the page is gone.", "gone");
    const el = node as Element;
    // A frame showing a page the policies keep private is sent empty: nothing in it is touched.
    if (!agentMayTouch(el) || (frames.length > 0 && inPrivateFrame(el, document, (url) => this.host.isPrivate(url)))) {
      return this.refuse("That is hidden from you or protected.", "protected");
    }
    if (coveredByTandemUi(el, frames)) {
      return this.refuse("That is covered by the customer's Tandem controls: ask them to scroll or answer first.", "covered");
    }
    if (c.k === "click") return this.click(el);
    if (c.k === "type" && typeof c.text === "string") return this.type(el, c.text.slice(0, MAX_TYPED));
    this.refuse("Unknown action.", "unknown");
  }

  private click(el: Element): void {
    // A link or form in a frame resolves against the frame's document.
    if (clickTargets(el, el.ownerDocument.URL).some((target) => target.origin !== location.origin || this.host.isPrivate(target))) {
      return this.refuse("That leads off the pages you may see.", "off_pages");
    }
    this.ui.notifyKey("clicked", { agent: this.host.agent(), target: describe(el) });
    (el as HTMLElement).click();
  }

  private type(el: Element, text: string): void {
    // By name, not `instanceof`: a field in a frame is of the frame's realm.
    const html = el.namespaceURI === XHTML_NS;
    const isInput = html && el.localName === "input" && TYPEABLE.has((el as HTMLInputElement).type);
    if (!isInput && !(html && el.localName === "textarea")) return this.refuse("You can only type into text fields.", "not_text");
    const field = el as HTMLInputElement | HTMLTextAreaElement;
    const setter = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(field), "value")?.set;
    setter?.call(field, text);
    field.dispatchEvent(new Event("input", { bubbles: true }));
    field.dispatchEvent(new Event("change", { bubbles: true }));
    this.ui.notifyKey("typed", { agent: this.host.agent(), target: describe(el) });
  }
}
