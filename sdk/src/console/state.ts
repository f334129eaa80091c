/**
 * The agent console as one state and a pure reducer: which screen is shown (sign-in, second-factor
 * set-up, the office pages of auditors and admins, or the live card of agents and supervisors)
 * and, on the live card, what the agent may do right now. view.ts renders it; index.ts feeds it
 * events from forms, the server's HTTP answers and the live session (live.ts), and runs the few
 * effects (focus, fetches) itself. No I/O here: test/console-state.test.ts covers the rules.
 *
 * The rule that matters most for privacy: the controls that act on the customer's page (request
 * control, ask to record) appear only after the customer's browser confirmed consent inside the
 * encrypted channel (`consented`), never on the server's word.
 */

import type { AgentInfo, LiveSession } from "../generated/rest.ts";
import type { ContextPayload } from "../shared/payload.ts";
import { t } from "./messages/workspace.ts";

export type Tone = "" | "good" | "bad";

/** The agent's pointing tools (issue 15): they need no control; "none" when off. */
export type Tool = "none" | "laser" | "highlight" | "draw";
export const TOOLS: readonly Exclude<Tool, "none">[] = ["laser", "highlight", "draw"];

/** The live card: the join form, the session's controls and its status line. */
export interface LiveCard {
  /** idle: the join form; connecting/joined: a session; watch_code: a supervisor may type the
   * customer's code; the card returns to idle when the session ends. */
  phase: "idle" | "connecting" | "joined" | "watch_code";
  watching: boolean;
  status: { text: string; tone: Tone };
  /** The customer's browser confirmed consent in the encrypted channel (agents only). */
  consented: boolean;
  controlling: boolean;
  /** The typing box for the field the agent clicked. */
  typing: boolean;
  /** "Ask to record" is offered. */
  recordOffered: boolean;
  /** Recording as the customer's browser says (only this counts) and as the server says. */
  recording: { customer: boolean; server: boolean };
  /** The session's id (from the server's `joined`/`watching`). */
  sessionId: string | null;
  /** The customer's page and device, as the customer's browser says (encrypted `context`). */
  context: Omit<ContextPayload, "k"> | null;
  /** When the customer's browser confirmed consent (console clock, ms): the duration's start. */
  startedAt: number | null;
  /** The pointing tool in use, and whether the customer lets the agent point (it may turn it off). */
  tool: Tool;
  pointing: boolean;
  /** The server's word on the link between its processes that carries this session (its `link`
   * message): "up" until it says otherwise. A line of its own, never in place of the status. */
  link: "up" | "reconnecting" | "restored";
  /** The customer's browser proved, within the bound, that the view is its page now (an echo of
   * the console's challenge: freshness.ts). Until then, and whenever the proof is too old, the
   * mirror is marked as not live. */
  fresh: boolean;
  /** The view's freshness is being checked (from the customer's first page on; an agent's and
   * a supervisor's alike). */
  checked: boolean;
}

export type ConsoleState =
  | { screen: "loading" }
  | { screen: "signin"; error: string | null }
  | {
    screen: "mfa"; agent: AgentInfo; step: "start" | "scan" | "done"; error: string | null;
    setup: { qr: string; secret: string } | null; recoveryCodes: string[];
  }
  /** Auditors and admins: no live sessions. */
  | { screen: "office"; agent: AgentInfo }
  /** Agents and supervisors; supervisors also see their teams' live sessions. */
  | { screen: "live"; agent: AgentInfo; sessions: LiveSession[] | null; card: LiveCard; now: number };

export type ConsoleEvent =
  | { type: "signed_in"; agent: AgentInfo }
  | { type: "signed_out"; error?: string }
  | { type: "signin_failed"; error: string }
  | { type: "mfa_started"; qr: string; secret: string }
  | { type: "mfa_failed"; error: string }
  | { type: "mfa_confirmed"; recoveryCodes: string[] }
  | { type: "mfa_continue" }
  | { type: "sessions"; sessions: LiveSession[] }
  /** The clock, once a second: durations in the header and the supervisors' list. */
  | { type: "tick"; now: number }
  | { type: "live"; event: LiveEvent };

/** What the live session (live.ts) reports. */
export type LiveEvent =
  | { type: "connecting"; watching: boolean }
  | { type: "status"; text: string; tone?: Tone }
  | { type: "joined"; sessionId?: string }
  /** A supervisor may now type the customer's watch code. */
  | { type: "watch_code" }
  /** The watch code was typed: the exchange runs. */
  | { type: "watch_code_entered" }
  | { type: "consented"; at?: number }
  | { type: "context"; context: Omit<ContextPayload, "k"> }
  | { type: "tool"; tool: Tool }
  /** The customer turned pointing on or off (its browser said so). */
  | { type: "pointing"; on: boolean }
  | { type: "control"; on: boolean }
  | { type: "typing"; on: boolean }
  | { type: "record_asked" }
  /** The server refused to ask (no key, not allowed): the agent may ask again. */
  | { type: "record_refused" }
  | { type: "recording"; customer?: boolean; server?: boolean }
  /** The server says the link between its processes went down (frames wait) or came back. */
  | { type: "link"; reconnecting: boolean }
  /** Whether the view is proven to be the customer's page now (freshness.ts). */
  | { type: "fresh"; live: boolean }
  | { type: "ended"; text: string; tone?: Tone };

const LIVE_ROLES = new Set(["agent", "supervisor"]);

export const idleCard: LiveCard = {
  phase: "idle", watching: false, status: { text: "", tone: "" }, consented: false, controlling: false, typing: false,
  recordOffered: false, recording: { customer: false, server: false },
  sessionId: null, context: null, startedAt: null, tool: "none", pointing: true, link: "up",
  fresh: false, checked: false,
};

export const initialState: ConsoleState = { screen: "loading" };

/** The screen for a signed-in account. */
function home(agent: AgentInfo): ConsoleState {
  if (agent.needs_second_factor) return { screen: "mfa", agent, step: "start", error: null, setup: null, recoveryCodes: [] };
  if (!LIVE_ROLES.has(agent.role)) return { screen: "office", agent };
  return { screen: "live", agent, sessions: null, card: idleCard, now: 0 };
}

export function reduceCard(card: LiveCard, event: LiveEvent): LiveCard {
  switch (event.type) {
    case "connecting":
      return { ...idleCard, phase: "connecting", watching: event.watching, status: { text: t("connecting"), tone: "" } };
    case "status":
      return { ...card, status: { text: event.text, tone: event.tone ?? "" } };
    case "joined":
      return { ...card, phase: "joined", sessionId: event.sessionId ?? card.sessionId };
    case "watch_code":
      return card.watching ? { ...card, phase: "watch_code" } : card;
    case "watch_code_entered":
      return card.phase === "watch_code" ? { ...card, phase: "joined" } : card;
    case "consented":
      // Supervisors never control or record; agents may from the customer's own confirmation on.
      if (card.startedAt === null && event.at !== undefined) card = { ...card, startedAt: event.at };
      return card.watching || card.consented ? card : { ...card, consented: true, recordOffered: true };
    case "context":
      return card.phase === "idle" ? card : { ...card, context: event.context };
    case "tool":
      // Tools need the customer's consent (never before), a customer who allows them, no watching.
      if (event.tool !== "none" && !(card.consented && card.pointing && !card.watching)) return card;
      return { ...card, tool: event.tool };
    case "pointing":
      return { ...card, pointing: event.on, tool: event.on ? card.tool : "none" };
    case "control":
      return { ...card, controlling: event.on && card.consented && !card.watching, typing: event.on ? card.typing : false };
    case "typing":
      return { ...card, typing: event.on && card.controlling };
    case "record_asked":
      return { ...card, recordOffered: false };
    case "record_refused":
      return card.consented ? { ...card, recordOffered: true } : card;
    case "recording": {
      const recording = {
        customer: event.customer ?? card.recording.customer,
        server: event.server ?? card.recording.server,
      };
      // Offered again whenever the customer's browser is not recording.
      const recordOffered = card.consented && !recording.customer;
      return { ...card, recording, recordOffered };
    }
    case "link":
      // Only within a session; it changes nothing else on the card (an `ended` still clears it).
      if (card.phase === "idle") return card;
      if (event.reconnecting) return { ...card, link: "reconnecting" };
      return card.link === "reconnecting" ? { ...card, link: "restored" } : card;
    case "fresh":
      return card.phase === "idle" ? card : { ...card, fresh: event.live, checked: true };
    case "ended":
      return { ...idleCard, status: event.text ? { text: event.text, tone: event.tone ?? "bad" } : card.status };
  }
}

export function reduce(state: ConsoleState, event: ConsoleEvent): ConsoleState {
  switch (event.type) {
    case "signed_in":
      return home(event.agent);
    case "signed_out":
      return { screen: "signin", error: event.error ?? null };
    case "signin_failed":
      return state.screen === "signin" ? { ...state, error: event.error } : state;
    case "mfa_started":
      return state.screen === "mfa" ? { ...state, step: "scan", error: null, setup: { qr: event.qr, secret: event.secret } } : state;
    case "mfa_failed":
      return state.screen === "mfa" ? { ...state, error: event.error } : state;
    case "mfa_confirmed":
      // The secret is not kept once the factor is on; the recovery codes are shown once.
      return state.screen === "mfa"
        ? { ...state, step: "done", error: null, setup: null, recoveryCodes: event.recoveryCodes }
        : state;
    case "mfa_continue":
      return state.screen === "mfa" ? home({ ...state.agent, needs_second_factor: false }) : state;
    case "sessions":
      return state.screen === "live" && state.agent.role === "supervisor" ? { ...state, sessions: event.sessions } : state;
    case "tick":
      return state.screen === "live" ? { ...state, now: event.now } : state;
    case "live":
      return state.screen === "live" ? { ...state, card: reduceCard(state.card, event.event) } : state;
  }
}

/** Which controls of the live card are hidden (true) or how they read (view.ts renders this). */
export function controls(card: LiveCard) {
  const inSession = card.phase !== "idle";
  const joined = card.phase === "joined" || card.phase === "watch_code";
  return {
    join: { hidden: card.phase === "joined", label: card.phase === "watch_code" ? t("startWatching") : t("join") },
    code: { disabled: card.phase === "joined", placeholder: card.phase === "watch_code" ? "123 4567" : "123 456 789 012" },
    leave: !joined,
    requestControl: !(card.consented && !card.controlling && inSession),
    /** What acts on the customer's page waits for a view proven live (shown, not offered). */
    acting: card.fresh,
    /** Why control and pointing are off: the view is not proven live (agents only). */
    offWhileNotLive: inSession && card.consented && !card.watching && !card.fresh,
    releaseControl: !card.controlling,
    record: !(card.recordOffered && inSession && !card.recording.customer),
    // Stopping is always safe: offered when either side says it records.
    stopRecord: !(inSession && !card.watching && (card.recording.customer || card.recording.server)),
    typing: !card.typing,
    controlLayer: !card.controlling || card.tool !== "none" || !card.fresh,
    /** The tools are offered once the customer's browser confirmed consent (agents only). */
    tools: !(card.consented && inSession && !card.watching),
    toolLayer: card.tool === "none" || !inSession || !card.fresh,
    /** The mirror is marked as not live: a view the customer's browser has not proven to be its
     * page now (an agent's from the customer's consent on, a supervisor's once it is checked). */
    notLive: inSession && (card.consented || card.checked) && !card.fresh,
  };
}
