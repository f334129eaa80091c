/**
 * One live session in the console: the socket, the pairing, the decryptor, the decoder and the
 * replayer. What the agent sees and may do is reported to the console's state (state.ts, `live`
 * events) and rendered from there; this class touches only the mirror and the inputs' focus.
 *
 * The mirror is rrweb's Replayer, which renders into an iframe sandboxed with
 * `allow-same-origin` only: nothing from the customer's page can run scripts here. When a session
 * ends, the replayer is destroyed and every reference to the page is dropped.
 */

import { Replayer } from "rrweb";
import { AssetStore, StyleParents, confineMirror, neutralizeEvent } from "./assets.ts";
import { MirrorBudget, SnapshotGate, StyleBudget } from "./budget.ts";
import {
  ChannelError, CommandSender, ContentReceiver, KIND_CONTENT, KIND_EPOCH_KEY, KIND_FROM_WATCHER, KIND_WATCHER_KEY, readU64,
} from "../shared/e2e/channel.ts";
import { SECRET_DIGITS, toBase64Url } from "../shared/e2e/encoding.ts";
import { type Pairing, startPairing } from "../shared/e2e/pairing.ts";
import { ACTING_COMMANDS, ACTION_REFUSALS, type AnnotationCommand, type DeviceKind, PayloadDecoder, type RecordingStatusPayload, UnpackStreams } from "../shared/payload.ts";
import { control, parseServerMessage, type ServerMessage } from "../shared/protocol.ts";
import { CLOSE_REASON_ROLE_CHANGED, CLOSE_REASON_TEAMS_CHANGED, CLOSE_REASON_TOO_MANY_CODES } from "../generated/protocol.ts";
import type { AgentInfo } from "../generated/rest.ts";
import type { Clock, Connection, ConnectionEvents, Transport } from "../shared/ports.ts";
import { RESUME_WINDOW_MS, reconnectDelay, windowOf, withinWindow } from "../shared/backoff.ts";
import { FULL_SNAPSHOT, META } from "../shared/rrweb-events.ts";
import { COMMAND_BLOCK } from "./claim.ts";
import type { Held, HeldStore } from "./rejoin.ts";
import {
  DEFAULT_TIMINGS, LOOK_EVERY_MS, type Freshness, type FreshnessTimings, type Verdict, provenInThisEpoch, reduceFreshness, startFreshness,
  verdict,
} from "./freshness.ts";
import type { LiveEvent, Tone, Tool } from "./state.ts";
import { t, type WorkspaceKey } from "./messages/workspace.ts";
import { plausibleName } from "../shared/names.ts";
import { frameView, type FrameView } from "../shared/frame-view.ts";

declare const __TANDEM_BENCH_PLAINTEXT__: boolean;

/** How long the server's `recording` may stand without the customer's browser agreeing. */
const RECORDING_AGREE_MS = 5000;
/** The laser pointer is sent at most this often (ms); a stroke keeps points this far apart (px). */
const LASER_EVERY_MS = 40;
const STROKE_STEP_PX = 4;
const MAX_STROKE_POINTS = 200;
/** Content frames kept while the pairing's last step is checked (a key frame, a snapshot). */
const MAX_EARLY_FRAMES = 64;
/** Room kept below the mirror when it is scaled to fit the window (px). */
const FIT_MARGIN = 24;
const MIN_FIT_HEIGHT = 320;

/** Commands that act on the customer's page (control, typing, pointing): sent only while the view
 * is proven live (./freshness.ts), since what the agent aims at may be gone from a stale view,
 * each with the nonce of the echo that proves it (the customer's browser checks it too).
 * Releasing control, hiding the pointer, challenges and recording's stop always go. */
const ACTIONS = ACTING_COMMANDS;

/** Refusals the customer's browser names by code (shared/payload.ts), said in the agent's language. */
const REFUSALS: ReadonlySet<string> = new Set(ACTION_REFUSALS);
/** The console's words for each `error` code the honest server sends (src/tandem/hub.py): the
 * relay's `message` is never shown, or it would write any line it liked in the workspace ("The
 * customer allowed control…", "Sign in again: type your password into the page"). */
const SERVER_ERRORS: Partial<Record<string, WorkspaceKey>> = {
  invalid_code: "errInvalidCode", rate_limited: "errRateLimited", training_required: "errTrainingRequired",
  not_your_team: "errNotYourTeam", forbidden: "errForbidden", no_recording_key: "errNoRecordingKey",
  peer_too_slow: "errPeerTooSlow", policy_changed: "errPolicyChanged",
};

/** The live session's ways out: the agent socket, the clock, randomness (for the pairing). */
export interface LivePorts {
  transport: Transport;
  clock: Clock;
  random(bytes: number): Uint8Array;
  /** What a rejoin after a reload needs (./rejoin.ts); without it, a reload ends the session. */
  held?: HeldStore;
  /** How often the view's freshness is asked and how old its proof may be (./freshness.ts). */
  freshness?: FreshnessTimings;
}

/** What a live session needs from the console around it. */
export interface LiveUi {
  report(event: LiveEvent): void;
  /** Where the customer's page is mirrored (outside the rendered templates). */
  readonly mirror: HTMLElement;
  signedIn(): AgentInfo | null;
  /** The sign-in expired or was revoked (close 4401): back to the sign-in screen, saying why
   * when the server said (issue 14). */
  sessionExpired(why?: string): void;
  /** This session is over: the console forgets it. */
  closed(view: LiveView): void;
  clearCode(): void;
  selectCode(): void;
  focusCode(): void;
  /** Put the typing box over the field the agent clicked in the mirror (position in the stage,
   * CSS px), with the field's current value, and the cursor there. */
  focusTyping(box: { left: number; top: number; width: number; height: number; fontSize: number; value: string }): void;
  typed(): string;
  /** What happened inside the encrypted channel, for the practice exercise (training.ts). */
  observe?(what: "action_refused" | "paused", reason?: string): void;
  /** The room the mirror may take (CSS px): it is scaled down to fit, never up. */
  room(): { width: number; height: number };
  /** Frame the mirror as the customer's device. */
  frame(device: DeviceKind | null): void;
}

/** The code the customer reads: routing part (for the server) + secret part (never sent). */
function splitCode(text: string): { routing: string; secret: string } | null {
  const digits = text.replace(/[\s-]/g, "");
  if (!/^\d+$/.test(digits) || digits.length <= SECRET_DIGITS) return null;
  return { routing: digits.slice(0, -SECRET_DIGITS), secret: digits.slice(-SECRET_DIGITS) };
}

/** One joined session: the socket, the key exchange, the decryptor, the decoder, the replayer. */
/** Shadow roots and frames nest, but never this deep in a real page: the search stops there. */
const MAX_SHADOW_DEPTH = 64;

/** What deepestAt found: the element, and where its document's viewport lies in the mirror's (a
 * same-origin frame's content box; 0, 0 for the mirror's own document): a point (x, y) of it is
 * at (left + x * scaleX, top + y * scaleY) of the mirror's (frameView: a CSS transform on a
 * frame scales what it shows). */
interface Hit { el: Element | null; left: number; top: number; scaleX: number; scaleY: number }

/**
 * The element at (x, y) of the mirror's viewport, inside the open shadow roots and the
 * same-origin frames rrweb replays: a document's `elementFromPoint` stops at a shadow host and at
 * a frame, so the agent's click on a web component's button was sent to the component, and a
 * click on a button in a frame was sent to the `<iframe>` (the page's button never saw it, and
 * the customer's banner named the wrong element). A frame is entered only when the element found
 * in it is one the mirror knows (`known`: recorded, with a node id): a frame rrweb could not
 * record (another origin's) stays the element clicked, and so does a frame a transform turns or
 * skews (no point of it can be mapped: frameView).
 */
function deepestAt(found: Element | null, x: number, y: number, known: (el: Element) => boolean): Hit {
  const hit: Hit = { el: found, left: 0, top: 0, scaleX: 1, scaleY: 1 };
  for (let depth = 0; hit.el && depth < MAX_SHADOW_DEPTH; depth++) {
    const el: Element = hit.el;
    // (x, y) in the viewport of the document `el` is in.
    const inX = (x - hit.left) / hit.scaleX;
    const inY = (y - hit.top) / hit.scaleY;
    const shadowed = el.shadowRoot?.elementFromPoint(inX, inY) ?? null;
    if (shadowed && shadowed !== el) {
      hit.el = shadowed;
      continue;
    }
    const framed = frameContent(el);
    if (!framed) break;
    const { doc, view } = framed;
    const inner = doc.elementFromPoint((inX - view.left) / view.scaleX, (inY - view.top) / view.scaleY);
    if (!inner || !known(inner)) break;
    hit.el = inner;
    hit.left += view.left * hit.scaleX;
    hit.top += view.top * hit.scaleY;
    hit.scaleX *= view.scaleX;
    hit.scaleY *= view.scaleY;
  }
  return hit;
}

/** A frame element's document (when the mirror can read it) and where it shows it (frameView). */
function frameContent(el: Element): { doc: Document; view: FrameView } | null {
  if (el.localName !== "iframe" && el.localName !== "frame") return null;
  let doc: Document | null = null;
  try {
    doc = (el as HTMLIFrameElement).contentDocument;
  } catch {
    return null;
  }
  const view = doc ? frameView(el) : null;
  return doc && view ? { doc, view } : null;
}

export class LiveView {
  private ws: Connection;
  /** This tab's record of the joined session, for rejoining it (null: not resumable). */
  private held: Held | null = null;
  /** The socket is down: since when, and how many attempts (issue 13, fault 6). */
  private drop: { since: number; attempt: number } | null = null;
  private cancelRetry: (() => void) | undefined;
  /** Rejoined: content of the epoch that was running is dropped until the customer's browser
   * sends a new epoch key (frames were lost while away; the new epoch repairs the view). */
  private awaitingEpoch = false;
  /** Content frames that arrived before the pairing's last step was checked (onPayload). */
  private early: Uint8Array[] = [];
  private secret: string | null = null;
  /** The pairing with the customer's browser, until it succeeded or failed. */
  private pairing: Pairing | null = null;
  private receiver: ContentReceiver | null = null;
  private commands: CommandSender | null = null;
  /** Whether this document holds the lock of its record's keys (./claim.ts): asked before the
   * keys are loaded or stored, and before any command is sealed; until then nothing is. */
  private claimed: Promise<boolean> = Promise.resolve(true);
  private owner = false;
  /** Settles once the pairing's keys are stored (their record holds the reserved counters). */
  private keysStored: Promise<void> = Promise.resolve();
  /** The last command counter this document reserved in the key store (0: none yet). */
  private reserved = 0;
  private commandChain: Promise<void> = Promise.resolve();
  private controlling = false;
  private typingTarget: number | null = null;
  private lastPoint = 0;
  private lastScroll = 0;
  private scale = 1;
  private typingPending = false;
  /** The agent clicked Release control: the revocation that follows is the agent's own. */
  private releasing = false;
  private tool: Tool = "none";
  private lastLaser = 0;
  private stroke: [number, number][] | null = null;
  private device: DeviceKind | null = null;
  /** Frames are opened, inflated and replayed strictly in arrival order. */
  private chain: Promise<void> = Promise.resolve();
  private readonly unpacking = new UnpackStreams();
  private decoder: PayloadDecoder | null = new PayloadDecoder();
  private replayer: Replayer | null = null;
  /** Page assets the customer's browser carried (issue 14, item 7), until the session ends. */
  private readonly assets = new AssetStore();
  /** The page's `<style>`s, which its events' texts may be added to (./assets.ts). */
  private readonly styles = new StyleParents();
  /** How much style work the page makes the mirror do (./budget.ts, STYLE_REWRITE_CHARS and
   * RULE_SHIFTS), and whether some was held since the page's full snapshot: the mirror's styles
   * are then behind the page's, which the status line says until the next one. */
  private readonly styleBudget: StyleBudget;
  private stylesBehind = false;
  /** How many full snapshots the page makes the mirror build (./budget.ts, SNAPSHOT_STYLE_CHARS
   * and SNAPSHOT_NODES): one beyond is held, with what follows it, until the allowance takes it
   * (a timer at its `due`); meanwhile the mirror shows an older page, which the status line says,
   * and nothing that acts goes (the view is not live). Kept for the session: a new mirror (a
   * private page, a page too large) drops what is held, not what is owed. */
  private readonly snapshots: SnapshotGate;
  private snapshotsBehind = false;
  /** A timer at the next style window while style texts held wait for it (sayStylesBehind). */
  private cancelCatchUp: (() => void) | undefined;
  private catchUpAt: number | null = null;
  private cancelRelease: (() => void) | undefined;
  private releaseAt: number | null = null;
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
  private cancelRecordingCheck: (() => void) | undefined;
  /** Whether the view is the customer's page now (./freshness.ts; agents only, from the
   * customer's first page on), what was last said about it, and the timers that ask. */
  private fresh: Freshness | null = null;
  private freshShown: Verdict["kind"] | null = null;
  private cancelFreshness: (() => void) | undefined;
  private readonly timings: FreshnessTimings;
  /** A control request made before the epoch shown had its first echo: sent with that echo
   * (one sent at once would name a proof the customer's browser no longer holds). */
  private controlWaiting = false;
  /** The proof (echo nonce) a control request named that went to the customer's browser, while no
   * answer came yet and the view stayed live: one refused as crossing a new epoch (sent before
   * this console knew of it) is asked again with that epoch's echo, as one asked during it is (it
   * aims at no node of the page); only on a refusal naming it (`of`, `proof`): never on a click's,
   * an earlier request's, or one that came after the view went stale (never asked late). */
  private askedWith: string | null = null;
  /** A control request that waited for an epoch's echo was dropped when the view went stale:
   * said once the view is live again (showFreshness). */
  private controlLapsed = false;
  /** A policy version this agent has not acknowledged was published during the session
   * (the server's `policy_changed`): no control or recording is asked for. */
  private policyPending = false;
  /** How many epochs the customer's browser began (its `consented`, first in each), and the
   * epoch each full snapshot given to the mirror came in: the mirror shows the current epoch
   * once one of its own is applied (./freshness.ts, `shownInEpoch`). */
  private epochs = 0;
  private readonly snapshotEpochs = new WeakMap<object, number>();
  /** The customer is on a private page (the mirror is dropped until a shared page). */
  private privatePage = false;
  /** What the status line says while the customer's page sends nothing (`privatePage`). */
  private pausedText = t("privatePage");
  /** How much of the page the mirror holds (./budget.ts), and whether the page went beyond it
   * (the mirror is dropped until the customer's next page, a full snapshot that fits). */
  private budget: MirrorBudget | null = null;
  private tooLarge = false;
  /** The status line says the view is not (yet) proven live. */
  private freshStatus = false;

  constructor(
    target: { code: string } | { watch: string } | { rejoin: Held },
    private readonly ui: LiveUi,
    private readonly ports: LivePorts,
  ) {
    this.watching = "watch" in target;
    this.styleBudget = new StyleBudget(() => ports.clock.now());
    this.snapshots = new SnapshotGate(() => ports.clock.now());
    this.timings = ports.freshness ?? DEFAULT_TIMINGS;
    this.ui.report({ type: "connecting", watching: this.watching });
    if ("rejoin" in target) {
      // A reloaded console: its keys first (frames may come as soon as the server lets it in).
      this.held = target.rejoin;
      this.sessionId = target.rejoin.sessionId;
      this.joined = true;
      this.drop = { since: ports.clock.now(), attempt: 0 }; // the window runs from the reload
      this.ws = { send: () => undefined, close: () => undefined, isOpen: false, isClosed: false, bufferedAmount: 0 };
      this.status(t("reconnectLost"));
      void this.restoreKeys(target.rejoin).then((ok) => {
        if (ok && !this.ended) this.ws = this.connect(() => this.sendRejoin());
      });
      return;
    }
    this.ws = this.connect(() => {
      if ("watch" in target) this.ws.send(control({ type: "watch", session_id: target.watch }));
      else this.join(target.code);
    });
  }

  private connect(opened: () => void): Connection {
    const events: ConnectionEvents = {
      open: opened,
      text: (data) => {
        if (this.ws !== ws) return;
        const message = parseServerMessage(data);
        if (message) this.onControl(message);
      },
      binary: (data) => {
        if (this.ws === ws) this.onPayload(data);
      },
      close: (code, reason) => {
        if (this.ws === ws) this.onClose(code, reason);
      },
    };
    const ws = this.ports.transport(events);
    return ws;
  }

  /** Take the lock of this record's keys, lest another document of this browser uses them (./claim.ts). */
  private claim(handle: string): Promise<boolean> {
    this.claimed = (this.ports.held?.claim(handle) ?? Promise.resolve(true)).then((mine) => {
      this.owner = mine;
      return mine;
    });
    return this.claimed;
  }

  /** The pairing keys this tab kept for `held`'s session; none: the session cannot go on. */
  private async restoreKeys(held: Held): Promise<boolean> {
    // Before the keys, the rejoin or any counter: a duplicated tab (its sessionStorage copied, the
    // same record) waits here while its original lives, then forgets the copy and touches nothing.
    if (!(await this.claim(held.keyHandle))) {
      if (!this.ended) this.finish(t("openElsewhere"), "");
      return false;
    }
    const keys = await this.ports.held?.loadKeys(held.keyHandle);
    if (this.ended) return false;
    if (!keys) {
      this.leaveOffline(held); // the customer is not left waiting out the window
      this.finish(t("reconnectNoKeys"));
      return false;
    }
    // Only an epoch newer than the last one shown before the reload: the server may have
    // recorded every earlier one, and would replay it as the live page.
    this.receiver = new ContentReceiver(held.sessionId, keys.customerToAgent, KIND_EPOCH_KEY, held.epoch);
    this.commands = new CommandSender(held.sessionId, keys.agentToCustomer, held.commands);
    return true;
  }

  private sendRejoin(): void {
    const held = this.held;
    if (!held) return;
    this.ws.send(control({ type: "rejoin", session_id: held.sessionId, resume_token: held.resumeToken }));
  }

  /** Keep what a rejoin needs (only an agent's joined session, never a watch). */
  private keep(): void {
    if (this.held && !this.watching) this.ports.held?.save(this.held);
  }

  /** `fresh`: what the status says is whether the view is live (checking, not live), which an
   * echo may put right; anything else the line says stays until something replaces it. */
  private status(text: string, tone: Tone = "", fresh = false): void {
    this.freshStatus = fresh;
    this.ui.report({ type: "status", text, tone });
  }

  join(code: string): void {
    if (this.watching) return this.enterWatchCode(code);
    if (!this.ws.isOpen || this.joined) return;
    const parts = splitCode(code);
    if (!parts) {
      this.status(t("codeLength", { digits: SECRET_DIGITS + 5 }), "bad");
      return;
    }
    this.secret = parts.secret;
    this.status(t("checkingCode"));
    this.ws.send(control({ type: "join", code: parts.routing })); // the secret part never leaves
  }

  /** The supervisor types the code the customer reads out; then the exchange runs. */
  private enterWatchCode(code: string): void {
    const secret = code.replace(/\D/g, "");
    if (!this.sessionId || this.pairing || this.receiver) return;
    if (secret.length !== SECRET_DIGITS) {
      this.status(t("watchCodeLength", { digits: SECRET_DIGITS }), "bad");
      return;
    }
    this.pairing = startPairing({ side: "console", peer: "watcher", secret, sessionId: this.sessionId, random: this.ports.random });
    this.ui.clearCode();
    this.ui.report({ type: "watch_code_entered" });
    this.status(t("checkingWithBrowser"));
    const share = this.pendingShare;
    this.pendingShare = null;
    if (share) void this.onHandshake(share);
  }

  get open(): boolean {
    return !this.ended && (this.drop !== null || !this.ws.isClosed);
  }

  leave(): void {
    if (this.ws.isOpen) this.ws.send(control({ type: "leave" }));
    else if (this.held && this.drop && this.owner) this.leaveOffline(this.held); // not another tab's session
    this.finish(t("sessionEnded"), "");
  }

  /** Left while reconnecting: a fresh socket takes the session up and leaves it at once, so the
   * customer is not left waiting out the window. Nothing it hears is used. */
  private leaveOffline(held: Held): void {
    const ws = this.ports.transport({
      open: () => {
        ws.send(control({ type: "rejoin", session_id: held.sessionId, resume_token: held.resumeToken }));
        ws.send(control({ type: "leave" }));
      },
      text: () => undefined,
      binary: () => undefined,
      close: () => undefined,
    });
    this.ports.clock.after(5000, () => ws.close(1000, "left"));
  }

  private onControl(message: ServerMessage): void {
    switch (message.type) {
      case "joined":
        if (message.resumed) {
          this.onRejoined();
          break;
        }
        if (message.resume_token && !this.watching) {
          this.held = {
            // The keys' place in the origin's database: this tab's own, never the server's id.
            sessionId: message.session_id, keyHandle: toBase64Url(this.ports.random(16)), resumeToken: message.resume_token,
            windowMs: windowOf(message.resume_seconds) ?? RESUME_WINDOW_MS, commands: 0, epoch: 0,
          };
          // Its lock asked for before the record is saved: a duplicate that copies it asks after.
          void this.claim(this.held.keyHandle);
          this.keep();
        }
        this.joined = true;
        this.ui.report({ type: "joined", sessionId: message.session_id });
        this.ui.clearCode();
        if (!this.secret) return this.mismatch();
        this.pairing = startPairing({
          side: "console", peer: "agent", secret: this.secret, sessionId: message.session_id, random: this.ports.random,
        });
        this.sessionId = message.session_id;
        this.secret = null;
        this.status(t("checkingWithBrowser"));
        break;
      case "watching":
        this.joined = true;
        this.sessionId = message.session_id;
        this.ui.report({ type: "joined", sessionId: message.session_id });
        this.status(t("askingToWatch"));
        break;
      case "watcher_joined": // a name the server's own rule would refuse is not put in the sentence
        this.status(plausibleName(message.watcher) ? t("watcherJoined", { watcher: message.watcher }) : t("watcherJoinedUnnamed"), "good");
        break;
      case "watcher_left":
        this.status(t("watcherLeft"), "good");
        break;
      case "handshake":
        if (this.watching && !this.pairing && !this.receiver) {
          this.pendingShare = message.data; // the code is not typed yet
          break;
        }
        void this.onHandshake(message.data);
        break;
      case "error": // the console's own words for the code, never the relay's prose
        this.status(t(Object.prototype.hasOwnProperty.call(SERVER_ERRORS, message.code) ? SERVER_ERRORS[message.code]! : "errOther"), "bad");
        // A new policy version waits for this agent's acknowledgement: the session goes on, but
        // this console asks for no control and no recording until it is reloaded acknowledged
        // (the server refuses the recording, the rejoin and any join anyway; control is asked
        // inside the encrypted channel, where only the console can hold back).
        if (message.code === "policy_changed") {
          this.policyPending = true;
          this.controlWaiting = false; // nor one that waited for an epoch's echo, nor asked again
          this.askedWith = null;
          this.controlLapsed = false;
        }
        else if (message.code === "no_recording_key" || message.code === "forbidden") this.ui.report({ type: "record_refused" });
        else this.ui.selectCode();
        break;
      case "consent":
        if (this.watching) {
          this.ui.report({ type: "watch_code" });
          this.ui.focusCode();
          this.status(t("allowedTypeCode"), "good");
          break;
        }
        if (!this.receiver && !__TANDEM_BENCH_PLAINTEXT__) return this.mismatch();
        if (!this.consented) this.status(t("waitingForSharing"));
        break;
      case "record_request":
        break; // only ever for the customer
      case "recording":
        if (this.watching) break;
        this.serverRecording = { on: message.on, reason: message.reason ?? null };
        this.showRecording();
        break;
      case "peer":
        if (!message.connected) {
          // The customer's page went (a navigation, its network): the server's word, which can
          // only take the view's proof away, never give it. What the agent sees is that page's
          // last state: marked and not acted on until the next page's (epoch's) echo and
          // snapshot, as for a new epoch; it was shown live, tools on, up to the bound (9 s).
          if (this.fresh) {
            this.fresh = reduceFreshness(this.fresh, { type: "epoch" });
            this.showFreshness();
          }
          this.status(t("reloading"));
          this.ui.report({ type: "typing", on: false }); // the field may not be there after a navigation
          this.typingTarget = null;
        } else if (this.consented) this.connectedStatus();
        break;
      case "link": // frames wait between the server's processes: a line of its own (state.ts)
        if (!this.ended) this.ui.report({ type: "link", reconnecting: message.state === "reconnecting" });
        break;
      case "restarting": // the console's own words for the reason, not the server's prose
        // "reconnect": the session was handed over to the server's next process; the close
        // (1012) that follows is retried like a dropped network (rejoin with the token).
        this.status(t(message.reason === "reconnect" && this.held ? "restartingReconnect" : "restarting"), "bad");
        break;
      case "ended":
        if (message.reason === "declined") this.finish(this.watching ? t("refusedWatch") : t("declined"));
        else if (message.reason === "key_mismatch") this.finish(`${t("mismatch")} ${t("sessionEnded")}`);
        else if (message.reason === "server_shutdown") this.finish(`${t("restarting")} ${t("sessionEnded")}`);
        else this.finish(message.reason === "watch_ended" ? t("watchEnded") : t("sessionEnded"), "");
        break;
      default:
        break;
    }
  }

  /** Ask the customer to allow recording: the server asks with the organisation's key, and this
   * console confirms inside the encrypted channel (the customer's browser needs both). */
  askToRecord(): void {
    if (this.watching || !this.joined || !this.ws.isOpen || !this.commands) return;
    if (this.policyPending) {
      this.status(t("errPolicyChanged"), "bad");
      return;
    }
    this.ws.send(control({ type: "record" }));
    const agent = this.ui.signedIn();
    this.sendCommand({ k: "record_request", agent: agent?.username ?? "", name: agent?.display_name ?? "" });
    this.ui.report({ type: "record_asked" });
    this.status(t("askingToRecord"));
  }

  stopRecording(): void {
    this.sendCommand({ k: "record_stop" });
    if (this.ws.isOpen) this.ws.send(control({ type: "record_stop" }));
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
    if (this.ended) return;
    this.ui.report({ type: "recording", customer: customer?.on ?? false, server: server?.on ?? false });
    const why: Record<string, string> = {
      declined: t("recDeclined"),
      not_pinned: t("recNotPinned", { key: customer?.key_id ? ` (${customer.key_id})` : "" }),
      unconfirmed: t("recUnconfirmed"),
      stopped_by_customer: t("recStoppedByCustomer"),
      stopped_by_agent: t("recStopped"),
      stopped: t("recStopped"),
      session_ending: t("recSessionEnding"),
      size_limit: t("recSizeLimit"),
      unavailable: t("recUnavailable"),
    };
    if (customer?.on) this.status(t("recording", { key: customer.key_id ?? "" }), "good");
    else if (customer) this.status(why[customer.reason ?? ""] ?? t("recStopped"), customer.reason === "stopped_by_agent" ? "" : "bad");
    this.cancelRecordingCheck?.();
    if (server && server.on !== (customer?.on ?? false)) {
      this.cancelRecordingCheck = this.ports.clock.after(RECORDING_AGREE_MS, () => this.checkRecordingAgreement());
    }
  }

  /** The server claims one thing and the customer's browser (after a while) another. */
  private checkRecordingAgreement(): void {
    const server = this.serverRecording;
    const customer = this.customerRecording;
    if (this.ended || !server || server.on === (customer?.on ?? false)) return;
    this.status(server.on ? t("recServerOnly") : t("recCustomerOnly"), "bad");
  }

  /** Pairing as the console: the customer's share, then the customer's confirmation. */
  private async onHandshake(data: string): Promise<void> {
    const pairing = this.pairing;
    const sessionId = this.sessionId;
    if (!pairing || !sessionId) return this.mismatch();
    const step = await pairing.receive(data);
    if (this.ended || this.pairing !== pairing) return;
    if (step.kind === "mismatch") return this.mismatch();
    if (step.kind === "reply") {
      this.ws.send(control({ type: "handshake", data: step.data }));
      return;
    }
    this.pairing = null;
    if (this.watching) {
      this.receiver = new ContentReceiver(sessionId, step.keys.customerToAgent, KIND_WATCHER_KEY);
      // Its own channel to the customer's browser, for its freshness challenges only.
      this.commands = new CommandSender(sessionId, step.keys.agentToCustomer, 0, KIND_FROM_WATCHER);
      this.status(t("watchingPage"), "good");
      this.startMirror();
      this.takeEarly();
      return;
    }
    this.receiver = new ContentReceiver(sessionId, step.keys.customerToAgent, KIND_EPOCH_KEY);
    this.commands = new CommandSender(sessionId, step.keys.agentToCustomer);
    this.takeEarly();
    const held = this.held;
    const store = this.ports.held;
    if (held && store) { // for a rejoin after a reload
      // Not once the session ended meanwhile: its end deleted what it had (a late save would stay).
      this.keysStored = this.claimed.then((mine) => (mine && !this.ended ? store.saveKeys(held.keyHandle, step.keys) : undefined));
    }
    this.status(t("waitingForAllow"));
  }

  /** The frames that arrived while the pairing finished, now that the keys open them. */
  private takeEarly(): void {
    const early = this.early;
    this.early = [];
    for (const frame of early) this.onPayload(frame);
  }

  private mismatch(): void {
    if (this.ws.isOpen) this.ws.send(control({ type: "abort", reason: "key_mismatch" }));
    this.finish(`${t("mismatch")} ${t("sessionEnded")}`);
  }

  /** Encrypt and send a command to the customer's browser, in order. A supervisor sends only
   * its challenges (the customer's browser takes nothing else from it). */
  sendCommand(command: Record<string, unknown>): void {
    const sender = this.commands;
    if (!sender || this.ended) return;
    if (this.watching && command.k !== "challenge") return;
    const acting = typeof command.k === "string" && ACTIONS.has(command.k);
    if (acting && !this.mayAct()) return;
    // The echo this action is taken on: the customer's browser acts only if it sent it lately.
    const proven = acting ? this.fresh?.provenNonce : undefined;
    const proof = acting ? { ...command, proof: proven } : command;
    const bytes = new TextEncoder().encode(JSON.stringify(proof));
    this.commandChain = this.commandChain
      .then(() => this.reserveFor(sender))
      .then((mayUse) => (mayUse ? sender.seal(bytes) : null))
      .then((sealed) => {
        if (!sealed) return;
        if (this.held) {
          this.held.commands = sender.last; // before it leaves: a reload never reuses a counter
          this.keep();
        }
        // The view went stale, or a new epoch began, while it was sealed: dropped. A control
        // request waits for the new epoch's echo; what aims at a node is said, never sent later.
        if (acting && !this.mayAct()) {
          if (command.k === "control_request" && this.refreshing()) this.controlWaiting = true;
          else if (command.k === "click" || command.k === "type" || command.k === "scroll") this.notSent();
          return;
        }
        if (!this.ws.isOpen) return;
        this.ws.send(sealed);
        if (command.k === "control_request") this.askedWith = proven ?? null;
      })
      .catch(() => undefined);
  }

  /** Whether `sender` may seal its next counter: this document holds its keys' lock and, when
   * the keys are stored (another document could load them), the counter is reserved there. */
  private async reserveFor(sender: CommandSender): Promise<boolean> {
    if (this.watching) return !this.ended; // a supervisor's keys are never stored: this document's alone
    if (!(await this.claimed) || this.ended) return false;
    const held = this.held;
    const store = this.ports.held;
    if (!held || !store || sender.last < this.reserved) return true;
    await this.keysStored;
    let first: number | null;
    try {
      first = await store.reserveCommands(held.keyHandle, Math.max(sender.last, held.commands), COMMAND_BLOCK);
    } catch {
      if (!this.ended) this.finish(t("keysUnsafe"));
      return false;
    }
    if (this.ended || this.commands !== sender) return false;
    if (first === null) {
      this.reserved = Number.MAX_SAFE_INTEGER; // no keys stored: no other document can seal under them
      return true;
    }
    sender.skipTo(first - 1);
    this.reserved = first + COMMAND_BLOCK - 1;
    return true;
  }

  requestControl(): void {
    this.controlLapsed = false;
    if (this.policyPending) {
      this.status(t("errPolicyChanged"), "bad");
      return;
    }
    if (this.refreshing()) {
      // The customer's page is being refreshed (a new epoch): the request waits for its echo
      // and goes with it, naming it (a control request aims at no node of the page).
      this.releasing = false;
      this.controlWaiting = true;
      this.status(this.refreshingText(), "", true);
      return;
    }
    if (!this.mayAct()) return; // shown disabled, with the reason (view.ts)
    this.releasing = false;
    if (this.fresh && !provenInThisEpoch(this.fresh)) this.controlWaiting = true;
    else this.sendCommand({ k: "control_request" });
    this.status(t("waitingForControl"));
  }

  releaseControl(): void {
    this.controlWaiting = false;
    if (!this.controlling) return;
    this.releasing = true;
    this.sendCommand({ k: "control_release" });
  }

  private setControlling(on: boolean): void {
    this.controlling = on;
    this.ui.report({ type: "control", on });
    if (!on) this.typingTarget = null;
  }

  /** "Connected…", saying that recording goes on when it does (a navigation changes nothing);
   * only while the view is proven fresh (./freshness.ts): else what is known of it. */
  private connectedStatus(): void {
    const now = this.freshVerdict();
    if (now.kind === "checking") return this.status(t("checkingLive"), "", true);
    if (now.kind === "stale") return this.status(t("notLive", { seconds: Math.floor(now.silentMs / 1000) }), "bad", true);
    if (this.snapshotsBehind) return this.status(t("snapshotsHeld"), "bad", true);
    if (now.kind === "refreshing") return this.status(this.refreshingText(), "", true);
    if (this.stylesBehind) return this.status(t("stylesTooFast"), "bad");
    if (this.watching) return this.status(t("watchingPage"), "good");
    this.status(this.customerRecording?.on ? t("connectedRecording") : t("connected"), "good");
  }

  /** Whether the view is live now (an agent's and a supervisor's alike, from the customer's first
   * page on: each asks in its own channel). */
  private freshVerdict(): Verdict {
    if (!this.fresh) return { kind: "live" };
    return verdict(this.fresh, this.ports.clock.now(), this.timings.staleMs);
  }

  /** Whether what acts on the customer's page may be sent: only while an echo proves the view is
   * the customer's page now (never before the first, nor past the bound). */
  private mayAct(): boolean {
    return this.fresh !== null && this.freshVerdict().kind === "live";
  }

  /** Whether the customer's browser began a new epoch whose echo or full snapshot is not here yet
   * (./freshness.ts): the mirror may show node ids the customer's page numbers afresh. */
  private refreshing(): boolean {
    return this.fresh !== null && this.freshVerdict().kind === "refreshing";
  }

  /** Something the agent did on purpose (a click, typing, a scroll) is not sent: the view is not
   * live. While a new epoch comes in, say so plainly; it is never sent later, since the node it
   * names may be another one in the new epoch's page. */
  private notSent(): void {
    if (this.refreshing()) this.status(this.refreshingText(), "", true);
  }

  /** What the status line says while a new epoch comes in: the agent may try again in a moment;
   * a supervisor, who acts on nothing, is told that the view is being checked. */
  private refreshingText(): string {
    if (this.snapshotsBehind) return t("snapshotsHeld");
    return this.watching ? t("checkingLive") : t("refreshing");
  }

  /** Start asking, once per view: a challenge every interval, and a look at the verdict. */
  private watchFreshness(): void {
    this.fresh ??= startFreshness(this.ports.clock.now());
    if (this.cancelFreshness) return;
    const { challengeMs } = this.timings;
    const stopAsking = this.ports.clock.every(challengeMs, () => this.challenge());
    const stopLooking = this.ports.clock.every(Math.min(LOOK_EVERY_MS, challengeMs), () => this.showFreshness());
    this.cancelFreshness = () => {
      stopAsking();
      stopLooking();
    };
  }

  /** Ask the customer's browser for an echo of a fresh nonce, inside the encrypted channel. */
  private challenge(): void {
    if (!this.fresh || !this.consented || !this.commands || !this.ws.isOpen || this.ended) return;
    const nonce = toBase64Url(this.ports.random(16));
    this.fresh = reduceFreshness(this.fresh, { type: "challenged", nonce, at: this.ports.clock.now() });
    // The newest echo it got: the customer's browser takes the challenge as a sign of this
    // console's life only as of that echo (share/silence.ts), so one held back proves nothing new.
    this.sendCommand({ k: "challenge", nonce, proof: this.fresh.provenNonce ?? null });
  }

  /** The customer's browser echoed a nonce in the epoch shown: it counts only if this view sent
   * it (since its start or its last rejoin) and it was not echoed before. */
  private onEcho(nonce: string): void {
    if (!this.fresh) return;
    const next = reduceFreshness(this.fresh, { type: "echoed", nonce });
    if (next === this.fresh) return; // a replay, or someone else's: nothing proven
    this.fresh = next;
    this.settle();
  }

  /** The mirror applied a full snapshot: of the epoch shown now, or (late) of an earlier one. */
  private onCast(event: { type?: number }): void {
    if (event.type !== FULL_SNAPSHOT || !this.fresh) return;
    const epoch = this.snapshotEpochs.get(event);
    if (epoch === undefined) return;
    const next = reduceFreshness(this.fresh, { type: "shown", current: epoch === this.epochs });
    if (next === this.fresh) return;
    this.fresh = next;
    this.settle();
  }

  /** What the view's proof (or the mirror's epoch) now allows: say it, and send a control
   * request that waited for this epoch's echo. */
  private settle(): void {
    this.showFreshness();
    if (this.controlWaiting && !this.policyPending && this.fresh && provenInThisEpoch(this.fresh) && this.mayAct()) {
      this.controlWaiting = false;
      this.sendCommand({ k: "control_request" });
      this.status(t("waitingForControl"));
    }
  }

  /** Say whether the view is live: the mirror is marked when it is not, and the status line
   * says for how long nothing came (not while it says the console itself is reconnecting). */
  private showFreshness(): void {
    if (this.ended || !this.fresh) return;
    const now = this.freshVerdict();
    const was = this.freshShown;
    this.freshShown = now.kind;
    if (now.kind !== was) {
      // A control request is asked again once live: never sent late, on a view gone stale (or
      // rejoined). One asked while a new epoch comes in waits for its echo (requestControl).
      // Nor one refused as crossing a new epoch once the view was not live in between (askedWith).
      if (now.kind === "stale" || now.kind === "checking") {
        // One that was waiting is said once live again: the agent is not left waiting for a
        // question the customer never sees.
        if (this.controlWaiting && now.kind === "stale") this.controlLapsed = true;
        this.controlWaiting = false;
        this.askedWith = null;
      }
      // No longer live: a stroke being drawn is dropped and the pointer leaves the customer's page.
      if (was === "live") {
        if (this.tool === "laser") this.sendAnnotation({ k: "laser_off" });
        this.stroke = null;
        // The typing box closes: what it holds must never go once the view is live again (the
        // agent clicks the field again, and the box opens with the mirrored field's value).
        this.ui.report({ type: "typing", on: false });
        this.typingTarget = null;
      }
      this.ui.report({ type: "fresh", live: now.kind === "live" });
    }
    if (!this.consented || this.drop) return;
    if (now.kind === "stale") this.status(t("notLive", { seconds: Math.floor(now.silentMs / 1000) }), "bad", true);
    else if (now.kind === "refreshing" && was !== "refreshing" && this.freshStatus) {
      // Over a line about the view only (news such as a supervisor who joined stays); what the
      // agent tries meanwhile is answered with it (notSent).
      this.status(this.refreshingText(), "", true);
    } else if (now.kind === "live" && this.controlLapsed) {
      this.controlLapsed = false;
      this.status(t("controlLapsed"), "bad");
    } else if (now.kind === "live" && this.freshStatus) {
      if (this.privatePage) this.status(this.pausedText, "");
      else if (this.tooLarge) this.status(t("pageTooLarge"), "bad");
      else this.connectedStatus();
    }
  }

  /** The console's tab is shown again (a hidden tab's timers are slowed): look and ask at once. */
  visible(): void {
    this.showFreshness();
    this.challenge();
  }

  /** Where an agent's mouse event lands in the customer's page: viewport point and node id. */
  private target(event: MouseEvent): { x: number; y: number; id: number | null; el: Element | null; left: number; top: number; scaleX: number; scaleY: number } | null {
    const replayer = this.replayer;
    if (!replayer) return null;
    const rect = replayer.wrapper.getBoundingClientRect();
    const x = (event.clientX - rect.left) / this.scale;
    const y = (event.clientY - rect.top) / this.scale;
    const mirror = replayer.getMirror();
    const known = (node: Element): boolean => mirror.getId(node as unknown as Node) > 0;
    const { el, left, top, scaleX, scaleY } = deepestAt(replayer.iframe.contentDocument?.elementFromPoint(x, y) ?? null, x, y, known);
    const id = el ? mirror.getId(el as unknown as Node) : -1;
    return { x, y, id: id > 0 ? id : null, el, left, top, scaleX, scaleY };
  }

  onLayerMove(event: MouseEvent): void {
    if (!this.controlling || !this.mayAct() || this.ports.clock.now() - this.lastPoint < 50) return;
    this.lastPoint = this.ports.clock.now();
    const t = this.target(event);
    if (t) this.sendCommand({ k: "pointer", x: Math.round(t.x), y: Math.round(t.y) });
  }

  onLayerClick(event: MouseEvent): void {
    if (!this.controlling) return;
    if (!this.mayAct()) return this.notSent(); // never sent later: its node id may name another node then
    const t = this.target(event);
    if (!t || t.id === null) return;
    this.sendCommand({ k: "click", id: t.id });
    const field = t.el?.closest("input, textarea") as HTMLInputElement | null;
    const wrapper = this.replayer?.wrapper.getBoundingClientRect();
    if (field && wrapper) {
      this.typingTarget = t.id;
      this.ui.report({ type: "typing", on: true });
      // The box sits over the mirrored field: the agent types where the customer's field is
      // (a field in a frame: its box within the frame's viewport, moved and scaled as the frame
      // shows it).
      const inFrame = field.getBoundingClientRect();
      const box = {
        left: t.left + inFrame.left * t.scaleX, top: t.top + inFrame.top * t.scaleY,
        width: inFrame.width * t.scaleX, height: inFrame.height * t.scaleY,
      };
      const size = (parseFloat(field.ownerDocument.defaultView?.getComputedStyle(field).fontSize ?? "") || 15) * t.scaleY;
      this.ui.focusTyping({
        left: wrapper.left + box.left * this.scale, top: wrapper.top + box.top * this.scale,
        width: box.width * this.scale, height: box.height * this.scale, fontSize: size * this.scale,
        value: field.value ?? "",
      });
    } else {
      this.ui.report({ type: "typing", on: false });
      this.typingTarget = null;
    }
  }

  /** The agent clicked the mirror while the control layer is off (the view is not live). */
  onStageClick(): void {
    if (this.controlling) this.notSent();
  }

  onLayerWheel(event: WheelEvent): void {
    if (!this.controlling || !this.replayer) return;
    if (!this.mayAct()) return this.notSent();
    event.preventDefault();
    if (this.ports.clock.now() - this.lastScroll < 100) return;
    this.lastScroll = this.ports.clock.now();
    const view = this.replayer.iframe.contentWindow;
    if (!view) return;
    this.sendCommand({ k: "scroll", x: Math.round(view.scrollX), y: Math.max(0, Math.round(view.scrollY + event.deltaY / this.scale)) });
  }

  /** The agent picked a pointing tool (or none). Leaving the laser hides it on the customer's page. */
  setTool(tool: Tool): void {
    if (this.tool === "laser" && tool !== "laser") this.sendAnnotation({ k: "laser_off" });
    this.tool = tool;
    this.stroke = null;
  }

  private sendAnnotation(command: AnnotationCommand): void {
    if (this.watching || !this.consented) return;
    this.sendCommand(command);
  }

  /** A point of the customer's viewport under the agent's mouse, or null outside the mirror. */
  private viewportPoint(event: MouseEvent): [number, number] | null {
    const replayer = this.replayer;
    if (!replayer || !this.size.width) return null;
    const rect = replayer.wrapper.getBoundingClientRect();
    const x = Math.round((event.clientX - rect.left) / this.scale);
    const y = Math.round((event.clientY - rect.top) / this.scale);
    if (x < 0 || y < 0 || x > this.size.width || y > this.size.height) return null;
    return [x, y];
  }

  onToolMove(event: MouseEvent): void {
    const now = this.ports.clock.now();
    const point = this.viewportPoint(event);
    if (this.tool === "laser") {
      if (now - this.lastLaser < LASER_EVERY_MS) return;
      this.lastLaser = now;
      this.sendAnnotation(point ? { k: "laser", x: point[0], y: point[1] } : { k: "laser_off" });
    } else if (this.tool === "draw" && this.stroke && point) {
      // A point is kept once the mouse moved far enough from the last one.
      const last = this.stroke[this.stroke.length - 1];
      if (last && Math.hypot(point[0] - last[0], point[1] - last[1]) < STROKE_STEP_PX) return;
      this.stroke.push(point);
      if (this.stroke.length >= MAX_STROKE_POINTS) {
        this.endStroke();
        this.stroke = [point];
      }
    }
  }

  onToolDown(event: MouseEvent): void {
    if (this.tool !== "draw") return;
    event.preventDefault();
    const point = this.viewportPoint(event);
    this.stroke = point ? [point] : [];
  }

  onToolUp(event: MouseEvent): void {
    if (this.tool !== "draw" || !this.stroke) return;
    const point = this.viewportPoint(event);
    if (point) this.stroke.push(point);
    this.endStroke();
  }

  onToolLeave(): void {
    if (this.tool === "laser") this.sendAnnotation({ k: "laser_off" });
    if (this.tool === "draw") this.endStroke();
  }

  onToolClick(event: MouseEvent): void {
    if (this.tool !== "highlight") return;
    const target = this.target(event);
    if (target?.id != null) this.sendAnnotation({ k: "highlight", id: target.id });
  }

  private endStroke(): void {
    const stroke = this.stroke;
    this.stroke = null;
    if (stroke && stroke.length >= 2) this.sendAnnotation({ k: "draw", points: stroke });
  }

  /** Typing is sent as the whole value, at most every 80 ms (the last value always goes). */
  onTyping(): void {
    // Typed while the view is not live: dropped now, not sent by the timer once it is live again.
    if (!this.mayAct()) return this.notSent();
    if (this.typingPending) return;
    this.typingPending = true;
    this.ports.clock.after(80, () => {
      this.typingPending = false;
      if (this.controlling && this.typingTarget !== null) {
        this.sendCommand({ k: "type", id: this.typingTarget, text: this.ui.typed() });
      }
    });
  }

  /** The customer is on a private page, or (`controls_hidden`) the customer's page keeps
   * Tandem's controls out of the customer's reach: drop the mirror (nothing of it is sent). */
  private pauseMirror(why?: string): void {
    this.dropMirror();
    this.privatePage = true;
    this.tooLarge = false;
    this.pausedText = why === "controls_hidden" ? t("controlsHidden") : t("privatePage");
    this.status(this.pausedText, "");
    this.ui.report({ type: "typing", on: false });
    this.typingTarget = null;
    if (why !== "controls_hidden") this.ui.observe?.("paused"); // a practice's step: a private page
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
    this.budget = null;
    this.snapshots.clear();
    this.snapshotsBehind = false;
    this.cancelRelease?.();
    this.cancelRelease = undefined;
    this.releaseAt = null;
    this.styleBudget.reset(); // of the page dropped; its next starts with a full snapshot
    this.stylesBehind = false;
    this.cancelCatchUp?.();
    this.cancelCatchUp = undefined;
    this.catchUpAt = null;
    if (this.fresh) this.fresh = reduceFreshness(this.fresh, { type: "cleared" }); // no older page shows
    this.ui.mirror.replaceChildren();
    this.ui.mirror.style.height = "";
    this.ui.mirror.style.width = "";
    this.ui.frame(null);
  }

  private startMirror(): void {
    this.privatePage = false;
    if (this.replayer) return;
    this.ui.mirror.replaceChildren();
    const replayer = new Replayer([], {
      root: this.ui.mirror,
      liveMode: true,
      mouseTail: false,
      UNSAFE_replayCanvas: false,
      showWarning: false,
      // The customer's focus moves are not replayed: focusing inside the mirror would take the
      // agent's keyboard (and the workspace's shortcuts) into the iframe.
      triggerFocus: false,
    });
    replayer.iframe.setAttribute("title", "Customer view");
    replayer.iframe.setAttribute("tabindex", "-1"); // the agent acts through the layers, not inside the mirror
    confineMirror(replayer.iframe);
    replayer.on("resize", (dimension) => {
      const { width, height } = dimension as { width: number; height: number };
      this.size = { width, height };
      this.fit();
    });
    // The mirror applies what it is given a frame later (rrweb's timer): the epoch's page is shown
    // once its full snapshot was cast, not when it arrived.
    replayer.on("event-cast", (event) => {
      if (this.replayer === replayer) this.onCast(event as { type?: number });
    });
    replayer.startLive();
    this.replayer = replayer;
    this.budget = new MirrorBudget();
    this.resizeObserver = new ResizeObserver(() => this.fit());
    this.resizeObserver.observe(this.ui.mirror);
  }

  /** Scale the customer's viewport down to fit the room here (width and height), centred and
   * framed as the customer's device. */
  private fit(): void {
    const wrapper = this.replayer?.wrapper;
    if (!wrapper || !this.size.width) return;
    const room = this.ui.room();
    const height = Math.max(MIN_FIT_HEIGHT, room.height - FIT_MARGIN);
    const scale = Math.max(0.1, Math.min(1, room.width / this.size.width, height / this.size.height));
    this.scale = scale;
    wrapper.style.transform = `scale(${scale})`;
    this.ui.mirror.style.width = `${Math.floor(this.size.width * scale)}px`;
    this.ui.mirror.style.height = `${Math.ceil(this.size.height * scale)}px`;
    this.ui.frame(this.device ?? (this.size.width < 600 ? "phone" : "desktop"));
  }

  private onPayload(frame: Uint8Array): void {
    if (__TANDEM_BENCH_PLAINTEXT__) {
      this.replay(frame); // benchmark builds only
      return;
    }
    const receiver = this.receiver;
    if (!receiver) {
      // The customer's confirmation is still being checked (asynchronously) while its first
      // frames (the epoch key) arrive behind it: kept, in order, until the keys are known.
      if (this.pairing && this.early.length < MAX_EARLY_FRAMES) this.early.push(frame);
      return;
    }
    if (this.awaitingEpoch) {
      if (frame[0] === KIND_CONTENT) return; // of the epoch that ran while this console was away
      if (frame[0] === KIND_EPOCH_KEY) this.awaitingEpoch = false;
    }
    this.chain = this.chain
      .then(async () => {
        const plaintext = await receiver.open(frame);
        if (this.held && receiver.epoch > this.held.epoch) {
          this.held.epoch = receiver.epoch; // before any of its content shows: a reload takes only a newer one
          this.keep();
        }
        if (!plaintext || this.ended) return;
        this.replay(await this.unpacking.unpack(plaintext, readU64(frame, 1)));
      })
      .catch((error: unknown) => {
        if (error instanceof ChannelError) {
          if (this.ws.isOpen) this.ws.send(control({ type: "leave" }));
          this.finish(`${t("tampered")} ${t("sessionEnded")}`);
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
    if (payload.k === "echo") return this.onEcho(payload.nonce);
    if (payload.k === "paused") {
      this.pauseMirror(payload.why);
      return;
    }
    // issue 14, item 12 (sdk-hardening): masking failed closed on part of the page.
    if (payload.k === "withheld") return this.status(t("withheld"), "bad");
    if (payload.k === "context") {
      this.device = payload.device;
      this.ui.report({ type: "context", context: { origin: payload.origin, title: payload.title, device: payload.device, viewport: payload.viewport } });
      this.fit();
      return;
    }
    if (payload.k === "annotations") {
      if (this.watching) return;
      if (!payload.on) this.setTool("none");
      this.ui.report({ type: "pointing", on: payload.on });
      this.status(payload.on ? t("toolsOn") : t("toolsOff"), payload.on ? "good" : "bad");
      return;
    }
    if (payload.k === "annotation_refused") {
      if (this.watching) return;
      const words = { masked: t("refusedMasked"), off: t("refusedOff"), too_many: t("refusedTooMany"), gone: t("refusedGone") };
      if (payload.reason === "off") this.ui.report({ type: "pointing", on: false });
      this.status(words[payload.reason], "bad");
      return;
    }
    if (payload.k === "control" && this.watching) {
      this.status(payload.state === "granted" ? t("watchingAgentControls") : t("watchingPlain"), "good");
      return;
    }
    if (payload.k === "action_refused" && this.watching) return;
    if (payload.k === "recording") return this.onCustomerRecording(payload);
    if (payload.k === "recording_start" || payload.k === "recording_end") return; // for the auditors
    if (payload.k === "control") {
      this.askedWith = null;
      // Repeated by the customer's browser in each epoch (pages, reconnections): nothing new.
      if (payload.state === "granted" && this.controlling) return;
      const released = payload.state === "revoked" && this.releasing;
      this.releasing = false;
      this.setControlling(payload.state === "granted");
      this.status(
        payload.state === "granted" ? t("controlGranted")
          : payload.state === "refused" ? t("controlRefused") : released ? t("controlReleased") : t("controlRevoked"),
        payload.state === "granted" || released ? "good" : "bad",
      );
      return;
    }
    if (payload.k === "asset") {
      this.assets.add(payload); // one that breaks a rule is dropped: the mirror shows it missing
      return;
    }
    if (
      payload.k === "action_refused" && payload.code === "refreshed" && payload.of === "control_request" &&
      this.askedWith !== null && payload.proof === this.askedWith && !this.controlling && !this.policyPending
    ) {
      // The control request crossed a new epoch on its way (a supervisor paired as the agent
      // asked): it waits for that epoch's echo and goes with it (settle), unless the view goes
      // stale first. The refusal names it (its kind and proof): a click's, an earlier request's,
      // or one a relay held past the bound (the view went stale meanwhile) is said, not asked again.
      this.askedWith = null;
      this.controlWaiting = true;
      this.status(this.refreshingText(), "", true);
      this.settle();
      return;
    }
    if (payload.k === "action_refused") {
      this.ui.observe?.("action_refused", payload.reason);
      // The console's words for the code: the page's own prose (`reason`) is never shown.
      const known = payload.code && REFUSALS.has(payload.code) ? t(`refuse_${payload.code}`) : t("refuseOther");
      this.status(t("notDone", { reason: known }), "bad");
      this.ui.report({ type: "typing", on: false });
      this.typingTarget = null;
      return;
    }
    if (!this.replayer && !this.tooLarge) {
      this.startMirror(); // back from a private page: a full snapshot follows
      this.connectedStatus();
    }
    for (const raw of payload.events) {
      const event = raw as { timestamp: number; type?: number };
      if (this.tooLarge) {
        // The page went beyond what the mirror holds: nothing shows until its next page.
        if (event.type !== FULL_SNAPSHOT && event.type !== META) continue;
        this.tooLarge = false;
        this.startMirror();
        this.connectedStatus();
      }
      if (!this.replayer || !this.budget) return;
      if (!this.budget.admit(event)) {
        this.dropMirror();
        this.tooLarge = true;
        this.status(t("pageTooLarge"), "bad");
        this.ui.report({ type: "typing", on: false });
        this.typingTarget = null;
        continue;
      }
      // A new page (or snapshot): the field being typed into is gone; no stale box stays open.
      if ((event.type === FULL_SNAPSHOT || event.type === META) && this.typingTarget !== null) {
        this.typingTarget = null;
        this.ui.report({ type: "typing", on: false });
      }
      if (event.type === FULL_SNAPSHOT) this.snapshotEpochs.set(event, this.epochs); // the epoch it came in
      // A full snapshot beyond the allowance waits, and what follows it with it (./budget.ts).
      this.show(this.snapshots.pass(event));
    }
    this.sayHeldSnapshots();
  }

  /** Give the mirror what the snapshot allowance lets through, in order: each event neutralised
   * only now (a held snapshot that a newer one replaced never is: nothing of it is built). */
  private show(events: unknown[]): void {
    const replayer = this.replayer;
    if (!replayer) return;
    for (const raw of events) {
      const event = raw as { timestamp: number; type?: number };
      // Customer and agent clocks differ; live mode would delay events from a clock ahead.
      event.timestamp = this.ports.clock.now();
      neutralizeEvent(event, this.assets, this.styles, this.styleBudget); // issue 14, item 7: the mirror fetches nothing
      replayer.addEvent(event as Parameters<Replayer["addEvent"]>[0]);
    }
    this.sayStylesBehind();
  }

  /** Say whether the mirror's styles are behind the page's (style work held: never silently),
   * and give what was held (its latest values) once a window takes it: they catch up without
   * waiting for the page's next full snapshot (a rule change held waits for it). */
  private sayStylesBehind(): void {
    this.styleBudget.takeHeld();
    const behind = this.styleBudget.behind;
    if (behind !== this.stylesBehind) {
      this.stylesBehind = behind;
      if (behind) this.status(t("stylesTooFast"), "bad");
      else this.connectedStatus();
    }
    const next = this.styleBudget.nextWindow;
    if (next === this.catchUpAt) return;
    this.cancelCatchUp?.();
    this.cancelCatchUp = undefined;
    this.catchUpAt = next;
    if (next === null) return;
    this.cancelCatchUp = this.ports.clock.after(Math.max(0, next - this.ports.clock.now()), () => {
      this.cancelCatchUp = undefined;
      this.catchUpAt = null;
      if (this.ended || !this.replayer) return;
      const deferred = this.styleBudget.takeDeferred();
      if (deferred) this.show([deferred]);
      else this.sayStylesBehind();
    });
  }

  /** Say whether the mirror is behind the page (a full snapshot held), never silently, and show
   * the held one when its time comes. While behind, the view is not live: what the agent aims at
   * would name nodes of a page the mirror does not show yet. */
  private sayHeldSnapshots(): void {
    this.snapshots.takeHeld();
    const due = this.snapshots.due;
    if (due !== this.releaseAt) {
      this.cancelRelease?.();
      this.cancelRelease = undefined;
      this.releaseAt = due;
      if (due !== null) {
        this.cancelRelease = this.ports.clock.after(Math.max(0, due - this.ports.clock.now()), () => {
          this.cancelRelease = undefined;
          this.releaseAt = null;
          if (this.ended || !this.replayer) return;
          this.show(this.snapshots.release());
          this.sayHeldSnapshots();
        });
      }
    }
    const behind = this.snapshots.behind;
    if (behind === this.snapshotsBehind) return;
    this.snapshotsBehind = behind;
    if (behind) {
      if (this.fresh) this.fresh = reduceFreshness(this.fresh, { type: "shown", current: false });
      this.showFreshness();
      this.status(t("snapshotsHeld"), "bad", true);
    } else {
      // Shown: live again once the mirror cast it (onCast) and an echo proves it.
      this.connectedStatus();
    }
  }

  /** The customer's browser confirmed consent (first in each epoch): show the page. */
  private onConsented(): void {
    const first = !this.consented;
    this.consented = true;
    this.epochs++;
    this.watchFreshness();
    if (this.fresh) this.fresh = reduceFreshness(this.fresh, { type: "epoch" });
    // A new epoch on a view proven before: until its echo and its full snapshot are here, nothing
    // that acts goes; the stage is marked as not live, and the agent is told why, at once.
    if (!first) this.showFreshness();
    this.challenge(); // a new page (epoch): its own proof, at once
    if (!first) return;
    if (this.watching) return this.connectedStatus(); // its mirror runs since the pairing
    this.connectedStatus();
    this.ui.report({ type: "consented", at: this.ports.clock.now() });
    this.startMirror();
  }

  /** The server let this console back into its session (`rejoin`): the customer's browser now
   * starts a new epoch, which only the keys of this session's pairing open. */
  private onRejoined(): void {
    this.drop = null;
    this.awaitingEpoch = true;
    this.consented = false; // shown again once the customer's browser says so (first in the epoch)
    // Nothing proven before counts: only an echo of a challenge sent from now on.
    if (this.fresh) this.fresh = startFreshness(this.ports.clock.now());
    this.showFreshness();
    this.dropMirror();
    // The session it asked for (a reloaded console's header starts without one); not the
    // server's word for it.
    this.ui.report({ type: "joined", sessionId: this.sessionId ?? undefined });
    this.status(t("reconnectRejoined"));
  }

  /** Whether the socket's close is a dropped network (retried) rather than the server's end. */
  private retry(code: number): boolean {
    const held = this.held;
    if (!held || !this.joined || this.watching || code === 1000 || code >= 4000) return false;
    const now = this.ports.clock.now();
    const since = this.drop?.since ?? now;
    const attempt = this.drop ? this.drop.attempt + 1 : 0;
    const delay = reconnectDelay(attempt, (this.ports.random(1)[0] ?? 0) / 256);
    if (!withinWindow(since, now, delay, held.windowMs)) {
      this.finish(t("reconnectGaveUp"));
      return true;
    }
    this.drop = { since, attempt };
    this.status(t("reconnectLost"), "bad");
    this.cancelRetry = this.ports.clock.after(delay, () => {
      if (!this.ended) this.ws = this.connect(() => this.sendRejoin());
    });
    return true;
  }

  private onClose(code: number, reason = ""): void {
    if (this.ended) return;
    if (this.retry(code)) return;
    if (this.drop && code === 4404) {
      this.finish(t("reconnectGone"));
      return;
    }
    // A close the server forced (a revoked sign-in, a changed role, a timeout) is said in the
    // console's own words for its code; the relay's close reason only chooses among them (the
    // honest server's fixed reasons, src/generated/protocol.ts), never adds to one: a lying relay
    // can at most make one refusal read as another.
    if (code === 4401) {
      this.finish("");
      this.ui.sessionExpired(t("closedSignedOut"));
      return;
    }
    if (code === 4403) {
      this.finish(t(reason === CLOSE_REASON_ROLE_CHANGED ? "closedRole" : reason === CLOSE_REASON_TEAMS_CHANGED ? "closedTeams" : "closedForbidden"));
      return;
    }
    if (code === 4408) {
      this.finish(t("closedTimeout"));
      return;
    }
    if (code === 4429) {
      this.finish(t(reason.startsWith(CLOSE_REASON_TOO_MANY_CODES) ? "tooManyCodes" : "closedTooMany"));
      return;
    }
    if (this.joined) this.finish(t("sessionEnded"), "");
    else this.finish(t("disconnected"));
  }

  /** End of the session: destroy the mirror and drop every reference to the page. */
  private finish(text: string, tone: Tone = "bad"): void {
    if (this.ended) return;
    this.ended = true;
    this.dropMirror();
    this.assets.dispose();
    this.decoder?.reset();
    this.decoder = null;
    this.receiver?.close();
    this.receiver = null;
    this.early = [];
    this.commands = null;
    this.controlWaiting = false;
    this.askedWith = null;
    this.controlLapsed = false;
    this.setControlling(false);
    this.cancelRecordingCheck?.();
    this.cancelFreshness?.();
    this.cancelRetry?.();
    // This tab's keys, and the database only once no other console tab holds it; a document
    // that does not hold the keys' lock (a duplicate) forgets only its copy of the record.
    if (this.held && !this.watching) {
      if (this.owner) void this.ports.held?.forget(this.held.keyHandle); // and lets go of their lock
      else {
        this.ports.held?.save(null);
        this.ports.held?.release(this.held.keyHandle); // a request still waiting: withdrawn
      }
    }
    this.held = null;
    this.pairing = null;
    this.secret = null;
    this.ws.close(1000, "done");
    this.pendingShare = null;
    this.ui.clearCode();
    this.ui.report({ type: "ended", text, tone });
    this.ui.closed(this);
  }
}

