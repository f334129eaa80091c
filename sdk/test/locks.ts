// A fake Web Locks port (exclusive locks only, as console/claim.ts asks): requests are granted in
// the order they came, a queued request can be withdrawn by its signal (AbortError), and a lock
// is released when its holder's callback settles or when its document goes (`go`).
import type { LockPort } from "../src/console/claim.ts";

interface Holder {
  document: string;
  release(): void;
}

interface Waiting {
  document: string;
  grant(): void;
}

export class FakeLocks {
  private readonly holders = new Map<string, Holder>();
  private readonly queues = new Map<string, Waiting[]>();

  /** The lock port of one document (`document` names it, for `go`). */
  port(document: string): LockPort {
    return {
      request: (name, options, callback) => new Promise((resolve, reject) => {
        const waiting: Waiting = {
          document,
          grant: () => {
            let released = false;
            const release = () => {
              if (released) return;
              released = true;
              this.holders.delete(name);
              this.next(name);
            };
            this.holders.set(name, { document, release });
            callback().then(resolve, reject).finally(release);
          },
        };
        if (options.signal.aborted) return reject(new DOMException("aborted", "AbortError"));
        if (!this.holders.has(name) && (this.queues.get(name) ?? []).length === 0) return waiting.grant();
        const queue = this.queues.get(name) ?? [];
        queue.push(waiting);
        this.queues.set(name, queue);
        options.signal.addEventListener("abort", () => {
          const at = queue.indexOf(waiting);
          if (at < 0) return; // granted already: an abort changes nothing
          queue.splice(at, 1);
          reject(new DOMException("aborted", "AbortError"));
        });
      }),
    };
  }

  /** Who holds `name` (a document's name), if anyone. */
  holder(name: string): string | undefined {
    return this.holders.get(name)?.document;
  }

  /** `document` is destroyed (closed, reloaded): the browser releases its locks and withdraws its
   * requests. */
  go(document: string): void {
    for (const [name, queue] of this.queues) this.queues.set(name, queue.filter((w) => w.document !== document));
    for (const holder of [...this.holders.values()]) if (holder.document === document) holder.release();
  }

  private next(name: string): void {
    const waiting = this.queues.get(name)?.shift();
    waiting?.grant();
  }
}

/** Timers the test fires by hand (`fire`): a claim's bound. */
export function manualTimers() {
  const timers: { ms: number; fn: () => void; done: boolean }[] = [];
  return {
    after: (ms: number, fn: () => void) => {
      const timer = { ms, fn, done: false };
      timers.push(timer);
      return () => void (timer.done = true);
    },
    /** Run every timer still pending (each claim's bound has passed). */
    fire() {
      for (const timer of timers.splice(0)) if (!timer.done) timer.fn();
    },
    get pending() {
      return timers.filter((timer) => !timer.done).map((timer) => timer.ms);
    },
  };
}
