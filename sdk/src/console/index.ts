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
import { MalformedAnswer, checkedAnswer } from "./answers.ts";
import { type LivePorts, LiveView } from "./live.ts";
import { leaveOffice, officeConsole, problemDetail } from "./office.ts";
import { browserHeldStore, leftTooLongAgo } from "./rejoin.ts";
import { freshnessTimings } from "./freshness.ts";
import { passwordControls } from "./password.ts";
import { recoveryControls } from "./recovery.ts";
import { hideAccountActivity, showAccountActivity } from "./activity.ts";
import { relay, relayFetch } from "./relay.ts";
import { type ConsoleEvent, type ConsoleState, type LiveEvent, type Tool, initialState, reduce } from "./state.ts";
import { SHORTCUTS, type ViewActions, draw } from "./view.ts";
import { accountT as a } from "./messages/account.ts";
import { t, useLocale } from "./messages/workspace.ts";
import { direction, pickLocale } from "../shared/i18n.ts";
import type { DeviceKind } from "../shared/payload.ts";
import { type PracticeGuide, trainingPanel } from "./training.ts";

const VERSION = __TANDEM_VERSION__;
/** How often a supervisor's list of live sessions is refreshed. */
const SESSIONS_REFRESH_MS = 3000;

function byId<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`console markup is missing #${id}`);
  return el as T;
}

// The workspace's language: `?lang=` in the console's address, else the browser's languages.
const locale = pickLocale(new URLSearchParams(location.search).get("lang"), ...(navigator.languages ?? [navigator.language]));
useLocale(locale);
document.documentElement.lang = locale;
document.documentElement.dir = direction(locale);
// The header's and the tab's name (index.html has the English, for a page without script).
const subtitle = document.querySelector(".subtitle");
if (subtitle) subtitle.textContent = t("consoleSubtitle");
document.title = `Tandem · ${t("consoleSubtitle")}`;

const roots = { account: byId("account"), main: document.querySelector("main") ?? document.body, stage: byId("stage") };
const mirror = byId("mirror");
const device = byId("device");
const controlLayer = byId("control-layer");
const toolLayer = byId("tool-layer");
const typingBox = byId<HTMLInputElement>("typing-input");
typingBox.setAttribute("aria-label", t("typeIntoField"));
/** Frame around the mirror (console.css: .device.phone / .desktop), for the room it leaves. */
const FRAME = { phone: { width: 28, height: 56 }, desktop: { width: 4, height: 32 } };

let state: ConsoleState = initialState;
let live: LiveView | null = null;
let sessionsTimer: ReturnType<typeof setTimeout> | undefined;
/** The practice exercise while one runs (training.ts): it sees the live session's events. */
let practice: PracticeGuide | null = null;
const startedPractice = (guide: PracticeGuide) => { practice = guide; };
/** Durations in the header and the supervisors' list move once a second. */
setInterval(() => {
  if (state.screen === "live" && (state.card.phase !== "idle" || state.sessions?.length)) dispatch({ type: "tick", now: Date.now() });
}, 1000);

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
      hideAccountActivity();
      leaveOffice();
      document.getElementById("training")?.remove();
      practice = null;
      live?.leave();
      clearTimeout(sessionsTimer);
      document.getElementById("username")?.focus();
      break;
    case "office": {
      const office = byId("office");
      officeConsole(office, state.agent); // its pages: office.ts's registry (Training for admins)
      if (state.agent.role === "auditor") void trainingPanel(office, () => location.reload(), startedPractice); // the policy first
      break;
    }
    case "live":
      void trainingPanel(roots.main, () => {
        practice = null; // recorded: a real session's events are no practice's
        void listSessions(); // trained: the list again
      }, startedPractice);
      document.getElementById("code")?.focus();
      if (state.agent.role === "supervisor") void listSessions();
      break;
    default:
      break;
  }
}

const codeInput = () => document.getElementById("code") as HTMLInputElement | null;

/** The browser's ports for a live session: the relay's agent socket, the clock, randomness. */
const livePorts = (): LivePorts => ({
  transport: webSocketTransport(relay().socket), clock: browserClock, random: randomBytes, held: browserHeldStore,
  // Tests make the freshness check quick with `window.__tandemFreshness` (an init script); it can
  // only shorten the defaults, never loosen the check (freshness.ts).
  freshness: freshnessTimings((globalThis as { __tandemFreshness?: unknown }).__tandemFreshness),
});

// A hidden tab's timers are slowed (to once a minute after a while): shown again, the view says
// at once whether it is still live, and asks the customer's browser anew.
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") live?.visible();
});

/** After a reload: take up the session this tab was in (issue 13, fault 6), or drop stale keys. */
function rejoinHeld(): void {
  const stored = browserHeldStore.load();
  if (stored && !live && leftTooLongAgo(stored, browserClock.now())) {
    void browserHeldStore.forget(stored.keyHandle); // this tab's keys; another tab's stay
    return;
  }
  if (!stored || live || state.screen !== "live") {
    if (!stored && !live) void browserHeldStore.clearUnused(); // another console tab's keys stay
    return;
  }
  const { leftAt: _left, ...held } = stored;
  live = new LiveView({ rejoin: held }, liveUi, livePorts());
}

// The page is left (a reload, a navigation, the tab closed): the record says when, so that a
// tab reopened later does not rejoin (leftTooLongAgo).
addEventListener("pagehide", () => {
  const held = browserHeldStore.load();
  if (held) browserHeldStore.save({ ...held, leftAt: browserClock.now() });
});

const liveUi = {
  report: (event: LiveEvent) => {
    practice?.live(event);
    // A real session never sits beside the finished practice's panel.
    if (!practice && event.type === "joined") document.querySelector("#training[data-done]")?.remove();
    dispatch({ type: "live", event });
  },
  observe: (what: string, reason?: string) => practice?.observe(what, reason),
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
  focusTyping: (box: { left: number; top: number; width: number; height: number; fontSize: number; value: string }) => {
    // Over the mirrored field itself (positions relative to the framed mirror).
    const origin = device.getBoundingClientRect();
    const border = { left: device.clientLeft, top: device.clientTop };
    typingBox.style.left = `${box.left - origin.left - border.left}px`;
    typingBox.style.top = `${box.top - origin.top - border.top}px`;
    typingBox.style.width = `${Math.max(box.width, 40)}px`;
    typingBox.style.height = `${Math.max(box.height, 20)}px`;
    typingBox.style.fontSize = `${Math.max(box.fontSize, 11)}px`;
    typingBox.value = box.value;
    typingBox.focus(); // shown by the render that just ran (lit-html renders synchronously)
    typingBox.setSelectionRange(box.value.length, box.value.length);
  },
  typed: () => typingBox.value,
  room: () => {
    const frame = device.classList.contains("phone") ? FRAME.phone : FRAME.desktop;
    const top = roots.stage.getBoundingClientRect().top + scrollY;
    return {
      width: Math.max(200, roots.stage.clientWidth - frame.width),
      height: Math.max(200, innerHeight - Math.min(top, 120) - frame.height),
    };
  },
  frame: (kind: DeviceKind | null) => {
    device.classList.toggle("phone", kind === "phone" || kind === "tablet");
    device.classList.toggle("desktop", kind === "desktop");
  },
};

/** Supervisors: the live sessions of their teams' sites, refreshed every few seconds. A refusal
 * (403: the policy not yet acknowledged) is not asked again every few seconds (each is an audit
 * record, docs/audit.md "Refused attempts"): the list is asked for again once the training is
 * done, or a watch starts or ends. */
async function listSessions(): Promise<void> {
  clearTimeout(sessionsTimer);
  if (state.screen !== "live" || state.agent.role !== "supervisor") return;
  let refused = false;
  try {
    const response = await relayFetch("/api/sessions");
    refused = response.status === 403;
    if (response.ok) dispatch({ type: "sessions", sessions: await checkedAnswer<LiveSession[]>(response, "GET", "/api/sessions") });
  } catch {
    // kept as it was; tried again below
  } finally {
    if (state.screen === "live" && !refused) sessionsTimer = setTimeout(() => void listSessions(), SESSIONS_REFRESH_MS);
  }
}

/** Signed in: the account's screen, and its password controls (password.ts); after an admin's
 * reset, the new-password form hides every screen until a password is chosen. */
function signedIn(agent: AgentInfo): void {
  dispatch({ type: "signed_in", agent });
  if (!passwordControls(agent, signedIn) && !agent.needs_second_factor) {
    recoveryControls();
    // What happened to the account lately (an admin's reset, a sign-in from elsewhere): its
    // owner sees it at each sign-in (activity.ts).
    void showAccountActivity(() => state.screen !== "signin");
  }
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
      dispatch({ type: "signin_failed", error: a("signInUnreachable") });
      return;
    }
    password.value = "";
    otp.value = "";
    if (!response.ok) {
      dispatch({ type: "signin_failed", error: await problemDetail(response) });
      return;
    }
    try {
      signedIn(await checkedAnswer<AgentInfo>(response, "POST", "/api/login"));
    } catch (error) {
      dispatch({ type: "signin_failed", error: (error as Error).message });
    }
  },
  // A plain navigation, not a form post: the console's CSP (form-action 'self') would stop the
  // redirect to the organisation's provider.
  signInWithOrganisation(form) {
    const org = input(form, "org").value.trim().toLowerCase();
    if (!org) {
      dispatch({ type: "signin_failed", error: a("ssoNeedOrg") });
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
    let setup: SecondFactorSetup;
    try {
      setup = await checkedAnswer<SecondFactorSetup>(response, "POST", "/api/mfa/setup");
    } catch (error) {
      return dispatch({ type: "mfa_failed", error: (error as Error).message });
    }
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
    let codes: string[];
    try {
      ({ recovery_codes: codes } = await checkedAnswer<RecoveryCodes>(response, "POST", "/api/mfa/confirm"));
    } catch (error) {
      return dispatch({ type: "mfa_failed", error: (error as Error).message });
    }
    dispatch({ type: "mfa_confirmed", recoveryCodes: codes });
  },
  mfaContinue: () => dispatch({ type: "mfa_continue" }),
  join(form) {
    const code = input(form, "code").value.trim();
    if (!code) {
      dispatch({ type: "live", event: { type: "status", text: a("joinNeedCode"), tone: "bad" } });
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
  tool(tool: Tool) {
    if (state.screen !== "live") return;
    dispatch({ type: "live", event: { type: "tool", tool: state.card.tool === tool ? "none" : tool } });
    const now = state.card.tool;
    live?.setTool(now);
    const words = { none: "toolOff", laser: "toolPointerOn", highlight: "toolHighlightOn", draw: "toolDrawOn" } as const;
    if (now === tool || now === "none") dispatch({ type: "live", event: { type: "status", text: t(words[now]) } });
  },
};

/** The workspace's shortcuts (listed in the console, view.ts SHORTCUTS). */
document.addEventListener("keydown", (event) => {
  if (state.screen !== "live" || state.card.phase !== "joined") return;
  if (event.code === "Escape") {
    if (state.card.tool !== "none") {
      actions.tool("none");
      event.preventDefault();
    }
    return;
  }
  if (!event.altKey || !event.shiftKey || event.ctrlKey || event.metaKey) return;
  const shortcut = SHORTCUTS.find((s) => s.code === event.code);
  if (!shortcut) return;
  event.preventDefault();
  const card = state.card;
  if (shortcut.code === "KeyP") actions.tool("laser");
  else if (shortcut.code === "KeyH") actions.tool("highlight");
  else if (shortcut.code === "KeyD") actions.tool("draw");
  else if (shortcut.code === "KeyC") {
    if (card.controlling) actions.releaseControl();
    else if (card.consented && !card.watching) actions.requestControl();
  } else if (shortcut.code === "KeyL") actions.leave();
});

controlLayer.addEventListener("mousemove", (event) => live?.onLayerMove(event));
controlLayer.addEventListener("click", (event) => live?.onLayerClick(event));
controlLayer.addEventListener("wheel", (event) => live?.onLayerWheel(event), { passive: false });
toolLayer.addEventListener("mousemove", (event) => live?.onToolMove(event));
toolLayer.addEventListener("mousedown", (event) => live?.onToolDown(event));
toolLayer.addEventListener("mouseup", (event) => live?.onToolUp(event));
toolLayer.addEventListener("mouseleave", () => live?.onToolLeave());
toolLayer.addEventListener("click", (event) => live?.onToolClick(event));
typingBox.addEventListener("input", () => live?.onTyping());
// A click on the mirror while the layers are off (the view is not live): not sent, but answered
// (a new epoch coming in: the agent is told to try again in a moment; live.ts).
roots.stage.addEventListener("click", () => {
  if (controlLayer.hidden && toolLayer.hidden) live?.onStageClick();
});

/** Back from the identity provider with a failure: say so, and keep nothing in the address. */
function ssoOutcome(): string | null {
  const outcome = new URLSearchParams(location.search).get("sso");
  if (!outcome) return null;
  history.replaceState(null, "", location.pathname);
  return outcome === "unavailable"
    ? a("ssoUnavailable")
    : outcome === "busy" ? a("ssoBusy")
    : a("ssoFailed");
}

async function init(): Promise<void> {
  document.documentElement.dataset.tandemVersion = VERSION;
  let failure = ssoOutcome();
  try {
    const response = await relayFetch("/api/me");
    if (response.ok) {
      signedIn(await checkedAnswer<AgentInfo>(response, "GET", "/api/me"));
      rejoinHeld();
      return;
    }
  } catch (error) {
    // to the sign-in form, saying why when the server's answer was malformed
    if (error instanceof MalformedAnswer) failure = error.message;
  }
  dispatch({ type: "signed_out", error: failure ?? undefined });
}

void init();
