/**
 * Tandem agent console: sign in, join a session by code, watch the customer's page live.
 *
 * This entry point holds the console's one state (state.ts), feeds it events (forms, HTTP
 * answers, the live session in live.ts) and draws it after every change (view.ts, lit-html).
 * The office pages of auditors and admins (office.ts, recordings.ts) are filled in once shown.
 */

import type { AgentInfo, LiveSession, RecoveryCodes, SecondFactorSetup } from "../generated/rest.ts";
import { randomBytes } from "../shared/e2e/encoding.ts";
import { browserClock, webSocketTransport } from "../shared/ports.ts";
import { type LivePorts, LiveView } from "./live.ts";
import { browserHeldStore } from "./rejoin.ts";
import { administration, auditTrail, problemDetail } from "./office.ts";
import { passwordControls } from "./password.ts";
import { recordingKeyPanel, recordingsPanel } from "./recordings.ts";
import { relay, relayFetch } from "./relay.ts";
import { type ConsoleEvent, type ConsoleState, type LiveEvent, initialState, reduce } from "./state.ts";
import { type ViewActions, draw } from "./view.ts";

const VERSION = __TANDEM_VERSION__;
/** How often a supervisor's list of live sessions is refreshed. */
const SESSIONS_REFRESH_MS = 3000;

function byId<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`console markup is missing #${id}`);
  return el as T;
}

const roots = { account: byId("account"), main: document.querySelector("main") ?? document.body, stage: byId("stage") };
const mirror = byId("mirror");
const controlLayer = byId("control-layer");

let state: ConsoleState = initialState;
let live: LiveView | null = null;
let sessionsTimer: ReturnType<typeof setTimeout> | undefined;

function dispatch(event: ConsoleEvent): void {
  const before = state;
  state = reduce(state, event);
  if (state === before) return;
  draw(state, { sso: relay().base === "", canWatch: !live?.open }, actions, roots);
  entered(before);
}

/** What happens once a screen (or the set-up's step) is shown: focus, the office pages, the
 * supervisor's list. */
function entered(before: ConsoleState): void {
  if (state.screen === "mfa" && before.screen === "mfa" && state.step !== before.step && state.step === "scan") {
    document.getElementById("mfa-code")?.focus();
  }
  if (state.screen === before.screen) return;
  switch (state.screen) {
    case "signin":
      live?.leave();
      clearTimeout(sessionsTimer);
      document.getElementById("username")?.focus();
      break;
    case "office": {
      const office = byId("office");
      if (state.agent.role === "auditor") {
        auditTrail(office);
        recordingsPanel(office);
      } else if (state.agent.role === "admin") {
        administration(office);
        recordingKeyPanel(office);
      }
      break;
    }
    case "live":
      document.getElementById("code")?.focus();
      if (state.agent.role === "supervisor") void listSessions();
      break;
    default:
      break;
  }
}

const codeInput = () => document.getElementById("code") as HTMLInputElement | null;
const typingInput = () => document.getElementById("typing-input") as HTMLInputElement | null;

/** The browser's ports for a live session: the relay's agent socket, the clock, randomness. */
const livePorts = (): LivePorts => ({
  transport: webSocketTransport(relay().socket), clock: browserClock, random: randomBytes, held: browserHeldStore,
});

/** After a reload: take up the session this tab was in (issue 13, fault 6), or drop stale keys. */
function rejoinHeld(): void {
  const held = browserHeldStore.load();
  if (!held || live || state.screen !== "live") {
    if (!held && !live) void browserHeldStore.clear();
    return;
  }
  live = new LiveView({ rejoin: held }, liveUi, livePorts());
}

const liveUi = {
  report: (event: LiveEvent) => dispatch({ type: "live", event }),
  mirror,
  signedIn: (): AgentInfo | null => (state.screen === "live" ? state.agent : null),
  sessionExpired: (why?: string) => dispatch({ type: "signed_out", error: why }),
  closed(view: LiveView): void {
    if (live === view) live = null;
    if (state.screen === "live" && state.agent.role === "supervisor") void listSessions();
  },
  clearCode: () => {
    const input = codeInput();
    if (input) input.value = "";
  },
  selectCode: () => codeInput()?.select(),
  focusCode: () => codeInput()?.focus(),
  focusTyping: () => {
    const input = typingInput();
    if (!input) return;
    input.value = "";
    input.focus(); // shown by the render that just ran (lit-html renders synchronously)
  },
  typed: () => typingInput()?.value ?? "",
};

/** Supervisors: the live sessions of their teams' sites, refreshed every few seconds. */
async function listSessions(): Promise<void> {
  clearTimeout(sessionsTimer);
  if (state.screen !== "live" || state.agent.role !== "supervisor") return;
  try {
    const response = await relayFetch("/api/sessions");
    if (response.ok) dispatch({ type: "sessions", sessions: (await response.json()) as LiveSession[] });
  } catch {
    // kept as it was; tried again below
  } finally {
    if (state.screen === "live") sessionsTimer = setTimeout(() => void listSessions(), SESSIONS_REFRESH_MS);
  }
}

/** Signed in: the account's screen, and its password controls (password.ts); after an admin's
 * reset, the new-password form hides every screen until a password is chosen. */
function signedIn(agent: AgentInfo): void {
  dispatch({ type: "signed_in", agent });
  passwordControls(agent, signedIn);
}

const input = (form: HTMLFormElement, name: string) => form.elements.namedItem(name) as HTMLInputElement;

const actions: ViewActions = {
  async signIn(form) {
    dispatch({ type: "signin_failed", error: "" });
    const password = input(form, "password");
    const otp = input(form, "otp");
    let response: Response;
    try {
      response = await relayFetch("/api/login", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ username: input(form, "username").value.trim(), password: password.value, code: otp.value.trim() || null }),
      });
    } catch {
      dispatch({ type: "signin_failed", error: "The server cannot be reached." });
      return;
    }
    password.value = "";
    otp.value = "";
    if (!response.ok) {
      dispatch({ type: "signin_failed", error: await problemDetail(response) });
      return;
    }
    signedIn((await response.json()) as AgentInfo);
  },
  // A plain navigation, not a form post: the console's CSP (form-action 'self') would stop the
  // redirect to the organisation's provider.
  signInWithOrganisation(form) {
    const org = input(form, "org").value.trim().toLowerCase();
    if (!org) {
      dispatch({ type: "signin_failed", error: "Type your organisation's id." });
      return;
    }
    location.assign(`/api/sso/start?${new URLSearchParams({ org })}`);
  },
  async signOut(everywhere) {
    live?.leave();
    await relayFetch(everywhere ? "/api/logout-everywhere" : "/api/logout", { method: "POST" }).catch(() => undefined);
    dispatch({ type: "signed_out" });
  },
  async mfaStart() {
    dispatch({ type: "mfa_failed", error: "" });
    const response = await relayFetch("/api/mfa/setup", { method: "POST" });
    if (!response.ok) return dispatch({ type: "mfa_failed", error: await problemDetail(response) });
    const setup = (await response.json()) as SecondFactorSetup;
    dispatch({ type: "mfa_started", qr: setup.qr_svg, secret: setup.secret });
  },
  async mfaConfirm(form) {
    dispatch({ type: "mfa_failed", error: "" });
    const code = input(form, "mfa-code");
    const response = await relayFetch("/api/mfa/confirm", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ code: code.value.trim() }),
    });
    code.value = "";
    if (!response.ok) return dispatch({ type: "mfa_failed", error: await problemDetail(response) });
    const { recovery_codes: codes } = (await response.json()) as RecoveryCodes;
    dispatch({ type: "mfa_confirmed", recoveryCodes: codes });
  },
  mfaContinue: () => dispatch({ type: "mfa_continue" }),
  join(form) {
    const code = input(form, "code").value.trim();
    if (!code) {
      dispatch({ type: "live", event: { type: "status", text: "Type the code the customer reads to you.", tone: "bad" } });
      return;
    }
    if (live?.open) live.join(code);
    else live = new LiveView({ code }, liveUi, livePorts());
  },
  watch(sessionId) {
    if (live?.open) return;
    live = new LiveView({ watch: sessionId }, liveUi, livePorts());
    void listSessions();
  },
  leave: () => live?.leave(),
  requestControl: () => live?.requestControl(),
  releaseControl: () => live?.releaseControl(),
  askToRecord: () => live?.askToRecord(),
  stopRecording: () => live?.stopRecording(),
  typed: () => live?.onTyping(),
};

controlLayer.addEventListener("mousemove", (event) => live?.onLayerMove(event));
controlLayer.addEventListener("click", (event) => live?.onLayerClick(event));
controlLayer.addEventListener("wheel", (event) => live?.onLayerWheel(event), { passive: false });

/** Back from the identity provider with a failure: say so, and keep nothing in the address. */
function ssoOutcome(): string | null {
  const outcome = new URLSearchParams(location.search).get("sso");
  if (!outcome) return null;
  history.replaceState(null, "", location.pathname);
  return outcome === "unavailable"
    ? "That organisation does not sign in through an identity provider here."
    : outcome === "busy" ? "Too many sign-ins were started from here. Wait a few minutes, then try again."
    : "Sign-in with your organisation failed. Ask your admin if your account is set up.";
}

async function init(): Promise<void> {
  document.documentElement.dataset.tandemVersion = VERSION;
  const failure = ssoOutcome();
  try {
    const response = await relayFetch("/api/me");
    if (response.ok) {
      signedIn((await response.json()) as AgentInfo);
      rejoinHeld();
      return;
    }
  } catch {
    // fall through to the sign-in form
  }
  dispatch({ type: "signed_out", error: failure ?? undefined });
}

void init();
