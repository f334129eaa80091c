/**
 * The customer session's lifecycle as one state and a pure reducer: what this browser believes
 * about its session, and every decision that trusts (or refuses) what the server says.
 *
 *   idle → connecting(created) → waiting → pending_consent → sharing → ended
 *          connecting(resumed) → waiting | pending_consent | sharing      (a new page, a dropped
 *                                                                          network)
 *
 * A dropped socket (no close code from the server: 1001, 1005, 1006, 1011, 1012, 1013…) is
 * retried with exponential back-off and jitter (`reconnectDelay`) for as long as the server
 * keeps the session (`resume_seconds`, RESUME_WINDOW_MS if it did not say), with "Reconnecting…"
 * shown (`drop` records since when); then the customer is told plainly that it gave up (LOST).
 * Stop while reconnecting ends here at once and tells the server on a fresh socket if it can.
 *
 * `reduce(state, event)` returns the next state and the effects to run (send, persist, show,
 * pair, share, reconnect, end); it does no I/O and reads no clock, so every decision here is unit
 * tested (test/customer-state.test.ts). The shell in session.ts runs the effects through its
 * ports and owns the sharing machinery (recorder, encryption, recording, remote control).
 *
 * What the reducer guarantees (docs/threat-model.md):
 * - `created` and `resumed` are believed only as the answer to this page's own `create` /
 *   `resume`, once; anything else ends the session ("distrust").
 * - A `resumed` that contradicts this browser's own record ends the session: `sharing` without
 *   the customer's stored Allow, `waiting` after an agent had joined.
 * - Sharing starts only from the customer's Allow in this browser (or, on a later page of the
 *   same session, from that stored Allow once the pairing key was found again).
 * - Stored pairing keys are used only on this tab's own record that it paired (`keyHandle`,
 *   secret gone): a session that answered `created` always runs SPAKE2 first.
 * - Policies from the server must be valid, and name what to hide by the page's markup, never by
 *   its state (`:checked`, a field's value): an invalid one ends the session.
 * - The organisation's and the agent's teams' policies are fixed when the customer clicks Allow
 *   (`allowedPolicies`): a `team_policy` after it, or a `resumed` with other team policies, ends
 *   the session; a later organisation policy is not used. A server that could change them while
 *   the customer shares could ask, one pause at a time, which page the customer is on.
 * - The agent's name is fixed by the first message that names it: a `resumed` or `agent_joined`
 *   naming anyone else ends the session (there is one agent per session; a supervisor is asked
 *   for, and named, on its own).
 */

import { type Policy, validateServerPolicy } from "../shared/policy.ts";
import { type OutgoingMessage, type ServerMessage, describeClose } from "../shared/protocol.ts";
import { RESUME_WINDOW_MAX_MS, RESUME_WINDOW_MS, reconnectDelay, windowOf, withinWindow } from "../shared/backoff.ts";
import { MAX_NAME, plainLine, plausibleName } from "../shared/names.ts";
import type { AgentAsk, RecordingState } from "./recording.ts";

export const MISMATCH = "The code did not match. Click “Get help” to get a new code.";
/** The server stopped (SIGTERM); the SDK's own words, never the server's prose. */
export const RESTARTING = "The help server is restarting, so this session has ended. Click “Get help” again in a moment.";
/** The help server said something that contradicts what happened in this browser. */
export const DISTRUST = "Help was stopped for your safety: the help server sent something this page did not expect";
export const UNREACHABLE = "Could not reach the help server. Please try again.";
/** Why a session ended, in the customer's words (issue 15: the customer is told when and why);
 * ./messages/widget.ts translates each. */
export const AGENT_ENDED = "The agent ended the session. Nothing is shared any more.";
export const AGENT_LOST = "The agent's connection was lost, so sharing stopped.";
export const CODE_EXPIRED = "Your help code expired. Click “Get help” for a new one.";
export const CONNECTION_LOST = "The connection was lost, so sharing stopped. Click “Get help” to start again.";
export const IDLE_ENDED = "The session ended after a long time without activity.";
export const MAX_DURATION_ENDED = "The session reached its time limit and ended.";
export const SESSION_ENDED = "The help session has ended. Nothing is shared any more.";
/** The agent's console sent no challenge for AGENT_SILENT_MS (./silence.ts): ended here, whatever
 * the server says or withholds. */
export const CONSOLE_SILENT = "The agent's console stopped answering, so sharing stopped. Nothing is shared any more.";
/** The notice for each reason the server gives for an end (the customer's own stop and decline
 * end the session here first, so theirs never arrive). */
const ENDED: Partial<Record<string, string>> = {
  key_mismatch: MISMATCH, server_shutdown: RESTARTING, agent_left: AGENT_ENDED, agent_lost: AGENT_LOST,
  code_expired: CODE_EXPIRED, idle_timeout: IDLE_ENDED, max_duration: MAX_DURATION_ENDED,
};
/** The reconnect attempts stopped: the server's resume window is over (issue 13, fault 6). */
export const LOST =
  "The connection to the help server was lost and could not be restored, so this help session has ended. " +
  "Click “Get help” to start again.";
/** The server no longer knows the session it was reconnecting to. */
export const SESSION_GONE = SESSION_ENDED;
/** The server closed a live session's socket without saying it ended. */
export const CLOSED = SESSION_ENDED;
export { RECONNECT_FIRST_MS, RECONNECT_MARGIN_MS, RECONNECT_MAX_MS, RESUME_WINDOW_MS, reconnectDelay } from "../shared/backoff.ts";

/** The socket is down and being reconnected: since when (this page's clock), how many tries. */
export interface Drop {
  since: number;
  attempt: number;
  /** When the latest attempt's socket closed (this page's clock). */
  last?: number;
}

/** A socket that drops again less than this long after its last drop's latest close goes on
 * with that drop's back-off instead of starting it afresh: a relay that closes the socket as
 * soon as each resume is answered (each a new epoch, a full snapshot of the page) would make
 * the page take one every few hundred milliseconds. */
export const SETTLED_MS = 10_000;

/** The session as kept in this tab's storage across page loads (sessionStorage). */
export interface Saved {
  sessionId: string;
  resumeToken: string;
  routing: string;
  /** The secret part, kept only until the key exchange succeeded. */
  secret: string | null;
  /** Where this tab stored the pairwise keys of its own key exchange (random, made here; never
   * the server's session id): set with `secret` cleared, by the pairing that made them. */
  keyHandle?: string;
  agent: string | null;
  /** Page loads that have shared content so far (one content key each). */
  epoch: number;
  /** The policy passed to start(), for pages without their own policy tag. */
  sitePolicy: Policy | null;
  /** The customer clicked Allow in this browser. Only this, never the server's word, lets the
   * page be shared (also after a navigation). */
  consented?: boolean;
  /** The organisation's and the agent's teams' policies in force when the customer clicked
   * Allow: the session's, for good (set with `consented`). */
  allowedPolicies?: { org: Policy | null; teams: Policy[] } | null;
  /** The last agent command opened (replays are refused, also on the next page). */
  commands?: number;
  /** How long the agent's console has been silent while this session shared (ms, ./silence.ts),
   * as of this page's last look: sharing that comes back (a new page, the socket back) goes on
   * from here, never from a fresh start. */
  agentSilentMs?: number;
  /** Remote control granted (it survives the customer's navigation, until revoked). */
  control?: boolean;
  /** A supervisor watching too (paired with its own code), by name. */
  watcher?: string | null;
  /** The last command of the watching supervisor opened (its challenges; replays are refused,
   * also on the next page). */
  watcherCommands?: number;
  /** How long the server keeps the session for a page without a socket (its `resume_seconds`). */
  resumeWindowMs?: number;
  /** When a page of this tab was last left (its pagehide; this browser's clock, ms): a page
   * resumes the record only within the resume window of it (leftTooLongAgo). */
  leftAt?: number;
  /** Recording keys the site's own pages pinned (key ids or public keys): the only keys this
   * browser will wrap content keys for. Never from the server. */
  recordingPins?: string[];
  /** The customer allowed recording: for which key, and where its chain stands. Each page's
   * content key is also wrapped for that key. Null when not recording. */
  recording?: RecordingState | null;
  /** A recording question the agent confirmed and the customer has not answered yet (it is
   * asked again on the next page). */
  recordAsk?: { recordingId: string; agent: AgentAsk } | null;
}

/** What this page itself says (never the server): its policy and its recording pins. */
export interface PageSays {
  sitePolicy: Policy | null;
  /** The page's policy tag is broken: this page never shares. */
  brokenPolicy: boolean;
  pins: string[];
}

/** A session the server has confirmed, with the policies it sent (each validated). */
interface Live extends PageSays {
  saved: Saved;
  orgPolicy: Policy | null;
  teamPolicies: Policy[];
  /** The socket is down and being reconnected (null: it is up). */
  drop: Drop | null;
  /** The last drop, once the socket came back: its attempts and its latest close. */
  lastDrop?: { attempt: number; at: number } | null;
  /** The server says the link between its processes that carries this session is down
   * (`link` `reconnecting`): frames wait. Only a note on the sharing banner, never in place of
   * anything it shows (docs/threat-model.md, "The link notice"). */
  linkDown?: boolean;
}

export type SessionState =
  | { phase: "idle" }
  /** `practice`: started with a practice ticket (the server's own practice pages): only then
   * may a refusal read as the practice one (describeClose). */
  | ({ phase: "connecting"; expecting: "created"; practice: boolean } & PageSays)
  | ({ phase: "connecting"; expecting: "resumed"; saved: Saved; drop: Drop | null } & PageSays)
  | ({ phase: "waiting" } & Live)
  | ({ phase: "pending_consent" } & Live)
  | ({ phase: "sharing" } & Live)
  | { phase: "ended" };

export type Phase = SessionState["phase"];
export type LiveState = Extract<SessionState, { orgPolicy: Policy | null }>;

export type SessionEvent =
  /** Open a session: `create` (start()) or `resume` (a stored session, a dropped network). */
  | { type: "create"; page: PageSays; message: Extract<OutgoingMessage, { type: "create" }> }
  | { type: "resume"; page: PageSays; saved: Saved }
  /** A lifecycle message from the server; `secret` is fresh random digits (for `created`). */
  | { type: "server"; message: ServerMessage; secret: string }
  /** The key exchange succeeded, its keys stored under the fresh `keyHandle`; or (null) the
   * keys of this tab's own earlier exchange were found again after a navigation. */
  | { type: "paired"; keyHandle: string | null }
  | { type: "mismatch" }
  /** The customer answered the consent question. */
  | { type: "answer"; granted: boolean }
  /** The socket closed (not because the page is being left), at `now` (this page's clock);
   * `jitter` is a fresh random number in [0, 1) for the back-off. */
  | { type: "closed"; code: number; reason: string; now: number; jitter: number }
  /** The customer (or the page) stops the session. */
  | { type: "stop" }
  /** The agent's console has not answered for AGENT_SILENT_MS (./silence.ts): this browser ends
   * the session as Stop sharing does, and says why. */
  | { type: "agent_silent" };

export type Effect =
  | { type: "connect"; message: OutgoingMessage }
  | { type: "send"; message: OutgoingMessage }
  /** Store the state's `saved` (its session record) in this tab. */
  | { type: "persist" }
  | { type: "show_code"; code: string }
  /** start() resolves with the code the customer reads out. */
  | { type: "ready"; code: string }
  /** Run the key exchange with the agent (or find its key), then report `paired` or `mismatch`. */
  | { type: "pair" }
  | { type: "ask_consent"; agent: string }
  /** Share this page: a fresh content key, the `consented` frame first, then the recorder. */
  | { type: "begin_sharing" }
  /** The network dropped: stop recording and resume after `delay` ms. */
  | { type: "reconnect"; delay: number }
  /** Show "Reconnecting…" (with Stop sharing) while the socket is down. */
  | { type: "show_reconnecting" }
  /** The server's link between its processes went down or came back: redraw the banner. */
  | { type: "show_link" }
  /** Stopped while the socket was down: tell the server on a fresh socket if it can. */
  | { type: "stop_offline"; sessionId: string; resumeToken: string }
  /** Drop every trace of the session (recorder, keys, storage, socket, UI); show `error`. */
  | { type: "end"; error: string | null };

export interface Transition {
  state: SessionState;
  effects: Effect[];
}

export const initialState: SessionState = { phase: "idle" };

const stay = (state: SessionState): Transition => ({ state, effects: [] });

/** End the session at once; tell the server to stop first when it should hear it. */
function end(error: string | null, stop = false): Transition {
  const effects: Effect[] = stop ? [{ type: "send", message: { type: "stop" } }] : [];
  effects.push({ type: "end", error });
  return { state: { phase: "ended" }, effects };
}

/** The window (ms) within which the server keeps this session for a page without a socket. */
export function resumeWindow(saved: Saved): number {
  // Read back from the tab's storage, which the page's own script may write: a number, at most
  // what a server may say (windowOf).
  const ms = saved.resumeWindowMs;
  return typeof ms === "number" && ms > 0 ? Math.min(ms, RESUME_WINDOW_MAX_MS) : RESUME_WINDOW_MS;
}

/** Whether the tab's record was left (a page's pagehide) longer ago than the session's resume
 * window (either way: a clock set back counts too). A tab closed without "Stop sharing" and
 * reopened later (*Reopen closed tab*, session restore: its sessionStorage comes back, and its
 * keys wait in the site's key store until a page of the site with no session clears them) does
 * not resume then on the server's word: an honest server ended the session once the window
 * passed, and one that kept it would have the page share again, unasked, long after the
 * customer closed it. */
export function leftTooLongAgo(saved: Saved, now: number): boolean {
  const left: unknown = saved.leftAt;
  if (left === undefined) return false; // a record of an earlier version, or never left
  // A stamp that is no time is none the SDK wrote (JSON keeps NaN as null): not resumed.
  if (typeof left !== "number" || !Number.isFinite(left)) return true;
  return !(Math.abs(now - left) <= resumeWindow(saved));
}

const distrust = (what: string): Transition => end(`${DISTRUST} (${what}).`, true);

/** After the customer's Allow the policies are fixed: a server that could change them (and see
 * sharing pause, or not) would learn, one question at a time, which page the customer is on. */
const CHANGED_POLICIES = "it changed the privacy rules after you allowed sharing";
/** One agent per session, named when it joined: a different name is the server's invention. */
const RENAMED = "it named another agent than the one who joined";

/** What the server shows in this page's own UI is what the honest server sends, never text of
 * the relay's choosing: a routing code of 4 to 12 digits (its `code_digits`), an agent's name as
 * the server's own rule for names people read has it (../shared/names.ts). The name is shown
 * inside a sentence ("<name> wants to see this page"): a relay's override would make the rest of
 * it read otherwise, a separator would break it in two. */
const ROUTING_CODE = /^[0-9]{4,12}$/;
const NOT_A_CODE = "it sent a help code that is not one";
const NOT_A_NAME = "it sent an agent's name that is not one";

export { plausibleName };

/** Whether the agent's name the server gives now is the one this browser knows (or the first). */
/** Whether `agent` is the name this tab knows (or it knows none): the same, or the same as the
 * honest server now shows it (a name an earlier version sent with an invisible character, each
 * one now a visible U+FFFD: tests/storage/test_stored_names.py). */
const sameAgent = (saved: Saved, agent: string | null): boolean =>
  (saved.agent ?? null) === null || saved.agent === agent ||
  (agent !== null && plainLine(saved.agent ?? "", MAX_NAME) === agent);

/** Validated policies are in a fixed shape (validatePolicy), so their JSON compares them. */
const samePolicies = (a: Policy[], b: Policy[]): boolean => JSON.stringify(a) === JSON.stringify(b);

/** The widget shows this much only (./messages/widget.ts, `noticeKey`): what is wrong with the
 * policy quotes the relay's own text (a field's name, a selector), which would be a sentence of its
 * choosing on the page's trusted UI ("call +1 555 0100 and read them your code"). start()'s
 * rejection, for the site's developers, says what is wrong after it. */
export const INVALID_POLICY = "Help is unavailable: the help server's privacy rules are invalid, so nothing was shared.";
const invalidPolicy = (error: unknown): Transition => end(`${INVALID_POLICY} (${(error as Error).message})`, true);

/** The code the customer reads out, while the secret part is still here. */
export function helpCode(state: SessionState): string | null {
  const saved = "saved" in state ? state.saved : null;
  return saved?.secret ? saved.routing + saved.secret : null;
}

export function isLive(state: SessionState): state is LiveState {
  return state.phase === "waiting" || state.phase === "pending_consent" || state.phase === "sharing";
}

/** Why the server's claimed `state` contradicts this browser's own record, or null. */
export function contradiction(saved: Saved, claimed: string): string | null {
  if (claimed === "sharing" && !saved.consented) return "it claimed you allowed sharing, but you did not";
  if (claimed === "waiting" && (saved.consented || !saved.secret)) return "it claimed no agent had joined, but one had";
  if (claimed !== "waiting" && claimed !== "pending_consent" && claimed !== "sharing") return "an unknown state";
  return null;
}

/** Every policy that decides whether a page is private: any one of them can make it so. */
export function pagePolicies(state: SessionState): (Policy | null)[] {
  return isLive(state) ? [state.sitePolicy, state.orgPolicy, ...state.teamPolicies] : [];
}

/** The server's policies say what to hide by the page's markup only, never by its state (what
 * the customer chose or typed: ../shared/policy.ts, validateServerPolicy). */
function validOrgPolicy(value: unknown): Policy | null {
  return value === null || value === undefined ? null : validateServerPolicy(value);
}

function validTeamPolicies(values: unknown): Policy[] {
  return Array.isArray(values) ? values.map((value) => validateServerPolicy(value)) : [];
}

function onServer(state: SessionState, message: ServerMessage, secret: string): Transition {
  switch (message.type) {
    case "created": {
      if (state.phase !== "connecting" || state.expecting !== "created") {
        return distrust("a new session this page did not ask for");
      }
      if (!ROUTING_CODE.test(message.code)) return distrust(NOT_A_CODE);
      let orgPolicy: Policy | null;
      try {
        orgPolicy = validOrgPolicy(message.policy);
      } catch (error) {
        return invalidPolicy(error);
      }
      const saved: Saved = {
        sessionId: message.session_id, resumeToken: message.resume_token, routing: message.code,
        secret, agent: null, epoch: 0, sitePolicy: state.sitePolicy, recordingPins: state.pins,
      };
      const window = windowOf(message.resume_seconds);
      if (window) saved.resumeWindowMs = window;
      const { sitePolicy, brokenPolicy, pins } = state;
      const code = saved.routing + secret;
      return {
        state: { phase: "waiting", saved, sitePolicy, brokenPolicy, pins, orgPolicy, teamPolicies: [], drop: null },
        effects: [{ type: "persist" }, { type: "show_code", code }, { type: "ready", code }],
      };
    }
    case "resumed": {
      // Only as the answer to this page's own `resume`, and only if it agrees with what this
      // browser knows: a server cannot talk the page into sharing.
      if (state.phase !== "connecting" || state.expecting !== "resumed") {
        return distrust("a session state it never asked for");
      }
      const why = contradiction(state.saved, message.state);
      if (why) return distrust(why);
      if (!plausibleName(message.agent)) return distrust(NOT_A_NAME);
      if (!sameAgent(state.saved, message.agent)) return distrust(RENAMED);
      let orgPolicy: Policy | null;
      let teamPolicies: Policy[];
      try {
        orgPolicy = validOrgPolicy(message.policy);
        // Before sharing starts: a page the agent's teams keep private must never be recorded.
        teamPolicies = validTeamPolicies(message.team_policies ?? []);
      } catch (error) {
        return invalidPolicy(error);
      }
      const effects: Effect[] = [];
      const saved: Saved = { ...state.saved, agent: message.agent };
      if (saved.consented) {
        // The policies the customer allowed under hold for the session: the teams' never change
        // (the server sends them once, when the agent joins); an admin's change to the
        // organisation's applies from the next session. (A session stored before they were
        // kept takes this page's.)
        const allowed = saved.allowedPolicies ?? { org: orgPolicy, teams: teamPolicies };
        if (!samePolicies(teamPolicies, allowed.teams)) return distrust(CHANGED_POLICIES);
        orgPolicy = allowed.org;
        saved.allowedPolicies = allowed;
      }
      const window = windowOf(message.resume_seconds);
      if (window) saved.resumeWindowMs = window;
      if (!message.recording) saved.recording = null;
      else if (!saved.recording) effects.push({ type: "send", message: { type: "record_stop" } }); // consent not found here
      effects.push({ type: "persist" });
      const { sitePolicy, brokenPolicy, pins } = state;
      const lastDrop = state.drop ? { attempt: state.drop.attempt, at: state.drop.last ?? state.drop.since } : null;
      const live: Live = { saved, sitePolicy, brokenPolicy, pins, orgPolicy, teamPolicies, drop: null, lastDrop };
      const code = helpCode({ phase: "waiting", ...live });
      if (message.state === "waiting" && code) effects.push({ type: "show_code", code });
      if (message.state === "sharing") effects.push({ type: "begin_sharing" });
      return { state: { phase: message.state, ...live }, effects };
    }
    case "team_policy": {
      if (!isLive(state)) return stay(state);
      // Sent when the agent joins, before `agent_joined`: never after the customer's Allow.
      if (state.saved.consented) return distrust(CHANGED_POLICIES);
      let teamPolicies: Policy[];
      try {
        teamPolicies = validTeamPolicies(message.policies);
      } catch (error) {
        return invalidPolicy(error);
      }
      return stay({ ...state, teamPolicies }); // nothing is shared yet: the Allow fixes them
    }
    case "agent_joined": {
      if (state.phase !== "waiting" && state.phase !== "pending_consent") return stay(state);
      if (!plausibleName(message.agent)) return distrust(NOT_A_NAME);
      if (!sameAgent(state.saved, message.agent)) return distrust(RENAMED);
      return {
        state: { ...state, phase: "pending_consent", saved: { ...state.saved, agent: message.agent } },
        effects: [{ type: "persist" }, { type: "pair" }],
      };
    }
    case "ended":
      return end(ENDED[message.reason] ?? SESSION_ENDED);
    case "link": {
      // The server's word that frames wait between its processes (issue 13): a note, nothing
      // else. It changes no phase, no consent, no policy; an `ended` still ends at once.
      if (!isLive(state)) return stay(state);
      const linkDown = message.state === "reconnecting";
      if ((state.linkDown ?? false) === linkDown) return stay(state);
      return { state: { ...state, linkDown }, effects: [{ type: "show_link" }] };
    }
    default:
      return stay(state);
  }
}

/** The next state, and what to do. Pure: the same state and event always give the same answer. */
export function reduce(state: SessionState, event: SessionEvent): Transition {
  // An ended session stays ended: a new one is a new Session (index.ts), never a revival.
  if (state.phase === "ended") return stay(state);
  switch (event.type) {
    case "create":
      if (state.phase !== "idle") return stay(state);
      return {
        state: { phase: "connecting", expecting: "created", practice: Boolean(event.message.practice), ...event.page },
        effects: [{ type: "connect", message: event.message }],
      };
    case "resume": {
      const saved: Saved = { ...event.saved, recordingPins: event.page.pins };
      const drop = "drop" in state ? state.drop : null;
      return {
        state: { phase: "connecting", expecting: "resumed", saved, drop, ...event.page },
        effects: [{ type: "persist" }, {
          type: "connect", message: { type: "resume", session_id: saved.sessionId, resume_token: saved.resumeToken },
        }],
      };
    }
    case "server":
      return onServer(state, event.message, event.secret);
    case "paired": {
      if (state.phase !== "pending_consent") return stay(state);
      // Stored keys stand for a key exchange only on this tab's own record of it (secret gone,
      // handle kept); a session that answered `created` still has its secret and always runs
      // SPAKE2, whatever session id the server gave it (a relay naming an old session).
      const { keyHandle } = event;
      if (keyHandle === null ? state.saved.secret !== null || !state.saved.keyHandle : state.saved.secret === null) {
        return reduce(state, { type: "mismatch" });
      }
      // The key replaces the secret; fresh keys start their own command count.
      const saved: Saved = keyHandle === null ? { ...state.saved, secret: null }
        : { ...state.saved, secret: null, keyHandle, commands: 0 };
      // Allowed on an earlier page of this session (the answer was lost with that page): the
      // customer's own decision stands; the keys are those of the same key exchange.
      if (saved.consented) return reduce({ ...state, saved }, { type: "answer", granted: true });
      return {
        state: { ...state, saved },
        effects: [{ type: "persist" }, { type: "ask_consent", agent: saved.agent ?? "An agent" }],
      };
    }
    case "mismatch":
      return {
        state: { phase: "ended" },
        effects: [{ type: "send", message: { type: "abort", reason: "key_mismatch" } }, { type: "end", error: MISMATCH }],
      };
    case "answer": {
      if (state.phase !== "pending_consent") return stay(state);
      const consent: Effect = { type: "send", message: { type: "consent", granted: event.granted } };
      if (!event.granted) return { state: { phase: "ended" }, effects: [consent, { type: "end", error: null }] };
      // The policies in force now are the session's (on a later page: those of the first Allow).
      const allowedPolicies = state.saved.allowedPolicies ?? { org: state.orgPolicy, teams: state.teamPolicies };
      return {
        state: { ...state, phase: "sharing", saved: { ...state.saved, consented: true, allowedPolicies } },
        effects: [consent, { type: "persist" }, { type: "begin_sharing" }],
      };
    }
    case "closed": {
      if (state.phase === "idle") return stay(state);
      if (state.phase === "connecting" && state.expecting === "created") {
        // A relay's practice reason on a customer's own session would tell a bank's customer
        // of "practice sessions open": only a session started as one hears of them.
        return end(event.code === 1006 ? UNREACHABLE : describeClose(event.code, state.practice ? event.reason : ""));
      }
      const drop = state.drop;
      // 4409: a newer page of this tab took the session over; this one just goes.
      if (event.code === 4409) return end(null);
      // 4xxx or 1000: the server refused or ended this session; the customer is told (a new
      // page's resume that finds it gone: the connection was lost while the page loaded).
      if (event.code >= 4000 || event.code === 1000) {
        if (drop) return end(event.code === 4404 ? SESSION_GONE : describeClose(event.code));
        return end(state.phase === "connecting" ? CONNECTION_LOST : CLOSED);
      }
      // The network dropped (or the server restarts): the server keeps the session for its
      // resume window; try again with back-off until the window closes.
      // A socket that drops again soon after it came back goes on with that drop's back-off.
      const lastDrop = !drop && state.phase !== "connecting" ? state.lastDrop : null;
      const recent = lastDrop && event.now - lastDrop.at < SETTLED_MS ? lastDrop : null;
      const since = drop?.since ?? event.now;
      const attempt = drop ? drop.attempt + 1 : recent ? recent.attempt + 1 : 0;
      const delay = reconnectDelay(attempt, event.jitter);
      if (!withinWindow(since, event.now, delay, resumeWindow(state.saved))) return end(LOST);
      const effects: Effect[] = drop ? [] : [{ type: "show_reconnecting" }];
      effects.push({ type: "reconnect", delay });
      return { state: { ...state, drop: { since, attempt, last: event.now } }, effects };
    }
    case "agent_silent": {
      if (state.phase !== "sharing") return stay(state);
      if (!state.drop) return end(CONSOLE_SILENT, true);
      const { sessionId, resumeToken } = state.saved;
      return { state: { phase: "ended" }, effects: [{ type: "stop_offline", sessionId, resumeToken }, { type: "end", error: CONSOLE_SILENT }] };
    }
    case "stop": {
      if (!("drop" in state) || !state.drop) return end(null, true);
      // The socket is down: end here now; tell the server on a fresh socket if it answers.
      const { sessionId, resumeToken } = state.saved;
      return { state: { phase: "ended" }, effects: [{ type: "stop_offline", sessionId, resumeToken }, { type: "end", error: null }] };
    }
  }
}
