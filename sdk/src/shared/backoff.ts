/**
 * Reconnecting with back-off (issue 13, fault 6): the customer's SDK (share/state.ts) and the
 * agent's console (console/live.ts) both retry a dropped socket for as long as the server keeps
 * the session for them (its `resume_seconds`), with waits that double up to a cap and carry
 * jitter, so that the pages and consoles of a restarted server do not all come back at once.
 */

/** How long the server keeps a session for a side without a socket, when it does not say. */
export const RESUME_WINDOW_MS = 30_000;
/** The first wait before reconnecting; each next one doubles, up to RECONNECT_MAX_MS. */
export const RECONNECT_FIRST_MS = 500;
export const RECONNECT_MAX_MS = 8_000;
/** The last attempt must reach the server this long before its window closes. */
export const RECONNECT_MARGIN_MS = 1_000;

/** The wait before reconnect attempt `attempt` (0, 1, …): exponential, capped, with jitter
 * (`jitter` in [0, 1): half the wait is fixed, half random). */
export function reconnectDelay(attempt: number, jitter: number): number {
  const ceiling = Math.min(RECONNECT_MAX_MS, RECONNECT_FIRST_MS * 2 ** Math.min(attempt, 30));
  const share = Math.min(Math.max(jitter, 0), 1);
  return Math.round(ceiling / 2 + (ceiling / 2) * share);
}

/** Whether another attempt at `now` + its wait still falls within the window opened at `since`. */
export function withinWindow(since: number, now: number, delay: number, windowMs: number): boolean {
  return now + delay - since <= windowMs - RECONNECT_MARGIN_MS;
}

/** The longest window a server may name: its own settings go up to 600 s. More is a relay's
 * word, which would keep a page (or a console) "Reconnecting…" for as long as it liked. */
export const RESUME_WINDOW_MAX_MS = 600_000;

/** The window (ms) the server said in seconds (at most RESUME_WINDOW_MAX_MS), or undefined for
 * nonsense. */
export function windowOf(seconds: unknown): number | undefined {
  return typeof seconds === "number" && Number.isFinite(seconds) && seconds > 0
    ? Math.min(seconds * 1000, RESUME_WINDOW_MAX_MS)
    : undefined;
}
