/**
 * The agent's laser pointer, highlights and drawings on the customer's page (issue 15). They need
 * no remote control: the agent only shows where to look. The customer's browser alone decides
 * what is drawn, so neither the agent's console nor the relay can override it:
 *
 * - commands arrive inside the encrypted command channel (a relay cannot forge or replay them:
 *   session.ts opens them with CommandReceiver before they reach `handle`);
 * - nothing is drawn over a masked, hidden or no-control element (`agentMayTouch`, the rule remote
 *   control uses), nor over Tandem's own UI or an embedded document (an iframe the agent never
 *   sees into, such as a payment form); a stroke that crosses one is not drawn at all;
 * - every drawing fades by itself, is announced (a visible notice and a screen-reader live region),
 *   and the customer can turn pointing off (and on again) at any moment; while off, nothing is
 *   drawn and the agent is told;
 * - it is drawn in its own shadow tree that rrweb never learns of (the technique share/ui.ts
 *   explains), so it reaches no mirror, supervisor or recording.
 */

import { agentMayTouch, insideTandemUi, TANDEM_UI_ATTRIBUTE } from "../shared/masking.ts";
import { type Locale, translator } from "../shared/i18n.ts";
import { type AnnotationCommand, type AnnotationPayload, type AnnotationRefusal, parseAnnotationCommand } from "../shared/payload.ts";
import { annotationMessages } from "./messages/annotations.ts";
import { Bucket } from "./bucket.ts";

/** How long a highlight or a stroke stays (it fades over its last second). */
export const ANNOTATION_MS = 4000;
/** The laser fades this long after its last move. */
export const LASER_MS = 1500;
/** Pointing again after this long is announced again. */
const ANNOUNCE_GAP_MS = 5000;
const LASER_PER_SECOND = 40;
const MARKS_PER_SECOND = 4;
/** The laser's radius: no part of the dot may cover what the agent cannot see. */
const LASER_RADIUS = 10;
/** Refusals of the laser are reported at most this often (it moves 25 times a second). */
const REFUSAL_GAP_MS = 1000;
const OFF_KEY = "tandem.annotations.off";

const CSS = `
:host { all: initial; }
.layer { position: fixed; inset: 0; pointer-events: none; z-index: 2147483646; }
.laser { position: fixed; width: 20px; height: 20px; margin: -10px 0 0 -10px; border-radius: 50%;
  background: rgba(220, 38, 38, .9); box-shadow: 0 0 0 6px rgba(220, 38, 38, .3), 0 0 14px 4px rgba(220, 38, 38, .45);
  transition: opacity .4s; }
.laser.faded { opacity: 0; }
.mark { position: fixed; border: 3px solid #d97706; border-radius: 8px; box-sizing: border-box;
  box-shadow: 0 0 0 3px rgba(217, 119, 6, .25); animation: tandem-fade ${ANNOTATION_MS}ms forwards; }
svg.stroke { position: fixed; inset: 0; width: 100%; height: 100%; overflow: visible;
  animation: tandem-fade ${ANNOTATION_MS}ms forwards; }
svg.stroke polyline { fill: none; stroke: #d97706; stroke-width: 4; stroke-linecap: round; stroke-linejoin: round; }
@keyframes tandem-fade { 0%, 75% { opacity: 1; } 100% { opacity: 0; } }
@media (prefers-reduced-motion: reduce) { .laser { transition: none; } }
.chip { position: fixed; top: 12px; inset-inline-end: 12px; z-index: 2147483647; pointer-events: auto;
  display: flex; align-items: center; gap: 10px; max-width: min(360px, calc(100vw - 24px));
  padding: 6px 6px 6px 12px; border-radius: 10px; background: #1c2430; color: #fff;
  font: 600 13px/1.35 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  box-shadow: 0 6px 20px rgba(16, 24, 40, .3); }
.chip button { font: 600 13px/1 system-ui, sans-serif; border-radius: 8px; padding: 8px 10px; min-height: 32px;
  cursor: pointer; border: 1px solid #fff; background: #fff; color: #1c2430; white-space: nowrap; }
.chip button:focus-visible { outline: 3px solid #8ab4ff; outline-offset: 2px; }
.sr { position: absolute; width: 1px; height: 1px; margin: -1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
`;

/** What annotations need from the session around them. */
export interface AnnotationHost {
  agent(): string;
  /** Tell the agent (inside the encrypted channel). */
  reply(payload: AnnotationPayload): void;
  /** The page's element with rrweb's node id `id`, if any. */
  node(id: number): Node | null;
  locale: Locale;
}

function storedOff(): boolean {
  try {
    return sessionStorage.getItem(OFF_KEY) === "1";
  } catch {
    return false;
  }
}

function storeOff(off: boolean): void {
  try {
    if (off) sessionStorage.setItem(OFF_KEY, "1");
    else sessionStorage.removeItem(OFF_KEY);
  } catch {
    // storage refused: the choice holds for this page
  }
}

/** The session ended: the customer's choice goes with it (end-of-session clearing), and the next
 * session in this tab starts with pointing allowed, as any other does. */
export function forgetAnnotationChoice(): void {
  storeOff(false);
}

/** Embedded documents: the agent never sees inside them (a payment provider's card form). */
const EMBEDDED = "iframe, frame, embed, object";

/** Whether the agent may draw on `el`: it sees it, it is not protected, not Tandem's, not embedded. */
function mayDrawOn(el: Element): boolean {
  try {
    return !insideTandemUi(el) && agentMayTouch(el) && !el.matches(EMBEDDED);
  } catch {
    return false;
  }
}

/** Whether the point (x, y) of the customer's viewport shows only what the agent may see. */
export function mayDrawAt(x: number, y: number, radius = 0): boolean {
  const probes: [number, number][] = radius
    ? [[x, y], [x - radius, y], [x + radius, y], [x, y - radius], [x, y + radius]]
    : [[x, y]];
  for (const [px, py] of probes) {
    if (px < 0 || py < 0 || px >= innerWidth || py >= innerHeight) continue; // off screen: nothing under it
    const hit = document.elementFromPoint(px, py);
    if (hit === null) continue;
    if (!mayDrawOn(hit)) return false;
  }
  return true;
}

function describe(el: Element): string {
  const aria = el.getAttribute("aria-label");
  const labelled = (el as HTMLInputElement).labels?.[0]?.textContent;
  const text = aria || labelled || el.textContent || el.getAttribute("placeholder") || el.tagName.toLowerCase();
  return text.trim().replace(/\s+/g, " ").slice(0, 40);
}

function element<K extends keyof HTMLElementTagNameMap>(tag: K, className: string, text?: string): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

export class Annotations {
  private on = !storedOff();
  private host: HTMLElement | null = null;
  private layer: HTMLElement | null = null;
  private chip: HTMLElement | null = null;
  private live: HTMLElement | null = null;
  private laser: HTMLElement | null = null;
  private laserTimer: ReturnType<typeof setTimeout> | undefined;
  private lastAnnounced = -Infinity;
  private lastRefused = -Infinity;
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();
  private readonly lasers = new Bucket(LASER_PER_SECOND);
  private readonly marks = new Bucket(MARKS_PER_SECOND);
  private readonly t;

  constructor(private readonly session: AnnotationHost) {
    this.t = translator(annotationMessages, session.locale);
  }

  /** Whether the customer lets the agent point and draw. */
  get enabled(): boolean {
    return this.on;
  }

  /** Handle `command` if it is an annotation: true if it was one (drawn or refused). */
  handle(command: unknown): boolean {
    const c = parseAnnotationCommand(command);
    if (!c) {
      const k = (command as { k?: unknown } | null)?.k;
      return k === "laser" || k === "laser_off" || k === "highlight" || k === "draw"; // malformed: dropped
    }
    if (c.k === "laser_off") {
      this.hideLaser();
      return true;
    }
    if (!this.on) {
      this.mount(); // the notice with its switch, so the customer can allow it again
      this.refuse("off", c.k === "laser");
      return true;
    }
    if (c.k === "laser") {
      if (this.lasers.take()) this.pointAt(c);
      return true;
    }
    if (!this.marks.take()) {
      this.refuse("too_many");
      return true;
    }
    if (c.k === "highlight") this.highlight(c.id);
    else this.draw(c.points);
    return true;
  }

  /** The customer's choice (the chip's button, or a test). Told to the agent. */
  setEnabled(on: boolean): void {
    if (this.on === on) return;
    this.on = on;
    storeOff(!on);
    if (!on) this.clear();
    this.session.reply({ k: "annotations", on });
    this.drawChip();
  }

  /** Remove everything drawn (a private page; the session ends). */
  clear(): void {
    this.hideLaser();
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.layer?.replaceChildren();
    this.laser = null;
  }

  dispose(): void {
    this.clear();
    clearTimeout(this.laserTimer);
    this.host?.remove();
    this.host = this.layer = this.chip = this.live = null;
  }

  /** Tell the agent why something was not drawn; the laser's refusals (it moves 25 times a
   * second) at most once a second, the others each time. */
  private refuse(reason: AnnotationRefusal, throttled = true): void {
    if (throttled) {
      const now = performance.now();
      if (now - this.lastRefused < REFUSAL_GAP_MS) return;
      this.lastRefused = now;
    }
    this.session.reply({ k: "annotation_refused", reason });
  }

  private pointAt(c: { x: number; y: number }): void {
    if (!mayDrawAt(c.x, c.y, LASER_RADIUS)) {
      this.hideLaser();
      this.refuse("masked");
      return;
    }
    const layer = this.mount();
    // A new dot each move (like share/ui.ts's pointer); nothing here is recorded either way.
    const dot = element("div", "laser");
    dot.style.left = `${c.x}px`;
    dot.style.top = `${c.y}px`;
    if (this.laser?.isConnected) this.laser.replaceWith(dot);
    else layer.append(dot);
    this.laser = dot;
    clearTimeout(this.laserTimer);
    this.laserTimer = setTimeout(() => this.hideLaser(), LASER_MS);
    const now = performance.now();
    if (now - this.lastAnnounced > ANNOUNCE_GAP_MS) this.announce(this.t("pointing", { agent: this.session.agent() }));
    this.lastAnnounced = now;
  }

  private hideLaser(): void {
    clearTimeout(this.laserTimer);
    const dot = this.laser;
    this.laser = null;
    if (!dot) return;
    dot.classList.add("faded");
    this.later(() => dot.remove(), 400);
  }

  private highlight(id: number): void {
    const node = this.session.node(id);
    if (!(node instanceof Element) || !node.isConnected) return this.refuse("gone", false);
    if (!mayDrawOn(node)) return this.refuse("masked", false);
    const box = node.getBoundingClientRect();
    if (box.width <= 0 || box.height <= 0) return this.refuse("gone", false);
    const mark = element("div", "mark");
    mark.style.left = `${box.left - 4}px`;
    mark.style.top = `${box.top - 4}px`;
    mark.style.width = `${box.width + 8}px`;
    mark.style.height = `${box.height + 8}px`;
    this.place(mark);
    this.announce(this.t("highlighted", { agent: this.session.agent(), what: describe(node) }));
  }

  private draw(points: [number, number][]): void {
    // Every point of the stroke, and the middle of each segment, must be over what the agent sees.
    for (let i = 0; i < points.length; i++) {
      const [x, y] = points[i];
      const [px, py] = points[Math.max(0, i - 1)];
      if (!mayDrawAt(x, y, 2) || !mayDrawAt((x + px) / 2, (y + py) / 2)) return this.refuse("masked", false);
    }
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("class", "stroke");
    const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    line.setAttribute("points", points.map(([x, y]) => `${Math.round(x)},${Math.round(y)}`).join(" "));
    svg.append(line);
    this.place(svg);
    this.announce(this.t("drew", { agent: this.session.agent() }));
  }

  /** Add a fading mark; it is removed once faded. */
  private place(mark: Element): void {
    this.mount().append(mark);
    this.later(() => mark.remove(), ANNOTATION_MS);
  }

  private later(run: () => void, ms: number): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      run();
    }, ms);
    this.timers.add(timer);
  }

  private announce(text: string): void {
    this.mount();
    if (this.live) this.live.textContent = text;
    this.drawChip();
  }

  /** The notice that the agent may point, with the customer's switch. */
  private drawChip(): void {
    if (!this.chip) return;
    const agent = this.session.agent();
    const toggle = element("button", "", this.on ? this.t("turnOff") : this.t("turnOn"));
    toggle.type = "button";
    toggle.addEventListener("click", () => this.setEnabled(!this.on));
    this.chip.replaceChildren(element("span", "", this.on ? this.t("chip", { agent }) : this.t("chipOff")), toggle);
  }

  /** The layer, in a shadow tree rrweb never sees (built whole before it joins the page). */
  private mount(): HTMLElement {
    if (this.layer && this.host?.isConnected) return this.layer;
    this.host?.remove();
    const host = document.createElement("div");
    host.setAttribute(TANDEM_UI_ATTRIBUTE, "");
    host.style.setProperty("all", "initial", "important");
    const inner = document.createElement("div");
    inner.setAttribute(TANDEM_UI_ATTRIBUTE, "");
    const innerRoot = inner.attachShadow({ mode: "open" });
    try {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      innerRoot.adoptedStyleSheets = [sheet];
    } catch {
      innerRoot.append(element("style", "", CSS));
    }
    const root = element("div", "");
    root.setAttribute(TANDEM_UI_ATTRIBUTE, "");
    root.setAttribute("data-tandem-annotations", "");
    const layer = element("div", "layer");
    layer.setAttribute("aria-hidden", "true");
    const chip = element("div", "chip");
    chip.setAttribute("role", "region");
    chip.setAttribute("aria-label", this.t("region"));
    const live = element("div", "sr");
    live.setAttribute("role", "status");
    live.setAttribute("aria-live", "polite");
    root.append(layer, chip, live);
    innerRoot.append(root);
    host.attachShadow({ mode: "open" }).append(inner);
    (document.body ?? document.documentElement).append(host);
    this.host = host;
    this.layer = layer;
    this.chip = chip;
    this.live = live;
    this.drawChip();
    return layer;
  }
}

export type { AnnotationCommand };
