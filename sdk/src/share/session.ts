/**
 * The customer session: the shell around the lifecycle reducer (state.ts). It feeds the reducer
 * the server's lifecycle messages, the customer's answers and the socket's fate, runs the effects
 * it returns through the injected ports (ports.ts), and owns the sharing machinery the reducer
 * only starts and stops: the recorder with its masking, the encrypted channel, the supervisor's
 * pairing, recording and remote control.
 *
 * Privacy and security, in the order they happen:
 * - The help code is a routing part (from the server) plus a secret part made here, which never
 *   leaves this browser except as the customer reads it aloud.
 * - When an agent joins, both browsers pair (../shared/e2e/pairing.ts) with the secret part; the
 *   consent dialog appears only once the agent has proved it knows the code. A mismatch ends the
 *   session.
 * - Nothing about the page is recorded before "Allow"; every value is masked here
 *   (../shared/masking.ts: the call sites are marked MASKING), then compressed, then encrypted
 *   (../shared/e2e/channel.ts).
 *
 * Nothing here runs on import: index.ts makes the session with the browser's ports.
 */

import { record } from "rrweb";
import { CommandReceiver, ContentSender, importChainKey, KIND_FROM_WATCHER, type PairwiseKeys } from "../shared/e2e/channel.ts";
import { SECRET_DIGITS, WATCHER_SUFFIX, fromBase64Url, toBase64Url } from "../shared/e2e/encoding.ts";
import { type Pairing, startPairing } from "../shared/e2e/pairing.ts";
import {
  forgetSessionSecrets, hasBlockedShapes, hiddenFromAgent, inMaskedRegion, maskedRegionElements, maskFormState, onMarkedLate, onMaskingFailure,
  recordMaskingOptions, scrubEvent, usePolicy,
} from "../shared/masking.ts";
import { mergePolicies, pageIsPrivate, type Policy, PolicyError, validatePolicy } from "../shared/policy.ts";
import {
  ACTING_COMMANDS, ACTION_PROOF_MS, ALONE_FROM_BYTES, type ControlPayload, encodePayload, PackStream, packAlone, parseChallengeCommand, type Payload,
  type RecordingOffReason,
} from "../shared/payload.ts";
import { FULL_SNAPSHOT, INCREMENTAL_SNAPSHOT, INPUT, META, MOUSE_INTERACTION, SELECTION } from "../shared/rrweb-events.ts";
import { AssetCarrier, pageImages, unshownImages } from "./assets.ts";
import { srcsetUrls } from "../shared/assets.ts";
import { FramePrivacyWatch, withoutPrivateFrames } from "./frames.ts";
import { HiddenRegionEvents } from "./hidden-events.ts";
import { asElement, attributeOf } from "../shared/dom.ts";
import { RecordingError, checkPin, validatePins } from "../shared/e2e/recording.ts";
import { type OutgoingMessage, control, parseServerMessage, type ServerMessage } from "../shared/protocol.ts";
import { BrandError, type BrandOptions, validateBrand } from "./brand.ts";
import { RemoteControl } from "./control.ts";
import { Bucket } from "./bucket.ts";
import { HiddenOutlines } from "./outlines.ts";
import { Annotations, forgetAnnotationChoice } from "./annotations.ts";
import { watchContext } from "./context.ts";
import { pageLocale } from "../shared/i18n.ts";
import { reportWithheld } from "./withheld.ts";
import { LOOK_EVERY_MS, type Silence, heard, look, silentFor, startSilence } from "./silence.ts";
import type { Connection, Ports } from "./ports.ts";
import { type BannerNote, RECORD_QUESTION, WATCH_QUESTION } from "./ui.ts";
import {
  type AgentAsk, CONFIRM_WINDOW_MS, RecordingAsk, type RecordingState, type ServerAsk, recordingCommand, unitePins,
} from "./recording.ts";
import {
  type Effect, INVALID_POLICY, type PageSays, type Phase, type Saved, type SessionEvent, type SessionState, helpCode,
  initialState, isLive, leftTooLongAgo, pagePolicies, plausibleName, reduce,
} from "./state.ts";
import { plainLine } from "../shared/names.ts";

/**
 * How `Tandem.start()` rejects when a session ends before it started: `message` is the SDK's own
 * words, in English (for the site's own handling; show your own words to customers, see
 * docs/branding.md); `serverWords` is what the help server said (its close reason, the part of
 * its privacy rules refused) as one plain line, or null: text of the server's choosing, for the
 * site's developers and logs only, never to show a customer (a relay could write a phone number
 * to call there).
 */
export class TandemSessionError extends Error {
  override name = "TandemSessionError";
  constructor(message: string, readonly serverWords: string | null) {
    super(message);
  }
}

declare const __TANDEM_BENCH_PLAINTEXT__: boolean;

/** How long page changes may wait to travel together in one frame (issue 17). */
export const BATCH_MS = 100;

/** How long Stop sharing (or Stop recording) waits at most for the recording's end marker to be
 * sealed and sent before the session (the recording) ends without it. Sealing is this browser's
 * own work (a frame being compressed when the customer clicked, then two small ones): nothing the
 * relay does holds it back, and nothing of the page is shared meanwhile. */
export const END_MARKER_MS = 2000;

/** rrweb event types and incremental sources that go at once: a full snapshot or new page, and
 * what the customer does: mouse interactions, input, selection. */
const URGENT_TYPES: ReadonlySet<number> = new Set([FULL_SNAPSHOT, META]);
const URGENT_SOURCES: ReadonlySet<number> = new Set([MOUSE_INTERACTION, INPUT, SELECTION]);

export function isUrgent(event: unknown): boolean {
  const e = event as { type?: number; data?: { source?: number } } | null;
  if (!e || typeof e !== "object") return true;
  if (URGENT_TYPES.has(e.type ?? -1)) return true;
  return e.type === INCREMENTAL_SNAPSHOT && URGENT_SOURCES.has(e.data?.source ?? -1);
}

/** Each viewer's console (the agent's, a watching supervisor's) may have this many challenges a
 * second answered (its freshness check asks every few seconds; more are not answered, so no
 * viewer can make this page send without bound, nor use up another viewer's answers). */
export const ECHOES_PER_SECOND = 4;

/** How many of the agent's echoed nonces are kept for acting commands to name (ACTION_PROOF_MS
 * of them at ECHOES_PER_SECOND, and then some). */
const MAX_ECHOED_KEPT = 64;

/** How many replies (refusals, the customer's control decision) are kept between two epochs to be
 * said in the next (the agent's console sends little while it is not live: a control request, a
 * click or two). */
const MAX_HELD_REFUSALS = 8;

/** Whether a command would act on the page (../shared/payload.ts, ACTING_COMMANDS). */
function actsOnPage(command: unknown): boolean {
  const k = typeof command === "object" && command !== null ? (command as { k?: unknown }).k : undefined;
  return typeof k === "string" && ACTING_COMMANDS.has(k);
}

/** Who asks whether its view is fresh: each has its own command channel and its own allowance. */
type Viewer = "agent" | "watcher";

/** The server's word that the agent's console is back (`peer` connected) starts a new epoch, a
 * full snapshot of the page: at most one such every PEER_REKEY_MS, the next waiting for its turn
 * (one, however many came), so a relay that repeats it cannot keep the customer's page taking
 * full snapshots (a large page's takes a few hundred milliseconds of its main thread). An honest
 * console that comes back twice within it waits that long for its view. */
export const PEER_REKEY_MS = 2000;

/** Stop recording while this much is waiting in the socket; resume with a fresh snapshot. */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

/** Looks (every 300 ms) the customer must have been able to reach Stop sharing for before sharing
 * goes on after the page kept it away again: 1 the first time, doubled at each pause since
 * sharing last stayed within reach for STEADY_LOOKS, at most this many (about 10 s). Each time
 * sharing goes on it sends a full snapshot: a page that takes the controls away at every other
 * look (a flicker) had the customer's tab snapshot the whole page, and send it, every 600 ms. */
const MAX_RESUME_LOOKS = 32;
const STEADY_LOOKS = 100;

/** How long the page's changes may wait for the cover watch to find Stop sharing shown (ui.ts,
 * askShown(): a report comes a frame or two after it is asked, later on a busy device, which
 * draws its frames late) before they are dropped, the page to go afresh (one full snapshot) once
 * Stop sharing is found shown: the longer of this and LATE_ANSWERS times the watch's last answer
 * took. Nothing goes unseen meanwhile, and a page changing at every frame that the browser does
 * not draw (an embedding frame kept off screen) holds no more than that much of its changes. */
export const SHOWN_WAIT_MS = 1000;
const LATE_ANSWERS = 4;

/** How long a cover watch may leave a question unanswered before sharing pauses as for a cover:
 * one that never answers cannot tell the customer sees Stop sharing. A watch that is only slow is
 * no cover: sharing paused after one second unanswered had a busy phone (and a loaded 2-core
 * test machine) pause, take a snapshot on resuming, wait over a second for it to be drawn, and
 * pause again, never live (tests/e2e/test_widget_slow_watch.py). */
export const SILENT_WATCH_MS = 5000;

/** How many of the page's changes may wait for the cover watch (as SHOWN_WAIT_MS, past them they
 * are dropped and the page goes afresh): a burst within the wait. */
export const MAX_HELD_EVENTS = 2000;

/** How often (ms) the session looks at the page: its address (a private page), its frames, and
 * whether Stop sharing is within reach (lookAtReach). Changes held for the cover watch are kept at
 * most SHOWN_WAIT_MS + PAGE_LOOK_MS while it never answered (then they are dropped; sharing pauses
 * after SILENT_WATCH_MS): what bounds what a page changing at every frame makes the SDK hold
 * (tests/e2e/test_widget_realm_pages.py). */
export const PAGE_LOOK_MS = 300;

/** How long without a page look (the session's timers stopped by the page) before the browser's
 * own timer makes one (startPageWatch()). */
const LOOKS_MISSED_MS = 1000;

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
  /** The site's name, logo, colours and corner radius on the widget (./brand.ts, docs/branding.md). */
  brand?: BrandOptions;
  /** The widget's language ("de", "fr-CA"...); else the page's `<html lang>`, else the browser's. */
  locale?: string;
  /** Only on the Tandem server's own practice pages (docs/training.md): the agent's practice
   * ticket, which makes this a practice session. */
  practice?: string;
}

/** A frame to send: to pack into the epoch's stream when its turn comes, or a large one
 * already being deflated on its own (packAlone), its raw bytes kept for the plaintext
 * benchmark build. */
type Outgoing = Uint8Array | { raw: Uint8Array; packed: Promise<Uint8Array> };

/** One payload's frames (encodePayload), its large ones set deflating now, ahead of their turn
 * to be sent: those of ALONE_FROM_BYTES and more, and every part of a payload split in parts
 * (its last part too: it would otherwise wait for the others to be sent, then for pako). */
function prepack(frames: Uint8Array[]): Outgoing[] {
  return frames.map((frame) => {
    if (__TANDEM_BENCH_PLAINTEXT__ || (frame.length < ALONE_FROM_BYTES && frames.length === 1)) return frame;
    const packed = packAlone(frame);
    packed.catch(() => undefined); // a failure is seen where it is awaited (seal), if it still is
    return { raw: frame, packed };
  });
}

/** The page's own `<script type="application/json" id="tandem-policy">`, parsed (undefined
 * without one). Throws PolicyError. */
function parseTag(text: string | null): unknown {
  if (text === null) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new PolicyError("policy: the #tandem-policy script is not valid JSON");
  }
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** The page's own policy: the tag without its recording pins. Throws PolicyError. */
function tagPolicy(tag: unknown): Policy | null {
  if (tag === undefined) return null;
  if (!isRecord(tag)) return validatePolicy(tag);
  const { recording_keys: _pins, ...policy } = tag;
  return validatePolicy(policy);
}

/** The recording keys the page's own tag pins (`recording_keys`). Throws PolicyError or
 * RecordingError. Only the site's page can pin: policies from the server never carry pins
 * (validatePolicy refuses the field). */
function tagPins(tag: unknown): string[] {
  return isRecord(tag) ? validatePins(tag.recording_keys) : [];
}

/** The page's node for a recorded node id (masking needs its attributes and ancestors; it reads
 * them through the DOM's prototypes, ../shared/dom.ts). */
function liveNode(id: number): Node | null {
  return record.mirror.getNode(id);
}

/** Lifecycle messages go to the reducer; the rest belong to the sharing machinery. */
const LIFECYCLE = new Set<ServerMessage["type"]>(["created", "resumed", "team_policy", "agent_joined", "ended", "link"]);

export class Session {
  private machine: SessionState = initialState;
  private ws: Connection | null = null;
  /** start()'s promise, until the code is known or the start failed. */
  private starting: { promise: Promise<string>; resolve(code: string): void; reject(error: Error): void } | null = null;
  /** The page is being left (navigation): keep the saved session for the next page. */
  unloading = false;

  /** The page is being left (pagehide): what the next page needs goes to the tab's record first
   * (the agent's console's silence so far), then this page does nothing more with the session. */
  leave(): void {
    this.keepSilence();
    const saved = this.saved;
    if (saved && !this.unloading) {
      saved.leftAt = this.ports.clock.now(); // the next page resumes only within the window
      this.persist();
    }
    this.unloading = true;
  }
  private readonly ui: Ports["ui"];
  /** The agent's or a supervisor's pairing in progress (one at a time), and the supervisor's name. */
  private pairing: Pairing | null = null;
  private watchPairing: Pairing | null = null;
  private watchAsker: string | null = null;
  private keys: PairwiseKeys | null = null;
  private watcherKeys: PairwiseKeys | null = null;
  /** The handle this page's keys are (or are being) stored under, from its own pairing or its
   * tab's record: what the session's end deletes (another tab's keys stay). */
  private keyHandle: string | null = null;
  private commands: CommandReceiver | null = null;
  /** A watching supervisor's commands (its challenges only), under its own pairwise key. */
  private watcherCommands: CommandReceiver | null = null;
  private control: RemoteControl | null = null;
  /** issue 15: the agent's pointer and drawings (annotations.ts) and the page's context (context.ts). */
  private annotations: Annotations | null = null;
  private cancelContext: (() => void) | undefined;
  private sender: ContentSender | null = null;
  private stopRecording: (() => void) | undefined;
  /** What rrweb records about hidden content beside its nodes (./hidden-events.ts), for the
   * running recorder. */
  private hiddenEvents = new HiddenRegionEvents(liveNode);
  /** Same-origin frames the running recorder sent with content, which may turn private in
   * place (./frames.ts). */
  private frameWatch: FramePrivacyWatch | null = null;
  private pending: unknown[] = [];
  /** Changes that waited for their batch, now waiting for the cover watch to find Stop sharing
   * shown at a frame drawn after them (ui.confirmsShown(); docs/threat-model.md, "The page can
   * cover its widget"): `held` for the next question, `asked` for the one asked (askShown).
   * `afresh`: changes were dropped under a cover, the page goes afresh (a full
   * snapshot) once Stop sharing shows. */
  private held: unknown[] = [];
  private asked: unknown[] | null = null;
  /** When the question asked was asked, and how long the watch's last answer took. */
  private askedAt = 0;
  /** The same, on the browser's own clock (ui.watchTime(); null where it cannot be read): the
   * session's clock is the page's `Date.now`, which a page stopped (or a page's fake timers
   * froze), and a question left unanswered never paused sharing (SILENT_WATCH_MS). */
  private askedOnWatch: number | null = null;
  private answerTook = 0;
  private afresh = false;
  /** The held changes (the very array) after which the waiting echo goes (echo()). */
  private echoAfter: unknown[] | null = null;
  private flushQueued = false;
  /** A batch is waiting for its window (BATCH_MS) to close; cancels that wait. */
  private cancelBatch: (() => void) | undefined;
  /** Each epoch's compression stream, by its sender: a frame of an epoch that has ended
   * (carried assets wait in the outbox) never restarts the stream of the current one. */
  private packing = new WeakMap<ContentSender, PackStream>();
  private backlogged = false;
  /** A batch of changes was too large to send: the agent's view lacks it until a full snapshot
   * goes (no echo meanwhile). */
  private unsent = false;
  private cancelBacklog: (() => void) | undefined;
  /** Sends leave in call order: packing and encryption are asynchronous. */
  private sendChain: Promise<void> = Promise.resolve();
  /** Payloads in call order, events after the page assets they use (./assets.ts). */
  private outbox: Promise<void> = Promise.resolve();
  /** issue 14, item 7: same-origin images, fonts and stylesheets, inside the encrypted channel. */
  private readonly assets = new AssetCarrier(
    () => this.ports.page.href(),
    (id) => inMaskedRegion(liveNode(id)), // MASKING: nothing masked or hidden is fetched
    (id, name) => {
      const el = asElement(liveNode(id));
      const value = el ? attributeOf(el, name) : null;
      const resolve = (url: string) => {
        try {
          return new URL(url, document.baseURI).href; // as rrweb records it
        } catch {
          return url;
        }
      };
      if (value === null) return null;
      return name === "srcset" ? srcsetUrls(value).map(resolve).join("\n") : resolve(value);
    },
    () => this.effectivePolicy().media.images,
    undefined,
    undefined,
    // MASKING: a stylesheet's image no shown element shows (masked content may) is not fetched either
    (urls) => unshownImages(document, this.ports.page.href(), urls, () => maskedRegionElements(document),
      (el) => inMaskedRegion(el)),
  );
  /** While sharing: the page's address is watched (single-page apps change it without loading). */
  private cancelPageWatch: (() => void) | undefined;
  /** The page looks, as the browser's own timer sees them (startPageWatch()). */
  private pageLooks = 0;
  private cancelLookWatch: (() => void) | undefined;
  private watchedHref = "";
  private cancelOverlay: (() => void) | undefined;
  private paused = false;
  /** Why nothing of the page goes while `paused`: a private page, or the customer cannot reach
   * Tandem's controls (ui.reachable(); docs/threat-model.md, "The page can cover its widget"). */
  private pausedFor: "private_page" | "controls_hidden" | null = null;
  /** Pauses for the controls since sharing last stayed within reach for STEADY_LOOKS, the looks
   * since within reach (paused: towards going on; sharing: towards steady). MAX_RESUME_LOOKS. */
  private hiddenPauses = 0;
  private reachableLooks = 0;
  /** The audit trail was told (`controls_hidden`) that sharing paused for the controls, and not
   * yet (`controls_shown`) that it went on: each change told once (reportControls). */
  private toldHidden = false;
  /** The server says the agent's console is away (reloading, reconnecting). */
  private agentAway = false;
  /** Whether the agent's console still answers (./silence.ts): its challenges, while sharing
   * over an open socket, looked at every LOOK_EVERY_MS; and the customer is being told it does
   * not (AGENT_QUIET_MS). */
  private silence: Silence | null = null;
  private cancelSilence: (() => void) | undefined;
  private agentQuiet = false;
  /** When the last epoch the server's `peer` asked for started, and the next one waiting. */
  private lastPeerRekey = -Infinity;
  private cancelPeerRekey: (() => void) | undefined;
  /** The server's and the agent's requests to record, paired. */
  private readonly recordAsk = new RecordingAsk(
    (server, agent) => this.askRecording(server, agent),
    (server) => this.refuseRecording(server.keyId, "unconfirmed"),
  );
  /** Until when the server's `record_request` may take up the question the customer had not
   * answered on the page before (`Saved.recordAsk`): CONFIRM_WINDOW_MS from the server's
   * `resumed`, once (an honest server asks again at once). Later, the agent must ask again. */
  private carriedAskUntil = -Infinity;
  /** Shows the recording question the customer has not answered: a redraw of the banner shows
   * it again instead (one as sharing starts on the next page took it away unanswered). */
  private recordQuestion: (() => void) | null = null;
  /** The end marker is on its way (the recording is being closed): settles once it went, or
   * could not go. */
  private endingRecording: Promise<void> | null = null;
  /** The recorded epoch being closed by its end marker: nothing more of the page goes in it,
   * only its frames already sealed (each one's counter taken: the epoch stays whole) and the
   * marker, on the socket it began on, also once the session has ended here. */
  private closingEpoch: { ws: Connection; sender: ContentSender } | null = null;
  /** The server's words when it closed the socket: for the site's developers (start()'s
   * rejection's `serverWords`), never shown to the customer. */
  private closeReason = "";
  /** Why recording must end as soon as a recorded epoch runs (it ended between two epochs). */
  private pendingEnd: RecordingOffReason | null = null;
  /** Each viewer's latest challenge not answered yet (the epoch is starting, or events were
   * dropped for a slow network), and how many of each viewer's are answered a second. */
  private pendingEchoes = new Map<Viewer, string>();
  /** Replies the agent's console waits for (refusals of its actions, the customer's control
   * decisions) that could not go in their epoch: decided while the next epoch's key is being made
   * (no sender: a supervisor paired, the console came back), or queued in an epoch that ended
   * before they were sealed. Said first in the next epoch, after its `consented`, never dropped
   * unsaid (the console asks a refused control request again; a control taken back unsaid left
   * the console showing the agent in control). */
  private heldReplies: ControlPayload[] = [];
  /** The customer's latest control decision: one dropped with its epoch, or held, after a later
   * one was taken is never said again (a `granted` dropped and then said after the customer's
   * `revoked` showed the agent in control the customer had taken back). */
  private latestControl: ControlPayload | null = null;
  /** The agent's nonces echoed lately: when, and in which epoch (its sender). An acting command
   * is taken only when it names one of these of the current epoch, echoed less than
   * ACTION_PROOF_MS ago (../shared/payload.ts, ACTING_COMMANDS). */
  private echoedToAgent = new Map<string, { at: number; sender: ContentSender }>();
  private readonly echoes: Record<Viewer, Bucket> = {
    agent: new Bucket(ECHOES_PER_SECOND, () => this.ports.clock.now()),
    watcher: new Bucket(ECHOES_PER_SECOND, () => this.ports.clock.now()),
  };

  constructor(private readonly ports: Ports) {
    this.ui = ports.ui;
    this.ui.whenOutOfReach(() => this.onOutOfReach());
    this.ui.whenCoverReported({ shown: () => this.onShown(), covered: () => this.onCovered() });
  }

  get state(): Phase {
    return this.machine.phase;
  }

  get code(): string | null {
    return helpCode(this.machine);
  }

  /** The session record (kept in this tab), once the server confirmed the session. */
  private get saved(): Saved | null {
    return "saved" in this.machine ? this.machine.saved : null;
  }

  /** `saved`'s session's record as it is now, or null if that session is over. */
  private current(saved: Saved): Saved | null {
    const now = this.saved;
    return now && now.sessionId === saved.sessionId && this.state !== "ended" ? now : null;
  }

  /** This page's pins; a broken tag pins nothing (and recording is then refused). */
  private pagePins(): string[] {
    try {
      return tagPins(parseTag(this.ports.page.policyTag()));
    } catch {
      return [];
    }
  }

  private persist(): void {
    this.ports.store.save(this.saved);
  }

  private dispatch(event: SessionEvent): void {
    const { state, effects } = reduce(this.machine, event);
    this.machine = state;
    for (const effect of effects) this.run(effect);
  }

  private run(effect: Effect): void {
    switch (effect.type) {
      case "connect":
        return this.connect(effect.message);
      case "send":
        return this.send(effect.message);
      case "persist":
        return this.persist();
      case "show_code":
        return this.ui.showCode(effect.code, () => void this.stop());
      case "ready":
        this.starting?.resolve(effect.code);
        return;
      case "pair":
        return void this.pair();
      case "ask_consent":
        return this.ui.askConsent(effect.agent, () => this.dispatch({ type: "answer", granted: true }),
          () => this.dispatch({ type: "answer", granted: false }));
      case "begin_sharing":
        return void this.beginSharing();
      case "reconnect": {
        this.pauseRecording();
        const saved = this.saved;
        this.ports.clock.after(effect.delay, () => {
          if (saved && this.current(saved) && !this.unloading) this.resume(this.current(saved) ?? saved);
        });
        return;
      }
      case "show_link":
        return this.drawBanner();
      case "show_reconnecting":
        this.pauseRecording();
        return this.ui.showReconnecting(() => void this.stop());
      case "stop_offline":
        return this.stopOffline(effect.sessionId, effect.resumeToken);
      case "end":
        return this.end(effect.error);
    }
  }

  /** Stopped while the socket was down: a fresh socket takes the session up and stops it at
   * once, so the agent is not left waiting out the resume window. Nothing it hears is used. */
  private stopOffline(sessionId: string, resumeToken: string): void {
    const ws: Connection = this.ports.transport({
      open: () => {
        ws.send(control({ type: "resume", session_id: sessionId, resume_token: resumeToken }));
        ws.send(control({ type: "stop" }));
        ws.close(1000, "stopped");
      },
      text: () => undefined,
      binary: () => undefined,
      close: () => undefined,
    });
    this.ports.clock.after(5000, () => ws.close(1000, "stopped")); // no answer: give up quietly
  }

  /**
   * Start a session; resolves to the code the customer reads out. While a session runs (Get help
   * pressed again), it shows that session (its code, question or banner, focused) and never
   * starts a second one: it resolves to its code, or to "" once the code is used.
   */
  start(options: StartOptions = {}): Promise<string> {
    if (this.state !== "ended" && this.state !== "idle") {
      this.ui.focusCurrent();
      return this.starting?.promise ?? Promise.resolve(this.code ?? "");
    }
    if (this.starting) return this.starting.promise;
    let page: PageSays;
    try {
      if (options.locale !== undefined && typeof options.locale !== "string") throw new BrandError("locale must be a string");
      this.ui.configure(validateBrand(options.brand, this.ports.page.href()), options.locale ?? null);
      const tag = parseTag(this.ports.page.policyTag());
      const sitePolicy = options.policy !== undefined ? validatePolicy(options.policy) : tagPolicy(tag);
      page = { sitePolicy, brokenPolicy: false, pins: unitePins(validatePins(options.recordingKeys), tagPins(tag)) };
    } catch (error) {
      const known = error instanceof PolicyError || error instanceof RecordingError || error instanceof BrandError;
      const message = known ? `Tandem: ${(error as Error).message}` : "Tandem: invalid policy";
      this.ui.showError(message, () => this.ui.remove());
      return Promise.reject(new Error(message));
    }
    if (options.token !== undefined && typeof options.token !== "string") {
      return Promise.reject(new Error("Tandem: token must be a string"));
    }
    let resolve!: (code: string) => void;
    let reject!: (error: Error) => void;
    const promise = new Promise<string>((yes, no) => {
      resolve = yes;
      reject = no;
    });
    const done = () => {
      this.starting = null;
    };
    promise.then(done, done);
    this.starting = { promise, resolve, reject };
    const message = {
      type: "create" as const,
      ...(options.token ? { token: options.token } : {}),
      ...(typeof options.practice === "string" && options.practice ? { practice: options.practice } : {}),
    };
    this.dispatch({ type: "create", page, message });
    return promise;
  }

  /** Go on with a session this tab stored (a new page, or after the network dropped); not one
   * whose page was left longer ago than its resume window (leftTooLongAgo): that record and this
   * tab's keys are deleted instead, and the page starts with no session. */
  resume(saved: Saved): void {
    if (leftTooLongAgo(saved, this.ports.clock.now())) return this.forgetLeft(saved);
    delete saved.leftAt;
    let sitePolicy: Policy | null = null;
    let brokenPolicy = false;
    try {
      sitePolicy = tagPolicy(parseTag(this.ports.page.policyTag())) ?? saved.sitePolicy;
    } catch {
      brokenPolicy = true; // refused when sharing starts: a page with a broken policy does not share
    }
    const pins = unitePins(saved.recordingPins, this.pagePins());
    // This tab's keys wait in the key store: no other page clears it now, nor deletes them (a
    // duplicate of this tab, with the same record, holds the same handle).
    this.ports.keys.hold(saved.keyHandle);
    this.keyHandle = saved.keyHandle ?? this.keyHandle;
    this.dispatch({ type: "resume", saved, page: { sitePolicy, brokenPolicy, pins } });
  }

  /** A record left too long ago: deleted with this tab's keys (another tab's stay, as at an end),
   * and the key store once no other page holds it; nothing is sent. */
  private forgetLeft(saved: Saved): void {
    this.ports.store.save(null);
    forgetAnnotationChoice();
    this.ui.remove();
    const handle = saved.keyHandle;
    void this.ports.keys.forget(handle ? [handle, handle + WATCHER_SUFFIX] : [], handle);
  }

  /**
   * A page with no session of its own starts: delete the key store the origin's tabs share,
   * unless another page still needs it. Keys left there by a tab closed without "Stop sharing"
   * (or a crash) go; they were never usable by another session anyway (pair()).
   */
  clearStaleKeys(): Promise<void> {
    return this.ports.keys.clearUnused();
  }

  private send(message: OutgoingMessage): void {
    this.ws?.send(control(message));
  }

  private connect(first: OutgoingMessage): void {
    this.ws?.close(1000, "replaced");
    // A question asked on the socket before this one is not shown again: the server asks anew
    // if it still asks (a process that took the session over after a restart does not).
    this.recordQuestion = null;
    const ws: Connection = this.ports.transport({
      open: () => ws.send(control(first)),
      text: (data) => {
        if (this.ws !== ws) return;
        const message = parseServerMessage(data);
        if (!message) return;
        if (message.type === "resumed") this.carriedAskUntil = this.ports.clock.now() + CONFIRM_WINDOW_MS;
        if (LIFECYCLE.has(message.type)) {
          // Fresh digits for a `created`: the secret part is made here, never by the server.
          const secret = message.type === "created" ? this.ports.random.digits(SECRET_DIGITS) : "";
          this.dispatch({ type: "server", message, secret });
        } else {
          this.handle(message);
        }
      },
      binary: (data) => {
        if (this.ws !== ws) return;
        if (data[0] === KIND_FROM_WATCHER) void this.onWatcherCommand(data);
        else void this.onCommand(data);
      },
      close: (code, reason) => {
        if (this.ws !== ws || this.unloading) return;
        this.closeReason = reason;
        const jitter = (this.ports.random.bytes(1)[0] ?? 0) / 256;
        this.dispatch({ type: "closed", code, reason, now: this.ports.clock.now(), jitter });
      },
    });
    this.ws = ws;
  }

  /** The sharing machinery's messages (the reducer takes the lifecycle's). */
  private handle(message: ServerMessage): void {
    switch (message.type) {
      case "handshake":
        void this.onHandshake(message.data);
        break;
      case "watch_request":
        // A name the honest server never sends is the relay's text: not shown in this page's own
        // UI, and nothing is asked (no supervisor of the honest server's is waiting for it).
        if (plausibleName(message.watcher)) this.askWatch(message.watcher);
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
      case "peer":
        // The agent's console reloads or lost its network (the server keeps the session for
        // it), or it is back: a new epoch gives it the content key and a full snapshot. Only
        // the agent holding the pairing key can open it (issue 13, fault 6).
        this.agentAway = !message.connected;
        if (message.connected) this.rekeyForPeer();
        this.drawBanner();
        break;
      default:
        break;
    }
  }

  /** The site's policy tightened by the organisation's and the agent's teams'. */
  private effectivePolicy(): Policy {
    const [site, ...others] = pagePolicies(this.machine);
    return others.reduce<Policy>((merged, next) => mergePolicies(merged, next), site ?? validatePolicy({ version: 1 }));
  }

  private isPrivatePage(): boolean {
    return pageIsPrivate(new URL(this.ports.page.href()), pagePolicies(this.machine));
  }

  /** Find the pairing key (after a navigation) or pair with the agent; then the reducer asks. */
  private async pair(): Promise<void> {
    const saved = this.saved;
    if (!saved) return;
    // Stored keys only where this tab's own record says it paired (secret gone, their handle
    // kept): a session that answered `created` always runs SPAKE2, whatever id the server gave.
    if (saved.secret === null) {
      this.keys ??= saved.keyHandle ? await this.ports.keys.load(saved.keyHandle) : null;
      if (!this.current(saved)) return;
      return this.dispatch(this.keys ? { type: "paired", keyHandle: null } : { type: "mismatch" });
    }
    if (this.pairing) return;
    this.ui.showBusy("Checking the code with the agent…", () => void this.stop());
    this.pairing = startPairing({
      side: "customer", peer: "agent", secret: saved.secret, sessionId: saved.sessionId, random: this.ports.random.bytes,
    });
    this.send({ type: "handshake", data: this.pairing.opening ?? "" });
  }

  /** The agent's share and confirmation: check it, confirm back, keep the key. */
  private async onHandshake(data: string): Promise<void> {
    const pairing = this.pairing;
    const saved = this.saved;
    this.pairing = null;
    if (!pairing || !saved) return this.dispatch({ type: "mismatch" });
    const step = await pairing.receive(data);
    if (step.kind !== "paired" || !this.current(saved)) return this.dispatch({ type: "mismatch" });
    this.keys = step.keys;
    // Under a handle of this tab's own, never the server's session id: no later session (in
    // this tab or another) can be made to find these keys by naming this one.
    const keyHandle = toBase64Url(this.ports.random.bytes(16));
    this.ports.keys.hold(keyHandle); // no page that starts now deletes them
    this.keyHandle = keyHandle;
    await this.ports.keys.save(keyHandle, step.keys);
    if (step.data) this.send({ type: "handshake", data: step.data });
    this.dispatch({ type: "paired", keyHandle }); // forgets the secret part: the key replaces it
  }

  /** A supervisor asks to watch: the customer decides; if allowed, pair with a fresh code the
   * customer reads out (the server never learns it), then share under a new key for both. */
  private askWatch(watcher: string): void {
    const saved = this.saved;
    if (this.state !== "sharing" || !saved) return;
    this.ui.askWatch(
      watcher,
      () => {
        this.send({ type: "watch_consent", granted: true });
        const secret = this.ports.random.digits(SECRET_DIGITS);
        this.watchAsker = watcher;
        this.watchPairing = startPairing({
          side: "customer", peer: "watcher", secret, sessionId: saved.sessionId, random: this.ports.random.bytes,
        });
        this.send({ type: "watch_handshake", data: this.watchPairing.opening ?? "" });
        this.ui.showWatchCode(watcher, secret, () => this.watchMismatch());
      },
      () => {
        this.send({ type: "watch_consent", granted: false });
        this.drawBanner();
      },
    );
  }

  private async onWatchHandshake(data: string): Promise<void> {
    const pairing = this.watchPairing;
    const saved = this.saved;
    this.watchPairing = null;
    if (!pairing || !saved) return this.watchMismatch();
    const step = await pairing.receive(data);
    if (step.kind !== "paired" || !this.current(saved)) return this.watchMismatch();
    this.watcherKeys = step.keys;
    this.watcherCommands = null; // a new supervisor's channel: counted from its start
    if (saved.keyHandle) await this.ports.keys.save(saved.keyHandle + WATCHER_SUFFIX, step.keys);
    const now = this.current(saved);
    if (!now) return;
    now.watcher = this.watchAsker;
    now.watcherCommands = 0;
    this.persist();
    if (step.data) this.send({ type: "watch_handshake", data: step.data });
    this.rekey();
  }

  private watchMismatch(): void {
    this.watchPairing = null;
    this.watchAsker = null;
    this.send({ type: "watch_abort" });
    this.drawBanner();
  }

  /** The supervisor left: forget its key and share under a new key it does not have. */
  private async dropWatcher(): Promise<void> {
    const saved = this.saved;
    this.watchPairing = null;
    this.watchAsker = null;
    this.watcherKeys = null;
    this.watcherCommands = null;
    this.pendingEchoes.delete("watcher");
    if (!saved) return;
    const had = Boolean(saved.watcher);
    saved.watcher = null;
    saved.watcherCommands = 0;
    this.persist();
    if (saved.keyHandle) await this.ports.keys.delete(saved.keyHandle + WATCHER_SUFFIX);
    if (had) this.rekey();
    else this.drawBanner(WATCH_QUESTION); // the question it asked, if open, goes with it
  }

  /** The server relays a request to record. It goes to the customer only if the site pinned its
   * key and the agent asked too (inside the encrypted channel); else it is refused, no dialog. */
  private async onRecordRequest(message: { agent: string; key: string; recording_id: string; site: string }): Promise<void> {
    const saved = this.saved;
    if (this.state !== "sharing" || !saved || saved.recording) return;
    const { keyId, pinned } = await checkPin(String(message.key), unitePins(saved.recordingPins, this.pagePins()));
    if (this.saved !== saved || this.state !== "sharing") return;
    if (!pinned || typeof message.recording_id !== "string" || typeof message.site !== "string") {
      this.refuseRecording(keyId, "not_pinned");
      return;
    }
    const ask: ServerAsk = { agent: message.agent, key: message.key, keyId: keyId ?? "", recordingId: message.recording_id, site: message.site };
    const confirmed = saved.recordAsk;
    const carried = this.ports.clock.now() <= this.carriedAskUntil;
    this.carriedAskUntil = -Infinity; // once: a relay cannot replay the question later
    if (confirmed && carried && confirmed.recordingId === ask.recordingId) {
      this.askRecording(ask, confirmed.agent); // asked on the page before this one
      return;
    }
    this.recordAsk.fromServer(ask);
  }

  /** Refuse to record (no dialog) and tell the agent why, inside the encrypted channel. */
  private refuseRecording(keyId: string | null, reason: RecordingOffReason): void {
    this.send({ type: "record_consent", granted: false });
    this.sendPayload({ k: "recording", on: false, key_id: keyId, reason });
  }

  /** Both the server and the agent asked: the customer decides. */
  private askRecording(ask: ServerAsk, agent: AgentAsk): void {
    const saved = this.saved;
    if (this.state !== "sharing" || !saved || saved.recording) return;
    saved.recordAsk = { recordingId: ask.recordingId, agent };
    this.persist();
    const site = new URL(this.ports.page.href()).hostname;
    // The agent the customer allowed (the server's name, fixed when it joined: state.ts), never
    // the name inside the agent's own request: a modified console would pose as someone the
    // customer has more reason to let record ("your bank's fraud office").
    const asker = saved.agent ?? agent.name;
    this.recordQuestion = () => this.ui.askRecording(
      asker,
      site,
      () => {
        this.recordQuestion = null;
        if (this.saved !== saved || this.state !== "sharing" || saved.recording) return this.drawBanner();
        this.send({ type: "record_consent", granted: true });
        saved.recordAsk = null;
        saved.recording = {
          key: ask.key, keyId: ask.keyId, recordingId: ask.recordingId, agent: agent.agent, site: ask.site,
          chain: null, started: false, chainKey: toBase64Url(this.ports.random.bytes(32)),
        };
        this.persist();
        this.rekey(); // from now on each content key is also wrapped for the recording key
        this.drawBanner();
      },
      () => {
        this.recordQuestion = null;
        if (this.saved !== saved) return this.drawBanner();
        saved.recordAsk = null;
        this.persist();
        this.refuseRecording(ask.keyId, "declined");
        this.drawBanner();
      },
    );
    this.recordQuestion();
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
   * End the recording on purpose, at once: from the call on nothing more of the page goes into
   * the recorded epoch (its recorder stops, what waited to be sent is dropped), and the banner
   * no longer says recording. Its end marker (the agent told, then `recording_end`) is sealed
   * ahead of anything still waiting (a batch waiting for its page assets, ASSET_WAIT_MS): the
   * recording's last frame. Then `record_stop` (unless the whole session stops: `final`, see
   * stop()), and sharing goes on in a new epoch under a key the recording does not have.
   */
  private endRecording(reason: RecordingOffReason, final = false): Promise<void> {
    const saved = this.saved;
    const recording = saved?.recording;
    if (!saved || !recording) {
      // A question withdrawn (or stopped before it was answered) is gone for good: a relay that
      // replays its `record_request` later gets no dialog without the agent asking again.
      this.recordAsk.reset();
      this.recordQuestion = null;
      if (saved?.recordAsk) {
        saved.recordAsk = null;
        this.persist();
      }
      this.drawBanner(RECORD_QUESTION); // also closes a recording question the server withdrew
      return this.endingRecording ?? Promise.resolve();
    }
    const ws = this.ws;
    const sender = this.sender;
    const running = ws !== null && sender !== null && this.recordedEpochRuns(recording, sender);
    if (!running && this.state === "sharing" && !this.sender && !final) {
      this.pendingEnd = reason; // a recorded epoch is starting: end it there
      return Promise.resolve();
    }
    // Not recording any more, from now on (also in storage: the next page does not record).
    saved.recording = null;
    this.pendingEnd = null;
    this.persist();
    if (running && !final) {
      // The recorded epoch ends here: what the page does from now on waits for the next epoch.
      this.stopRecording?.();
      this.stopRecording = undefined;
      this.dropUnsent();
      this.sender = null;
    }
    const marker = running ? this.sendEndMarker(ws, sender, recording, reason) : Promise.resolve();
    this.drawBanner();
    if (final) return marker;
    const ending = marker.then(() => {
      if (this.ws === ws && this.saved === saved) this.send({ type: "record_stop" });
      if (this.endingRecording === ending) this.endingRecording = null;
      this.rekey(); // a new epoch, not wrapped for the recording key
    });
    this.endingRecording = ending;
    return ending;
  }

  /** Whether `sender`'s epoch is the recording's newest link (its key frames went out). */
  private recordedEpochRuns(recording: RecordingState, sender: ContentSender): boolean {
    return sender.recorded && recording.chain?.epoch === sender.epoch;
  }

  /** Seal the recording's end marker into `sender`'s epoch now, as its last frames, ahead of
   * what waits in the outbox (then dropped). Settles once it went, could not go, or after
   * END_MARKER_MS (sealing is this browser's own work: the relay cannot hold it back). */
  private sendEndMarker(ws: Connection, sender: ContentSender, recording: RecordingState, reason: RecordingOffReason): Promise<void> {
    this.closingEpoch = { ws, sender };
    const at = this.ports.clock.now();
    for (const payload of [
      { k: "recording", on: false, key_id: recording.keyId, reason },
      { k: "recording_end", recording_id: recording.recordingId, reason, at },
    ] satisfies Payload[]) {
      this.seal(prepack(encodePayload(payload)), ws, sender, undefined, true);
    }
    const sealed = this.sendChain;
    return new Promise<void>((resolve) => {
      const cancel = this.ports.clock.after(END_MARKER_MS, resolve);
      void sealed.then(() => {
        cancel();
        resolve();
      });
    }).then(() => {
      if (this.closingEpoch?.sender === sender) this.closingEpoch = null;
    });
  }

  /** The key frames of a recorded epoch went out: it is the chain's newest link. The first one
   * starts with `recording_start`, binding what the recording is. */
  private recordedEpochBegan(sender: ContentSender): void {
    const saved = this.saved;
    const recording = saved?.recording;
    if (!saved || !recording || !this.ws?.isOpen) return;
    recording.chain = { epoch: sender.epoch, count: 0 };
    this.persist();
    if (!recording.started) {
      // Sealed now, not through the outbox (where a batch of an earlier epoch may wait for its
      // page assets): nothing of this epoch is before them, and an end marker sealed at once
      // (endRecording) comes after them.
      const ws = this.ws;
      const start: Payload = {
        k: "recording_start", recording_id: recording.recordingId, session_id: saved.sessionId, agent: recording.agent,
        site: recording.site, origin: new URL(this.ports.page.href()).origin, at: this.ports.clock.now(), chain: recording.chainKey,
      };
      this.seal(prepack(encodePayload(start)), ws, sender, () => {
        recording.started = true;
      });
      this.seal(prepack(encodePayload({ k: "recording", on: true, key_id: recording.keyId })), ws, sender);
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
    this.persist();
  }

  /** A new epoch for the agent's console that is back (the server's word), at most one every
   * PEER_REKEY_MS: one asked for sooner waits for its turn, and those asked meanwhile join it. */
  private rekeyForPeer(): void {
    if (this.cancelPeerRekey) return;
    const go = () => {
      this.cancelPeerRekey = undefined;
      this.lastPeerRekey = this.ports.clock.now();
      this.rekey();
    };
    const wait = this.lastPeerRekey + PEER_REKEY_MS - this.ports.clock.now();
    if (wait <= 0) go();
    else this.cancelPeerRekey = this.ports.clock.after(wait, go);
  }

  /** Start a new epoch (new content key, fresh full snapshot) for the current recipients. */
  private rekey(): void {
    if (this.state !== "sharing") return;
    this.stopRecording?.();
    this.stopRecording = undefined;
    this.dropUnsent();
    this.sender = null;
    void this.beginSharing();
  }

  /** A fresh content key for this page (epoch), sent to the agent first, then record. */
  private async beginSharing(): Promise<void> {
    const saved = this.saved;
    if (!saved) return;
    // The banner at once (not over a question: a new epoch comes when the relay says the agent's
    // console is back, as often as every PEER_REKEY_MS; drawBanner below draws it once it may).
    if (!this.ui.asking()) this.ui.showSharing(saved.agent ?? "the agent", () => void this.stop());
    if (this.stopRecording) return;
    // This tab's own keys only (see pair()); a record without their handle never paired here.
    this.keys ??= saved.keyHandle && saved.secret === null ? await this.ports.keys.load(saved.keyHandle) : null;
    if (!this.keys) return this.dispatch({ type: "mismatch" });
    saved.epoch += 1;
    this.persist();
    if (saved.watcher && saved.keyHandle) this.watcherKeys ??= await this.ports.keys.load(saved.keyHandle + WATCHER_SUFFIX);
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
    if (this.machine.phase === "sharing" && this.machine.brokenPolicy) {
      void this.stop();
      return;
    }
    this.sender = sender;
    this.watchSilence();
    for (const frame of sender.epochKeyFrames) this.ws?.send(frame);
    // A recording's first frame is its recording_start (recorded epochs only), then as in every epoch:
    if (sender.recorded) this.recordedEpochBegan(sender);
    if (this.sender !== sender) return; // it ended there at once (pendingEnd): the next epoch shares
    // First in every epoch, inside the encrypted channel: the agent's console shows nothing
    // until the customer's own browser says the customer allowed it.
    this.sendPayload({ k: "consented" });
    for (const reply of this.heldReplies.splice(0)) this.sendReply(reply);
    // One receiver for the keys' life in this page (a new epoch keeps it: a command opened while
    // it began is counted); a new page goes on after the count its record kept with their handle.
    this.commands ??= new CommandReceiver(saved.sessionId, this.keys.agentToCustomer, saved.commands ?? 0);
    // The supervisor's challenges likewise (its own key and kind: it commands nothing else).
    if (saved.watcher && this.watcherKeys) {
      this.watcherCommands ??= new CommandReceiver(
        saved.sessionId, this.watcherKeys.agentToCustomer, saved.watcherCommands ?? 0, KIND_FROM_WATCHER,
      );
    }
    // One for the page's session: a new epoch keeps it, with a control question it asked (still
    // on screen, and answered for this page, whatever epoch it shares in by then).
    this.control ??= new RemoteControl(this.ui, {
      agent: () => this.saved?.agent ?? "The agent",
      reply: (payload) => {
        if (payload.k === "control") this.latestControl = payload;
        this.sendReply(payload);
        // For the audit trail: the decision's name only (the server cannot see the payload).
        if (payload.k === "control") this.send({ type: "report", event: `control_${payload.state}` });
      },
      changed: () => {
        if (this.saved) {
          this.saved.control = this.control?.granted ?? false;
          this.persist();
        }
        this.drawBanner();
      },
      isPrivate: (url) => pageIsPrivate(url, pagePolicies(this.machine)),
    }, saved.control ?? false);
    // Control the customer granted stays granted across pages and reconnections; a console that
    // reloaded or came back after a server restart does not know it: say so in every epoch
    // (inside the encrypted channel, after consent; the console ignores it when it knows).
    if (this.control.granted) this.sendPayload({ k: "control", state: "granted" });
    this.annotations?.dispose();
    this.annotations = new Annotations({
      agent: () => this.saved?.agent ?? "The agent",
      reply: (payload) => this.sendPayload(payload),
      node: (id) => record.mirror.getNode(id),
      locale: pageLocale(),
    });
    this.drawBanner();
    usePolicy(this.effectivePolicy()); // MASKING: the policy every value is masked with
    this.watchedHref = this.ports.page.href();
    this.startPageWatch();
    if (this.isPrivatePage()) this.pause("private_page");
    else if (this.ui.reachable() === false) this.pause("controls_hidden");
    else this.record(); // its full snapshot is recorded now, and goes before the echo below
    this.echo(); // a challenge that came while this epoch started is answered in it
  }

  /** A viewer's console (the agent's, or a watching supervisor's) asks whether its view is this
   * page now (docs/threat-model.md, "The agent's view is fresh"): its nonce goes back inside this
   * epoch's content, which only those who hold the epoch's key read. At most ECHOES_PER_SECOND
   * of each viewer's are answered; the console asks again. */
  private onChallenge(viewer: Viewer, nonce: string): void {
    if (!this.echoes[viewer].take()) return;
    this.pendingEchoes.set(viewer, nonce);
    this.echo();
  }

  /** Send the waiting echo in the current epoch, after every change recorded so far (the
   * console then knows its view is this page as of now). Not between epochs (the next one
   * answers it), and not while changes are being dropped for a slow network (the fresh
   * snapshot that follows does). Nothing but the agent's own nonce is sent. */
  private echo(): void {
    if (this.pendingEchoes.size === 0 || !this.sender || this.state !== "sharing") return;
    this.flush(); // what waited for its batch goes first
    if (this.backlogged || this.unsent) return;
    // Changes held for the cover watch go first: the echo goes right after the last of those
    // held now (onShown), not after all that a page changing at every frame holds later.
    if (this.held.length || this.asked !== null) {
      this.echoAfter = this.held.length ? this.held : this.asked;
      return;
    }
    this.sendEchoes();
  }

  private sendEchoes(): void {
    if (!this.sender || this.state !== "sharing") return;
    const nonces = [...this.pendingEchoes];
    this.pendingEchoes.clear();
    const sender = this.sender;
    for (const [viewer, nonce] of nonces) {
      if (viewer === "agent") {
        if (sender) this.echoedToAgent.set(nonce, { at: this.ports.clock.now(), sender });
        // The newest few (a challenge every few seconds, a few answered a second at most).
        for (const old of this.echoedToAgent.keys()) {
          if (this.echoedToAgent.size <= MAX_ECHOED_KEPT) break;
          this.echoedToAgent.delete(old);
        }
      }
      this.sendPayload({ k: "echo", nonce });
    }
  }

  /** Watch the agent's console's challenges while sharing (./silence.ts), from the start of
   * sharing: sharing began, or came back (a new page, the socket back) with the silence the tab's
   * record kept, so neither a forced resume nor a new page starts it afresh. */
  private watchSilence(): void {
    if (this.cancelSilence) return;
    this.silence = startSilence(this.ports.clock.now(), this.saved?.agentSilentMs);
    this.cancelSilence = this.ports.clock.every(LOOK_EVERY_MS, () => this.lookAtSilence());
  }

  /** Stop watching (the socket dropped, the session ends): the silence so far is kept in the
   * tab's record for when sharing comes back; the time until then is not counted. */
  private stopWatchingSilence(): void {
    this.keepSilence();
    this.cancelSilence?.();
    this.cancelSilence = undefined;
    this.silence = null;
    this.agentQuiet = false;
  }

  /** The silence as of now into the tab's record (also for the session's next page). */
  private keepSilence(): void {
    // Not from a page going away (or kept in the back/forward cache: its session is stale once a
    // new one resumes the record on return), which would write an older record over the next's.
    if (!this.silence || !this.saved || this.unloading) return;
    this.saved.agentSilentMs = silentFor(this.silence, this.ports.clock.now());
    this.persist();
  }

  /** A challenge from the agent's console opened in its current channel; `proof` names the newest
   * echo the console had (undefined: an older console's), heard as of when this page sent it. */
  private heardAgent(proof: string | null | undefined): void {
    if (!this.silence) return;
    const echoedAt = proof === undefined ? undefined : proof === null ? null : this.echoedToAgent.get(proof)?.at ?? null;
    this.silence = heard(this.silence, this.ports.clock.now(), echoedAt);
    this.keepSilence();
    if (this.agentQuiet) {
      this.agentQuiet = false;
      this.drawBanner();
    }
  }

  private lookAtSilence(): void {
    // A page going away watches nothing: the next page (or the session a return from the
    // back/forward cache makes) goes on with the silence.
    if (!this.silence || this.state !== "sharing" || this.unloading) return;
    const { state, verdict } = look(this.silence, this.ports.clock.now());
    this.silence = state;
    this.keepSilence(); // a new page goes on from here (at most a look's worth is not counted)
    if (verdict.kind === "silent") return void this.endSilent();
    const quiet = verdict.kind === "quiet";
    if (quiet === this.agentQuiet) return;
    this.agentQuiet = quiet;
    this.drawBanner();
  }

  /** The agent's console stopped answering: end as Stop sharing does (a recording ends whole),
   * with its own reason; the server is told too (an honest one ends the session for all). */
  private async endSilent(): Promise<void> {
    this.stopWatchingSilence();
    await this.finish({ type: "agent_silent" }, () => undefined);
  }

  /** Show the banner (or the recording question the customer has not answered), unless a
   * question shows: `withdrawn`, the question that is taken away (the server withdrew it). */
  private drawBanner(withdrawn: string | null = null): void {
    if (this.state !== "sharing") return;
    // A question on screen stays as it is until it is answered: the relay's `peer` and `link`
    // call for redraws as often as it likes, and each one took the question away (the agent's
    // control question, a supervisor's: never to come back) or drew it anew (the recording
    // question: none of its buttons ever took a click, and "Allow" never ended its wait).
    const open = this.ui.asking();
    if (open && open !== withdrawn) return;
    // The recording question comes back once what took its place is answered.
    if (this.recordQuestion) return this.recordQuestion();
    const watcher = this.saved?.watcher;
    const agent = this.saved?.agent ?? "the agent";
    const revoke = this.control?.granted ? () => this.control?.revoke() : undefined;
    const stopRecording = this.saved?.recording ? () => this.stopRecordingSession() : undefined;
    // The server's word on connections: a note beside the banner, never in its place.
    const name = this.saved?.agent ?? "the agent";
    // This browser's own finding (./silence.ts) before the server's word.
    const note: BannerNote | null = this.agentQuiet ? { kind: "agent_quiet", agent: name }
      : this.agentAway ? { kind: "agent_away", agent: name }
      : isLive(this.machine) && this.machine.linkDown === true ? { kind: "link_down", agent: name } : null;
    const paused = this.pausedFor === "controls_hidden" ? "controls_hidden" : this.paused;
    this.ui.showSharing(agent, () => void this.stop(), paused, revoke, stopRecording, note, watcher ?? undefined);
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
      this.persist();
    }
    const recording = recordingCommand(command);
    if (recording) return this.onRecordingCommand(recording);
    const challenge = parseChallengeCommand(command);
    if (challenge) {
      // Opened under the agent's key, its count past every earlier one: not a replay. Dated by
      // its proof, also while this page holds its echoes back (a slow network, a change too
      // large to send): a relay can bring that about (it stops reading the socket), and the
      // session is not live then either.
      this.heardAgent(challenge.proof);
      return this.onChallenge("agent", challenge.nonce); // also on a private page: "paused" is news too
    }
    if (this.paused) return;
    // Held back by the relay past the bound, or aimed at a page (epoch) this one replaced: not
    // taken (the console's view it was sent from is not this page now).
    if (actsOnPage(command) && !this.provenLately(command)) {
      // Said for what the agent did on purpose; pointing and drawing are dropped quietly. One
      // sent from this page's previous epoch (a supervisor paired, the console came back: the
      // same page, its nodes numbered afresh) crossed the new key on its way: said as such, so
      // the agent tries again on the new snapshot. One proven in this epoch, but past the bound
      // (the relay or the network held it), is said to be late: the page was not gone, and the
      // agent may try again on what the view shows now. Either way nothing of it is applied.
      // Each refusal says what it refuses (the command's kind, and the proof it named when that is
      // an echo this page sent): the console asks a control request again only on the refusal of
      // its own, never on a click's or an earlier request's (which it could not tell apart).
      const k = (command as { k?: unknown }).k;
      if (k === "click" || k === "type" || k === "scroll" || k === "control_request") {
        const proof = this.echoNamed(command) ? { proof: (command as { proof: string }).proof } : {};
        const refusal: ControlPayload = this.provenInEarlierEpoch(command)
          ? { k: "action_refused", reason: "The customer's page was refreshed before that arrived: try again in a moment.", code: "refreshed", of: k, ...proof }
          : this.provenInThisEpoch(command)
            ? { k: "action_refused", reason: "That arrived too late to be sure the page was still as the agent saw it.", code: "late", of: k, ...proof }
            : { k: "action_refused", reason: "That part of the page is gone.", code: "gone", of: k };
        this.sendReply(refusal);
      }
      return;
    }
    if (this.annotations?.handle(command)) return;
    this.control.handle(command);
  }

  /** Say a reply the agent's console waits for in this epoch; between two epochs (the next one's
   * key is being made), or if this epoch ends before it is sealed (it is dropped with the
   * epoch's unsent frames: a new full snapshot repairs the view, but not a reply), in the next. */
  private sendReply(reply: ControlPayload): void {
    if (this.superseded(reply)) return;
    const ws = this.ws;
    const sender = this.sender;
    if (!ws || !sender) return this.holdReply(reply);
    this.sendPayload(reply, undefined, () => {
      if (this.state !== "sharing") return; // ended: nothing more is said
      // The next epoch began meanwhile (its `consented` went first): in it; else kept for it.
      if (this.sender && this.sender !== sender && this.ws?.isOpen) this.sendReply(reply);
      else this.holdReply(reply);
    });
  }

  /** Whether `reply` is a control decision the customer has taken another since (that one says
   * the state: said in its place, never after it). */
  private superseded(reply: ControlPayload): boolean {
    return reply.k === "control" && reply !== this.latestControl;
  }

  /** Keep a reply for the next epoch, at most MAX_HELD_REFUSALS: the customer's control decision
   * (the latest only: it says the state) and a control request's refusal (which the console asks
   * again) each take the place of the oldest refusal of a click, typing or scroll when they fill
   * the list (those the console only says). */
  private holdReply(reply: ControlPayload): void {
    if (this.superseded(reply)) return;
    const held = this.heldReplies;
    if (reply.k === "control") {
      const earlier = held.findIndex((kept) => kept.k === "control");
      if (earlier >= 0) held.splice(earlier, 1);
    }
    if (held.length >= MAX_HELD_REFUSALS) {
      const kept = (one: ControlPayload) => one.k === "control" || one.of === "control_request";
      const aimed = kept(reply) ? held.findIndex((one) => !kept(one)) : -1;
      if (aimed < 0) return;
      held.splice(aimed, 1);
    }
    held.push(reply);
  }

  /** Whether an acting command names an echo of the agent's challenge sent in this epoch less
   * than ACTION_PROOF_MS ago: the agent's view was this page then, and the command is not older
   * than that by more than the bound. */
  private provenLately(command: unknown): boolean {
    const echoed = this.echoNamed(command);
    return echoed !== undefined && echoed.sender === this.sender && this.ports.clock.now() - echoed.at <= ACTION_PROOF_MS;
  }

  /** Whether an acting command names an echo of the agent's challenge sent in an earlier epoch
   * of this page: only the words of its refusal depend on it (it is refused all the same). */
  private provenInEarlierEpoch(command: unknown): boolean {
    const echoed = this.echoNamed(command);
    return echoed !== undefined && echoed.sender !== this.sender;
  }

  /** Whether an acting command names an echo of the agent's challenge sent in this epoch (for a
   * refused one: only past the bound), which only the words of its refusal depend on. */
  private provenInThisEpoch(command: unknown): boolean {
    return this.echoNamed(command)?.sender === this.sender;
  }

  /** The echo a command names as its proof (when and in which epoch it was sent), if any. */
  private echoNamed(command: unknown) {
    const proof = (command as { proof?: unknown }).proof;
    return typeof proof === "string" ? this.echoedToAgent.get(proof) : undefined;
  }

  /** An encrypted command from the watching supervisor: only a challenge counts (a supervisor
   * never controls, points or records); replays and anything under another key are refused. */
  private async onWatcherCommand(bytes: Uint8Array): Promise<void> {
    const receiver = this.watcherCommands;
    if (!receiver || this.state !== "sharing") return;
    let command: unknown;
    try {
      command = JSON.parse(new TextDecoder().decode(await receiver.open(bytes)));
    } catch {
      return; // forged, replayed or garbled: ignored (it could only come from the relay)
    }
    if (this.watcherCommands !== receiver) return; // the supervisor left meanwhile
    if (this.saved) {
      this.saved.watcherCommands = receiver.last;
      this.persist();
    }
    const challenge = parseChallengeCommand(command);
    if (challenge) this.onChallenge("watcher", challenge.nonce);
  }

  /** A private page: tell the agent, record nothing until the customer is on a shared page.
   * Only the customer's own navigation pauses or resumes: the policies are those of the
   * customer's Allow (state.ts), so the server cannot ask whether a rule of its choosing
   * matches this page and read the answer in these reports or in the frames stopping. */
  private pause(why: "private_page" | "controls_hidden"): void {
    this.stopRecording?.();
    this.stopRecording = undefined;
    this.dropUnsent();
    this.paused = true;
    this.pausedFor = why;
    if (why === "controls_hidden") this.hiddenPauses++;
    if (why === "private_page") {
      this.sendPayload({ k: "paused" });
      this.send({ type: "report", event: "page_paused" }); // no address: only that it paused
    } else {
      // The agent's console says so in its own words, sealed; the audit trail that it paused
      // for the controls (a name only: nothing of the page, nor what covered it).
      this.sendPayload({ k: "paused", why });
      this.reportControls(true);
    }
    this.ui.point(null);
    this.annotations?.clear();
    this.cancelContext?.();
    this.cancelContext = undefined;
    this.drawBanner();
  }

  /** The page's looks (onPageChange), every PAGE_LOOK_MS on the session's clock; and, on the
   * browser's own timer (ui.everyOnBrowsersTimer()), a look wherever none came for LOOKS_MISSED_MS:
   * a page that replaced or stopped its timers (`window.setInterval`, fake timers) before sharing
   * began had no look ever run, and a question of the cover watch left unanswered (its wrapper
   * passing on no report of Stop sharing covered) never paused sharing (SILENT_WATCH_MS). */
  private startPageWatch(): void {
    this.stopPageWatch();
    this.cancelPageWatch = this.ports.clock.every(PAGE_LOOK_MS, () => this.onPageChange());
    let seen = this.pageLooks;
    const cancel = this.ui.everyOnBrowsersTimer(LOOKS_MISSED_MS, () => {
      if (this.pageLooks === seen) this.onPageChange();
      seen = this.pageLooks;
    });
    this.cancelLookWatch = typeof cancel === "function" ? cancel : undefined;
  }

  private stopPageWatch(): void {
    this.cancelPageWatch?.();
    this.cancelPageWatch = undefined;
    this.cancelLookWatch?.();
    this.cancelLookWatch = undefined;
  }

  private onPageChange(): void {
    this.pageLooks++;
    this.checkFrames();
    this.lookAtReach();
    const href = this.ports.page.href();
    if (href === this.watchedHref || this.state !== "sharing") return;
    this.watchedHref = href;
    const isPrivate = this.isPrivatePage();
    if (isPrivate && this.pausedFor !== "private_page") this.pause("private_page");
    if (!isPrivate && this.pausedFor === "private_page") {
      this.send({ type: "report", event: "page_resumed" });
      this.resumeSharing();
    }
  }

  /** Sharing goes on (a shared page, the controls reachable again), from a full snapshot; or
   * pauses for the controls, when the customer cannot reach them now. */
  private resumeSharing(): void {
    this.paused = false;
    this.pausedFor = null;
    if (this.ui.reachable() === false) return this.pause("controls_hidden");
    this.drawBanner();
    this.record(); // starts with a full snapshot of the shared page
  }

  /** Promise 3, the customer can stop at any moment: while the page keeps Tandem's Stop sharing
   * from the customer (ui.reachable() put the widget back where it could), nothing of the page
   * goes and the agent's commands are not taken; it goes on once the customer can reach it. */
  private lookAtReach(): void {
    if (this.state !== "sharing" || !this.sender || this.pausedFor === "private_page") return;
    // Changes held for the cover watch: sent if it stopped watching (the tab hidden); else they
    // wait for its answer, dropped past SHOWN_WAIT_MS (or as long as its answers take: the page
    // goes afresh once it answers), and sharing pauses past SILENT_WATCH_MS without one.
    if (this.asked !== null && !this.ui.confirmsShown()) this.flush();
    const waited = this.asked === null ? 0 : this.waitedForAnswer();
    if (waited > Math.max(SHOWN_WAIT_MS, LATE_ANSWERS * this.answerTook)) this.dropHeld();
    if (this.ui.reachable() === false || waited > SILENT_WATCH_MS) {
      this.reachableLooks = 0;
      if (!this.paused) this.pause("controls_hidden");
      return;
    }
    this.reachableLooks++;
    if (this.pausedFor === "controls_hidden") {
      // Going on again at once the first time; later, only once reachable for longer.
      const wait = Math.min(2 ** Math.max(this.hiddenPauses - 1, 0), MAX_RESUME_LOOKS);
      if (this.reachableLooks >= wait) {
        this.reachableLooks = 0;
        this.resumeSharing();
      }
    } else if (!this.paused && this.reachableLooks >= STEADY_LOOKS) {
      this.hiddenPauses = 0;
    }
  }

  /** The widget found itself out of the customer's reach as the page changed (a fullscreen
   * `<video>`, a page taking it away at each put-back): paused at once, not up to 300 ms of the
   * page later at the next look (lookAtReach, which also goes on once it is back). */
  private onOutOfReach(): void {
    this.reachableLooks = 0;
    if (this.state !== "sharing" || !this.sender || this.paused) return;
    this.pause("controls_hidden");
  }

  /** Keep the customer's outlines of hidden fields in place while sharing (scroll, layout). */
  private showOverlay(): void {
    // MASKING: what the agent cannot see, outlined for the customer (searched at a bounded cost,
    // boxes measured at every tick: ./outlines.ts)
    const outlines = new HiddenOutlines(() => hiddenFromAgent(document));
    const draw = () => {
      if (this.state !== "sharing" || this.paused) {
        outlines.reset(); // back to sharing: searched afresh at once
        return this.ui.setOverlay(null);
      }
      this.ui.setOverlay(outlines.current().map((el) => el.getBoundingClientRect()));
    };
    draw();
    this.cancelOverlay?.();
    this.cancelOverlay = this.ports.clock.every(250, draw);
  }

  /** Tell the audit trail that sharing paused because the customer could not see or reach Stop
   * sharing (`hidden`), or went on once they could; only at a change. */
  private reportControls(hidden: boolean): void {
    if (hidden === this.toldHidden) return;
    this.toldHidden = hidden;
    this.send({ type: "report", event: hidden ? "controls_hidden" : "controls_shown" });
  }

  private record(): void {
    if (this.stopRecording) return;
    this.reportControls(false); // sharing (again) with Stop sharing within reach
    this.showOverlay();
    // issue 14, item 12: masking that failed closed is reported to both sides (./withheld.ts).
    const withheld = reportWithheld(this.ui, (payload) => this.sendPayload(payload));
    onMaskingFailure(withheld);
    // A mask or hide mark the page added to what was already sent: the page afresh, under it
    // (../shared/masking.ts, onMarkedLate); once for the marks of one task, and not from inside
    // rrweb's emit, where the mark was seen.
    let afresh = false;
    onMarkedLate(() => {
      if (afresh) return;
      afresh = true;
      queueMicrotask(() => {
        afresh = false;
        if (this.stopRecording && !this.paused && this.state === "sharing") record.takeFullSnapshot(true);
      });
    });
    this.assets.restart(); // a full snapshot follows: its assets go (again) before it
    this.hiddenEvents = new HiddenRegionEvents(liveNode);
    this.frameWatch = new FramePrivacyWatch(
      liveNode, document, (url) => pageIsPrivate(url, pagePolicies(this.machine)),
      // Not from inside rrweb's emit, where checks run: once it returned.
      () => queueMicrotask(() => this.recordAfresh()),
      () => this.ports.clock.now(),
    );
    // MASKING: images in masked or hidden regions are not even fetched
    if (this.effectivePolicy().media.images) this.assets.prefetch(pageImages(document, inMaskedRegion));
    this.stopRecording = record({
      errorHandler: () => {
        withheld();
        return false; // not swallowed: the page sees its errors as before
      },
      emit: (event) => this.enqueue(event),
      ...recordMaskingOptions(), // MASKING: rrweb's own masking and blocking
      sampling: { mousemove: 50, scroll: 100 },
      recordCanvas: false,
      collectFonts: false,
      inlineImages: false,
      recordCrossOriginIframes: false,
    });
    // rrweb could not snapshot this page at all (it logs why), or a form was blocked for its shape.
    if (!this.stopRecording || hasBlockedShapes(document)) withheld();
    this.cancelContext?.(); // issue 15: the agent's workspace header, from shared pages only
    this.cancelContext = watchContext((payload) => this.sendPayload(payload), (ms, run) => this.ports.clock.every(ms, run));
  }

  private enqueue(event: unknown): void {
    // Paused: nothing recorded goes, whenever the recorder emits it. rrweb emits some events a
    // task after what made them (an input's value set by the page's script, through its hooked
    // setter's setTimeout), after its stop: the value set in the task that took Stop sharing out
    // of reach went after the pause, and the agent's console took the page for live again.
    if (this.backlogged || this.paused) return;
    // A single-page app moved onto a private page: nothing recorded since goes. The page watch
    // would pause only on its next tick, after what the app drew there went; pause now, once
    // rrweb's emit returned.
    if (this.ports.page.href() !== this.watchedHref && this.isPrivatePage()) {
      queueMicrotask(() => this.onPageChange());
      return;
    }
    // Now, while rrweb's mirror still maps ids to the live elements.
    // Now, while rrweb's mirror still maps ids to the live elements. Null: masking could not
    // walk the event, which is then dropped (never sent raw) and reported.
    // Same-origin frames are recorded with the page: none that shows a private page (./frames.ts).
    this.checkFrames();
    const shown = withoutPrivateFrames(event, liveNode, document, (url) => pageIsPrivate(url, pagePolicies(this.machine)));
    if (shown === null) return;
    // MASKING: style sheets, pointer, clicks, keys and scrolling of hidden content are not told
    for (const told of this.hiddenEvents.filter(shown)) this.queue(told);
  }

  /** A frame sent with content whose page turned private in place is emptied in the mirror now,
   * before anything else goes (./frames.ts). */
  private checkFrames(): void {
    if (!this.stopRecording || this.paused || !this.frameWatch) return;
    for (const emptied of this.frameWatch.check()) this.queue(emptied);
  }

  /** Record again from a full snapshot (a frame shown again, ./frames.ts), if recording. */
  private recordAfresh(): void {
    if (!this.stopRecording || this.paused || this.state !== "sharing") return;
    this.stopRecording();
    this.stopRecording = undefined;
    this.record();
  }

  private queue(event: unknown): void {
    const masked = maskFormState(event, liveNode); // MASKING: values, as they are recorded
    if (masked === null) return;
    this.frameWatch?.sent(masked);
    this.pending.push(masked);
    // Events wait up to BATCH_MS to travel together (one frame instead of one per event), but
    // what the customer does (typing, clicks, a new page) goes at once, with what waited.
    if (isUrgent(masked)) {
      this.cancelBatch?.();
      this.cancelBatch = undefined;
      if (!this.flushQueued) {
        this.flushQueued = true;
        queueMicrotask(() => this.flush());
      }
    } else if (!this.flushQueued && !this.cancelBatch) {
      this.cancelBatch = this.ports.clock.after(BATCH_MS, () => {
        this.cancelBatch = undefined;
        this.flush();
      });
    }
  }

  private flush(): void {
    this.flushQueued = false;
    this.cancelBatch?.();
    this.cancelBatch = undefined;
    // An app that draws its view and then changes the address (its router moves after drawing)
    // moved onto a private page while what it drew waited for its batch: that is the private
    // page's, and goes nowhere (the pause drops it).
    if (this.state === "sharing" && !this.paused && this.ports.page.href() !== this.watchedHref && this.isPrivatePage()) {
      this.onPageChange();
      return;
    }
    const events = this.pending;
    this.pending = [];
    // Promise 3: not before the customer could see Stop sharing over them (askShown).
    if (this.ui.confirmsShown()) {
      if (this.held.length) for (const event of events) this.held.push(event);
      else this.held = events;
      if (this.held.length + (this.asked?.length ?? 0) > MAX_HELD_EVENTS) this.dropHeld();
      return this.askShown();
    }
    // The watch gone (the tab hidden): what waited for it goes first, or the page afresh.
    const waited = [...(this.asked ?? []), ...this.held, ...events];
    const echoDue = this.echoAfter !== null;
    this.asked = null;
    this.held = [];
    this.echoAfter = null;
    if (this.afresh) {
      this.afresh = false;
      if (this.stopRecording && !this.paused && this.state === "sharing") record.takeFullSnapshot(true);
      return;
    }
    this.sendNow(waited);
    if (echoDue) this.echo();
  }

  private sendNow(events: unknown[]): void {
    const ws = this.ws;
    const sender = this.sender;
    if (!events.length || !ws || !sender || !ws.isOpen || this.state !== "sharing") return;
    if (ws.bufferedAmount > MAX_BUFFERED_BYTES) {
      this.waitForBacklog();
      return;
    }
    this.sendEvents(scrubEvent(events)); // MASKING: the last pass before encryption
  }

  /** Ask the cover watch whether Stop sharing shows over what is held (none asked yet: what is
   * held now waits for the answer to the question asked, then for the next). */
  private askShown(): void {
    if (this.asked !== null || !this.held.length) return;
    this.asked = this.held;
    this.held = [];
    this.askedAt = this.ports.clock.now();
    this.askedOnWatch = this.watchTime();
    this.ui.askShown();
  }

  /** What waits for the cover watch, past MAX_HELD_EVENTS changes (flush) or SHOWN_WAIT_MS
   * (lookAtReach), is dropped, and the page goes afresh (a full snapshot) once the watch finds
   * Stop sharing shown, as after a cover (onCovered): the question asked stays asked (since
   * askedAt), or one is asked now. */
  private dropHeld(): void {
    this.afresh = true;
    this.held = [];
    this.echoAfter = null;
    if (this.asked !== null) {
      this.asked = []; // still asked, since askedAt
      return;
    }
    this.asked = [];
    this.askedAt = this.ports.clock.now();
    this.askedOnWatch = this.watchTime();
    this.ui.askShown();
  }

  /** The cover watch found Stop sharing shown at a frame drawn after what was asked about: it
   * goes (or, after changes were dropped under a cover, the page afresh); then what waited. */
  private onShown(): void {
    const events = this.asked;
    if (events !== null) this.answerTook = this.ports.clock.now() - this.askedAt;
    this.asked = null;
    if (events === null || this.paused || this.state !== "sharing") return;
    const echoDue = this.echoAfter === events;
    if (this.afresh) {
      this.afresh = false;
      this.held = [];
      this.echoAfter = null;
      // Recorded now, with Stop sharing shown: it waits for the next report as any change does.
      if (this.stopRecording) record.takeFullSnapshot(true);
    } else {
      this.sendNow(events);
    }
    if (echoDue) {
      this.echoAfter = null;
      if (!this.backlogged && !this.unsent) this.sendEchoes(); // right after what it waited for
    }
    this.askShown();
    if (this.echoAfter === null) this.echo(); // one that waited for changes dropped meanwhile
  }

  /** The cover watch found Stop sharing covered at a frame: what the page changed before it (the
   * customer saw it under the cover, not Stop sharing) is dropped, also what waits for its batch;
   * the page goes afresh once Stop sharing shows (onShown). The question stays asked: the
   * widget, raised, asks the watch again (ui.ts). */
  private onCovered(): void {
    if (this.state !== "sharing" || this.paused) return;
    if (this.asked === null && !this.held.length && !this.pending.length) return;
    const now = this.ports.clock.now();
    if (this.asked !== null) this.answerTook = now - this.askedAt;
    this.afresh = true;
    this.asked = [];
    this.held = [];
    this.echoAfter = null;
    this.pending = [];
    this.cancelBatch?.();
    this.cancelBatch = undefined;
    this.askedAt = now;
    this.askedOnWatch = this.watchTime();
  }

  /** Now on the browser's own clock of the page (ui.watchTime()), or null. */
  private watchTime(): number | null {
    const now = this.ui.watchTime();
    return typeof now === "number" && Number.isFinite(now) ? now : null;
  }

  /** How long the question asked has waited for its answer: the longer of what the session's
   * clock and the browser's own say (a page stopping or turning back `Date.now` waits no less). */
  private waitedForAnswer(): number {
    const waited = this.ports.clock.now() - this.askedAt;
    const now = this.askedOnWatch === null ? null : this.watchTime();
    return now === null || this.askedOnWatch === null ? waited : Math.max(waited, now - this.askedOnWatch);
  }

  /** What the page changed and did not send yet, dropped (a pause, an epoch ended). */
  private dropUnsent(): void {
    this.pending = [];
    this.held = [];
    this.asked = null;
    this.afresh = false;
    this.echoAfter = null;
  }

  /** Events, after the same-origin assets they use (fetched meanwhile; ./assets.ts). The assets
   * are collected from the masked, scrubbed events: a blocked element's image is not in them. */
  private sendEvents(events: unknown[]): void {
    const ws = this.ws;
    const sender = this.sender;
    if (!ws || !sender) return;
    const assets = this.assets.carry(events);
    // Serialised now, while the assets are fetched (a full snapshot's JSON takes a while); its
    // large frames are deflated now too (on their own, outside the epoch's stream), so that
    // only their sending waits for the images.
    const snapshot = events.some((event) => (event as { type?: unknown } | null)?.type === FULL_SNAPSHOT);
    let frames: Outgoing[];
    try {
      frames = prepack(encodePayload({ k: "events", events }));
    } catch {
      // Too large to send: dropped, so the agent's view lacks it. No echo says it is current
      // until a full snapshot that did go repairs it (one is taken now, unless this was one:
      // then the page cannot be shared as it is, and the console rightly says "Not live").
      this.unsent = true;
      if (!snapshot) {
        try {
          record.takeFullSnapshot(true);
        } catch {
          // not recording (a private page): the next page's snapshot repairs it
        }
      }
      return;
    }
    if (snapshot) this.unsent = false;
    this.outbox = this.outbox
      .then(async () => {
        for (const asset of await assets) this.seal(prepack(encodePayload(asset)), ws, sender);
        this.seal(frames, ws, sender);
      })
      .catch(() => undefined);
  }

  /** Compress, encrypt and send, in call order; `sent` runs once the last frame went out. */
  private sendPayload(payload: Payload, sent?: () => void, dropped?: () => void): void {
    const ws = this.ws;
    const sender = this.sender;
    if (!ws || !sender) return;
    this.outbox = this.outbox
      .then(() => this.seal(prepack(encodePayload(payload)), ws, sender, sent, false, dropped))
      .catch(() => undefined);
  }

  /** Compress, encrypt and send one payload's frames (prepack's), in order. `marker`: the
   * recording's end marker, sealed in its closing epoch (closingEpoch) after that epoch ended here. */
  private seal(
    frames: Outgoing[], ws: Connection, sender: ContentSender, sent?: () => void, marker = false, dropped?: () => void,
  ): void {
    let lost = false;
    const lose = () => {
      if (lost) return;
      lost = true;
      dropped?.();
    };
    frames.forEach((frame, i) => {
      if (__TANDEM_BENCH_PLAINTEXT__) {
        ws.send(frame instanceof Uint8Array ? frame : frame.raw); // benchmark builds only: measures what encryption costs
        return;
      }
      this.sendChain = this.sendChain
        .then(async () => {
          // A frame of an epoch that ended meanwhile is dropped (the new epoch's full snapshot
          // repairs the view), before it takes its place in the epoch's compression stream:
          // every frame packed into a stream is sealed and sent, in order (the socket is the
          // epoch's: a new socket starts a new epoch). A large frame is deflated on its own
          // (packAlone), already under way: the epoch's stream does not see it. An epoch being
          // closed by the recording's end marker takes nothing more but the marker.
          const current = () => marker || (this.ws === ws && this.sender === sender);
          if (lost || !current() || !ws.isOpen) return null;
          if (frame instanceof Uint8Array) return sender.seal(this.packer(sender).pack(frame));
          const packed = await frame.packed;
          return current() ? sender.seal(packed) : null;
        })
        .then((sealed) => {
          // Sealed (its counter taken): it goes also in a closing epoch, which stays whole.
          const closing = this.closingEpoch?.ws === ws && this.closingEpoch.sender === sender;
          if (!sealed || !ws.isOpen || !(closing || (this.ws === ws && this.sender === sender))) return lose();
          ws.send(sealed);
          if (sender.recorded) this.recordedFrameSent(sender);
          if (i === frames.length - 1) sent?.();
        })
        .catch(lose);
    });
  }

  /** The compression stream of `sender`'s epoch (one per epoch: the receiver starts one with its key). */
  private packer(sender: ContentSender): PackStream {
    let stream = this.packing.get(sender);
    if (!stream) this.packing.set(sender, (stream = new PackStream()));
    return stream;
  }

  /** The network is slower than the page: drop events, then send a fresh full snapshot. */
  private waitForBacklog(): void {
    this.backlogged = true;
    this.cancelBacklog ??= this.ports.clock.every(200, () => {
      if (!this.ws || this.ws.bufferedAmount > MAX_BUFFERED_BYTES / 4) return;
      this.cancelBacklog?.();
      this.cancelBacklog = undefined;
      this.backlogged = false;
      record.takeFullSnapshot(true);
      this.echo(); // after the snapshot that repairs the view
    });
  }

  /**
   * Stop sharing, at the click: the session ends here at once (recorder, control, pointer and
   * drawings, keys, storage; the customer is told), whatever the relay does. A recording's end
   * marker still goes first on the socket, then `stop` (see finish()).
   */
  async stop(): Promise<void> {
    // The agent's name only: the notice stays until the customer closes it, and what its
    // listeners hold stays in memory as long (never the record: the resume token, the session).
    const agent = this.state === "sharing" ? this.saved?.agent : undefined;
    await this.finish({ type: "stop" }, () => {
      // The customer is told that nothing is shared any more (issue 15).
      if (agent !== undefined) this.ui.showStopped(agent, () => this.ui.remove());
    });
  }

  /**
   * End the session here now (`event`: the customer's stop, or the agent's console silent), and
   * `told` the customer at once. While a recording runs, its end marker must reach the server
   * before `stop` (so the recording ends whole): the socket is taken from the session first
   * (nothing it brings is heard any more, nothing else is sent on it), the marker is sealed in
   * the closing epoch (endRecording), and the socket carries `stop` and closes once the marker
   * went, or after END_MARKER_MS at most.
   */
  private async finish(event: { type: "stop" } | { type: "agent_silent" }, told: () => void): Promise<void> {
    const ws = this.ws;
    let marker: Promise<void> | null = null;
    if (this.state === "sharing" && ws?.isOpen && (this.saved?.recording || this.endingRecording)) {
      marker = this.saved?.recording ? this.endRecording("stopped", true) : this.endingRecording;
      this.ws = null; // the reducer's `stop` and the end leave this socket alone
    }
    this.dispatch(event);
    told();
    if (!marker || !ws) return;
    await marker;
    if (ws.isOpen) ws.send(control({ type: "stop" }));
    ws.close(1000, "stopped");
  }

  /** The network dropped, or the page goes private: stop the recorder and its watchers. */
  private pauseRecording(): void {
    this.stopWatchingSilence(); // no socket, no challenges: the silence goes on when sharing comes back
    this.cancelOverlay?.();
    this.cancelOverlay = undefined;
    this.ui.setOverlay(null);
    this.stopPageWatch();
    this.cancelContext?.();
    this.cancelContext = undefined;
    this.paused = false;
    this.pausedFor = null;
    this.hiddenPauses = 0;
    this.reachableLooks = 0;
    this.stopRecording?.();
    this.stopRecording = undefined;
    onMaskingFailure(null); // issue 14, item 12: no notice once the recording stops
    onMarkedLate(null);
    this.dropUnsent();
    this.sender = null;
  }

  /**
   * Drop every trace of the session in this page: recorder, keys, storage, socket, UI; then show
   * `error` if there is one. The session object is not reused (index.ts makes a new one), so
   * only what holds secrets or runs on its own is released here.
   */
  private end(error: string | null): void {
    this.pauseRecording();
    this.cancelBacklog?.();
    this.cancelBacklog = undefined;
    this.cancelPeerRekey?.();
    this.cancelPeerRekey = undefined;
    this.recordAsk.reset();
    this.recordQuestion = null;
    this.control?.dispose();
    this.control = null;
    this.annotations?.dispose();
    this.annotations = null;
    forgetAnnotationChoice(); // kept in this tab's storage for the session's next pages only
    forgetSessionSecrets(); // the hidden values the masking saw (passwords typed since load stay)
    this.pairing = null;
    this.watchPairing = null;
    this.keys = null;
    this.watcherKeys = null;
    this.commands = null;
    this.watcherCommands = null;
    this.pendingEchoes.clear();
    this.heldReplies = [];
    this.latestControl = null;
    this.echoedToAgent.clear();
    const ws = this.ws;
    this.ws = null;
    ws?.close(1000, "stopped");
    this.ports.store.save(null);
    // This tab's keys only, and the whole store once no other tab holds it: another tab of the
    // site may be sharing, and its next page needs its own keys. Not even these while another
    // tab holds their handle: a duplicate of this tab that took the session over (4409 here).
    const handle = this.keyHandle;
    this.keyHandle = null;
    void this.ports.keys.forget(handle ? [handle, handle + WATCHER_SUFFIX] : [], handle ?? undefined);
    this.ui.remove();
    if (error) this.ui.showError(error, () => this.ui.remove());
    // The rejection's message is the SDK's own words only (a site may show it); what the help
    // server said (its close reason, the part of its policy refused) goes apart, marked as its.
    const policy = error?.startsWith(INVALID_POLICY) ? error.slice(INVALID_POLICY.length) : "";
    const said = plainLine([policy, this.closeReason].filter(Boolean).join(" "), Infinity);
    this.starting?.reject(new TandemSessionError(policy ? INVALID_POLICY : (error ?? "The session has ended."), said || null));
  }
}
