/**
 * What lets an agent's console take its session up again after a reload or a dropped network
 * (issue 13, fault 6; docs/threat-model.md, "Agent resume"):
 *
 * - in this tab's sessionStorage: the session id, the server's resume token (bound to this
 *   sign-in by the server), the resume window, and the last command counter used (the customer's
 *   browser refuses a counter it has seen, so a reloaded console goes on from there), and the
 *   newest epoch whose key it installed (a reloaded console takes only a newer one: an older or
 *   the same epoch is one the server recorded earlier and replays, and ends the session);
 * - in IndexedDB: the pairwise keys of the key exchange with the customer's browser, as
 *   non-extractable CryptoKeys (no script can read their bytes; the server never had them),
 *   under a random handle this tab made (kept with the record), never under the server's
 *   session id: the database is the origin's, shared by every console tab, and a server naming
 *   another tab's session must neither find nor overwrite that tab's keys.
 *
 * A duplicated tab ("Duplicate tab", `window.open` from the console) starts with a copy of this
 * record: the same keys, the same last counter. Two documents sealing from one counter under one
 * key reuse AES-GCM nonces, so a document takes the lock of the record's keys before it loads,
 * stores or seals under them, and a duplicate whose original lives forgets its copy (./claim.ts);
 * counters are reserved next to the keys before they are used, so a document that gets the lock
 * starts after every counter another document could have sealed.
 *
 * The server's token only gets the socket back into the session; only these keys open what the
 * customer's browser sends and seal what it accepts, so a server that splices another customer
 * (or another session) into a rejoin is refused by the channel. When the session ends (or the
 * agent signs out) this tab's record and keys go, and the whole database unless another console
 * tab still holds it (a Web Lock: ../shared/idb.ts); a console that starts with no session in its
 * tab deletes it on the same condition (keys left by tabs closed without ending their session).
 */

import type { PairwiseKeys } from "../shared/e2e/channel.ts";
import { lockManager, pairwiseKeyStore } from "../shared/idb.ts";
import { RESUME_WINDOW_MAX_MS } from "../shared/backoff.ts";
import { browserClock } from "../shared/ports.ts";
import { claimSealing } from "./claim.ts";

/** A joined session this tab may take up again. */
export interface Held {
  sessionId: string;
  /** Where this tab stored the pairing's keys: random, made by this tab when it paired. */
  keyHandle: string;
  resumeToken: string;
  /** The server's window for a lost agent (ms). */
  windowMs: number;
  /** The last command counter sealed for the customer. */
  commands: number;
  /** The newest epoch whose content key this console installed (0: none yet; the customer's
   * browser numbers them from 1). Saved before any content of it is shown. */
  epoch: number;
  /** When this tab's console page was last left (pagehide; this browser's clock, ms): a page
   * rejoins only within `windowMs` of it (leftTooLongAgo). */
  leftAt?: number;
}

/** Whether the record was left longer ago than the session's window for a lost agent (either
 * way: a clock set back counts too). A console tab closed without leaving, and reopened later
 * (*Reopen closed tab*, session restore: its sessionStorage comes back, and its keys wait in the
 * origin's key store), does not rejoin then on the server's word: an honest server ended the
 * session once the window passed. */
export function leftTooLongAgo(held: Held, now: number): boolean {
  // The window at most what a server may say (windowOf): the record is read back from storage.
  return typeof held.leftAt === "number" && !(Math.abs(now - held.leftAt) <= Math.min(held.windowMs, RESUME_WINDOW_MAX_MS));
}

/** Where a live session keeps what a rejoin needs (browser: sessionStorage and IndexedDB). */
export interface HeldStore {
  load(): Held | null;
  save(held: Held | null): void;
  /** This document uses the keys under `handle` (./claim.ts): true once it holds their lock, for
   * as long as it lives; false when another document of this browser holds it (this one is a
   * duplicate of that tab). Ask before loading, saving or sealing under the keys. */
  claim(handle: string): Promise<boolean>;
  /** The session is over here: let go of the lock of the keys under `handle` (or withdraw the
   * request); `forget` does it once the keys are deleted. */
  release(handle: string): void;
  /** Store the pairing's keys under this tab's `handle`; this tab holds the database from then.
   * Resolves once stored (or storage failed); never rejects. */
  saveKeys(handle: string, keys: PairwiseKeys): Promise<void>;
  /** Reserve `count` command counters for the keys under `handle`, after `after` and after any
   * reserved before (by any document): the first one, or null when no keys are stored under
   * `handle` (no other document can have them). Rejects when storage fails. */
  reserveCommands(handle: string, after: number, count: number): Promise<number | null>;
  /** The keys under `handle` (a reloaded tab's own record); this tab holds the database from then. */
  loadKeys(handle: string): Promise<PairwiseKeys | null>;
  /** The session is over: drop the record and the keys under `handle`, and the whole database
   * unless another tab still holds it. */
  forget(handle: string | null): Promise<void>;
  /** A console with no session in its tab: delete the database unless another tab holds it. */
  clearUnused(): Promise<void>;
}

const STORAGE_KEY = "tandem.console.session";
const keys = pairwiseKeyStore("tandem-console");

function isHeld(value: unknown): value is Held {
  const held = value as Held | null;
  return typeof held === "object" && held !== null && typeof held.sessionId === "string" &&
    typeof held.resumeToken === "string" && typeof held.keyHandle === "string" && held.keyHandle.length > 0 &&
    Number.isSafeInteger(held.commands) && held.commands >= 0 &&
    Number.isSafeInteger(held.epoch) && held.epoch >= 0 &&
    typeof held.windowMs === "number" && held.windowMs > 0 &&
    (held.leftAt === undefined || (typeof held.leftAt === "number" && Number.isFinite(held.leftAt)));
}

/** The locks this document holds (or asked for), by key handle: each released by its end. */
const sealing = new Map<string, () => void>();

/** The browser's store: this tab's sessionStorage, and IndexedDB for the keys. */
export const browserHeldStore: HeldStore = {
  load() {
    try {
      const raw = sessionStorage.getItem(STORAGE_KEY);
      const held: unknown = raw ? JSON.parse(raw) : null;
      return isHeld(held) ? held : null;
    } catch {
      return null;
    }
  },
  save(held) {
    try {
      if (held) sessionStorage.setItem(STORAGE_KEY, JSON.stringify(held));
      else sessionStorage.removeItem(STORAGE_KEY);
    } catch {
      // storage disabled: a reload then cannot rejoin; the session itself goes on
    }
  },
  claim(handle) {
    sealing.get(handle)?.();
    const until = new Promise<void>((resolve) => sealing.set(handle, resolve));
    return claimSealing(lockManager(), handle, browserClock.after, undefined, until);
  },
  release(handle) {
    sealing.get(handle)?.();
    sealing.delete(handle);
  },
  reserveCommands: (handle, after, count) => keys.reserve(handle, after, count),
  async saveKeys(handle, pair) {
    keys.hold(handle); // no console tab that starts now deletes them
    try {
      await keys.save(handle, pair);
    } catch {
      // storage disabled: a reload then cannot rejoin; the session itself goes on
    }
  },
  loadKeys(handle) {
    keys.hold(handle); // nor a duplicate of this tab whose session ends (the same record)
    return keys.load(handle);
  },
  forget(handle) {
    this.save(null);
    // The lock after the keys: no other document takes them up meanwhile.
    return keys.forget(handle ? [handle] : [], handle ?? undefined).finally(() => {
      if (handle) this.release(handle);
    });
  },
  clearUnused: () => keys.clearUnused(),
};
