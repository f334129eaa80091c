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
import type { AgentInfo } from "../generated/rest.ts";
import { type ConsoleState, type LiveCard, controls } from "./state.ts";

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
  typed(): void;
}

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
    <span id="whoami" class="whoami" ?hidden=${!agent}>${agent ? `Signed in as ${agent.display_name}` : ""}</span>
    <button id="signout" type="button" class="ghost" ?hidden=${!agent} @click=${() => actions.signOut(false)}>Sign out</button>
    <button id="signout-all" type="button" class="ghost" ?hidden=${!agent} @click=${() => actions.signOut(true)}>Sign out everywhere</button>`;
}

function signIn(error: string | null, options: ViewOptions, actions: ViewActions): TemplateResult {
  return html`
    <section id="signin" class="card narrow">
      <h1>Sign in</h1>
      <form id="signin-form" novalidate @submit=${submit(actions.signIn)}>
        <label for="username">Username</label>
        <input id="username" name="username" autocomplete="username" required autocapitalize="off" spellcheck="false">
        <label for="password">Password</label>
        <input id="password" name="password" type="password" autocomplete="current-password" required>
        <label for="otp">Authentication code</label>
        <input id="otp" name="otp" autocomplete="one-time-code" inputmode="numeric" maxlength="32" placeholder="123456 or a recovery code">
        <p id="signin-error" class="error" role="alert" ?hidden=${!error}>${error ?? ""}</p>
        <button type="submit" class="primary">Sign in</button>
      </form>
      <form id="sso-form" class="sso" method="get" action="/api/sso/start" novalidate ?hidden=${!options.sso}
        @submit=${submit(actions.signInWithOrganisation)}>
        <p class="muted">Or, if your organisation brings its own identity provider:</p>
        <label for="sso-org">Organisation</label>
        <input id="sso-org" name="org" autocomplete="organization" autocapitalize="off" spellcheck="false" required>
        <button type="submit">Continue with your organisation</button>
      </form>
    </section>`;
}

/** Recovery codes to the clipboard, one a line; the button says whether it worked. */
function copyCodes(event: Event, codes: readonly string[]): void {
  const button = event.currentTarget as HTMLButtonElement;
  const done = navigator.clipboard?.writeText(codes.join("\n")) ?? Promise.reject(new Error("no clipboard"));
  done.then(() => { button.textContent = "Copied"; }, () => { button.textContent = "Copy failed: select the codes"; });
}

function secondFactor(state: Extract<ConsoleState, { screen: "mfa" }>, actions: ViewActions): TemplateResult {
  return html`
    <section id="mfa" class="card narrow">
      <h1>Set up two-step sign-in</h1>
      <p>Your organisation requires a second step at sign-in. Scan this code with an authenticator app (Google Authenticator, Microsoft Authenticator, 1Password, …), then enter the 6-digit code it shows.</p>
      <button id="mfa-start" type="button" class="primary" ?hidden=${state.step !== "start"} @click=${actions.mfaStart}>Show my code</button>
      ${state.step === "scan" && state.setup ? html`
        <div id="mfa-scan">
          <img id="mfa-qr" alt="QR code for your authenticator app" width="250" height="250" src=${state.setup.qr}>
          <p class="muted">Cannot scan? Enter this key by hand: <code id="mfa-secret">${state.setup.secret.replace(/(.{4})/g, "$1 ").trim()}</code></p>
          <form id="mfa-form" novalidate @submit=${submit(actions.mfaConfirm)}>
            <label for="mfa-code">Code from the app</label>
            <input id="mfa-code" name="mfa-code" autocomplete="one-time-code" inputmode="numeric" maxlength="8" required>
            <button type="submit" class="primary">Turn on</button>
          </form>
        </div>` : nothing}
      <p id="mfa-error" class="error" role="alert" ?hidden=${!state.error}>${state.error ?? ""}</p>
      ${state.step === "done" ? html`
        <div id="mfa-done">
          <p class="good"><strong>Two-step sign-in is on.</strong> These recovery codes each work once if you lose your phone. Save them now: they are not shown again.</p>
          <ol id="mfa-recovery" class="codes">${state.recoveryCodes.map((code) => html`<li><code>${code}</code></li>`)}</ol>
          <button id="mfa-copy" type="button" @click=${(event: Event) => copyCodes(event, state.recoveryCodes)}>Copy all codes</button>
          <button id="mfa-continue" type="button" class="primary" @click=${actions.mfaContinue}>I saved them — continue</button>
        </div>` : nothing}
    </section>`;
}

function sessions(state: Extract<ConsoleState, { screen: "live" }>, options: ViewOptions, actions: ViewActions): TemplateResult | typeof nothing {
  if (state.agent.role !== "supervisor" || state.sessions === null) return nothing;
  const rows = state.sessions.map((info) => html`
    <li>
      <span>${`${info.site_name} · ${info.agent ?? "no agent yet"} · ${info.state.replace("_", " ")}`}</span>
      ${info.state === "sharing" && options.canWatch
        ? html`<button type="button" @click=${() => actions.watch(info.session_id)}>Watch</button>` : nothing}
    </li>`);
  return html`
    <section id="sessions" class="card">
      <h2>Live sessions of your teams</h2>
      <p class="muted">You can ask to watch one. The customer is asked and reads you a short code.</p>
      <ul id="session-list" class="sessions">${rows.length ? rows : html`<li class="empty">No live sessions right now.</li>`}</ul>
    </section>`;
}

function liveCard(card: LiveCard, actions: ViewActions): TemplateResult {
  const hidden = controls(card);
  return html`
    <section id="join" class="card">
      <form id="join-form" class="join-form" novalidate @submit=${submit(actions.join)}>
        <div class="field">
          <label for="code">Session code</label>
          <input id="code" name="code" inputmode="numeric" autocomplete="off" maxlength="40" required
            placeholder=${hidden.code.placeholder} ?disabled=${hidden.code.disabled}>
        </div>
        <button id="join-button" type="submit" class="primary" ?hidden=${hidden.join.hidden}>${hidden.join.label}</button>
        <button id="request-control" type="button" ?hidden=${hidden.requestControl} @click=${actions.requestControl}>Request control</button>
        <button id="release-control" type="button" ?hidden=${hidden.releaseControl} @click=${actions.releaseControl}>Release control</button>
        <button id="record" type="button" ?hidden=${hidden.record} @click=${actions.askToRecord}>Ask to record</button>
        <button id="stop-record" type="button" ?hidden=${hidden.stopRecord} @click=${actions.stopRecording}>Stop recording</button>
        <button id="leave" type="button" class="danger" ?hidden=${hidden.leave} @click=${actions.leave}>Leave</button>
      </form>
      <div id="typing" class="typing" ?hidden=${hidden.typing}>
        <label for="typing-input">Type into the customer's field</label>
        <input id="typing-input" autocomplete="off" @input=${actions.typed}>
      </div>
      <p id="status" class=${`status ${card.status.tone}`.trim()} role="status" aria-live="polite"
        .textContent=${live(card.status.text)}></p>
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
      return html`${sessions(state, options, actions)}${liveCard(state.card, actions)}`;
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
  // The control layer sits over the mirror, outside the templates.
  const layer = document.getElementById("control-layer");
  if (layer) layer.hidden = state.screen !== "live" || controls(state.card).controlLayer;
}
