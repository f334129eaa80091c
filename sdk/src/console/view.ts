/**
 * The console's screens, rendered from its state (state.ts) with lit-html: templates are parsed
 * from static strings and values are bound as text or properties, never as HTML, and nothing is
 * evaluated, so the console's Content-Security-Policy (`script-src 'self'`, no 'unsafe-eval')
 * holds. The customer's mirror (#mirror, rrweb's sandboxed iframe) and the office pages
 * (office.ts, recordings.ts) are outside these templates: lit-html never re-renders them.
 */

import { html, nothing, render, type TemplateResult } from "lit-html";
// The status line is written whole, checked against the page (not lit-html's last value): a repeated
// answer shows again even if something else cleared the line.
import { live } from "lit-html/directives/live.js";
import type { AgentInfo, LiveSession } from "../generated/rest.ts";
import { type ConsoleState, type LiveCard, type Tool, controls } from "./state.ts";
import { accountT as a } from "./messages/account.ts";
import { t, type WorkspaceKey } from "./messages/workspace.ts";
import { MAX_NAME, plainLine } from "../shared/names.ts";

/** What the screens do when used; index.ts implements them. */
export interface ViewActions {
  signIn(form: HTMLFormElement): void;
  signInWithOrganisation(form: HTMLFormElement): void;
  signOut(everywhere: boolean): void;
  mfaStart(): void;
  mfaConfirm(form: HTMLFormElement): void;
  mfaContinue(): void;
  join(form: HTMLFormElement): void;
  watch(sessionId: string): void;
  leave(): void;
  requestControl(): void;
  releaseControl(): void;
  askToRecord(): void;
  stopRecording(): void;
  /** Pick a pointing tool (the same tool again turns it off). */
  tool(tool: Tool): void;
}

/** The workspace's keyboard shortcuts (index.ts binds them; the console lists them). */
export const SHORTCUTS: readonly { keys: string[]; code: string; what: WorkspaceKey }[] = [
  { keys: ["Alt", "Shift", "P"], code: "KeyP", what: "shortcutPointer" },
  { keys: ["Alt", "Shift", "H"], code: "KeyH", what: "shortcutHighlight" },
  { keys: ["Alt", "Shift", "D"], code: "KeyD", what: "shortcutDraw" },
  { keys: ["Alt", "Shift", "C"], code: "KeyC", what: "shortcutControl" },
  { keys: ["Esc"], code: "Escape", what: "shortcutTools" },
  { keys: ["Alt", "Shift", "L"], code: "KeyL", what: "shortcutLeave" },
];

/** "1:05" or "1:02:05". */
export function formatDuration(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const sec = String(total % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

const STATE_LABELS: Record<string, WorkspaceKey> = {
  waiting: "stateWaiting", pending_consent: "statePendingConsent", sharing: "stateSharing", ended: "stateEnded",
  restarting: "stateRestarting",
};
const DEVICE_LABELS: Record<string, WorkspaceKey> = { phone: "devicePhone", tablet: "deviceTablet", desktop: "deviceDesktop" };

export interface ViewOptions {
  /** Offer sign-in through the organisation's identity provider (the relay's own console only). */
  sso: boolean;
  /** A supervisor may watch (no session of its own open). */
  canWatch: boolean;
}

const submit = (handler: (form: HTMLFormElement) => void) => (event: SubmitEvent) => {
  event.preventDefault();
  handler(event.currentTarget as HTMLFormElement);
};

function account(agent: AgentInfo | null, actions: ViewActions): TemplateResult {
  return html`
    <span id="whoami" class="whoami" ?hidden=${!agent}>${agent ? t("signedInAs", { name: plainLine(agent.display_name, MAX_NAME) }) : ""}</span>
    <button id="signout" type="button" class="ghost" ?hidden=${!agent} @click=${() => actions.signOut(false)}>${t("signOut")}</button>
    <button id="signout-all" type="button" class="ghost" ?hidden=${!agent} @click=${() => actions.signOut(true)}>${t("signOutEverywhere")}</button>`;
}

function signIn(error: string | null, options: ViewOptions, actions: ViewActions): TemplateResult {
  return html`
    <section id="signin" class="card narrow">
      <h1>${t("signInTitle")}</h1>
      <form id="signin-form" novalidate @submit=${submit(actions.signIn)}>
        <label for="username">${t("username")}</label>
        <input id="username" name="username" autocomplete="username" required autocapitalize="off" spellcheck="false">
        <label for="password">${t("password")}</label>
        <input id="password" name="password" type="password" autocomplete="current-password" required>
        <label for="otp">${t("authCode")}</label>
        <input id="otp" name="otp" autocomplete="one-time-code" inputmode="numeric" maxlength="32" placeholder=${t("authCodePlaceholder")}>
        <p id="signin-error" class="error" role="alert" ?hidden=${!error}>${error ?? ""}</p>
        <button type="submit" class="primary">${t("signInTitle")}</button>
      </form>
      <form id="sso-form" class="sso" method="get" action="/api/sso/start" novalidate ?hidden=${!options.sso}
        @submit=${submit(actions.signInWithOrganisation)}>
        <p class="muted">${t("ssoHint")}</p>
        <label for="sso-org">${t("organisation")}</label>
        <input id="sso-org" name="org" autocomplete="organization" autocapitalize="off" spellcheck="false" required>
        <button type="submit">${t("ssoContinue")}</button>
      </form>
    </section>`;
}

/** Recovery codes to the clipboard, one a line; the button says whether it worked. */
function copyCodes(event: Event, codes: readonly string[]): void {
  const button = event.currentTarget as HTMLButtonElement;
  const done = navigator.clipboard?.writeText(codes.join("\n")) ?? Promise.reject(new Error("no clipboard"));
  done.then(() => { button.textContent = a("mfaCopied"); }, () => { button.textContent = a("mfaCopyFailed"); });
}

function secondFactor(state: Extract<ConsoleState, { screen: "mfa" }>, actions: ViewActions): TemplateResult {
  return html`
    <section id="mfa" class="card narrow">
      <h1>${a("mfaTitle")}</h1>
      <p>${a("mfaIntro")}</p>
      <button id="mfa-start" type="button" class="primary" ?hidden=${state.step !== "start"} @click=${actions.mfaStart}>${a("mfaShow")}</button>
      ${state.step === "scan" && state.setup ? html`
        <div id="mfa-scan">
          <img id="mfa-qr" alt=${a("mfaQrAlt")} width="250" height="250" src=${state.setup.qr}>
          <p class="muted">${a("mfaByHand")} <code id="mfa-secret">${state.setup.secret.replace(/(.{4})/g, "$1 ").trim()}</code></p>
          <form id="mfa-form" novalidate @submit=${submit(actions.mfaConfirm)}>
            <label for="mfa-code">${a("mfaCode")}</label>
            <input id="mfa-code" name="mfa-code" autocomplete="one-time-code" inputmode="numeric" maxlength="8" required>
            <button type="submit" class="primary">${a("mfaTurnOn")}</button>
          </form>
        </div>` : nothing}
      <p id="mfa-error" class="error" role="alert" ?hidden=${!state.error}>${state.error ?? ""}</p>
      ${state.step === "done" ? html`
        <div id="mfa-done">
          <p class="good"><strong>${a("mfaOn")}</strong> ${a("mfaSave")}</p>
          <ol id="mfa-recovery" class="codes" aria-label=${a("mfaCodes")}>${state.recoveryCodes.map((code) => html`<li><code>${code}</code></li>`)}</ol>
          <button id="mfa-copy" type="button" @click=${(event: Event) => copyCodes(event, state.recoveryCodes)}>${a("mfaCopy")}</button>
          <button id="mfa-continue" type="button" class="primary" @click=${actions.mfaContinue}>${a("mfaContinue")}</button>
        </div>` : nothing}
    </section>`;
}

/**
 * What the supervisors' list shows of one live session the relay lists: each name one plain line
 * (a bidirectional override in a site's name reordered the agent's name and the time after it, all
 * one paragraph of text), and a state the console has no words for shown as plain text under no
 * class of its own ("constructor" looked up an object's own function, and the rendering threw).
 */
export function sessionLine(info: LiveSession): { site: string; agent: string; state: string; stateClass: string } {
  const label = Object.prototype.hasOwnProperty.call(STATE_LABELS, info.state) ? STATE_LABELS[info.state] : null;
  return {
    site: plainLine(info.site_name, MAX_NAME) || "—",
    agent: info.agent === null ? t("noAgentYet") : plainLine(info.agent, MAX_NAME) || "—",
    state: label ? t(label) : plainLine(info.state, MAX_NAME),
    stateClass: label ? `state state-${info.state}` : "state",
  };
}

/** The customer's page title as the session's facts show it: one plain line (its line separators
 * made lines beside the console's own facts, an override turned its words around). */
export function pageTitle(title: string | null): string {
  return title === null ? t("pageTitleHidden") : plainLine(title);
}

function sessions(state: Extract<ConsoleState, { screen: "live" }>, options: ViewOptions, actions: ViewActions): TemplateResult | typeof nothing {
  if (state.agent.role !== "supervisor" || state.sessions === null) return nothing;
  const rows = state.sessions.map((info) => {
    const { site, agent, state: shownState, stateClass } = sessionLine(info);
    return html`
    <li>
      <span class="site">${site}</span>
      <span class="agent">${agent}</span>
      <span class="duration">${state.now ? formatDuration(state.now - info.created_at * 1000) : ""}</span>
      <span class=${stateClass}>${shownState}</span>
      ${info.state === "sharing" && options.canWatch
        ? html`<button type="button" aria-label=${t("watchSession", { site, agent })}
            @click=${() => actions.watch(info.session_id)}>${t("watch")}</button>` : nothing}
    </li>`;
  });
  return html`
    <section id="sessions" class="card">
      <h2>${t("liveSessions")}</h2>
      <p class="muted">${t("liveSessionsHint")}</p>
      <ul id="session-list" class="sessions">${rows.length ? rows : html`<li class="empty">${t("noSessions")}</li>`}</ul>
    </section>`;
}

/** The host of the customer's page's origin (its whole text if it has none: never a throw in a
 * rendering, which would leave every later one undone). */
function hostOf(origin: string): string {
  try {
    return new URL(origin).host || origin;
  } catch {
    return origin;
  }
}

/** What the agent knows of the session: the customer's page and device, time, state. */
function sessionHeader(card: LiveCard, now: number): TemplateResult | typeof nothing {
  if (card.phase === "idle") return nothing;
  const context = card.context;
  const fact = (id: string, label: string, value: string) => html`<div class="fact"><dt>${label}</dt><dd id=${id}>${value}</dd></div>`;
  const device = context
    ? t("deviceValue", { device: t(DEVICE_LABELS[context.device] ?? "deviceDesktop"), w: context.viewport.w, h: context.viewport.h })
    : "—";
  const control = card.watching ? t("controlWatching") : card.controlling ? t("controlYou") : t("controlCustomer");
  return html`
    <h2 id="site-heading" class="site-heading">${context ? hostOf(context.origin) : t("waitingForPage")}</h2>
    <dl id="session-facts" class="facts">
      ${fact("fact-site", t("site"), context ? context.origin : "—")}
      ${fact("fact-page", t("page"), context ? pageTitle(context.title) : "—")}
      ${fact("fact-device", t("device"), device)}
      ${fact("fact-duration", t("duration"), card.startedAt !== null && now ? formatDuration(now - card.startedAt) : "—")}
      ${card.watching ? nothing : fact("fact-recording", t("recordingLabel"), card.recording.customer ? t("recordingOn") : t("recordingOff"))}
      ${fact("fact-control", t("controlLabel"), control)}
      ${fact("fact-session", t("sessionId"), card.sessionId === null ? "—" : plainLine(card.sessionId))}
    </dl>`;
}

function tools(card: LiveCard, actions: ViewActions): TemplateResult | typeof nothing {
  if (controls(card).tools) return nothing;
  const tool = (name: Tool, id: string, label: WorkspaceKey, key: string) => html`
    <button id=${id} type="button" class="tool" aria-pressed=${card.tool === name ? "true" : "false"}
      aria-keyshortcuts=${`Alt+Shift+${key}`} ?disabled=${!card.pointing || !card.fresh} @click=${() => actions.tool(name)}>${t(label)}</button>`;
  return html`
    <div id="tools" class="tools" role="group" aria-label=${t("tools")}>
      ${tool("laser", "tool-laser", "toolPointer", "P")}
      ${tool("highlight", "tool-highlight", "toolHighlight", "H")}
      ${tool("draw", "tool-draw", "toolDraw", "D")}
    </div>`;
}

function shortcuts(card: LiveCard): TemplateResult | typeof nothing {
  if (card.phase !== "joined" || card.watching) return nothing;
  return html`
    <details id="shortcuts" class="shortcuts">
      <summary>${t("shortcuts")}</summary>
      <dl>${SHORTCUTS.map((s) => html`<div class="fact"><dt>${s.keys.map((k, i) => html`${i ? "+" : ""}<kbd>${k}</kbd>`)}</dt><dd>${t(s.what)}</dd></div>`)}</dl>
    </details>`;
}

/** The server's word on the link between its processes (its `link` message), if it spoke. */
function linkText(card: LiveCard): string {
  if (card.phase === "idle") return "";
  if (card.link === "reconnecting") return t("linkReconnecting");
  return card.link === "restored" ? t("linkRestored") : "";
}

function liveCard(card: LiveCard, now: number, actions: ViewActions): TemplateResult {
  const hidden = controls(card);
  return html`
    <section id="join" class="card workspace" aria-label=${t("workspace")}>
      ${sessionHeader(card, now)}
      <form id="join-form" class="join-form" novalidate ?hidden=${card.phase === "joined"} @submit=${submit(actions.join)}>
        <div class="field">
          <label for="code">${t("sessionCode")}</label>
          <input id="code" name="code" inputmode="numeric" autocomplete="off" maxlength="40" required
            placeholder=${hidden.code.placeholder} ?disabled=${hidden.code.disabled}>
        </div>
        <button id="join-button" type="submit" class="primary" ?hidden=${hidden.join.hidden}>${hidden.join.label}</button>
      </form>
      ${tools(card, actions)}
      <div class="actions">
        <button id="request-control" type="button" aria-keyshortcuts="Alt+Shift+C" ?hidden=${hidden.requestControl}
          ?disabled=${!hidden.acting} @click=${actions.requestControl}>${t("requestControl")}</button>
        <button id="release-control" type="button" aria-keyshortcuts="Alt+Shift+C" ?hidden=${hidden.releaseControl} @click=${actions.releaseControl}>${t("releaseControl")}</button>
        <button id="record" type="button" ?hidden=${hidden.record} @click=${actions.askToRecord}>${t("askToRecord")}</button>
        <button id="stop-record" type="button" ?hidden=${hidden.stopRecord} @click=${actions.stopRecording}>${t("stopRecording")}</button>
        <button id="leave" type="button" class="danger" aria-keyshortcuts="Alt+Shift+L" ?hidden=${hidden.leave} @click=${actions.leave}>${t("leave")}</button>
      </div>
      <p id="not-live-tools" class="status bad" ?hidden=${!hidden.offWhileNotLive}>${t("toolsOffNotLive")}</p>
      <p id="status" class=${`status ${card.status.tone}`.trim()} role="status" aria-live="polite"
        .textContent=${live(card.status.text)}></p>
      <p id="link-status" class=${`status link-status ${card.link === "reconnecting" ? "bad" : "good"}`} role="status"
        aria-live="polite">${linkText(card)}</p>
      ${shortcuts(card)}
    </section>`;
}

function screen(state: ConsoleState, options: ViewOptions, actions: ViewActions): TemplateResult | typeof nothing {
  switch (state.screen) {
    case "loading":
      return nothing;
    case "signin":
      return signIn(state.error, options, actions);
    case "mfa":
      return secondFactor(state, actions);
    case "office":
      // Filled by office.ts / recordings.ts once shown (index.ts).
      return html`<section id="no-live" class="card"><div id="office"></div></section>`;
    case "live":
      return html`${sessions(state, options, actions)}${liveCard(state.card, state.now, actions)}`;
  }
}

/** Draw `state`: the account area in the header and the current screen. */
export function draw(
  state: ConsoleState, options: ViewOptions, actions: ViewActions,
  roots: { account: HTMLElement; main: HTMLElement; stage: HTMLElement },
): void {
  const agent = state.screen === "loading" || state.screen === "signin" ? null : state.agent;
  render(account(agent, actions), roots.account);
  // The screens are the main element's sections, before the mirror's stage (which they never touch).
  render(screen(state, options, actions), roots.main, { renderBefore: roots.stage });
  // The control and tool layers and the typing box sit over the mirror, outside the templates.
  const shown = state.screen === "live" ? controls(state.card) : null;
  const layer = document.getElementById("control-layer");
  if (layer) layer.hidden = !shown || shown.controlLayer;
  const toolLayer = document.getElementById("tool-layer");
  if (toolLayer && state.screen === "live") {
    toolLayer.hidden = !shown || shown.toolLayer;
    toolLayer.dataset.tool = state.card.tool;
  } else if (toolLayer) toolLayer.hidden = true;
  const typing = document.getElementById("typing-input") as HTMLInputElement | null;
  if (typing) {
    typing.hidden = !shown || shown.typing;
    typing.disabled = !shown || !shown.acting; // not live: what is typed is not sent (live.ts)
  }
  // A view the customer's browser has not proven to be its page now is marked (console.css).
  roots.stage.classList.toggle("not-live", shown?.notLive ?? false);
  if (shown?.notLive) roots.stage.dataset.notLive = t("notLiveBadge");
  else delete roots.stage.dataset.notLive;
  // In a session the workspace sits beside the mirror (console.css).
  roots.main.classList.toggle("in-session", state.screen === "live" && state.card.phase !== "idle");
}
