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
 *   non-extractable CryptoKeys (no script can read their bytes; the server never had them).
 *
 * The server's token only gets the socket back into the session; only these keys open what the
 * customer's browser sends and seal what it accepts, so a server that splices another customer
 * (or another session) into a rejoin is refused by the channel. Both are dropped when the
 * session ends, on sign-out, and at start-up when this tab holds no session.
 */

import type { PairwiseKeys } from "../shared/e2e/channel.ts";
import { pairwiseKeyStore } from "../shared/idb.ts";

/** A joined session this tab may take up again. */
export interface Held {
  sessionId: string;
  resumeToken: string;
  /** The server's window for a lost agent (ms). */
  windowMs: number;
  /** The last command counter sealed for the customer. */
  commands: number;
  /** The newest epoch whose content key this console installed (0: none yet; the customer's
   * browser numbers them from 1). Saved before any content of it is shown. */
  epoch: number;
}

/** Where a live session keeps what a rejoin needs (browser: sessionStorage and IndexedDB). */
export interface HeldStore {
  load(): Held | null;
  save(held: Held | null): void;
  saveKeys(sessionId: string, keys: PairwiseKeys): Promise<void>;
  loadKeys(sessionId: string): Promise<PairwiseKeys | null>;
  /** Drop the record and every stored key. */
  clear(): Promise<void>;
}

const STORAGE_KEY = "tandem.console.session";
const keys = pairwiseKeyStore("tandem-console");

function isHeld(value: unknown): value is Held {
  const held = value as Held | null;
  return typeof held === "object" && held !== null && typeof held.sessionId === "string" &&
    typeof held.resumeToken === "string" && Number.isSafeInteger(held.commands) && held.commands >= 0 &&
    Number.isSafeInteger(held.epoch) && held.epoch >= 0 &&
    typeof held.windowMs === "number" && held.windowMs > 0;
}

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
  async saveKeys(sessionId, pair) {
    try {
      await keys.save(sessionId, pair);
    } catch {
      // storage disabled: a reload then cannot rejoin; the session itself goes on
    }
  },
  loadKeys: (sessionId) => keys.load(sessionId),
  clear() {
    this.save(null);
    return keys.clear();
  },
};
