/**
 * Pairwise keys kept in an IndexedDB database of their own, as non-extractable CryptoKeys
 * (structured clone keeps them non-extractable; no script can read their bytes). One database per
 * side: the customer's SDK (`tandem`, while its page navigates) and the agent's console
 * (`tandem-console`, for a rejoin after a reload). `clear` deletes the whole database rather than
 * emptying it, so the page keeps no trace that it ever shared (issue 14, item 11).
 */

import type { PairwiseKeys } from "./e2e/channel.ts";

const STORE = "keys";

export interface PairwiseKeyStore {
  /** Rejects when storage is disabled or full; callers decide whether that matters. */
  save(sessionId: string, keys: PairwiseKeys): Promise<unknown>;
  /** The keys stored for this session, or null (none, not CryptoKeys, or storage disabled). */
  load(sessionId: string): Promise<PairwiseKeys | null>;
  /** Never rejects. */
  delete(sessionId: string): Promise<void>;
  /** Delete the whole database. Resolves once it is gone (or storage is disabled); never rejects. */
  clear(): Promise<void>;
}

export function pairwiseKeyStore(database: string): PairwiseKeyStore {
  function open(): Promise<IDBDatabase> {
    return new Promise((resolve, reject) => {
      const request = indexedDB.open(database, 1);
      request.onupgradeneeded = () => request.result.createObjectStore(STORE);
      request.onsuccess = () => {
        // A deletion (clear) waits for open connections: this one gives way at once.
        request.result.onversionchange = () => request.result.close();
        resolve(request.result);
      };
      request.onerror = () => reject(request.error);
    });
  }

  async function run<T>(mode: IDBTransactionMode, work: (store: IDBObjectStore) => IDBRequest<T>): Promise<T> {
    const db = await open();
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

  return {
    save: (sessionId, keys) => run("readwrite", (store) => store.put(keys, sessionId)),
    async load(sessionId) {
      try {
        const keys = await run<PairwiseKeys | undefined>("readonly", (store) => store.get(sessionId));
        return keys && keys.customerToAgent instanceof CryptoKey && keys.agentToCustomer instanceof CryptoKey
          ? keys
          : null;
      } catch {
        return null;
      }
    },
    async delete(sessionId) {
      try {
        await run("readwrite", (store) => store.delete(sessionId));
      } catch {
        // nothing stored, or storage disabled
      }
    },
    clear() {
      return new Promise((resolve) => {
        try {
          const request = indexedDB.deleteDatabase(database);
          request.onsuccess = () => resolve();
          request.onerror = () => resolve();
          // `blocked`: a connection is still open; it closes on `versionchange` and deletion goes on.
        } catch {
          resolve(); // storage disabled
        }
      });
    },
  };
}
