/**
 * Tandem agent console: sign in, join a session by code, watch the customer's page live.
 *
 * The mirror is rrweb's Replayer, which renders into an iframe sandboxed with
 * `allow-same-origin` only: nothing from the customer's page can run scripts here. When a session
 * ends, the replayer is destroyed and every reference to the page is dropped.
 */

import { neutralizeEvent } from "./assets.ts";
import { Replayer } from "rrweb";
import {
  ChannelError, CommandSender, ContentReceiver, KIND_EPOCH_KEY, KIND_WATCHER_KEY, derivePairwiseKeys,
} from "../shared/e2e/channel.ts";
import {
  IDENTITY_AGENT, IDENTITY_CUSTOMER, IDENTITY_WATCHER, SECRET_DIGITS, WATCHER_SUFFIX, fromBase64Url, handshakeAad,
  randomBytes, toBase64Url,
} from "../shared/e2e/encoding.ts";
import { type Confirmed, SHARE_BYTES, MAC_BYTES, Spake2, passwordScalar, randomScalar } from "../shared/e2e/spake2.ts";
import { PayloadDecoder, type RecordingStatusPayload, unpack } from "../shared/payload.ts";
import { control, parseServerMessage, type ServerMessage } from "../shared/protocol.ts";
import type { AgentInfo, LiveSession, RecoveryCodes, SecondFactorSetup } from "../generated/rest.ts";
import { administration, auditTrail, problemDetail } from "./office.ts";
import { passwordControls } from "./password.ts";
import { recordingKeyPanel, recordingsPanel } from "./recordings.ts";
import { relay, relayFetch } from "./relay.ts";

declare const __TANDEM_BENCH_PLAINTEXT__: boolean;

const MISMATCH = "The code did not match — ask the customer for a new code.";
/** How long the server's `recording` may stand without the customer's browser agreeing. */
const RECORDING_AGREE_MS = 5000;
const TAMPERED = "A message from the customer failed its integrity check; the session was ended for safety.";

function byId<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`console markup is missing #${id}`);
  return el as T;
}

const signinSection = byId<HTMLElement>("signin");
const signinForm = byId<HTMLFormElement>("signin-form");
const signinError = byId<HTMLElement>("signin-error");
const joinSection = byId<HTMLElement>("join");
const joinForm = byId<HTMLFormElement>("join-form");
const codeInput = byId<HTMLInputElement>("code");
const joinButton = byId<HTMLButtonElement>("join-button");
const leaveButton = byId<HTMLButtonElement>("leave");
const statusLine = byId<HTMLElement>("status");
const mirrorRoot = byId<HTMLElement>("mirror");
const whoami = byId<HTMLElement>("whoami");
const signoutButton = byId<HTMLButtonElement>("signout");
const signoutAllButton = byId<HTMLButtonElement>("signout-all");
const requestControlButton = byId<HTMLButtonElement>("request-control");
const releaseControlButton = byId<HTMLButtonElement>("release-control");
const recordButton = byId<HTMLButtonElement>("record");
const stopRecordButton = byId<HTMLButtonElement>("stop-record");
const controlLayer = byId<HTMLElement>("control-layer");
const typingBox = byId<HTMLElement>("typing");
const typingInput = byId<HTMLInputElement>("typing-input");

const mfaSection = byId<HTMLElement>("mfa");
const mfaError = byId<HTMLElement>("mfa-error");
const noLiveSection = byId<HTMLElement>("no-live");
const LIVE_ROLES = new Set(["agent", "supervisor"]);

function setStatus(text: string, tone: "" | "good" | "bad" = ""): void {
  statusLine.textContent = text;
  statusLine.className = `status ${tone}`.trim();
}

function showSignIn(): void {
  signinSection.hidden = false;
  joinSection.hidden = true;
  sessionsSection.hidden = true;
  clearTimeout(sessionsTimer);
  mfaSection.hidden = true;
  noLiveSection.hidden = true;
  whoami.hidden = true;
  signoutButton.hidden = true;
  signoutAllButton.hidden = true;
  byId<HTMLInputElement>("username").focus();
}

/** Who is signed in here: named, inside the encrypted channel, in a request to record. */
let signedIn: AgentInfo | null = null;

/** After sign-in: set up the second factor if it is still missing, else the role's page. */
function showJoin(agent: AgentInfo): void {
  signedIn = agent;
  signinSection.hidden = true;
  whoami.textContent = `Signed in as ${agent.display_name}`;
  whoami.hidden = false;
  signoutButton.hidden = false;
  signoutAllButton.hidden = false;
  if (passwordControls(agent, showJoin)) return; // an admin reset the password: choose one first
  if (agent.needs_second_factor) {
    showSecondFactorSetup(agent);
    return;
  }
  mfaSection.hidden = true;
  if (!LIVE_ROLES.has(agent.role)) {
    const office = byId("office");
    if (agent.role === "auditor") {
      auditTrail(office);
      recordingsPanel(office);
    } else if (agent.role === "admin") {
      administration(office);
      recordingKeyPanel(office);
    }
    noLiveSection.hidden = false;
    return;
  }
  joinSection.hidden = false;
  codeInput.focus();
  if (agent.role === "supervisor") void listSessions();
}

const sessionsSection = byId<HTMLElement>("sessions");
let sessionsTimer: ReturnType<typeof setTimeout> | undefined;

/** issue 14, item 12 (sdk-hardening): the customer's browser hid part of the page it could not mask. */
const WITHHELD_STATUS = "Connected. Part of the customer's page cannot be shown: it is hidden from you.";

/** Supervisors: the live sessions of their teams' sites, refreshed every few seconds. */
async function listSessions(): Promise<void> {
  clearTimeout(sessionsTimer);
  if (joinSection.hidden) {
    sessionsSection.hidden = true;
    return;
  }
  let sessions: LiveSession[] = [];
  try {
    const response = await relayFetch("/api/sessions");
    if (!response.ok) return;
    sessions = (await response.json()) as LiveSession[];
  } catch {
    return;
  } finally {
    sessionsTimer = setTimeout(() => void listSessions(), 3000);
  }
  sessionsSection.hidden = false;
  const list = byId("session-list");
  const rows = sessions.map((info) => {
    const row = document.createElement("li");
    const text = document.createElement("span");
    text.textContent = `${info.site_name} · ${info.agent ?? "no agent yet"} · ${info.state.replace("_", " ")}`;
    row.append(text);
    if (info.state === "sharing" && !live?.open) {
      const watch = document.createElement("button");
      watch.type = "button";
      watch.textContent = "Watch";
      watch.addEventListener("click", () => {
        if (live?.open) return;
        live = new LiveView({ watch: info.session_id });
        void listSessions();
      });
      row.append(watch);
    }
    return row;
  });
  if (!rows.length) {
    const empty = document.createElement("li");
    empty.className = "empty";
    empty.textContent = "No live sessions right now.";
    rows.push(empty);
  }
  list.replaceChildren(...rows);
}

function showSecondFactorSetup(agent: AgentInfo): void {
  mfaSection.hidden = false;
  joinSection.hidden = true;
  noLiveSection.hidden = true;
  byId("mfa-scan").hidden = true;
  byId("mfa-done").hidden = true;
  byId("mfa-start").hidden = false;
  mfaError.hidden = true;
  const fail = (text: string): void => {
    mfaError.textContent = text;
    mfaError.hidden = false;
  };
  byId("mfa-start").onclick = async () => {
    mfaError.hidden = true;
    const response = await relayFetch("/api/mfa/setup", { method: "POST" });
    if (!response.ok) return fail(await problemDetail(response));
    const setup = (await response.json()) as SecondFactorSetup;
    byId<HTMLImageElement>("mfa-qr").src = setup.qr_svg;
    byId("mfa-secret").textContent = setup.secret.replace(/(.{4})/g, "$1 ").trim();
    byId("mfa-start").hidden = true;
    byId("mfa-scan").hidden = false;
    byId<HTMLInputElement>("mfa-code").focus();
  };
  byId<HTMLFormElement>("mfa-form").onsubmit = async (event) => {
    event.preventDefault();
    mfaError.hidden = true;
    const input = byId<HTMLInputElement>("mfa-code");
    const response = await relayFetch("/api/mfa/confirm", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ code: input.value.trim() }),
    });
    input.value = "";
    if (!response.ok) return fail(await problemDetail(response));
    const { recovery_codes: codes } = (await response.json()) as RecoveryCodes;
    const list = byId("mfa-recovery");
    list.replaceChildren(...codes.map((code) => Object.assign(document.createElement("li"), { textContent: code })));
    byId<HTMLImageElement>("mfa-qr").removeAttribute("src");
    byId("mfa-secret").textContent = "";
    byId("mfa-scan").hidden = true;
    byId("mfa-done").hidden = false;
  };
  byId("mfa-continue").onclick = () => {
    byId("mfa-recovery").replaceChildren();
    showJoin({ ...agent, needs_second_factor: false });
  };
}


signinForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  signinError.hidden = true;
  const username = byId<HTMLInputElement>("username").value.trim();
  const password = byId<HTMLInputElement>("password");
  const otp = byId<HTMLInputElement>("otp");
  let response: Response;
  try {
    response = await relayFetch("/api/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username, password: password.value, code: otp.value.trim() || null }),
    });
  } catch {
    signinError.textContent = "The server cannot be reached.";
    signinError.hidden = false;
    return;
  }
  password.value = "";
  otp.value = "";
  if (!response.ok) {
    signinError.textContent = await problemDetail(response);
    signinError.hidden = false;
    return;
  }
  showJoin((await response.json()) as AgentInfo);
});

for (const [button, path] of [[signoutButton, "/api/logout"], [signoutAllButton, "/api/logout-everywhere"]] as const) {
  button.addEventListener("click", async () => {
    live?.leave();
    await relayFetch(path, { method: "POST" }).catch(() => undefined);
    showSignIn();
  });
}

/** The code the customer reads: routing part (for the server) + secret part (never sent). */
function splitCode(text: string): { routing: string; secret: string } | null {
  const digits = text.replace(/[\s-]/g, "");
  if (!/^\d+$/.test(digits) || digits.length <= SECRET_DIGITS) return null;
  return { routing: digits.slice(0, -SECRET_DIGITS), secret: digits.slice(-SECRET_DIGITS) };
}

/** One joined session: the socket, the key exchange, the decryptor, the decoder, the replayer. */
class LiveView {
  private ws: WebSocket;
  private secret: string | null = null;
  private exchange: Spake2 | null = null;
  private confirmed: Confirmed | null = null;
  private receiver: ContentReceiver | null = null;
  private commands: CommandSender | null = null;
  private commandChain: Promise<void> = Promise.resolve();
  private controlling = false;
  private typingTarget: number | null = null;
  private lastPoint = 0;
  private lastScroll = 0;
  private scale = 1;
  private typingTimer: ReturnType<typeof setTimeout> | undefined;
  /** Frames are opened, inflated and replayed strictly in arrival order. */
  private chain: Promise<void> = Promise.resolve();
  private decoder: PayloadDecoder | null = new PayloadDecoder();
  private replayer: Replayer | null = null;
  private resizeObserver: ResizeObserver | null = null;
  private size = { width: 0, height: 0 };
  private ended = false;
  private joined = false;
  /** The customer's browser said, inside the encrypted channel, that the customer allowed
   * sharing. Only then is anything shown: the server's `consent` alone is not believed. */
  private consented = false;
  private sessionId: string | null = null;
  /** Watching as a supervisor (no control; pairs with the customer's own supervisor code). */
  private readonly watching: boolean;
  /** The customer's key-exchange share, kept until the supervisor typed the code. */
  private pendingShare: string | null = null;
  /** Recording as the server says (its `recording` message) and as the customer's browser says
   * (inside the encrypted channel): only the latter counts; a disagreement is shown. */
  private serverRecording: { on: boolean; reason: string | null } | null = null;
  private customerRecording: RecordingStatusPayload | null = null;
  private recordingCheck: ReturnType<typeof setTimeout> | undefined;

  constructor(target: { code: string } | { watch: string }) {
    this.watching = "watch" in target;
    this.ws = new WebSocket(relay().socket);
    this.ws.binaryType = "arraybuffer";
    this.ws.addEventListener("open", () => {
      if ("watch" in target) this.ws.send(control({ type: "watch", session_id: target.watch }));
      else this.join(target.code);
    });
    this.ws.addEventListener("message", (event) => this.onMessage(event));
    this.ws.addEventListener("close", (event) => this.onClose(event));
    setStatus("Connecting…");
  }

  join(code: string): void {
    if (this.watching) return this.enterWatchCode(code);
    if (this.ws.readyState !== WebSocket.OPEN || this.joined) return;
    const parts = splitCode(code);
    if (!parts) {
      setStatus(`A help code has ${SECRET_DIGITS + 5} digits. Ask the customer to read it again.`, "bad");
      return;
    }
    this.secret = parts.secret;
    setStatus("Checking the code…");
    this.ws.send(control({ type: "join", code: parts.routing })); // the secret part never leaves
  }

  /** The supervisor types the code the customer reads out; then the exchange runs. */
  private enterWatchCode(code: string): void {
    const secret = code.replace(/\D/g, "");
    if (!this.sessionId || this.exchange || this.receiver) return;
    if (secret.length !== SECRET_DIGITS) {
      setStatus(`The supervisor code has ${SECRET_DIGITS} digits. Ask the customer to read it again.`, "bad");
      return;
    }
    const id = this.sessionId + WATCHER_SUFFIX;
    this.exchange = new Spake2({
      role: "B", w: passwordScalar(secret, id), scalar: randomScalar(randomBytes),
      idA: IDENTITY_CUSTOMER, idB: IDENTITY_WATCHER, aad: handshakeAad(id),
    });
    codeInput.value = "";
    codeInput.disabled = true;
    joinButton.hidden = true;
    setStatus("Checking the code with the customer's browser…");
    const share = this.pendingShare;
    this.pendingShare = null;
    if (share) void this.onHandshake(share);
  }

  get open(): boolean {
    return !this.ended && this.ws.readyState <= WebSocket.OPEN;
  }

  leave(): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(control({ type: "leave" }));
    this.finish("Session ended");
  }

  private onMessage(event: MessageEvent): void {
    if (typeof event.data !== "string") {
      this.onPayload(event.data as ArrayBuffer);
      return;
    }
    const message = parseServerMessage(event.data);
    if (message) this.onControl(message);
  }

  private onControl(message: ServerMessage): void {
    switch (message.type) {
      case "joined":
        this.joined = true;
        joinButton.hidden = true;
        leaveButton.hidden = false;
        codeInput.disabled = true;
        codeInput.value = "";
        if (!this.secret) return this.mismatch();
        this.exchange = new Spake2({
          role: "B", w: passwordScalar(this.secret, message.session_id), scalar: randomScalar(randomBytes),
          idA: IDENTITY_CUSTOMER, idB: IDENTITY_AGENT, aad: handshakeAad(message.session_id),
        });
        this.sessionId = message.session_id;
        this.secret = null;
        setStatus("Checking the code with the customer's browser…");
        break;
      case "watching":
        this.joined = true;
        this.sessionId = message.session_id;
        joinButton.hidden = true;
        leaveButton.hidden = false;
        codeInput.disabled = true;
        setStatus("Asking the customer to let you watch…");
        break;
      case "watcher_joined":
        setStatus(`${message.watcher} (supervisor) is watching too. The customer can see that.`, "good");
        break;
      case "watcher_left":
        setStatus("The supervisor stopped watching.", "good");
        break;
      case "handshake":
        if (this.watching && !this.exchange && !this.confirmed) {
          this.pendingShare = message.data; // the code is not typed yet
          break;
        }
        void this.onHandshake(message.data);
        break;
      case "error":
        setStatus(message.message, "bad");
        if (message.code === "no_recording_key" || message.code === "forbidden") recordButton.hidden = false;
        else codeInput.select();
        break;
      case "consent":
        if (this.watching) {
          codeInput.disabled = false;
          codeInput.placeholder = "123 4567";
          joinButton.textContent = "Start watching";
          joinButton.hidden = false;
          codeInput.focus();
          setStatus("The customer allowed it. Type the code the customer reads to you.", "good");
          break;
        }
        if (!this.receiver && !__TANDEM_BENCH_PLAINTEXT__) return this.mismatch();
        if (!this.consented) setStatus("Waiting for the customer's browser to start sharing…");
        break;
      case "record_request":
        break; // only ever for the customer
      case "recording":
        if (this.watching) break;
        this.serverRecording = { on: message.on, reason: message.reason ?? null };
        this.showRecording();
        break;
      case "peer":
        if (!message.connected) setStatus("Customer is reloading the page…");
        else if (this.consented) setStatus("Connected. You are seeing the customer's page live.", "good");
        break;
      case "ended":
        this.finish(
          message.reason === "declined" ? (this.watching ? "The customer refused." : "The customer declined. Session ended")
            : message.reason === "key_mismatch" ? `${MISMATCH} Session ended`
            : message.reason === "watch_ended" ? "Watching ended" : "Session ended",
        );
        break;
      default:
        break;
    }
  }

  /** Ask the customer to allow recording: the server asks with the organisation's key, and this
   * console confirms inside the encrypted channel (the customer's browser needs both). */
  askToRecord(): void {
    if (this.watching || !this.joined || this.ws.readyState !== WebSocket.OPEN || !this.commands) return;
    this.ws.send(control({ type: "record" }));
    this.sendCommand({ k: "record_request", agent: signedIn?.username ?? "", name: signedIn?.display_name ?? "" });
    recordButton.hidden = true;
    setStatus("Asking the customer to allow recording…");
  }

  stopRecording(): void {
    this.sendCommand({ k: "record_stop" });
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(control({ type: "record_stop" }));
  }

  /** The customer's browser says whether it records, and why not: that decides what is shown. */
  private onCustomerRecording(payload: RecordingStatusPayload): void {
    if (this.watching) return;
    this.customerRecording = payload;
    this.showRecording();
  }

  private showRecording(): void {
    const customer = this.customerRecording;
    const server = this.serverRecording;
    recordButton.hidden = this.ended || customer?.on === true;
    stopRecordButton.hidden = this.ended || !(customer?.on || server?.on); // stopping is always safe
    const why: Record<string, string> = {
      declined: "The customer did not allow recording.",
      not_pinned: `Not recording: the customer's browser refused because the site has not pinned this recording key${customer?.key_id ? ` (${customer.key_id})` : ""}. An admin gives the site its key id (docs/recordings.md).`,
      unconfirmed: "Not recording: the customer's browser refused a request to record that this console did not send.",
      stopped_by_customer: "The customer stopped the recording.",
      stopped_by_agent: "Recording stopped.",
      stopped: "Recording stopped.",
      session_ending: "Recording stopped: the session is ending.",
      size_limit: "Recording stopped: it reached the size limit.",
      unavailable: "Recording stopped: the server could not store it.",
    };
    if (customer?.on) setStatus(`Recording, with the customer's consent (key ${customer.key_id}). The customer can stop it at any time.`, "good");
    else if (customer) setStatus(why[customer.reason ?? ""] ?? "Recording stopped.", customer.reason === "stopped_by_agent" ? "" : "bad");
    clearTimeout(this.recordingCheck);
    if (server && server.on !== (customer?.on ?? false)) {
      this.recordingCheck = setTimeout(() => this.checkRecordingAgreement(), RECORDING_AGREE_MS);
    }
  }

  /** The server claims one thing and the customer's browser (after a while) another. */
  private checkRecordingAgreement(): void {
    const server = this.serverRecording;
    const customer = this.customerRecording;
    if (this.ended || !server || server.on === (customer?.on ?? false)) return;
    setStatus(
      server.on
        ? "The server says recording is on, but the customer's browser has not confirmed it: treat this session as not recorded."
        : "The server says recording stopped, but the customer's browser says it still records. Click Stop recording again.",
      "bad",
    );
  }

  /** SPAKE2 as party B: the customer's share, then the customer's confirmation. */
  private async onHandshake(data: string): Promise<void> {
    let bytes: Uint8Array;
    try {
      bytes = fromBase64Url(data);
    } catch {
      return this.mismatch();
    }
    if (this.exchange && bytes.length === SHARE_BYTES) {
      const exchange = this.exchange;
      this.exchange = null;
      try {
        this.confirmed = exchange.finish(bytes);
      } catch {
        return this.mismatch();
      }
      const reply = new Uint8Array(SHARE_BYTES + MAC_BYTES);
      reply.set(exchange.share);
      reply.set(this.confirmed.confirmation, SHARE_BYTES);
      this.ws.send(control({ type: "handshake", data: toBase64Url(reply) }));
      return;
    }
    const confirmed = this.confirmed;
    this.confirmed = null;
    if (!confirmed || !this.sessionId || bytes.length !== MAC_BYTES || !confirmed.verifyPeer(bytes)) return this.mismatch();
    if (this.watching) {
      const keys = await derivePairwiseKeys(confirmed.ke, this.sessionId + WATCHER_SUFFIX);
      this.receiver = new ContentReceiver(this.sessionId, keys.customerToAgent, KIND_WATCHER_KEY);
      setStatus("Watching the customer's page. The customer can see that you are watching.", "good");
      this.startMirror();
      return;
    }
    const keys = await derivePairwiseKeys(confirmed.ke, this.sessionId);
    this.receiver = new ContentReceiver(this.sessionId, keys.customerToAgent, KIND_EPOCH_KEY);
    this.commands = new CommandSender(this.sessionId, keys.agentToCustomer);
    setStatus("Waiting for the customer to allow sharing…");
  }

  private mismatch(): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(control({ type: "abort", reason: "key_mismatch" }));
    this.finish(`${MISMATCH} Session ended`);
  }

  /** Encrypt and send a command to the customer's browser, in order. */
  sendCommand(command: Record<string, unknown>): void {
    const sender = this.commands;
    if (!sender || this.ended) return;
    const bytes = new TextEncoder().encode(JSON.stringify(command));
    this.commandChain = this.commandChain
      .then(() => sender.seal(bytes))
      .then((sealed) => {
        if (this.ws.readyState === WebSocket.OPEN) this.ws.send(sealed);
      })
      .catch(() => undefined);
  }

  requestControl(): void {
    this.sendCommand({ k: "control_request" });
    setStatus("Waiting for the customer to allow control…");
  }

  releaseControl(): void {
    this.sendCommand({ k: "control_release" });
  }

  private setControlling(on: boolean): void {
    this.controlling = on;
    controlLayer.hidden = !on;
    requestControlButton.hidden = on || this.ended;
    releaseControlButton.hidden = !on;
    if (!on) {
      typingBox.hidden = true;
      this.typingTarget = null;
    }
  }

  /** Where an agent's mouse event lands in the customer's page: viewport point and node id. */
  private target(event: MouseEvent): { x: number; y: number; id: number | null; el: Element | null } | null {
    const replayer = this.replayer;
    if (!replayer) return null;
    const rect = replayer.wrapper.getBoundingClientRect();
    const x = (event.clientX - rect.left) / this.scale;
    const y = (event.clientY - rect.top) / this.scale;
    const el = replayer.iframe.contentDocument?.elementFromPoint(x, y) ?? null;
    const id = el ? replayer.getMirror().getId(el as unknown as Node) : -1;
    return { x, y, id: id > 0 ? id : null, el };
  }

  onLayerMove(event: MouseEvent): void {
    if (!this.controlling || performance.now() - this.lastPoint < 50) return;
    this.lastPoint = performance.now();
    const t = this.target(event);
    if (t) this.sendCommand({ k: "pointer", x: Math.round(t.x), y: Math.round(t.y) });
  }

  onLayerClick(event: MouseEvent): void {
    if (!this.controlling) return;
    const t = this.target(event);
    if (!t || t.id === null) return;
    this.sendCommand({ k: "click", id: t.id });
    const field = t.el?.closest("input, textarea");
    if (field) {
      this.typingTarget = t.id;
      typingInput.value = "";
      typingBox.hidden = false;
      typingInput.focus();
    } else {
      typingBox.hidden = true;
      this.typingTarget = null;
    }
  }

  onLayerWheel(event: WheelEvent): void {
    if (!this.controlling || !this.replayer) return;
    event.preventDefault();
    if (performance.now() - this.lastScroll < 100) return;
    this.lastScroll = performance.now();
    const view = this.replayer.iframe.contentWindow;
    if (!view) return;
    this.sendCommand({ k: "scroll", x: Math.round(view.scrollX), y: Math.max(0, Math.round(view.scrollY + event.deltaY / this.scale)) });
  }

  /** Typing is sent as the whole value, at most every 80 ms (the last value always goes). */
  onTyping(): void {
    if (this.typingTimer !== undefined) return;
    this.typingTimer = setTimeout(() => {
      this.typingTimer = undefined;
      if (this.controlling && this.typingTarget !== null) {
        this.sendCommand({ k: "type", id: this.typingTarget, text: typingInput.value });
      }
    }, 80);
  }

  /** The customer is on a private page: drop the mirror (nothing of that page is sent). */
  private pauseMirror(): void {
    this.dropMirror();
    setStatus("Customer is on a private page", "");
  }

  private dropMirror(): void {
    this.resizeObserver?.disconnect();
    this.resizeObserver = null;
    try {
      this.replayer?.pause();
      this.replayer?.destroy();
    } catch {
      // a replayer that never received a snapshot may throw; the DOM is cleared below
    }
    this.replayer = null;
    mirrorRoot.replaceChildren();
    mirrorRoot.style.height = "";
  }

  private startMirror(): void {
    if (this.replayer) return;
    mirrorRoot.replaceChildren();
    const replayer = new Replayer([], {
      root: mirrorRoot,
      liveMode: true,
      mouseTail: false,
      UNSAFE_replayCanvas: false,
      showWarning: false,
    });
    replayer.iframe.setAttribute("title", "Customer view");
    replayer.on("resize", (dimension) => {
      const { width, height } = dimension as { width: number; height: number };
      this.size = { width, height };
      this.fit();
    });
    replayer.startLive();
    this.replayer = replayer;
    this.resizeObserver = new ResizeObserver(() => this.fit());
    this.resizeObserver.observe(mirrorRoot);
  }

  /** Scale the customer's viewport down to the width available here. */
  private fit(): void {
    const wrapper = this.replayer?.wrapper;
    if (!wrapper || !this.size.width) return;
    const scale = Math.min(1, mirrorRoot.clientWidth / this.size.width);
    this.scale = scale;
    wrapper.style.transform = `scale(${scale})`;
    mirrorRoot.style.height = `${Math.ceil(this.size.height * scale)}px`;
  }

  private onPayload(frame: ArrayBuffer): void {
    if (__TANDEM_BENCH_PLAINTEXT__) {
      this.replay(new Uint8Array(frame)); // benchmark builds only
      return;
    }
    const receiver = this.receiver;
    if (!receiver) return;
    this.chain = this.chain
      .then(async () => {
        const plaintext = await receiver.open(new Uint8Array(frame));
        if (plaintext && !this.ended) this.replay(await unpack(plaintext));
      })
      .catch((error: unknown) => {
        if (error instanceof ChannelError) {
          if (this.ws.readyState === WebSocket.OPEN) this.ws.send(control({ type: "leave" }));
          this.finish(`${TAMPERED} Session ended`);
        }
      });
  }

  private replay(frame: Uint8Array): void {
    if (!this.decoder || this.ended) return;
    let payload;
    try {
      payload = this.decoder.push(frame);
    } catch {
      return; // a corrupt payload is dropped; the next full snapshot repairs the view
    }
    if (!payload) return;
    if (payload.k === "consented") {
      this.onConsented();
      return;
    }
    if (!this.consented) return; // a customer's browser sends this first; nothing shows before
    if (payload.k === "paused") {
      this.pauseMirror();
      return;
    }
    // issue 14, item 12 (sdk-hardening): masking failed closed on part of the page.
    if (payload.k === "withheld") return setStatus(WITHHELD_STATUS, "bad");
    if (payload.k === "control" && this.watching) {
      setStatus(payload.state === "granted" ? "Watching. The agent has control." : "Watching the customer's page.", "good");
      return;
    }
    if (payload.k === "action_refused" && this.watching) return;
    if (payload.k === "recording") return this.onCustomerRecording(payload);
    if (payload.k === "recording_start" || payload.k === "recording_end") return; // for the auditors
    if (payload.k === "control") {
      this.setControlling(payload.state === "granted");
      setStatus(
        payload.state === "granted" ? "You have control: point, scroll, click, and type in fields you can see."
          : payload.state === "refused" ? "The customer refused control." : "The customer took back control.",
        payload.state === "granted" ? "good" : "bad",
      );
      return;
    }
    if (payload.k === "action_refused") {
      setStatus(`Not done: ${payload.reason}`, "bad");
      typingBox.hidden = true;
      this.typingTarget = null;
      return;
    }
    if (!this.replayer) {
      this.startMirror(); // back from a private page: a full snapshot follows
      setStatus("Connected. You are seeing the customer's page live.", "good");
    }
    if (!this.replayer) return;
    for (const raw of payload.events) {
      const event = raw as { timestamp: number };
      // Customer and agent clocks differ; live mode would delay events from a clock ahead.
      event.timestamp = Date.now();
      neutralizeEvent(event); // issue 14, item 7 (sdk-hardening): the mirror fetches nothing
      this.replayer.addEvent(event as Parameters<Replayer["addEvent"]>[0]);
    }
  }

  /** The customer's browser confirmed consent (first in each epoch): show the page. */
  private onConsented(): void {
    const first = !this.consented;
    this.consented = true;
    if (!first || this.watching) return;
    setStatus("Connected. You are seeing the customer's page live.", "good");
    requestControlButton.hidden = false;
    recordButton.hidden = false;
    this.startMirror();
  }

  private onClose(event: CloseEvent): void {
    if (this.ended) return;
    if (event.code === 4401) {
      this.finish("");
      showSignIn();
      if (event.reason) { // a revoked sign-in (signed out elsewhere, account changed): say so
        signinError.textContent = `The server closed the connection: ${event.reason}.`;
        signinError.hidden = false;
      }
      return;
    }
    if ((event.code === 4403 || event.code === 4408) && event.reason) {
      this.finish(`The server closed the connection: ${event.reason}.`);
      return;
    }
    if (event.code === 4429) {
      this.finish("Too many wrong codes. Wait a moment, then try again.");
      return;
    }
    this.finish(this.joined ? "Session ended" : "Disconnected from the server.");
  }

  /** End of the session: destroy the mirror and drop every reference to the page. */
  private finish(text: string): void {
    if (this.ended) return;
    this.ended = true;
    this.dropMirror();
    this.decoder?.reset();
    this.decoder = null;
    this.receiver?.close();
    this.receiver = null;
    this.commands = null;
    this.setControlling(false);
    requestControlButton.hidden = true;
    recordButton.hidden = true;
    stopRecordButton.hidden = true;
    clearTimeout(this.recordingCheck);
    this.exchange = null;
    this.confirmed = null;
    this.secret = null;
    if (this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000, "done");
    joinButton.hidden = false;
    joinButton.textContent = "Join";
    leaveButton.hidden = true;
    codeInput.disabled = false;
    codeInput.value = "";
    codeInput.placeholder = "123 456 789 012";
    this.pendingShare = null;
    if (text) setStatus(text, text === "Session ended" ? "" : "bad");
    if (live === this) live = null;
  }
}

let live: LiveView | null = null;

joinForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const code = codeInput.value.trim();
  if (!code) {
    setStatus("Type the code the customer reads to you.", "bad");
    return;
  }
  if (live?.open) live.join(code);
  else live = new LiveView({ code });
});

leaveButton.addEventListener("click", () => live?.leave());
requestControlButton.addEventListener("click", () => live?.requestControl());
releaseControlButton.addEventListener("click", () => live?.releaseControl());
recordButton.addEventListener("click", () => live?.askToRecord());
stopRecordButton.addEventListener("click", () => live?.stopRecording());
controlLayer.addEventListener("mousemove", (event) => live?.onLayerMove(event));
controlLayer.addEventListener("click", (event) => live?.onLayerClick(event));
controlLayer.addEventListener("wheel", (event) => live?.onLayerWheel(event), { passive: false });
typingInput.addEventListener("input", () => live?.onTyping());

// Sign-in through an identity provider comes back to the relay's own console (its redirect URI);
// a console hosted elsewhere offers password sign-in only (docs/deployment.md).
byId<HTMLFormElement>("sso-form").hidden = relay().base !== "";

// A plain navigation, not a form post: the console's CSP (form-action 'self') would stop the
// redirect to the organisation's provider.
byId<HTMLFormElement>("sso-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const org = byId<HTMLInputElement>("sso-org").value.trim().toLowerCase();
  if (!org) {
    signinError.textContent = "Type your organisation's id.";
    signinError.hidden = false;
    return;
  }
  location.assign(`/api/sso/start?${new URLSearchParams({ org })}`);
});

/** Back from the identity provider with a failure: say so, and keep nothing in the address. */
function ssoOutcome(): void {
  const outcome = new URLSearchParams(location.search).get("sso");
  if (!outcome) return;
  history.replaceState(null, "", location.pathname);
  signinError.textContent = outcome === "unavailable"
    ? "That organisation does not sign in through an identity provider here."
    : outcome === "busy" ? "Too many sign-ins were started from here. Wait a few minutes, then try again."
    : "Sign-in with your organisation failed. Ask your admin if your account is set up.";
  signinError.hidden = false;
}

async function init(): Promise<void> {
  ssoOutcome();
  try {
    const response = await relayFetch("/api/me");
    if (response.ok) {
      showJoin((await response.json()) as AgentInfo);
      return;
    }
  } catch {
    // fall through to the sign-in form
  }
  showSignIn();
}

void init();
