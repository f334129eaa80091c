/**
 * Everything the customer session does to the world goes through these ports: the socket, the page,
 * the customer's UI, this tab's storage, the key store, the clock and randomness. session.ts takes
 * them as arguments; index.ts passes the browser's (`browserPorts`). Nothing here runs on import.
 */

export type { Clock, Connection, ConnectionEvents, Transport } from "../shared/ports.ts";

import { type Clock, type Transport, browserClock, webSocketTransport } from "../shared/ports.ts";
import { randomBytes, randomDigits } from "../shared/e2e/encoding.ts";
import { type PairwiseKeyStore, pairwiseKeyStore } from "../shared/idb.ts";
import type { Saved } from "./state.ts";
import { CustomerUI } from "./ui.ts";

/** What the customer sees (ui.ts; public methods only). */
export type CustomerView = Pick<CustomerUI, keyof CustomerUI>;

/** The session record in this tab (sessionStorage): it survives navigations, not the tab. */
export interface SessionStore {
  load(): Saved | null;
  save(saved: Saved | null): void;
}

/**
 * The pairwise keys, non-extractable, across navigations (IndexedDB database `tandem`, deleted
 * when the session ends; shared/idb.ts).
 */
export type KeyStore = Omit<PairwiseKeyStore, "reserve">; // it seals no counted commands

export interface Random {
  bytes(n: number): Uint8Array;
  digits(n: number): string;
}

/** The page being shared, as far as the session reads it (the recorder reads the DOM itself). */
export interface Page {
  /** The text of the page's own `<script type="application/json" id="tandem-policy">`, or null. */
  policyTag(): string | null;
  /** The page's address now (single-page apps change it without loading). */
  href(): string;
}

export interface Ports {
  transport: Transport;
  page: Page;
  ui: CustomerView;
  store: SessionStore;
  keys: KeyStore;
  clock: Clock;
  random: Random;
}

const STORAGE_KEY = "tandem.session"; // the practice page clears it (server/static/practice/customer.js)

export const browserStore: SessionStore = {
  load(): Saved | null {
    try {
      const raw = sessionStorage.getItem(STORAGE_KEY);
      const saved = raw ? (JSON.parse(raw) as Saved) : null;
      return saved && typeof saved.sessionId === "string" && typeof saved.resumeToken === "string" ? saved : null;
    } catch {
      return null;
    }
  },
  save(saved: Saved | null): void {
    try {
      if (saved) sessionStorage.setItem(STORAGE_KEY, JSON.stringify(saved));
      else sessionStorage.removeItem(STORAGE_KEY);
    } catch {
      // storage may be disabled; resuming after navigation then does not work, sharing still does
    }
  },
};

/** The browser's ports, for a server socket at `socketUrl`. */
/** `practicePage`: this is one of the Tandem server's own practice pages (its questions are
 * answered by the page's script, ui.ts). */
export function browserPorts(socketUrl: string, practicePage = false): Ports {
  return {
    transport: webSocketTransport(socketUrl),
    page: {
      policyTag: () => document.getElementById("tandem-policy")?.textContent ?? null,
      href: () => location.href,
    },
    ui: new CustomerUI(practicePage),
    store: browserStore,
    keys: pairwiseKeyStore("tandem"),
    clock: browserClock,
    random: { bytes: randomBytes, digits: randomDigits },
  };
}
