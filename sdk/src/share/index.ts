/**
 * Tandem customer SDK: `<script src="https://SERVER/sdk/tandem.js"></script>` defines
 * `window.Tandem` with `start()`, `stop()`, `state` and `version`.
 *
 * This entry point only wires the browser in: it finds the server, makes the session with the
 * browser's ports (ports.ts) and resumes a session this tab stored. The session is session.ts
 * (the shell) around state.ts (the lifecycle reducer); privacy and security are described there.
 */

import { watchPasswordFields } from "../shared/masking.ts";
import { browserPorts, browserStore } from "./ports.ts";
import { Session, type StartOptions } from "./session.ts";

export type { StartOptions };

const VERSION = __TANDEM_VERSION__;

/** The Tandem server: where this script came from, unless the tag names it (a copy served
 * from the site's own origin, `tandem sdk --copy-to`: `data-tandem-server="https://…"`). */
function serverBase(): URL {
  const script = document.currentScript as HTMLScriptElement | null;
  return new URL(script?.dataset.tandemServer || script?.src || location.href, location.href);
}

// From load, not from sharing: a password the customer reveals ("show password") before
// sharing starts stays a password (docs/privacy.md).
watchPasswordFields(document);

const base = serverBase();
const socketUrl = `${base.protocol === "https:" ? "wss:" : "ws:"}//${base.host}/ws/customer`;
// The Tandem server's own practice pages, whose customer is a script (docs/training.md): only
// there do a script's clicks answer the widget's questions. No site's page has the server's origin.
const practicePage = location.origin === base.origin && location.pathname.startsWith("/practice/");
const newSession = () => new Session(browserPorts(socketUrl, practicePage));

let current = newSession();

const api = {
  version: VERSION,
  /** Start a session; resolves to the code the customer reads to the agent. */
  start(options?: StartOptions): Promise<string> {
    if (current.state === "ended") current = newSession();
    return current.start(options);
  },
  /** Stop sharing and end the session for everyone. */
  stop(): Promise<void> {
    return current.stop();
  },
  get state(): string {
    return current.state;
  },
};

declare global {
  interface Window {
    Tandem: typeof api;
  }
}

window.Tandem = api;

/** Go on with the session this tab stored, if there is one (a new page of the same site). */
function resumeStored(): void {
  const saved = browserStore.load();
  if (saved) current.resume(saved);
  else void current.clearStaleKeys(); // keys of a tab closed without "Stop sharing"
}

addEventListener("pagehide", () => {
  current.leave();
});
addEventListener("pageshow", (event) => {
  // Back/forward cache: the page comes back to life with a closed socket.
  if (event.persisted) {
    current = newSession();
    resumeStored();
  }
});

// A page the session moves to says its own policy in its `#tandem-policy` tag, which may come
// after this script (in the body): read it once the page is parsed, or the session went on
// under the first page's policy and recorded what this one masks (docs/privacy.md).
if (document.readyState === "loading") addEventListener("DOMContentLoaded", resumeStored, { once: true });
else resumeStored();
