/**
 * Remote control on the customer's side: only with its own consent, only on what the agent can
 * see, every action shown to the customer, rate-limited, revocable at any moment (Esc or the
 * banner's "Take back control").
 *
 * Commands arrive encrypted from the agent (../shared/e2e/channel.ts, CommandReceiver). They name
 * elements by rrweb's node ids, looked up in the recorder's mirror of this page.
 */

import { record } from "rrweb";
import { agentMayTouch, insideTandemUi } from "../shared/masking.ts";
import type { ActionRefusal, ControlState, Payload } from "../shared/payload.ts";
import type { CustomerView } from "./ports.ts";
import { Bucket } from "./bucket.ts";

/** Clicks and scrolls per second. Typing (each command sets the whole value) and pointer moves
 * have their own, larger allowances. */
const ACTIONS_PER_SECOND = 5;
const TYPING_PER_SECOND = 20;
const POINTS_PER_SECOND = 40;
const MAX_TYPED = 1000;

export interface ControlHost {
  agent(): string;
  reply(payload: Payload): void;
  /** Redraw the banner for the new control state. */
  changed(): void;
  isPrivate(url: URL): boolean;
}

/**
 * The address a click on `el` may load: its link's, or its form's on submission. A form sent
 * with GET (the default) loads its action with its fields as the query, as the browser builds it
 * (a submit button's own `formaction`, `formmethod`, name and value count): a query-routed site's
 * private page is `?page=checkout`, whatever the action's own query says. Null: none.
 */
export function clickTarget(el: Element, base: string): URL | null {
  const link = el.closest("a[href]") as HTMLAnchorElement | null;
  if (link) return new URL(link.href, base);
  const form = (el as HTMLButtonElement).form ?? null;
  if (!form) return null;
  const submitter = el instanceof HTMLButtonElement || el instanceof HTMLInputElement ? el : null;
  const action = submitter?.hasAttribute("formaction") ? submitter.formAction : form.action;
  const method = submitter?.hasAttribute("formmethod") ? submitter.formMethod : form.method;
  const target = new URL(action || base, base);
  if (method.toLowerCase() !== "get") return target;
  const Data = (form.ownerDocument.defaultView as (Window & typeof globalThis) | null)?.FormData ?? FormData;
  let data: FormData;
  try {
    data = new Data(form, submitter ?? undefined); // throws for a submitter that submits nothing
  } catch {
    data = new Data(form);
  }
  const query = new URLSearchParams();
  for (const [name, value] of data) query.append(name, typeof value === "string" ? value : value.name);
  target.search = query.toString();
  return target;
}

function describe(el: Element): string {
  const aria = el.getAttribute("aria-label");
  const labelled = (el as HTMLInputElement).labels?.[0]?.textContent;
  const text = aria || labelled || el.textContent || el.getAttribute("placeholder") || el.tagName.toLowerCase();
  return text.trim().replace(/\s+/g, " ").slice(0, 40);
}

/**
 * Whether Tandem's own UI (a question, the banner) covers the middle of `el` on the customer's
 * screen. The agent's mirror never shows that UI, so the agent cannot know the customer does not
 * see what it would act on; and while a question is open, the page behind it is not to be touched.
 * The outlines, pointer and notices let clicks through and do not count.
 */
function coveredByTandemUi(el: Element): boolean {
  const box = el.getBoundingClientRect();
  const x = box.left + box.width / 2;
  const y = box.top + box.height / 2;
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
      if (this.asking) return;
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
    if (!(c.k === "type" ? this.typing : this.actions).take()) return this.refuse("Too many actions: slow down.", "too_many");
    if (c.k === "scroll" && typeof c.x === "number" && typeof c.y === "number" && Number.isFinite(c.x + c.y)) {
      scrollTo({ left: c.x, top: c.y });
      this.ui.notifyKey("scrolled", { agent: this.host.agent() });
      return;
    }
    const node = typeof c.id === "number" ? record.mirror.getNode(c.id) : null;
    if (!(node instanceof Element) || !node.isConnected) return this.refuse("That part of the page is gone.", "gone");
    if (!agentMayTouch(node)) return this.refuse("That is hidden from you or protected.", "protected");
    if (coveredByTandemUi(node)) {
      return this.refuse("That is covered by the customer's Tandem controls: ask them to scroll or answer first.", "covered");
    }
    if (c.k === "click") return this.click(node);
    if (c.k === "type" && typeof c.text === "string") return this.type(node, c.text.slice(0, MAX_TYPED));
    this.refuse("Unknown action.", "unknown");
  }

  private click(el: Element): void {
    const target = clickTarget(el, location.href);
    if (target && (target.origin !== location.origin || this.host.isPrivate(target))) {
      return this.refuse("That leads off the pages you may see.", "off_pages");
    }
    this.ui.notifyKey("clicked", { agent: this.host.agent(), target: describe(el) });
    (el as HTMLElement).click();
  }

  private type(el: Element, text: string): void {
    const isInput = el instanceof HTMLInputElement && TYPEABLE.has(el.type);
    if (!isInput && !(el instanceof HTMLTextAreaElement)) return this.refuse("You can only type into text fields.", "not_text");
    const field = el as HTMLInputElement | HTMLTextAreaElement;
    const setter = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(field), "value")?.set;
    setter?.call(field, text);
    field.dispatchEvent(new Event("input", { bubbles: true }));
    field.dispatchEvent(new Event("change", { bubbles: true }));
    this.ui.notifyKey("typed", { agent: this.host.agent(), target: describe(el) });
  }
}
