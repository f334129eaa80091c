/**
 * Where the customer's pairwise key waits while the page navigates: IndexedDB, as a
 * non-extractable CryptoKey (structured clone keeps it non-extractable; no script can read its
 * bytes). The database is deleted when the session ends.
 */

import type { PairwiseKeys } from "../shared/e2e/channel.ts";

const DB = "tandem";
const STORE = "keys";

function open(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => {
      // A deletion (clearKeys) waits for open connections: this one gives way at once.
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

export function saveKeys(sessionId: string, keys: PairwiseKeys): Promise<unknown> {
  return run("readwrite", (store) => store.put(keys, sessionId));
}

export async function loadKeys(sessionId: string): Promise<PairwiseKeys | null> {
  try {
    const keys = await run<PairwiseKeys | undefined>("readonly", (store) => store.get(sessionId));
    return keys && keys.customerToAgent instanceof CryptoKey && keys.agentToCustomer instanceof CryptoKey ? keys : null;
  } catch {
    return null;
  }
}

export async function deleteKeys(sessionId: string): Promise<void> {
  try {
    await run("readwrite", (store) => store.delete(sessionId));
  } catch {
    // nothing stored, or storage disabled
  }
}

/**
 * Remove every key the SDK stored (the session ended): the whole `tandem` database is deleted,
 * not emptied, so the page keeps no trace that it ever shared (issue 14, item 11). Resolves once
 * it is gone (or storage is disabled); never rejects.
 */
export function clearKeys(): Promise<void> {
  return new Promise((resolve) => {
    try {
      const request = indexedDB.deleteDatabase(DB);
      request.onsuccess = () => resolve();
      request.onerror = () => resolve();
      // `blocked`: a connection is still open; it closes on `versionchange` and deletion goes on.
    } catch {
      resolve(); // storage disabled
    }
  });
}
