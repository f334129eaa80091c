/**
 * One console document at a time seals under a pairing's keys (docs/threat-model.md, "Agent
 * resume"). Commands to the customer (frame kinds 0x03, 0x07) are AES-GCM under a long-lived
 * pairwise key with the nonce 0^4 | counter: two documents sealing from one counter reuse nonces,
 * which gives the relay the XOR of the two plaintexts and GCM's authentication key, so it could
 * forge clicks and typing on the customer's page. A console tab that is *duplicated* ("Duplicate
 * tab", or `window.open` from it) starts with a copy of the tab's sessionStorage record: the same
 * keys' handle, the same last counter.
 *
 * So a document that uses a record's keys first holds an exclusive Web Lock named after the
 * record's key handle, for as long as it lives (the browser releases it when the document goes).
 * A reloaded tab's new document waits for its old one to go (in Chromium 14 to 55 ms at most from
 * the new document's request, over 20 reloads on a loaded two-core machine); a duplicate waits
 * `CLAIM_WAIT_MS` and, not
 * granted, knows another document of this browser has the session: it forgets the copied record
 * (never the keys: they are the other tab's) and touches nothing.
 *
 * The lock alone leaves one gap: a duplicate whose original closes while it waits gets the lock
 * with a counter copied before the original's last commands. The counters a document may use are
 * therefore reserved in the key store, next to the keys, before any of them is sealed (see
 * `HeldStore.reserveCommands`): a document that gets the lock starts after every counter any
 * document reserved.
 */

/** The part of the Web Locks API a claim needs (tests give a fake one). */
export interface LockPort {
  request(name: string, options: { mode: "exclusive"; signal: AbortSignal }, callback: () => Promise<void>): Promise<unknown>;
}

/** How long a document with a record waits for the lock of its keys (ms). A reload's old
 * document releases it as it is destroyed, within milliseconds; a duplicate's original holds it
 * as long as it lives. Longer only delays what a duplicate says, never what it may do. */
export const CLAIM_WAIT_MS = 5000;

/** How many command counters a document reserves at a time. Each document that starts from a
 * record skips what its predecessor reserved and did not use: at most this many counters of the
 * 2^53 a pairing has (counters are safe integers). */
export const COMMAND_BLOCK = 1024;

/** The lock a document holds while it uses the keys under `handle`. */
export function sealingLock(handle: string): string {
  return `tandem-console:sealing:${handle}`;
}

/**
 * Ask for the lock of the keys under `handle`, exclusively, and keep it while this document
 * lives. Resolves true once granted, false when it was not granted within `waitMs` (the request
 * is withdrawn: the lock never comes later). The request is made synchronously, before this
 * returns: a record saved after it is copied into a duplicate whose request comes after this
 * one's. Without Web Locks (no secure context: no Tandem either) it resolves true.
 * `after`: runs a function after ms, returns its cancel (the clock port). `until`: the session
 * is over (its keys deleted): the lock is released then, or the request withdrawn if it was not
 * granted yet (end-of-session clearing: no lock naming an ended session's keys stays held).
 */
export function claimSealing(
  locks: LockPort | null, handle: string, after: (ms: number, fn: () => void) => () => void, waitMs = CLAIM_WAIT_MS,
  until: Promise<void> = new Promise<void>(() => undefined),
): Promise<boolean> {
  if (!locks) return Promise.resolve(true);
  const abort = new AbortController();
  void until.then(() => abort.abort()); // not granted yet: withdrawn (granted: no effect)
  return new Promise<boolean>((resolve) => {
    const cancel = after(waitMs, () => abort.abort());
    locks.request(sealingLock(handle), { mode: "exclusive", signal: abort.signal }, () => {
      cancel();
      resolve(true);
      return until; // held until the session is over here, or the document goes
    }).catch(() => {
      cancel();
      resolve(false); // withdrawn (AbortError) or refused: another document has these keys
    });
  });
}
