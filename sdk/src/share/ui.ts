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
 */

import { TANDEM_UI_ATTRIBUTE } from "../shared/masking.ts";
import { formatCode } from "../shared/protocol.ts";

const CSS = `
:host { all: initial; }
.panel { position: fixed; right: 20px; bottom: 20px; z-index: 2147483647; max-width: 340px;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1c2430;
  background: #fff; border: 1px solid #d5dbe3; border-radius: 12px;
  box-shadow: 0 10px 30px rgba(16, 24, 40, .18); padding: 16px 18px; }
.label { margin: 0 0 4px; font-size: 13px; color: #5b6776; }
.code { margin: 0 0 10px; font: 600 28px/1.2 ui-monospace, "SFMono-Regular", Menlo, monospace;
  letter-spacing: .06em; color: #0b3d91; }
.hint { margin: 0 0 12px; font-size: 13px; color: #5b6776; }
.row { display: flex; gap: 8px; justify-content: flex-end; }
button { font: 600 14px/1 system-ui, sans-serif; border-radius: 8px; padding: 9px 14px;
  cursor: pointer; border: 1px solid #c3ccd8; background: #fff; color: #1c2430; }
button.primary { background: #0b5fff; border-color: #0b5fff; color: #fff; }
button.danger { background: #c62828; border-color: #c62828; color: #fff; }
button:focus-visible { outline: 3px solid #8ab4ff; outline-offset: 2px; }
.backdrop { position: fixed; inset: 0; z-index: 2147483646; background: rgba(16, 24, 40, .45); }
.dialog { position: fixed; z-index: 2147483647; left: 50%; top: 30%; transform: translate(-50%, -30%);
  width: min(440px, calc(100vw - 40px)); background: #fff; border-radius: 14px; padding: 22px 24px;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1c2430;
  box-shadow: 0 20px 50px rgba(16, 24, 40, .3); }
.dialog h2 { margin: 0 0 8px; font-size: 19px; }
.dialog p { margin: 0 0 16px; }
.banner { position: fixed; left: 50%; bottom: 16px; transform: translateX(-50%); z-index: 2147483647;
  display: flex; align-items: center; gap: 14px; padding: 8px 10px 8px 16px; border-radius: 999px;
  background: #12261a; color: #fff; font: 600 14px/1.3 system-ui, sans-serif;
  box-shadow: 0 6px 20px rgba(16, 24, 40, .3); }
.dot { width: 9px; height: 9px; border-radius: 50%; background: #3ddc84; }
.dot.paused { background: #f0b429; }
.recording { color: #ff8a80; font-weight: 600; }
.verified { color: #1b6e3a; font-size: 13px; font-weight: 600; }
.pointer { position: fixed; width: 18px; height: 18px; margin: -9px 0 0 -9px; border-radius: 50%;
  background: rgba(239, 68, 68, .85); box-shadow: 0 0 0 6px rgba(239, 68, 68, .25); pointer-events: none;
  z-index: 2147483647; }
.toast { position: fixed; left: 50%; bottom: 70px; transform: translateX(-50%); z-index: 2147483647;
  background: #1c2430; color: #fff; font: 600 13px/1.3 system-ui, sans-serif; padding: 8px 12px;
  border-radius: 8px; pointer-events: none; }
.overlay { position: fixed; inset: 0; pointer-events: none; z-index: 2147483645; }
.masked-outline { position: fixed; border: 2px dashed #7c3aed; border-radius: 6px;
  background: rgba(124, 58, 237, .06); box-sizing: border-box; }
.masked-outline::after { content: "hidden from agent"; position: absolute; right: 2px; top: -9px;
  font: 600 10px/1 system-ui, sans-serif; color: #fff; background: #7c3aed; padding: 2px 4px;
  border-radius: 4px; }
.error { color: #b3261e; margin: 0 0 10px; }
`;

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

export class CustomerUI {
  private host: HTMLElement | null = null;
  /** The container of everything shown, inside the inner shadow root. */
  private root: HTMLElement | null = null;
  private overlay: HTMLElement | null = null;
  /** The outlines drawn last, as a key: unchanged outlines are not redrawn. */
  private overlayDrawn = "";
  private pointer: HTMLElement | null = null;
  private toast: HTMLElement | null = null;
  private toastTimer: ReturnType<typeof setTimeout> | undefined;

  private mount(): HTMLElement {
    if (this.root && this.host?.isConnected) return this.root;
    this.host?.remove();
    // Built whole while detached: rrweb patches attachShadow and watches any root attached to
    // an element that is already in the page.
    const host = element("div", { attrs: { [TANDEM_UI_ATTRIBUTE]: "" } });
    // Page styles must not hide or move the UI (inline, set before the recorder can see it).
    host.style.setProperty("all", "initial", "important");
    const inner = element("div", { attrs: { [TANDEM_UI_ATTRIBUTE]: "" } });
    const innerRoot = inner.attachShadow({ mode: "open" });
    try {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      innerRoot.adoptedStyleSheets = [sheet];
    } catch {
      innerRoot.append(element("style", { text: CSS }));
    }
    const root = element("div", { attrs: { [TANDEM_UI_ATTRIBUTE]: "" } });
    innerRoot.append(root);
    host.attachShadow({ mode: "open" }).append(inner);
    (document.body ?? document.documentElement).append(host);
    this.host = host;
    this.root = root;
    return root;
  }

  private show(...nodes: Node[]): void {
    const root = this.mount();
    const layers = [this.overlay, this.pointer, this.toast].filter((n): n is HTMLElement => n !== null);
    root.replaceChildren(...nodes, ...layers);
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
    if (!this.overlay.isConnected) this.mount().append(this.overlay);
    const boxes = shown.map((r) => {
      const box = element("div", { className: "masked-outline" });
      box.style.left = `${r.left - 3}px`;
      box.style.top = `${r.top - 3}px`;
      box.style.width = `${r.width + 6}px`;
      box.style.height = `${r.height + 6}px`;
      return box;
    });
    this.overlay.replaceChildren(...boxes);
  }

  showCode(code: string, onCancel: () => void): void {
    this.show(
      element("div", { className: "panel", attrs: { role: "region", "aria-label": "Tandem help" } }, [
        element("p", { className: "label", text: "Your help code" }),
        element("p", { className: "code", text: formatCode(code) }),
        element("p", { className: "hint", text: "Read this code to the support agent. Nothing is shared until you allow it." }),
        element("div", { className: "row" }, [button("Cancel", "", onCancel)]),
      ]),
    );
  }

  showBusy(message: string): void {
    this.show(
      element("div", { className: "panel", attrs: { role: "status" } }, [
        element("p", { className: "hint", text: message }),
      ]),
    );
  }

  showError(message: string, onClose: () => void): void {
    this.show(
      element("div", { className: "panel", attrs: { role: "alert" } }, [
        element("p", { className: "error", text: message }),
        element("div", { className: "row" }, [button("Close", "", onClose)]),
      ]),
    );
  }

  askConsent(agent: string, onAllow: () => void, onDecline: () => void): void {
    const allow = button("Allow", "primary", onAllow);
    const dialog = element("div", {
      className: "dialog",
      attrs: { role: "dialog", "aria-modal": "true", "aria-labelledby": "tandem-title", "aria-describedby": "tandem-desc" },
    }, [
      element("h2", { text: `${agent} wants to see this page`, attrs: { id: "tandem-title" } }),
      element("p", {
        text: `${agent} from support will see this page live, with passwords, card numbers and ` +
          "form fields hidden. They cannot click or type. You can stop at any time.",
        attrs: { id: "tandem-desc" },
      }),
      element("div", { className: "row" }, [button("Decline", "", onDecline), allow]),
    ]);
    this.show(element("div", { className: "backdrop" }), dialog);
    allow.focus();
  }

  showSharing(
    agent: string, onStop: () => void, paused = false, onRevokeControl?: () => void, onStopRecording?: () => void,
  ): void {
    const text = paused ? `Sharing paused: ${agent} cannot see this private page`
      : onRevokeControl ? `${agent} can control this page (Esc to stop)` : `Sharing this page with ${agent}`;
    this.show(
      element("div", { className: "banner", attrs: { role: "status" } }, [
        element("span", { className: paused ? "dot paused" : "dot", attrs: { "aria-hidden": "true" } }),
        element("span", { text }),
        ...(onStopRecording ? [element("span", { className: "recording", text: "● Recording" }), button("Stop recording", "", onStopRecording)] : []),
        ...(onRevokeControl ? [button("Take back control", "", onRevokeControl)] : []),
        button("Stop sharing", "danger", onStop),
      ]),
    );
  }

  /** The connection (this page's or the agent's) is being restored; Stop sharing still works. */
  showReconnecting(text: string, onStop: () => void): void {
    this.show(
      element("div", { className: "banner", attrs: { role: "status" } }, [
        element("span", { className: "dot paused", attrs: { "aria-hidden": "true" } }),
        element("span", { text }),
        button("Stop sharing", "danger", onStop),
      ]),
    );
  }

  /** The agent asked (inside the encrypted channel) and `site`'s own page pinned the key. */
  askRecording(agent: string, site: string, onAllow: () => void, onRefuse: () => void): void {
    this.ask(
      "tandem-record-title", `${agent} asks to record this session`,
      "The recording holds what the agent sees, with the same fields hidden. It is encrypted in " +
        "this browser so that only your provider's auditors can play it back, and it is deleted after the " +
        "provider's retention period. You can stop recording at any time; sharing goes on either way.",
      ["Don't record", onRefuse], ["Allow recording", onAllow],
      `Recording key verified by ${site}`,
    );
  }

  /** A modal question with a refusing and an allowing button (the allowing one focused). */
  private ask(
    id: string, title: string, text: string, refuse: [string, () => void], allow: [string, () => void], note?: string,
  ): void {
    const yes = button(allow[0], "primary", allow[1]);
    this.show(
      element("div", { className: "backdrop" }),
      element("div", {
        className: "dialog", attrs: { role: "dialog", "aria-modal": "true", "aria-labelledby": id },
      }, [
        element("h2", { text: title, attrs: { id } }),
        element("p", { text }),
        ...(note ? [element("p", { className: "verified", text: `✓ ${note}` })] : []),
        element("div", { className: "row" }, [button(refuse[0], "", refuse[1]), yes]),
      ]),
    );
    yes.focus();
  }

  askWatch(watcher: string, onAllow: () => void, onRefuse: () => void): void {
    this.ask(
      "tandem-watch-title", `${watcher}, a supervisor, asks to watch too`,
      `${watcher} would see this page as the agent does, with the same fields hidden, and ` +
        "cannot click or type. If you allow it, you read a short code to them. Stop sharing ends it for everyone.",
      ["Refuse", onRefuse], ["Allow", onAllow],
    );
  }

  showWatchCode(watcher: string, code: string, onCancel: () => void): void {
    this.show(
      element("div", { className: "panel", attrs: { role: "region", "aria-label": "Supervisor code" } }, [
        element("p", { className: "label", text: `Code for ${watcher}` }),
        element("p", { className: "code", text: formatCode(code) }),
        element("p", { className: "hint", text: `Read this code to ${watcher}. They see the page only once it matches.` }),
        element("div", { className: "row" }, [button("Cancel", "", onCancel)]),
      ]),
    );
  }

  askControl(agent: string, onAllow: () => void, onRefuse: () => void): void {
    this.ask(
      "tandem-control-title", `${agent} asks to control this page`,
      `${agent} will be able to point, scroll, click and type in fields they can see — never in ` +
        "hidden fields or on protected buttons. Every action is shown to you. Press Esc or " +
        "“Take back control” at any time.",
      ["Refuse", onRefuse], ["Allow control", onAllow],
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

  remove(): void {
    this.overlay = null;
    this.overlayDrawn = "";
    this.pointer = null;
    this.toast = null;
    clearTimeout(this.toastTimer);
    this.host?.remove();
    this.host = null;
    this.root = null;
  }
}
