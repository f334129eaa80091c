/**
 * Tandem customer SDK: `<script src="https://SERVER/sdk/tandem.js"></script>` defines
 * `window.Tandem` with `start()`, `stop()` and `state`.
 *
 * Nothing about the page is recorded or sent before the customer clicks "Allow"; every value is
 * masked in this browser before it is sent (../shared/masking.ts).
 */

import { record } from "rrweb";
import { recordMaskingOptions, scrubCardNumbers } from "../shared/masking.ts";
import { encodePayload } from "../shared/payload.ts";
import { control, describeClose, parseServerMessage, type ServerMessage } from "../shared/protocol.ts";
import { CustomerUI } from "./ui.ts";

const VERSION = "0.1.0";
const STORAGE_KEY = "tandem.session";
/** Stop recording while this much is waiting in the socket; resume with a fresh snapshot. */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

type State = "idle" | "connecting" | "waiting" | "pending_consent" | "sharing" | "ended";

interface Saved {
  sessionId: string;
  resumeToken: string;
  code: string;
  agent: string | null;
}

function serverBase(): URL {
  const script = document.currentScript as HTMLScriptElement | null;
  return new URL(script?.src ?? location.href);
}

const base = serverBase();
const socketUrl = `${base.protocol === "https:" ? "wss:" : "ws:"}//${base.host}/ws/customer`;

function load(): Saved | null {
  try {
    const raw = sessionStorage.getItem(STORAGE_KEY);
    const saved = raw ? (JSON.parse(raw) as Saved) : null;
    return saved && typeof saved.sessionId === "string" && typeof saved.resumeToken === "string" ? saved : null;
  } catch {
    return null;
  }
}

function save(saved: Saved | null): void {
  try {
    if (saved) sessionStorage.setItem(STORAGE_KEY, JSON.stringify(saved));
    else sessionStorage.removeItem(STORAGE_KEY);
  } catch {
    // storage may be disabled; resuming after navigation then does not work, sharing still does
  }
}

class Session {
  state: State = "idle";
  private ws: WebSocket | null = null;
  private saved: Saved | null = null;
  private readonly ui = new CustomerUI();
  private stopRecording: (() => void) | undefined;
  private pending: unknown[] = [];
  private flushQueued = false;
  private backlogged = false;
  private backlogTimer: ReturnType<typeof setInterval> | undefined;
  private starting: Promise<string> | null = null;
  private reconnects = 0;
  /** The page is being left (navigation): keep the saved session for the next page. */
  unloading = false;

  start(): Promise<string> {
    if (this.saved && this.state !== "ended" && this.state !== "idle") return Promise.resolve(this.saved.code);
    if (this.starting) return this.starting;
    this.starting = new Promise<string>((resolve, reject) => {
      this.connect({ type: "create" }, resolve, reject);
    }).finally(() => {
      this.starting = null;
    });
    return this.starting;
  }

  resume(saved: Saved): void {
    this.saved = saved;
    this.connect({ type: "resume", session_id: saved.sessionId, resume_token: saved.resumeToken });
  }

  private connect(first: Record<string, unknown>, resolve?: (code: string) => void, reject?: (e: Error) => void): void {
    this.state = "connecting";
    const ws = new WebSocket(socketUrl);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    let settled = false;
    ws.addEventListener("open", () => {
      const { type, ...fields } = first;
      ws.send(control(String(type), fields));
    });
    ws.addEventListener("message", (event) => {
      if (typeof event.data !== "string") return; // agent payloads: reserved for remote control
      const message = parseServerMessage(event.data);
      if (!message) return;
      if (message.type === "created" && !settled) {
        settled = true;
        resolve?.(message.code);
      }
      this.handle(message);
    });
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws || this.unloading) return;
      const wasResuming = first.type === "resume" && this.state === "connecting";
      if (!settled && reject) {
        settled = true;
        const error = new Error(
          event.code === 1006 ? "Could not reach the help server. Please try again." : describeClose(event.code, event.reason),
        );
        this.end();
        this.ui.showError(error.message, () => this.ui.remove());
        reject(error);
        return;
      }
      // 4xxx or 1000: the server refused or ended this session; a failed resume is silent.
      if (event.code >= 4000 || event.code === 1000 || wasResuming || !this.saved || this.reconnects >= 3) {
        this.end();
        return;
      }
      // The network dropped: the server keeps the session for a grace period; resume it.
      this.pauseRecording();
      this.reconnects++;
      const saved = this.saved;
      setTimeout(() => {
        if (this.saved === saved && !this.unloading) this.resume(saved);
      }, 500 * this.reconnects);
    });
  }

  private handle(message: ServerMessage): void {
    switch (message.type) {
      case "created":
        this.saved = { sessionId: message.session_id, resumeToken: message.resume_token, code: message.code, agent: null };
        save(this.saved);
        this.state = "waiting";
        this.ui.showCode(message.code, () => void this.stop());
        break;
      case "resumed":
        if (!this.saved) return;
        this.reconnects = 0;
        this.saved.agent = message.agent;
        this.state = message.state;
        if (message.state === "waiting") this.ui.showCode(this.saved.code, () => void this.stop());
        if (message.state === "sharing") this.beginSharing();
        break;
      case "agent_joined":
        if (!this.saved) return;
        this.saved.agent = message.agent;
        save(this.saved);
        this.state = "pending_consent";
        this.ui.askConsent(message.agent, () => this.answer(true), () => this.answer(false));
        break;
      case "ended":
        this.end();
        break;
      default:
        break;
    }
  }

  private answer(granted: boolean): void {
    if (this.state !== "pending_consent" || !this.ws) return;
    this.ws.send(control("consent", { granted }));
    if (granted) {
      this.state = "sharing";
      this.beginSharing();
    } else {
      this.end();
    }
  }

  private beginSharing(): void {
    this.ui.showSharing(this.saved?.agent ?? "the agent", () => void this.stop());
    if (this.stopRecording) return;
    this.stopRecording = record({
      emit: (event) => this.enqueue(event),
      ...recordMaskingOptions(),
      sampling: { mousemove: 50, scroll: 100 },
      recordCanvas: false,
      collectFonts: false,
      inlineImages: false,
      recordCrossOriginIframes: false,
    });
  }

  private enqueue(event: unknown): void {
    if (this.backlogged) return;
    this.pending.push(event);
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(() => this.flush());
    }
  }

  private flush(): void {
    this.flushQueued = false;
    const events = this.pending;
    this.pending = [];
    const ws = this.ws;
    if (!events.length || !ws || ws.readyState !== WebSocket.OPEN || this.state !== "sharing") return;
    if (ws.bufferedAmount > MAX_BUFFERED_BYTES) {
      this.waitForBacklog();
      return;
    }
    for (const frame of encodePayload({ k: "events", events: scrubCardNumbers(events) })) ws.send(frame);
  }

  /** The network is slower than the page: drop events, then send a fresh full snapshot. */
  private waitForBacklog(): void {
    this.backlogged = true;
    this.backlogTimer ??= setInterval(() => {
      if (!this.ws || this.ws.bufferedAmount > MAX_BUFFERED_BYTES / 4) return;
      clearInterval(this.backlogTimer);
      this.backlogTimer = undefined;
      this.backlogged = false;
      record.takeFullSnapshot(true);
    }, 200);
  }

  async stop(): Promise<void> {
    const ws = this.ws;
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(control("stop"));
    this.end();
  }

  private pauseRecording(): void {
    this.stopRecording?.();
    this.stopRecording = undefined;
    this.pending = [];
  }

  /** Drop every trace of the session in this page. */
  private end(): void {
    this.state = "ended";
    this.pauseRecording();
    clearInterval(this.backlogTimer);
    this.backlogTimer = undefined;
    this.pending = [];
    this.backlogged = false;
    const ws = this.ws;
    this.ws = null;
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000, "stopped");
    this.saved = null;
    save(null);
    this.ui.remove();
  }
}

let current = new Session();

const api = {
  version: VERSION,
  /** Start a session; resolves to the code the customer reads to the agent. */
  start(): Promise<string> {
    if (current.state === "ended") current = new Session();
    return current.start();
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

addEventListener("pagehide", () => {
  current.unloading = true;
});
addEventListener("pageshow", (event) => {
  // Back/forward cache: the page comes back to life with a closed socket.
  if (event.persisted) {
    current = new Session();
    const saved = load();
    if (saved) current.resume(saved);
  }
});

const saved = load();
if (saved) current.resume(saved);
