/**
 * Whether the agent's view is the customer's page *now* (docs/threat-model.md, "The agent's view
 * is fresh"): the relay cannot forge, reorder or replay what the customer's browser sends, but it
 * can stop passing it (the console would go on showing the last page it got) or hand a reloaded
 * console an epoch it held back (a page the customer has left since).
 *
 * So the console asks, inside the encrypted agent-to-customer channel (a `challenge` command with
 * a random nonce), and the customer's browser answers inside its content stream, under the
 * epoch it shares now (an `echo` payload with the same nonce, after every change it recorded
 * before). Content counters run without gaps within an epoch and only a newer epoch's key is
 * taken (../shared/e2e/channel.ts), so an echo that opens proves that everything the console
 * shows of that epoch up to it was what the customer's page was at some time after the
 * challenge left. The view counts as live while the newest echoed challenge was sent less than
 * `staleMs` ago; an echo of a nonce this view did not send (or sent before a rejoin, or already
 * echoed) counts for nothing.
 *
 * Pure: the live session (live.ts) keeps the state, sends the challenges and says what it means.
 *
 * The timings are here and only here (docs/protocol.md, "Freshness"; docs/threat-model.md):
 * constants built into the console, never settings, since the relay that serves the console's
 * configuration is the party the check is about; `freshnessTimings` lets tests shorten them,
 * never lengthen them. The agent's and a supervisor's console use the same.
 */

/** A challenge is sent this often (ms), and when a page (epoch) starts or the tab is shown again. */
export const CHALLENGE_EVERY_MS = 3000;
/** How many intervals an echo proves the view live for: a late answer, or one lost with a page
 * change, does not make the view flicker. */
export const STALE_AFTER_INTERVALS = 3;
/** The view is not live once the newest echoed challenge was sent longer ago than this (ms). */
export const STALE_AFTER_MS = STALE_AFTER_INTERVALS * CHALLENGE_EVERY_MS;
/** The verdict is looked at this often at most (ms): how late past the bound "Not live" may show. */
export const LOOK_EVERY_MS = 1000;
/** Challenges kept waiting for their echo; older ones are forgotten (their echo counts for nothing). */
export const MAX_OUTSTANDING = 8;

export interface FreshnessTimings {
  challengeMs: number;
  staleMs: number;
}

export const DEFAULT_TIMINGS: FreshnessTimings = { challengeMs: CHALLENGE_EVERY_MS, staleMs: STALE_AFTER_MS };

/**
 * The timings, with what `override` asks (tests make the check quick): only ever quicker and
 * stricter than the defaults, never looser, so nothing that sets it can weaken the check. The
 * bound stays at least two intervals, so a healthy session is not called stale between echoes.
 */
export function freshnessTimings(override: unknown): FreshnessTimings {
  const o = (typeof override === "object" && override !== null ? override : {}) as Partial<Record<keyof FreshnessTimings, unknown>>;
  const pick = (value: unknown, fallback: number, min: number) =>
    typeof value === "number" && Number.isFinite(value) ? Math.min(fallback, Math.max(min, value)) : fallback;
  const challengeMs = pick(o.challengeMs, CHALLENGE_EVERY_MS, 100);
  const staleMs = pick(o.staleMs, STALE_AFTER_MS, 2 * challengeMs);
  return { challengeMs, staleMs };
}

export interface Challenge {
  readonly nonce: string;
  /** When it was sent (console clock, ms). */
  readonly at: number;
}

export interface Freshness {
  /** When the view began to need proof: its first page, or a rejoin (console clock, ms). */
  readonly since: number;
  /** When the newest challenge that was echoed was sent; null: none since `since`. */
  readonly provenAt: number | null;
  /** The nonce of that challenge: acting commands name it (the customer's browser checks it). */
  readonly provenNonce?: string;
  /** Challenges sent since `since` and not echoed yet, oldest first. */
  readonly outstanding: readonly Challenge[];
  /** Whether an echo came in the epoch shown now: the customer's browser takes a proof only if
   * it echoed that nonce under the key it shares with now (a new page, or a new key when a
   * supervisor comes or goes or a recording starts), so one from before names nothing it keeps. */
  readonly provenInEpoch?: boolean;
  /** Whether the mirror shows the epoch shown now: its full snapshot applied (true), an older
   * epoch's page (false: rrweb numbered the nodes afresh in the new one, so what the agent aims
   * at there would name other nodes), or nothing yet since the view started or was emptied. */
  readonly shownInEpoch?: boolean;
}

export type FreshnessEvent =
  /** A view that starts (the customer's first page) or rejoined: nothing earlier counts. */
  | { type: "start"; at: number }
  | { type: "challenged"; nonce: string; at: number }
  /** An echo came, inside the encrypted content of the epoch the console shows. */
  | { type: "echoed"; nonce: string }
  /** The customer's browser began a new epoch (its `consented`, first in each): proofs named so
   * far were echoed under an older key. */
  | { type: "epoch" }
  /** The mirror applied a full snapshot the customer's browser sent in the epoch shown now
   * (`current`), or in an earlier one (applied late, after the new epoch began). */
  | { type: "shown"; current: boolean }
  /** The mirror was emptied (a private page, a page too large): it shows no older epoch. */
  | { type: "cleared" };

export function startFreshness(at: number): Freshness {
  return { since: at, provenAt: null, outstanding: [] };
}

/** The next state; the same object when nothing changed (an echo that counts for nothing). */
export function reduceFreshness(state: Freshness, event: FreshnessEvent): Freshness {
  switch (event.type) {
    case "start":
      return startFreshness(event.at);
    case "challenged":
      return { ...state, outstanding: [...state.outstanding, { nonce: event.nonce, at: event.at }].slice(-MAX_OUTSTANDING) };
    case "echoed": {
      const index = state.outstanding.findIndex((challenge) => challenge.nonce === event.nonce);
      const challenge = state.outstanding[index];
      if (!challenge) return state; // not sent by this view, forgotten, or echoed already
      // Single use; the older ones cannot prove more than this one.
      const provenAt = Math.max(state.provenAt ?? challenge.at, challenge.at);
      return {
        ...state, provenAt, provenNonce: challenge.nonce, provenInEpoch: true, outstanding: state.outstanding.slice(index + 1),
      };
    }
    case "epoch": {
      const shownInEpoch = state.shownInEpoch === undefined ? undefined : false;
      return state.provenInEpoch === false && state.shownInEpoch === shownInEpoch ? state : { ...state, provenInEpoch: false, shownInEpoch };
    }
    case "shown":
      return state.shownInEpoch === event.current ? state : { ...state, shownInEpoch: event.current };
    case "cleared":
      return state.shownInEpoch === undefined ? state : { ...state, shownInEpoch: undefined };
  }
}

export type Verdict =
  /** An echo proves the view was the customer's page within the bound. */
  | { kind: "live" }
  /** Proven within the bound, but the customer's browser began a new epoch since (a new key and
   * a fresh full snapshot: a supervisor paired, the agent's console came back) and its echo or
   * its snapshot is not here yet: nothing that acts goes, since the page the agent sees is not
   * the one the customer's browser would apply it to (its node ids are numbered afresh). */
  | { kind: "refreshing" }
  /** Nothing proven yet, but the view (re)started within the bound: not called live either. */
  | { kind: "checking" }
  /** No proof within the bound: `silentMs` since the last proof (or since the view started). */
  | { kind: "stale"; silentMs: number };

export function verdict(state: Freshness, now: number, staleMs: number): Verdict {
  if (state.provenAt !== null && now - state.provenAt <= staleMs) {
    return provenInThisEpoch(state) && state.shownInEpoch !== false ? { kind: "live" } : { kind: "refreshing" };
  }
  const silentMs = now - (state.provenAt ?? state.since);
  if (state.provenAt === null && silentMs <= staleMs) return { kind: "checking" };
  return { kind: "stale", silentMs };
}

/** Whether an acting command sent now would name a proof the customer's browser still holds:
 * one echoed in the epoch it shares now. A new epoch's first echo comes a round trip after its
 * start (the console challenges at once); until then (the verdict says "refreshing") a request
 * that does not aim at a node of the page (a control request) waits for it, and what aims at a
 * node (a click, typing, a scroll) is not sent at all: the agent is told to try again. */
export function provenInThisEpoch(state: Freshness): boolean {
  return state.provenNonce !== undefined && state.provenInEpoch !== false;
}
