/**
 * What lets an agent's console take its session up again after a reload or a dropped network
 * (issue 13, fault 6; docs/threat-model.md, "Agent resume"):
 *
 * - in this tab's sessionStorage: the session id, the server's resume token (bound to this
 *   sign-in by the server), the resume window, and the last command counter used (the customer's
 *   browser refuses a counter it has seen, so a reloaded console goes on from there);
 * - in IndexedDB: the pairwise keys of the key exchange with the customer's browser, as
 *   non-extractable CryptoKeys (no script can read their bytes; the server never had them).
 *
 * The server's token only gets the socket back into the session; only these keys open what the
 * customer's browser sends and seal what it accepts, so a server that splices another customer
 * (or another session) into a rejoin is refused by the channel. Both are dropped when the
 * session ends, on sign-out, and at start-up when this tab holds no session.
 */

import type { PairwiseKeys } from "../shared/e2e/channel.ts";

/** A joined session this tab may take up again. */
export interface Held {
  sessionId: string;
  resumeToken: string;
  /** The server's window for a lost agent (ms). */
  windowMs: number;
  /** The last command counter sealed for the customer. */
  commands: number;
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
const DB = "tandem-console";
const STORE = "keys";

function isHeld(value: unknown): value is Held {
  const held = value as Held | null;
  return typeof held === "object" && held !== null && typeof held.sessionId === "string" &&
    typeof held.resumeToken === "string" && Number.isSafeInteger(held.commands) && held.commands >= 0 &&
    typeof held.windowMs === "number" && held.windowMs > 0;
}

function openDb(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => {
      request.result.onversionchange = () => request.result.close();
      resolve(request.result);
    };
    request.onerror = () => reject(request.error);
  });
}

async function run<T>(mode: IDBTransactionMode, work: (store: IDBObjectStore) => IDBRequest<T>): Promise<T> {
  const db = await openDb();
  try {
    return await new Promise<T>((resolve, reject) => {
      const request = work(db.transaction(STORE, mode).objectStore(STORE));
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
  } finally {
    db.close();
  }
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
  async saveKeys(sessionId, keys) {
    try {
      await run("readwrite", (store) => store.put(keys, sessionId));
    } catch {
      // as above
    }
  },
  async loadKeys(sessionId) {
    try {
      const keys = await run<PairwiseKeys | undefined>("readonly", (store) => store.get(sessionId));
      return keys && keys.customerToAgent instanceof CryptoKey && keys.agentToCustomer instanceof CryptoKey ? keys : null;
    } catch {
      return null;
    }
  },
  clear() {
    this.save(null);
    return new Promise((resolve) => {
      try {
        const request = indexedDB.deleteDatabase(DB);
        request.onsuccess = () => resolve();
        request.onerror = () => resolve();
      } catch {
        resolve();
      }
    });
  },
};
