/**
 * Tandem customer SDK: `<script src="https://SERVER/sdk/tandem.js"></script>` defines
 * `window.Tandem` with `start()`, `stop()` and `state`.
 *
 * Privacy and security, in the order they happen:
 * - The help code is a routing part (from the server) plus a secret part made here, which never
 *   leaves this browser except as the customer reads it aloud.
 * - When an agent joins, both browsers run SPAKE2 with the secret part; the consent dialog appears
 *   only once the agent has proved it knows the code. A mismatch ends the session.
 * - Nothing about the page is recorded before "Allow"; every value is masked here
 *   (../shared/masking.ts), then compressed, then encrypted (../shared/e2e/channel.ts).
 */

import { record } from "rrweb";
import {
  CommandReceiver, ContentSender, derivePairwiseKeys, importChainKey, type PairwiseKeys,
} from "../shared/e2e/channel.ts";
import {
  IDENTITY_AGENT, IDENTITY_CUSTOMER, IDENTITY_WATCHER, SECRET_DIGITS, WATCHER_SUFFIX, fromBase64Url, handshakeAad,
  randomBytes, randomDigits, toBase64Url,
} from "../shared/e2e/encoding.ts";
import { MAC_BYTES, SHARE_BYTES, Spake2, Spake2Error, passwordScalar, randomScalar } from "../shared/e2e/spake2.ts";
import {
  hasBlockedShapes, hiddenFromAgent, maskFormState, onMaskingFailure, recordMaskingOptions, scrubEvent, usePolicy,
} from "../shared/masking.ts";
import { mergePolicies, pageIsPrivate, type Policy, PolicyError, validatePolicy } from "../shared/policy.ts";
import { encodePayload, pack, type Payload, type RecordingOffReason } from "../shared/payload.ts";
import { RecordingError, checkPin, validatePins } from "../shared/e2e/recording.ts";
import { control, describeClose, parseServerMessage, type Outgoing, type ServerMessage } from "../shared/protocol.ts";
import { RemoteControl } from "./control.ts";
import { clearKeys, deleteKeys, loadKeys, saveKeys } from "./keystore.ts";
import { reportWithheld } from "./withheld.ts";
import {
  type AgentAsk, RecordingAsk, type RecordingState, type ServerAsk, recordingCommand, unitePins,
} from "./recording.ts";
import { CustomerUI } from "./ui.ts";

declare const __TANDEM_BENCH_PLAINTEXT__: boolean;

const VERSION = __TANDEM_VERSION__;
const STORAGE_KEY = "tandem.session";
/** Stop recording while this much is waiting in the socket; resume with a fresh snapshot. */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;
const MISMATCH = "The code did not match. Click “Get help” to get a new code.";
const RESTARTING = "The help server is restarting, so this session has ended. Click “Get help” again in a moment.";
/** The help server said something that contradicts what happened in this browser. */
const DISTRUST = "Help was stopped for your safety: the help server sent something this page did not expect";

type State = "idle" | "connecting" | "waiting" | "pending_consent" | "sharing" | "ended";

interface Saved {
  sessionId: string;
  resumeToken: string;
  routing: string;
  /** The secret part, kept only until the key exchange succeeded. */
  secret: string | null;
  agent: string | null;
  /** Page loads that have shared content so far (one content key each). */
  epoch: number;
  /** The policy passed to start(), for pages without their own policy tag. */
  sitePolicy: Policy | null;
  /** The customer clicked Allow in this browser. Only this, never the server's word, lets the
   * page be shared (also after a navigation). */
  consented?: boolean;
  /** The last agent command opened (replays are refused, also on the next page). */
  commands?: number;
  /** Remote control granted (it survives the customer's navigation, until revoked). */
  control?: boolean;
  /** A supervisor watching too (paired with its own code), by name. */
  watcher?: string | null;
  /** Recording keys the site's own pages pinned (key ids or public keys): the only keys this
   * browser will wrap content keys for. Never from the server. */
  recordingPins?: string[];
  /** The customer allowed recording: for which key, and where its chain stands. Each page's
   * content key is also wrapped for that key. Null when not recording. */
  recording?: RecordingState | null;
  /** A recording question the agent confirmed and the customer has not answered yet (it is
   * asked again on the next page). */
  recordAsk?: { recordingId: string; agent: AgentAsk } | null;
}

export interface StartOptions {
  /** The site's masking policy (docs/privacy.md); overrides a `#tandem-policy` script tag. */
  policy?: unknown;
  /** A short-lived token from the site's backend for its signed-in customer (a JWT signed with
   * the site's key; docs/administration.md). Sites can require it. */
  token?: string;
  /** The recording keys this site allows (key ids as the console shows them, or public keys):
   * the SDK wraps page content for no other key. Also `recording_keys` in the page's
   * `#tandem-policy` tag. */
  recordingKeys?: string[];
}

/** The page's own `<script type="application/json" id="tandem-policy">`, parsed (undefined
 * without one). Throws PolicyError. */
function pageTag(): unknown {
  const tag = document.getElementById("tandem-policy");
  if (!tag) return undefined;
  try {
    return JSON.parse(tag.textContent ?? "");
  } catch {
    throw new PolicyError("policy: the #tandem-policy script is not valid JSON");
  }
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** The page's own policy: the tag without its recording pins. Throws PolicyError. */
function pagePolicy(): Policy | null {
  const tag = pageTag();
  if (tag === undefined) return null;
  if (!isRecord(tag)) return validatePolicy(tag);
  const { recording_keys: _pins, ...policy } = tag;
  return validatePolicy(policy);
}

/** The recording keys the page's own tag pins (`recording_keys`). Throws PolicyError or
 * RecordingError. Only the site's page can pin: policies from the server never carry pins
 * (validatePolicy refuses the field). */
function pagePins(): string[] {
  const tag = pageTag();
  return isRecord(tag) ? validatePins(tag.recording_keys) : [];
}

/** The Tandem server: where this script came from, unless the tag names it (a copy served
 * from the site's own origin, `tandem sdk --copy-to`: `data-tandem-server="https://…"`). */
function serverBase(): URL {
  const script = document.currentScript as HTMLScriptElement | null;
  return new URL(script?.dataset.tandemServer || script?.src || location.href, location.href);
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

/** The page's node for a recorded node id (masking needs its attributes and ancestors; it reads
 * them through the DOM's prototypes, ../shared/dom.ts). */
function liveNode(id: number): Node | null {
  return record.mirror.getNode(id);
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
  private sitePolicy: Policy | null = null;
  /** The joined agent's teams' policies (from the server): each can only add restrictions. */
  private teamPolicies: Policy[] = [];
  /** The organisation's policy from the server: it can only add restrictions. */
  private orgPolicy: Policy | null = null;
  private reconnects = 0;
  /** The one answer this socket's first message may get: `created` or `resumed`, once. */
  private expecting: "created" | "resumed" | null = null;
  private exchange: Spake2 | null = null;
  private keys: PairwiseKeys | null = null;
  /** A supervisor's key exchange in progress, and its name. */
  private watchExchange: Spake2 | null = null;
  private watchAsker: string | null = null;
  private watcherKeys: PairwiseKeys | null = null;
  private commands: CommandReceiver | null = null;
  private control: RemoteControl | null = null;
  private sender: ContentSender | null = null;
  /** Sends leave in call order: packing and encryption are asynchronous. */
  private sendChain: Promise<void> = Promise.resolve();
  private brokenPolicy = false;
  /** While sharing: the page's address is watched (single-page apps change it without loading). */
  private pageWatch: ReturnType<typeof setInterval> | undefined;
  private watchedHref = "";
  private overlayTimer: ReturnType<typeof setInterval> | undefined;
  private paused = false;
  /** The page is being left (navigation): keep the saved session for the next page. */
  unloading = false;
  /** Recording keys pinned by start() and this page's tag. */
  private pins: string[] = [];
  /** The server's and the agent's requests to record, paired. */
  private readonly recordAsk = new RecordingAsk(
    (server, agent) => this.askRecording(server, agent),
    (server) => this.refuseRecording(server.keyId, "unconfirmed"),
  );
  /** The end marker is on its way (the recording is being closed). */
  private endingRecording: Promise<void> | null = null;
  /** Why recording must end as soon as a recorded epoch runs (it ended between two epochs). */
  private pendingEnd: RecordingOffReason | null = null;

  get code(): string | null {
    return this.saved?.secret ? this.saved.routing + this.saved.secret : null;
  }

  start(options: StartOptions = {}): Promise<string> {
    const code = this.code;
    if (code && this.state !== "ended" && this.state !== "idle") return Promise.resolve(code);
    if (this.starting) return this.starting;
    try {
      this.sitePolicy = options.policy !== undefined ? validatePolicy(options.policy) : pagePolicy();
      this.pins = unitePins(validatePins(options.recordingKeys), pagePins());
    } catch (error) {
      const known = error instanceof PolicyError || error instanceof RecordingError;
      const message = known ? `Tandem: ${(error as Error).message}` : "Tandem: invalid policy";
      this.ui.showError(message, () => this.ui.remove());
      return Promise.reject(new Error(message));
    }
    if (options.token !== undefined && typeof options.token !== "string") {
      return Promise.reject(new Error("Tandem: token must be a string"));
    }
    const first: Outgoing<"create"> = options.token ? { type: "create", token: options.token } : { type: "create" };
    this.starting = new Promise<string>((resolve, reject) => {
      this.connect(first, resolve, reject);
    }).finally(() => {
      this.starting = null;
    });
    return this.starting;
  }

  resume(saved: Saved): void {
    this.saved = saved;
    try {
      this.sitePolicy = pagePolicy() ?? saved.sitePolicy;
    } catch {
      this.sitePolicy = null; // refused below: a page with a broken policy does not share
      this.brokenPolicy = true;
    }
    this.pins = unitePins(saved.recordingPins, this.tagPins());
    saved.recordingPins = this.pins;
    this.connect({ type: "resume", session_id: saved.sessionId, resume_token: saved.resumeToken });
  }

  /** This page's pins; a broken tag pins nothing (and recording is then refused). */
  private tagPins(): string[] {
    try {
      return pagePins();
    } catch {
      return [];
    }
  }

  private send(text: string): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(text);
  }

  private connect(first: Outgoing<"create"> | Outgoing<"resume">, resolve?: (code: string) => void, reject?: (e: Error) => void): void {
    this.state = "connecting";
    this.expecting = first.type === "resume" ? "resumed" : "created";
    const ws = new WebSocket(socketUrl);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    let settled = false;
    ws.addEventListener("open", () => ws.send(control(first)));
    ws.addEventListener("message", (event) => {
      if (typeof event.data !== "string") {
        void this.onCommand(new Uint8Array(event.data as ArrayBuffer));
        return;
      }
      const message = parseServerMessage(event.data);
      if (!message) return;
      this.handle(message);
      if (message.type === "created" && !settled && this.code) {
        settled = true;
        resolve?.(this.code);
      }
    });
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws || this.unloading) return;
      const wasResuming = first.type === "resume" && this.state === "connecting";
      if (!settled && reject) {
        settled = true;
        const error = new Error(
          event.code === 1006 ? "Could not reach the help server. Please try again." : describeClose(event.code, event.reason),
        );
        this.fail(error.message);
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
        if (this.expecting !== "created") return this.distrust("a new session this page did not ask for");
        this.expecting = null;
        if (!this.acceptOrgPolicy(message.policy)) return;
        this.saved = {
          sessionId: message.session_id, resumeToken: message.resume_token, routing: message.code,
          secret: randomDigits(SECRET_DIGITS), agent: null, epoch: 0, sitePolicy: this.sitePolicy,
          recordingPins: this.pins,
        };
        save(this.saved);
        this.state = "waiting";
        this.ui.showCode(this.code ?? "", () => void this.stop());
        break;
      case "resumed": {
        // Only as the answer to this page's own `resume`, and only if it agrees with what this
        // browser knows: a server cannot talk the page into sharing.
        if (!this.saved || this.expecting !== "resumed") return this.distrust("a session state it never asked for");
        this.expecting = null;
        const contradiction = this.contradicts(message.state);
        if (contradiction) return this.distrust(contradiction);
        if (!this.acceptOrgPolicy(message.policy)) return;
        // Before sharing starts: a page the agent's teams keep private must never be recorded.
        if (!this.acceptTeamPolicies(message.team_policies ?? [])) return;
        this.reconnects = 0;
        this.saved.agent = message.agent;
        if (!message.recording) this.saved.recording = null;
        else if (!this.saved.recording) this.send(control({ type: "record_stop" })); // consent not found here
        save(this.saved);
        this.state = message.state;
        if (message.state === "waiting" && this.code) this.ui.showCode(this.code, () => void this.stop());
        if (message.state === "sharing") void this.beginSharing();
        break;
      }
      case "team_policy":
        this.acceptTeamPolicies(message.policies);
        break;
      case "agent_joined":
        if (!this.saved || (this.state !== "waiting" && this.state !== "pending_consent")) return;
        this.saved.agent = message.agent;
        save(this.saved);
        this.state = "pending_consent";
        void this.pairThenAsk();
        break;
      case "handshake":
        void this.onHandshake(message.data);
        break;
      case "restarting": // told why before the session ends (server_shutdown)
        break;
      case "ended":
        if (message.reason === "key_mismatch") this.fail(MISMATCH);
        else if (message.reason === "server_shutdown") this.fail(RESTARTING);
        else this.end();
        break;
      case "watch_request":
        this.askWatch(message.watcher);
        break;
      case "watch_handshake":
        void this.onWatchHandshake(message.data);
        break;
      case "watcher_left":
        void this.dropWatcher();
        break;
      case "record_request":
        void this.onRecordRequest(message);
        break;
      case "recording":
        // Stopping is always safe, whoever asks; starting needs the customer's consent.
        if (!message.on) void this.endRecording(message.reason ?? "stopped");
        break;
      default:
        break;
    }
  }

  /** Why the server's claimed `state` contradicts this browser's own record, or null. */
  private contradicts(state: string): string | null {
    const saved = this.saved;
    if (!saved) return "a session this page does not have";
    if (state === "sharing" && !saved.consented) return "it claimed you allowed sharing, but you did not";
    if (state === "waiting" && (saved.consented || !saved.secret)) {
      return "it claimed no agent had joined, but one had";
    }
    if (state !== "waiting" && state !== "pending_consent" && state !== "sharing") return "an unknown state";
    return null;
  }

  /** End at once, on both sides, and tell the customer why. */
  private distrust(what: string): void {
    this.send(control({ type: "stop" }));
    this.fail(`${DISTRUST} (${what}).`);
  }

  /** The server's policy must be valid; sharing under a policy we cannot read would be unsafe. */
  private acceptOrgPolicy(value: unknown): boolean {
    try {
      this.orgPolicy = value === null || value === undefined ? null : validatePolicy(value);
      return true;
    } catch (error) {
      this.send(control({ type: "stop" }));
      this.fail(`Help is unavailable: the server's privacy policy is invalid (${(error as Error).message}).`);
      return false;
    }
  }

  private acceptTeamPolicies(values: unknown[]): boolean {
    try {
      this.teamPolicies = Array.isArray(values) ? values.map((value) => validatePolicy(value)) : [];
    } catch (error) {
      this.send(control({ type: "stop" }));
      this.fail(`Help is unavailable: the server's privacy policy is invalid (${(error as Error).message}).`);
      return false;
    }
    if (this.state === "sharing") {
      usePolicy(this.effectivePolicy());
      this.onPageChange(true);
    }
    return true;
  }

  /** Every policy that decides whether a page is private: any one of them can make it so. */
  private pagePolicies(): (Policy | null)[] {
    return [this.sitePolicy, this.orgPolicy, ...this.teamPolicies];
  }

  /** The site's policy tightened by the organisation's and the agent's teams'. */
  private effectivePolicy(): Policy {
    return [this.orgPolicy, ...this.teamPolicies].reduce<Policy>(
      (merged, next) => mergePolicies(merged, next),
      this.sitePolicy ?? validatePolicy({ version: 1 }),
    );
  }

  /** Run the key exchange (or find its key after a navigation), then ask for consent. */
  private async pairThenAsk(): Promise<void> {
    const saved = this.saved;
    if (!saved) return;
    this.keys ??= await loadKeys(saved.sessionId);
    if (this.keys) {
      this.askConsent();
      return;
    }
    if (!saved.secret || this.exchange) return;
    this.ui.showBusy("Checking the code with the agent…");
    this.exchange = new Spake2({
      role: "A", w: passwordScalar(saved.secret, saved.sessionId), scalar: randomScalar(randomBytes),
      idA: IDENTITY_CUSTOMER, idB: IDENTITY_AGENT, aad: handshakeAad(saved.sessionId),
    });
    this.send(control({ type: "handshake", data: toBase64Url(this.exchange.share) }));
  }

  /** The agent's share and confirmation: check it, confirm back, keep the key. */
  private async onHandshake(data: string): Promise<void> {
    const exchange = this.exchange;
    const saved = this.saved;
    if (!exchange || !saved) return this.mismatch();
    this.exchange = null;
    let bytes: Uint8Array;
    try {
      bytes = fromBase64Url(data);
    } catch {
      return this.mismatch();
    }
    if (bytes.length !== SHARE_BYTES + MAC_BYTES) return this.mismatch();
    let confirmed;
    try {
      confirmed = exchange.finish(bytes.subarray(0, SHARE_BYTES));
    } catch (error) {
      if (error instanceof Spake2Error) return this.mismatch();
      throw error;
    }
    if (!confirmed.verifyPeer(bytes.subarray(SHARE_BYTES))) return this.mismatch();
    const keys = await derivePairwiseKeys(confirmed.ke, saved.sessionId);
    this.keys = keys;
    await saveKeys(saved.sessionId, keys);
    saved.secret = null; // the key replaces the secret; it is no longer needed anywhere
    save(saved);
    this.send(control({ type: "handshake", data: toBase64Url(confirmed.confirmation) }));
    this.askConsent();
  }

  /** A supervisor asks to watch: the customer decides; if allowed, pair with a fresh code the
   * customer reads out (the server never learns it), then share under a new key for both. */
  private askWatch(watcher: string): void {
    const saved = this.saved;
    if (this.state !== "sharing" || !saved) return;
    this.ui.askWatch(
      watcher,
      () => {
        this.send(control({ type: "watch_consent", granted: true }));
        const secret = randomDigits(SECRET_DIGITS);
        const id = saved.sessionId + WATCHER_SUFFIX;
        this.watchAsker = watcher;
        this.watchExchange = new Spake2({
          role: "A", w: passwordScalar(secret, id), scalar: randomScalar(randomBytes),
          idA: IDENTITY_CUSTOMER, idB: IDENTITY_WATCHER, aad: handshakeAad(id),
        });
        this.send(control({ type: "watch_handshake", data: toBase64Url(this.watchExchange.share) }));
        this.ui.showWatchCode(watcher, secret, () => this.watchMismatch());
      },
      () => {
        this.send(control({ type: "watch_consent", granted: false }));
        this.drawBanner();
      },
    );
  }

  private async onWatchHandshake(data: string): Promise<void> {
    const exchange = this.watchExchange;
    const saved = this.saved;
    this.watchExchange = null;
    if (!exchange || !saved) return this.watchMismatch();
    let confirmed;
    try {
      const bytes = fromBase64Url(data);
      if (bytes.length !== SHARE_BYTES + MAC_BYTES) return this.watchMismatch();
      confirmed = exchange.finish(bytes.subarray(0, SHARE_BYTES));
      if (!confirmed.verifyPeer(bytes.subarray(SHARE_BYTES))) return this.watchMismatch();
    } catch {
      return this.watchMismatch();
    }
    const id = saved.sessionId + WATCHER_SUFFIX;
    this.watcherKeys = await derivePairwiseKeys(confirmed.ke, id);
    await saveKeys(id, this.watcherKeys);
    saved.watcher = this.watchAsker;
    save(saved);
    this.send(control({ type: "watch_handshake", data: toBase64Url(confirmed.confirmation) }));
    this.rekey();
  }

  private watchMismatch(): void {
    this.watchExchange = null;
    this.watchAsker = null;
    this.send(control({ type: "watch_abort" }));
    this.drawBanner();
  }

  /** The supervisor left: forget its key and share under a new key it does not have. */
  private async dropWatcher(): Promise<void> {
    const saved = this.saved;
    this.watchExchange = null;
    this.watchAsker = null;
    this.watcherKeys = null;
    if (!saved) return;
    const had = Boolean(saved.watcher);
    saved.watcher = null;
    save(saved);
    await deleteKeys(saved.sessionId + WATCHER_SUFFIX);
    if (had) this.rekey();
    else this.drawBanner();
  }

  /** The server relays a request to record. It goes to the customer only if the site pinned its
   * key and the agent asked too (inside the encrypted channel); else it is refused, no dialog. */
  private async onRecordRequest(message: { agent: string; key: string; recording_id: string; site: string }): Promise<void> {
    const saved = this.saved;
    if (this.state !== "sharing" || !saved || saved.recording) return;
    const { keyId, pinned } = await checkPin(String(message.key), unitePins(saved.recordingPins, this.tagPins()));
    if (this.saved !== saved || this.state !== "sharing") return;
    if (!pinned || typeof message.recording_id !== "string" || typeof message.site !== "string") {
      this.refuseRecording(keyId, "not_pinned");
      return;
    }
    const ask: ServerAsk = { agent: message.agent, key: message.key, keyId: keyId ?? "", recordingId: message.recording_id, site: message.site };
    const confirmed = saved.recordAsk;
    if (confirmed && confirmed.recordingId === ask.recordingId) {
      this.askRecording(ask, confirmed.agent); // asked on the page before this one
      return;
    }
    this.recordAsk.fromServer(ask);
  }

  /** Refuse to record (no dialog) and tell the agent why, inside the encrypted channel. */
  private refuseRecording(keyId: string | null, reason: RecordingOffReason): void {
    this.send(control({ type: "record_consent", granted: false }));
    this.sendPayload({ k: "recording", on: false, key_id: keyId, reason });
  }

  /** Both the server and the agent asked: the customer decides. */
  private askRecording(ask: ServerAsk, agent: AgentAsk): void {
    const saved = this.saved;
    if (this.state !== "sharing" || !saved || saved.recording) return;
    saved.recordAsk = { recordingId: ask.recordingId, agent };
    save(saved);
    this.ui.askRecording(
      agent.name,
      location.hostname,
      () => {
        if (this.saved !== saved || this.state !== "sharing" || saved.recording) return;
        this.send(control({ type: "record_consent", granted: true }));
        saved.recordAsk = null;
        saved.recording = {
          key: ask.key, keyId: ask.keyId, recordingId: ask.recordingId, agent: agent.agent, site: ask.site,
          chain: null, started: false, chainKey: toBase64Url(randomBytes(32)),
        };
        save(saved);
        this.rekey(); // from now on each content key is also wrapped for the recording key
      },
      () => {
        if (this.saved !== saved) return;
        saved.recordAsk = null;
        save(saved);
        this.refuseRecording(ask.keyId, "declined");
        this.drawBanner();
      },
    );
  }

  /** The agent's encrypted command about recording. */
  private onRecordingCommand(command: NonNullable<ReturnType<typeof recordingCommand>>): void {
    if (command.k === "record_stop") void this.endRecording("stopped_by_agent");
    else if (!this.saved?.recording) this.recordAsk.fromAgent(command.ask);
  }

  /** The customer stops recording; sharing goes on under a key the recording does not have. */
  private stopRecordingSession(): void {
    void this.endRecording("stopped_by_customer");
  }

  /**
   * End the recording on purpose: tell the agent, send the end marker as the last recorded frame,
   * then `record_stop` (unless the whole session stops: `final`), and share on under a key the
   * recording does not have.
   */
  private endRecording(reason: RecordingOffReason, final = false): Promise<void> {
    const saved = this.saved;
    const recording = saved?.recording;
    if (!saved || !recording) {
      this.drawBanner(); // also closes a recording question the server withdrew
      return Promise.resolve();
    }
    if (this.endingRecording) return this.endingRecording;
    const sender = this.sender;
    const running = sender?.recorded && recording.chain?.epoch === sender.epoch;
    if (!running && this.state === "sharing" && !this.sender && !final) {
      this.pendingEnd = reason; // a recorded epoch is starting: end it there
      return Promise.resolve();
    }
    this.endingRecording = (async () => {
      if (running) {
        this.sendPayload({ k: "recording", on: false, key_id: recording.keyId, reason });
        this.sendPayload({ k: "recording_end", recording_id: recording.recordingId, reason, at: Date.now() });
        await this.sendChain;
      }
      if (!final) this.send(control({ type: "record_stop" }));
      if (this.saved === saved) {
        saved.recording = null;
        save(saved);
      }
    })().finally(() => {
      this.endingRecording = null;
    });
    return this.endingRecording.then(() => {
      if (!final) this.rekey();
    });
  }

  /** The key frames of a recorded epoch went out: it is the chain's newest link. The first one
   * starts with `recording_start`, binding what the recording is. */
  private recordedEpochBegan(sender: ContentSender): void {
    const saved = this.saved;
    const recording = saved?.recording;
    if (!saved || !recording || this.ws?.readyState !== WebSocket.OPEN) return;
    recording.chain = { epoch: sender.epoch, count: 0 };
    save(saved);
    if (!recording.started) {
      this.sendPayload({
        k: "recording_start", recording_id: recording.recordingId, session_id: saved.sessionId, agent: recording.agent,
        site: recording.site, origin: location.origin, at: Date.now(), chain: recording.chainKey,
      }, () => {
        recording.started = true;
      });
      this.sendPayload({ k: "recording", on: true, key_id: recording.keyId });
    }
    const pending = this.pendingEnd;
    this.pendingEnd = null;
    if (pending) void this.endRecording(pending);
  }

  /** A content frame of a recorded epoch went out: count it for the next link (kept in storage
   * at once, so the next page knows it even if this one is left right now). */
  private recordedFrameSent(sender: ContentSender): void {
    const saved = this.saved;
    const chain = saved?.recording?.chain;
    if (!saved || !chain || chain.epoch !== sender.epoch) return;
    chain.count += 1;
    save(saved);
  }

  /** Start a new epoch (new content key, fresh full snapshot) for the current recipients. */
  private rekey(): void {
    if (this.state !== "sharing") return;
    this.stopRecording?.();
    this.stopRecording = undefined;
    this.pending = [];
    this.sender = null;
    void this.beginSharing();
  }

  private mismatch(): void {
    this.send(control({ type: "abort", reason: "key_mismatch" }));
    this.fail(MISMATCH);
  }

  private askConsent(): void {
    if (this.state !== "pending_consent") return;
    // Allowed on an earlier page of this session (the answer was lost with that page): the
    // customer's own decision stands; the keys are those of the same key exchange.
    if (this.saved?.consented) return this.answer(true);
    this.ui.askConsent(this.saved?.agent ?? "An agent", () => this.answer(true), () => this.answer(false));
  }

  private answer(granted: boolean): void {
    if (this.state !== "pending_consent" || !this.ws) return;
    this.ws.send(control({ type: "consent", granted }));
    if (granted && this.saved) {
      this.saved.consented = true;
      save(this.saved);
      this.state = "sharing";
      void this.beginSharing();
    } else {
      this.end();
    }
  }

  /** A fresh content key for this page (epoch), sent to the agent first, then record. */
  private async beginSharing(): Promise<void> {
    const saved = this.saved;
    if (!saved) return;
    this.ui.showSharing(saved.agent ?? "the agent", () => void this.stop());
    if (this.stopRecording) return;
    this.keys ??= await loadKeys(saved.sessionId);
    if (!this.keys) return this.mismatch();
    saved.epoch += 1;
    save(saved);
    if (saved.watcher) this.watcherKeys ??= await loadKeys(saved.sessionId + WATCHER_SUFFIX);
    const watcherKey = saved.watcher ? this.watcherKeys?.customerToAgent : undefined;
    const recording = saved.recording;
    const link = recording ? {
      publicKey: fromBase64Url(recording.key),
      previousEpoch: recording.chain?.epoch ?? 0,
      previousCount: recording.chain?.count ?? 0,
      chainKey: await importChainKey(fromBase64Url(recording.chainKey), "sign"),
    } : undefined;
    const sender = await ContentSender.create(
      saved.sessionId, saved.epoch, [this.keys.customerToAgent], watcherKey, link,
    );
    if (this.state !== "sharing" || this.stopRecording) return;
    if (this.brokenPolicy) {
      void this.stop();
      return;
    }
    this.sender = sender;
    for (const frame of sender.epochKeyFrames) this.ws?.send(frame);
    // A recording's first frame is its recording_start (recorded epochs only), then as in every epoch:
    if (sender.recorded) this.recordedEpochBegan(sender);
    // First in every epoch, inside the encrypted channel: the agent's console shows nothing
    // until the customer's own browser says the customer allowed it.
    this.sendPayload({ k: "consented" });
    this.commands = new CommandReceiver(saved.sessionId, this.keys.agentToCustomer, saved.commands ?? 0);
    this.control?.dispose();
    this.control = new RemoteControl(this.ui, {
      agent: () => this.saved?.agent ?? "The agent",
      reply: (payload) => {
        this.sendPayload(payload);
        // For the audit trail: the decision's name only (the server cannot see the payload).
        if (payload.k === "control") this.send(control({ type: "report", event: `control_${payload.state}` }));
      },
      changed: () => {
        if (this.saved) {
          this.saved.control = this.control?.granted ?? false;
          save(this.saved);
        }
        this.drawBanner();
      },
      isPrivate: (url) => pageIsPrivate(url, this.pagePolicies()),
    }, saved.control ?? false);
    this.drawBanner();
    usePolicy(this.effectivePolicy());
    this.watchedHref = location.href;
    clearInterval(this.pageWatch);
    this.pageWatch = setInterval(() => this.onPageChange(), 300);
    if (this.isPrivatePage()) {
      this.pause();
      return;
    }
    this.record();
  }

  private drawBanner(): void {
    if (this.state !== "sharing") return;
    const watcher = this.saved?.watcher;
    const agent = (this.saved?.agent ?? "the agent") + (watcher ? ` and ${watcher} (supervisor)` : "");
    const revoke = this.control?.granted ? () => this.control?.revoke() : undefined;
    const stopRecording = this.saved?.recording ? () => this.stopRecordingSession() : undefined;
    this.ui.showSharing(agent, () => void this.stop(), this.paused, revoke, stopRecording);
  }

  /** An encrypted command from the agent: open it (refusing replays), then let control decide. */
  private async onCommand(bytes: Uint8Array): Promise<void> {
    const receiver = this.commands;
    if (!receiver || !this.control || this.state !== "sharing") return;
    let command: unknown;
    try {
      command = JSON.parse(new TextDecoder().decode(await receiver.open(bytes)));
    } catch {
      return; // forged, replayed or garbled: ignored (it could only come from the relay)
    }
    if (this.saved) {
      this.saved.commands = receiver.last;
      save(this.saved);
    }
    const recording = recordingCommand(command);
    if (recording) return this.onRecordingCommand(recording);
    if (this.paused) return;
    this.control.handle(command);
  }

  private isPrivatePage(): boolean {
    return pageIsPrivate(new URL(location.href), this.pagePolicies());
  }

  /** A private page: tell the agent, record nothing until the customer is on a shared page. */
  private pause(): void {
    this.stopRecording?.();
    this.stopRecording = undefined;
    this.pending = [];
    this.paused = true;
    this.sendPayload({ k: "paused" });
    this.send(control({ type: "report", event: "page_paused" })); // no address: only that it paused
    this.ui.point(null);
    this.drawBanner();
  }

  private onPageChange(force = false): void {
    if ((!force && location.href === this.watchedHref) || this.state !== "sharing") return;
    this.watchedHref = location.href;
    const isPrivate = this.isPrivatePage();
    if (isPrivate && !this.paused) this.pause();
    if (!isPrivate && this.paused) {
      this.paused = false;
      this.send(control({ type: "report", event: "page_resumed" }));
      this.drawBanner();
      this.record(); // starts with a full snapshot of the shared page
    }
  }

  /** Keep the customer's outlines of hidden fields in place while sharing (scroll, layout). */
  private showOverlay(): void {
    const draw = () => {
      if (this.state !== "sharing" || this.paused) return this.ui.setOverlay(null);
      this.ui.setOverlay(hiddenFromAgent(document).map((el) => el.getBoundingClientRect()));
    };
    draw();
    clearInterval(this.overlayTimer);
    this.overlayTimer = setInterval(draw, 250);
  }

  private record(): void {
    if (this.stopRecording) return;
    this.showOverlay();
    // issue 14, item 12: masking that failed closed is reported to both sides (./withheld.ts).
    const withheld = reportWithheld(this.ui, (payload) => this.sendPayload(payload));
    onMaskingFailure(withheld);
    this.stopRecording = record({
      errorHandler: () => {
        withheld();
        return false; // not swallowed: the page sees its errors as before
      },
      emit: (event) => this.enqueue(event),
      ...recordMaskingOptions(),
      sampling: { mousemove: 50, scroll: 100 },
      recordCanvas: false,
      collectFonts: false,
      inlineImages: false,
      recordCrossOriginIframes: false,
    });
    // rrweb could not snapshot this page at all (it logs why), or a form was blocked for its shape.
    if (!this.stopRecording || hasBlockedShapes(document)) withheld();
  }

  private enqueue(event: unknown): void {
    if (this.backlogged) return;
    // Now, while rrweb's mirror still maps ids to the live elements. Null: masking could not
    // walk the event, which is then dropped (never sent raw) and reported.
    const masked = maskFormState(event, liveNode);
    if (masked === null) return;
    this.pending.push(masked);
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
    const sender = this.sender;
    if (!events.length || !ws || !sender || ws.readyState !== WebSocket.OPEN || this.state !== "sharing") return;
    if (ws.bufferedAmount > MAX_BUFFERED_BYTES) {
      this.waitForBacklog();
      return;
    }
    this.sendPayload({ k: "events", events: scrubEvent(events) });
  }

  /** Compress, encrypt and send, in call order; `sent` runs once the last frame went out. */
  private sendPayload(payload: Payload, sent?: () => void): void {
    const ws = this.ws;
    const sender = this.sender;
    if (!ws || !sender) return;
    const frames = encodePayload(payload);
    frames.forEach((frame, i) => {
      if (__TANDEM_BENCH_PLAINTEXT__) {
        ws.send(frame); // benchmark builds only: measures what encryption costs
        return;
      }
      this.sendChain = this.sendChain
        .then(() => pack(frame))
        .then((packed) => sender.seal(packed))
        .then((sealed) => {
          if (this.ws !== ws || this.sender !== sender || ws.readyState !== WebSocket.OPEN) return;
          ws.send(sealed);
          if (sender.recorded) this.recordedFrameSent(sender);
          if (i === frames.length - 1) sent?.();
        })
        .catch(() => undefined);
    });
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
    // The end marker goes first, so the recording ends whole (the server ends it with the session).
    if (this.saved?.recording && this.state === "sharing") await this.endRecording("stopped", true);
    this.send(control({ type: "stop" }));
    this.end();
  }

  private pauseRecording(): void {
    clearInterval(this.overlayTimer);
    this.overlayTimer = undefined;
    this.ui.setOverlay(null);
    clearInterval(this.pageWatch);
    this.pageWatch = undefined;
    this.paused = false;
    this.stopRecording?.();
    this.stopRecording = undefined;
    onMaskingFailure(null); // issue 14, item 12: no notice once the recording stops
    this.pending = [];
    this.sender = null;
  }

  /** End with a message the customer can read, then clear everything. */
  private fail(message: string): void {
    this.end();
    this.ui.showError(message, () => this.ui.remove());
  }

  /** Drop every trace of the session in this page: recorder, keys, storage, socket, UI. */
  private end(): void {
    this.state = "ended";
    this.pauseRecording();
    clearInterval(this.backlogTimer);
    this.backlogTimer = undefined;
    this.backlogged = false;
    this.exchange = null;
    this.keys = null;
    this.watchExchange = null;
    this.watchAsker = null;
    this.watcherKeys = null;
    this.teamPolicies = [];
    this.recordAsk.reset();
    this.pendingEnd = null;
    this.commands = null;
    this.control?.dispose();
    this.control = null;
    this.sendChain = Promise.resolve();
    const ws = this.ws;
    this.ws = null;
    if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000, "stopped");
    this.saved = null;
    save(null);
    void clearKeys();
    this.ui.remove();
  }
}

let current = new Session();

const api = {
  version: VERSION,
  /** Start a session; resolves to the code the customer reads to the agent. */
  start(options?: StartOptions): Promise<string> {
    if (current.state === "ended") current = new Session();
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
