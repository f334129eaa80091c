/**
 * Whether the agent's console is still there (docs/threat-model.md, "The agent's console is still
 * there"), as the customer's browser can tell without trusting the relay: the console sends a
 * freshness challenge inside the encrypted command channel when each page starts, every few
 * seconds, and when its tab is shown again (../console/freshness.ts). A relay cannot forge one,
 * nor replay one (commands are counted: ../shared/e2e/channel.ts). So a long silence means the
 * console is gone (closed, crashed, or its network down for good), whatever the relay says or
 * withholds (its `ended`, or every command from the start): the customer is warned, then the
 * session ends here, as "Stop sharing" ends it, so nobody is left sharing with nobody.
 *
 * Watched from the start of sharing, not from a first challenge: every console of this release
 * challenges from the first page, and the console and the SDK are one release (an upgrade ends
 * the sessions that span it; a console copied to another origin is copied again with each
 * upgrade: docs/deployment.md). Waiting for a first challenge would let a relay that withholds
 * them all, or a console that crashed right after the pairing, keep the customer sharing with
 * nobody for ever.
 *
 * The silence is time spent sharing: the time this page's socket is down ("Reconnecting…",
 * nothing shared) is not counted, and neither is the time between two pages, but what was counted
 * carries over (`silentFor`, then `startSilence` with it: the tab's record keeps it for the next
 * page), so a relay that closes the socket to force resumes, or pages that change, never start it
 * afresh.
 *
 * The bound allows for the console's tab being in the background: Chrome throttles the timers
 * of a page hidden for 5 minutes (10 seconds for a loaded page where "quick intensive
 * throttling" is on) to one wake-up a minute, an open WebSocket is no exemption (only audio
 * and WebRTC are), and the console's challenge timer is such a timer. A background console
 * challenges about once a minute, so the bound is three of those, and the warning comes after
 * one and a half.
 *
 * Pure (a fake clock in its tests, test/customer-silence.test.ts): session.ts keeps the state,
 * feeds it the challenges that opened and verified in the agent's current channel, and looks at
 * it every LOOK_EVERY_MS. The timings are constants here and only here, never server settings:
 * the relay is the party the check is about.
 */

/** No challenge from the agent's console for this long (ms): the session ends here. */
export const AGENT_SILENT_MS = 180_000;
/** No challenge for this long (ms): the customer is told the console has stopped answering. */
export const AGENT_QUIET_MS = 90_000;
/** How often the silence is looked at (ms): how late past the bound the end may come. */
export const LOOK_EVERY_MS = 1000;
/** A challenge whose proof names an echo this page sent at most this long ago (ms) is heard now;
 * one naming an older echo only as of that echo: a challenge the relay held back names the echo
 * the console had when it sent it, and every one it held after names no newer one (the customer's
 * browser echoed nothing the console got meanwhile). More than the minute a background console
 * waits between challenges (its proof is the echo of the one before); a relay that holds the
 * challenges back gains at most this much past the bound. */
export const PROOF_FRESH_MS = 75_000;

/** A look this much later than the previous one means this page itself was asleep (its tab
 * frozen, the computer suspended) or its clock was set forward; one before the previous, that
 * its clock was set back. Neither gap is silence anyone heard: it counts as one look interval.
 * More than the minute between wake-ups of a throttled hidden tab, whose looks count in full. */
export const ASLEEP_MS = 90_000;

export interface Silence {
  /** When the last challenge came, or as of when the watch (re)started with the silence carried
   * over (this page's clock, ms; moved on by the time this page was asleep). */
  readonly heardAt: number;
  /** When the silence was last looked at, or when the watch (re)started (ms). */
  readonly lookedAt: number;
}

export type Verdict =
  /** Heard within AGENT_QUIET_MS. */
  | { kind: "fine" }
  /** Silent for `silentMs`: tell the customer. */
  | { kind: "quiet"; silentMs: number }
  /** Silent past AGENT_SILENT_MS: end the session. */
  | { kind: "silent"; silentMs: number };

/** A watch that starts at `now`, as sharing starts, or comes back (a new page, the socket back):
 * silent for `silentMs` already (what `silentFor` said when the last watch stopped; 0 as the
 * session's sharing starts, and for anything that is not a duration). */
export function startSilence(now: number, silentMs: unknown = 0): Silence {
  const carried = typeof silentMs === "number" && Number.isFinite(silentMs) && silentMs > 0 ? silentMs : 0;
  return { heardAt: now - carried, lookedAt: now };
}

/**
 * A challenge that opened and verified in the agent's current channel came at `now`. `echoedAt`:
 * when this page sent the echo its proof names (its ChallengeCommand.proof); null if it names
 * none this page sent (none yet, an earlier page's, not a nonce): it resets nothing; undefined
 * from an older console that sends no proof (heard now).
 */
export function heard(state: Silence, now: number, echoedAt?: number | null): Silence {
  if (echoedAt === undefined) return { ...state, heardAt: now };
  if (echoedAt === null) return state;
  const at = now - echoedAt <= PROOF_FRESH_MS ? now : echoedAt;
  return { ...state, heardAt: Math.max(state.heardAt, at) };
}

/** Look at the silence at `now`: the next state and what it means. */
export function look(state: Silence, now: number): { state: Silence; verdict: Verdict } {
  const gap = now - state.lookedAt;
  const asleep = gap < 0 || gap > ASLEEP_MS;
  const next: Silence = { heardAt: asleep ? state.heardAt + gap - LOOK_EVERY_MS : state.heardAt, lookedAt: now };
  const silentMs = now - next.heardAt;
  if (silentMs >= AGENT_SILENT_MS) return { state: next, verdict: { kind: "silent", silentMs } };
  if (silentMs >= AGENT_QUIET_MS) return { state: next, verdict: { kind: "quiet", silentMs } };
  return { state: next, verdict: { kind: "fine" } };
}

/** How long the console has been silent at `now`, counted as `look` counts it (a gap since the
 * last look longer than ASLEEP_MS, or backwards, is one look interval): carried over, as the
 * watch stops, to the next one (`startSilence`). */
export function silentFor(state: Silence, now: number): number {
  const { state: next } = look(state, now);
  return Math.max(0, now - next.heardAt);
}
