/**
 * Pairwise keys kept in an IndexedDB database of their own, as non-extractable CryptoKeys
 * (structured clone keeps them non-extractable; no script can read their bytes). One database per
 * side: the customer's SDK (`tandem`, while its page navigates) and the agent's console
 * (`tandem-console`, for a rejoin after a reload). `clear` deletes the whole database rather than
 * emptying it, so the page keeps no trace that it ever shared (issue 14, item 11).
 *
 * The database is the origin's, shared by its tabs, and outlives a tab closed without ending its
 * session. A page that needs it (it stored keys, or has a session to resume) says so with `hold`
 * (a shared Web Lock, released when the page goes), naming the handle its keys are stored under
 * (another shared lock, of that handle); `clearUnused` deletes the database only when no page
 * holds it, and `forget` (a session's end) deletes the page's own keys unless another page holds
 * their handle too (a duplicated tab that took the session over: the same record, copied with
 * its sessionStorage), then the whole database unless another page still holds it. The console
 * also reserves its command counters in the keys' record (`reserve`, ../console/claim.ts): the
 * record, not the tab's copied sessionStorage, says which counters a page may still use.
 */

import type { PairwiseKeys } from "./e2e/channel.ts";

const STORE = "keys";

export interface PairwiseKeyStore {
  /** Store `keys` under `id` (the customer's SDK: a random handle of its own; the console: the
   * session id). Rejects when storage is disabled or full; callers decide whether that matters. */
  save(id: string, keys: PairwiseKeys): Promise<unknown>;
  /** The keys stored under `id`, or null (none, not CryptoKeys, or storage disabled). */
  load(id: string): Promise<PairwiseKeys | null>;
  /** Never rejects. */
  delete(id: string): Promise<void>;
  /** Reserve `count` command counters for the keys stored under `id`, after `after` and after
   * every counter reserved for them before, in one transaction (read, then write, the keys'
   * record: two pages reserving at once get disjoint blocks). Resolves, once the reservation is
   * committed, to the block's first counter, or null when no keys are stored under `id` (then no
   * other page can have them). Rejects when storage fails or the counters would leave the safe
   * integers. */
  reserve(id: string, after: number, count: number): Promise<number | null>;
  /** Delete the whole database. Resolves once it is gone (or storage is disabled); never rejects.
   * Only for a database no other tab uses: another tab's keys go too. */
  clear(): Promise<void>;
  /** This page is done with the database (its session ended): give up its hold of `handle`,
   * delete the keys stored under `ids` unless another page still holds `handle` (when given),
   * give up this page's hold of the database, then delete the whole database unless another page
   * holds it (that page's keys stay). Resolves once done; never rejects. */
  forget(ids: readonly string[], handle?: string): Promise<void>;
  /** This page needs the database while it lives (idempotent); call it before storing keys.
   * `handle`: the keys this page uses are stored under it (or under ids made from it). */
  hold(handle?: string): void;
  /** Delete the whole database unless a page holds it (`hold`): the keys left by tabs that
   * closed without ending their session. Never rejects. */
  clearUnused(): Promise<void>;
}

/** Web Locks where the browser has them (every secure context). */
export function lockManager(): LockManager | null {
  return typeof navigator !== "undefined" && navigator.locks ? navigator.locks : null;
}

export function pairwiseKeyStore(database: string): PairwiseKeyStore {
  const lock = `${database}:in-use`;
  /** Releases this page's hold (null: not held). */
  let release: (() => void) | null = null;
  /** This page's holds of its keys' handles: each one's release, and when it is released. */
  const handles = new Map<string, { release: () => void; released: Promise<unknown> }>();
  const handleLock = (handle: string) => `${database}:keys:${handle}`;
  /** Settles once this page's hold is given up (the lock manager then no longer counts it). */
  let released: Promise<unknown> = Promise.resolve();
  /** A clearUnused under way: keys saved meanwhile wait for it, so it cannot delete them. */
  let clearing: Promise<void> = Promise.resolve();

  function hold(handle?: string): void {
    if (handle !== undefined && !handles.has(handle)) {
      let free = () => undefined as void;
      const held = new Promise<void>((resolve) => {
        free = resolve;
      });
      const released = lockManager()?.request(handleLock(handle), { mode: "shared" }, () => held).catch(() => undefined) ?? Promise.resolve();
      handles.set(handle, { release: free, released });
    }
    if (release) return;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    // Until `clear` or `forget`, or until the page goes (the browser releases its locks then).
    released = lockManager()?.request(lock, { mode: "shared" }, () => held).catch(() => undefined) ?? Promise.resolve();
  }

  function deleteDatabase(): Promise<void> {
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
  }

  async function open(): Promise<IDBDatabase> {
    await clearing;
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
    save: (id, keys) => run("readwrite", (store) => store.put(keys, id)),
    async load(id) {
      try {
        const keys = await run<PairwiseKeys | undefined>("readonly", (store) => store.get(id));
        return keys && keys.customerToAgent instanceof CryptoKey && keys.agentToCustomer instanceof CryptoKey
          ? keys
          : null;
      } catch {
        return null;
      }
    },
    delete: remove,
    async reserve(id, after, count) {
      const db = await open();
      try {
        return await new Promise<number | null>((resolve, reject) => {
          const transaction = db.transaction(STORE, "readwrite");
          const store = transaction.objectStore(STORE);
          let first: number | null = null;
          const get = store.get(id);
          get.onsuccess = () => {
            const record = get.result as (PairwiseKeys & { reserved?: unknown }) | undefined;
            if (!record) return;
            const reserved = Number.isSafeInteger(record.reserved) ? record.reserved as number : 0;
            const start = Math.max(reserved, after) + 1;
            if (!Number.isSafeInteger(start + count - 1)) return transaction.abort();
            store.put({ ...record, reserved: start + count - 1 }, id);
            first = start;
          };
          // Committed: a page that reads the record from now on sees this reservation.
          transaction.oncomplete = () => resolve(first);
          transaction.onabort = () => reject(transaction.error ?? new RangeError("command counters exhausted"));
        });
      } finally {
        db.close();
      }
    },
    clear() {
      release?.();
      release = null;
      return deleteDatabase();
    },
    hold,
    clearUnused,
    async forget(ids, handle) {
      // The hold this page has now: a hold taken while the keys are deleted is not given up.
      const giveUp = release;
      const gone = released;
      release = null;
      const own = handle === undefined ? undefined : handles.get(handle);
      if (handle !== undefined) handles.delete(handle);
      own?.release();
      await own?.released; // settled: the check below counts only other pages' holds of it
      const removeAll = async () => {
        for (const id of ids) await remove(id);
      };
      if (handle === undefined) await removeAll();
      else await unlessHeld(handleLock(handle), removeAll);
      giveUp?.();
      // A lock request's promise settles once its lock is released (Web Locks): the check below
      // no longer counts this page's hold, only other pages'.
      await gone;
      await clearUnused();
    },
  };

  /** Run `work` unless another page holds `lock`, holding it exclusively meanwhile (a page that
   * asks for it then waits: its keys are never deleted under it). Without Web Locks nothing can
   * tell: `work` runs. Never rejects. */
  async function unlessHeld(lock: string, work: () => Promise<void>): Promise<void> {
    const locks = lockManager();
    try {
      if (!locks) return await work();
      await locks.request(lock, { mode: "exclusive", ifAvailable: true }, (free) => (free ? work() : undefined));
    } catch {
      // storage or locks disabled: nothing more to do
    }
  }

  async function remove(id: string): Promise<void> {
    try {
      await run("readwrite", (store) => store.delete(id));
    } catch {
      // nothing stored, or storage disabled
    }
  }

  function clearUnused(): Promise<void> {
    const locks = lockManager();
    if (release) return Promise.resolve();
    // Without Web Locks (no secure context, so no Tandem either) nothing can tell: delete.
    clearing = !locks ? deleteDatabase()
      : locks.request(lock, { mode: "exclusive", ifAvailable: true }, (free) => (free ? deleteDatabase() : undefined))
        .then(() => undefined, () => undefined);
    return clearing;
  }
}
