/**
 * Payloads between the customer's and the agent's browsers. The server relays them as opaque
 * binary frames and never parses them (soon they are ciphertext).
 *
 * Compression (before encryption): each epoch of the customer's content is one raw deflate
 * stream (pako, a port of zlib), primed with a preset dictionary of what rrweb's events and CSS
 * have in common on any site, and sync-flushed after every frame so each frame inflates whole on
 * arrival; a frame costs what is new in it rather than its whole text; the receiver keeps
 * the inflating side per epoch (frames of an epoch arrive whole and in order: the channel checks
 * their counters). An epoch's first frame starts its stream, so a player starts at an epoch's
 * start. Large frames (ALONE_FROM_BYTES, and the parts of a payload split in parts: a big
 * page's full snapshot) are instead deflated each on its own, outside the epoch's stream, by the
 * browser's native CompressionStream (flag 1, as the first versions packed every frame): several
 * times faster than pako on both sides, off the epoch's order so they can be packed while the
 * page's images load, and no flush is needed (each is a complete stream). Raw frames (flag 0)
 * are still read: recordings made by earlier versions play.
 *
 * A payload is UTF-8 JSON. One that would exceed MAX_PAYLOAD_BYTES is split into parts
 * `{"k":"part","id":N,"i":i,"n":count,"d":"<slice of the JSON text>"}`, which the receiver
 * reassembles. The server's frame limit (1 MiB) sits well above MAX_PAYLOAD_BYTES.
 */

import { Deflate, deflateRaw, Inflate, Z_SYNC_FLUSH } from "pako";
import { CONTENT_DICTIONARY, DEFLATED, RAW, STREAMED, STREAMED_WITH_DICTIONARY } from "../generated/content.ts";
import { type AssetPayload, isAssetPayload } from "./assets.ts";

export type { AssetPayload };

export const MAX_PAYLOAD_BYTES = 512 * 1024;
export const MAX_PARTS = 64;
/** Frames of at least this many bytes are deflated on their own (packAlone), not in the epoch's
 * stream. Below it the epoch's stream (its window, its dictionary) is worth its cost: a small
 * frame mostly repeats what came before; a large one carries its own context, and pako's
 * deflate of it would hold the customer's page for tens of milliseconds. */
export const ALONE_FROM_BYTES = 128 * 1024;

export interface EventsPayload {
  k: "events";
  events: unknown[];
}

/** Nothing of the customer's page is sent: it is one its policies keep private, or (`why`) the
 * page keeps Tandem's controls, Stop sharing, out of the customer's reach right now. */
export interface PausedPayload {
  k: "paused";
  why?: "controls_hidden";
}

/** Sent first in every epoch by the customer's browser, after the customer clicked Allow there.
 * Inside the encrypted channel, so the relay cannot fake it: the console shows nothing before. */
export interface ConsentedPayload {
  k: "consented";
}

/** Masking failed closed on part of this page (issue 14): that part is hidden, not sent. Inside
 * the encrypted channel, so the console can say so instead of claiming the whole page is live. */
export interface WithheldPayload {
  k: "withheld";
}

export type ControlState = "granted" | "refused" | "revoked";

/** The customer's answer about remote control, and refusals of single actions. */
/** Why the customer's browser refused an agent's action (its words: the console's catalogue). */
export const ACTION_REFUSALS = [
  "not_granted", "too_many", "gone", "protected", "covered", "unknown", "off_pages", "not_text", "refreshed", "late",
] as const;
export type ActionRefusal = (typeof ACTION_REFUSALS)[number];
/** What a refusal the customer's browser decides before control does (a proof not taken) is of:
 * the refused command's kind, and its proof when it names an echo this page sent. */
export const REFUSED_COMMANDS = ["click", "type", "scroll", "control_request"] as const;
export type RefusedCommand = (typeof REFUSED_COMMANDS)[number];
export type ControlPayload =
  | { k: "control"; state: ControlState }
  | { k: "action_refused"; reason: string; code?: ActionRefusal; of?: RefusedCommand; proof?: string };

/** Why recording is off, as the customer's browser tells the agent (docs/recordings.md). */
export type RecordingOffReason =
  | "declined" | "not_pinned" | "unconfirmed" | "stopped_by_customer" | "stopped_by_agent" | "stopped"
  | "session_ending" | "size_limit" | "unavailable";
export const RECORDING_OFF_REASONS: readonly RecordingOffReason[] = [
  "declined", "not_pinned", "unconfirmed", "stopped_by_customer", "stopped_by_agent", "stopped",
  "session_ending", "size_limit", "unavailable",
];

/** The customer's browser tells the agent, inside the encrypted channel, whether it records and
 * for which recording key (by id): the console trusts this, not the server's `recording`. */
export interface RecordingStatusPayload {
  k: "recording";
  on: boolean;
  key_id: string | null;
  reason?: RecordingOffReason;
}

/** The first recorded frame: what the recording is, bound by the customer's browser. */
export interface RecordingStartPayload {
  k: "recording_start";
  recording_id: string;
  session_id: string;
  /** The agent's username, as the agent's console asserted it inside the encrypted channel. */
  agent: string;
  /** The site id the server named when it asked; `origin` is the page's own. */
  site: string;
  origin: string;
  /** Milliseconds since 1970 on the customer's clock. */
  at: number;
  /** The recording's chain key (32 bytes, base64url): every link's tag is made with it. */
  chain: string;
}

/** The last recorded frame: the recording ended on purpose (not cut short). */
export interface RecordingEndPayload {
  k: "recording_end";
  recording_id: string;
  reason: RecordingOffReason;
  at: number;
}

export type RecordingPayload = RecordingStatusPayload | RecordingStartPayload | RecordingEndPayload;

/** What the agent's workspace shows about the customer's page and device (issue 15). Sent by the
 * customer's browser on shared pages only, inside the encrypted channel: the relay never sees it.
 * `title` is the page's title as masking lets the agent see it (null when the site's policy
 * masks or hides it). */
export interface ContextPayload {
  k: "context";
  origin: string;
  title: string | null;
  device: DeviceKind;
  viewport: { w: number; h: number };
}
export type DeviceKind = "phone" | "tablet" | "desktop";

/** Why the customer's browser did not draw an agent's pointer or drawing (share/annotations.ts). */
export type AnnotationRefusal = "masked" | "off" | "too_many" | "gone";
const ANNOTATION_REFUSALS: readonly AnnotationRefusal[] = ["masked", "off", "too_many", "gone"];

/** The customer turned the agent's pointer and drawings off or on, or one was not drawn. */
export type AnnotationPayload =
  | { k: "annotations"; on: boolean }
  | { k: "annotation_refused"; reason: AnnotationRefusal };

/** A nonce of the console's freshness check: 16 random bytes, base64url without padding. */
export const NONCE_PATTERN = /^[A-Za-z0-9_-]{22}$/;

/** The console asks whether its view is the customer's page now (a command, agent → customer,
 * inside the encrypted command channel; docs/threat-model.md, "The agent's view is fresh"). */
export interface ChallengeCommand {
  k: "challenge";
  nonce: string;
  /** The nonce of the newest echo the console has received (null: none yet in its view); absent
   * from an older console's. The customer's browser counts the challenge as a sign of the
   * console's life only as of when it sent that echo (share/silence.ts): a challenge the relay
   * held back names an old one. */
  proof?: string | null;
}

/** The customer's browser answers a challenge inside the content stream of the epoch it shares
 * now, after every change it recorded before: the console counts only a nonce it sent. */
export interface EchoPayload {
  k: "echo";
  nonce: string;
}

/** Commands that act on the customer's page (control, typing, pointing). The console sends them
 * only while its view is proven live, each naming in `proof` the nonce of the newest echo that
 * proved it; the customer's browser takes one only if it echoed that nonce, in the epoch it
 * shares now, less than ACTION_PROOF_MS ago. The console's own check alone let a relay hold a
 * click sent while live (and every command after it, to keep the counters in order) and hand it
 * over long after, on a page the agent never saw (docs/threat-model.md, "The agent's view is
 * fresh"). Releasing control, hiding the pointer, challenges and recording's stop always go. */
export const ACTING_COMMANDS: ReadonlySet<string> = new Set(["control_request", "pointer", "scroll", "click", "type", "laser", "highlight", "draw"]);

/** How long after its echo a proof lets the agent act (ms): the console's bound (three challenge
 * intervals, console/freshness.ts STALE_AFTER_MS), on the customer's clock. */
export const ACTION_PROOF_MS = 9000;

/** A well-formed challenge, or null. */
export function parseChallengeCommand(value: unknown): ChallengeCommand | null {
  const c = value as { k?: unknown; nonce?: unknown; proof?: unknown } | null;
  if (typeof c !== "object" || c === null || c.k !== "challenge") return null;
  if (typeof c.nonce !== "string" || !NONCE_PATTERN.test(c.nonce)) return null;
  if (!("proof" in c)) return { k: "challenge", nonce: c.nonce };
  // A proof that is not a nonce names no echo: it proves nothing (as null does).
  const proof = typeof c.proof === "string" && NONCE_PATTERN.test(c.proof) ? c.proof : null;
  return { k: "challenge", nonce: c.nonce, proof };
}

export type Payload =
  | EventsPayload | PausedPayload | ConsentedPayload | WithheldPayload | ControlPayload | RecordingPayload
  | AssetPayload | ContextPayload | AnnotationPayload | EchoPayload;

interface PartPayload {
  k: "part";
  id: number;
  i: number;
  n: number;
  d: string;
}

export class PayloadError extends Error {}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });
let nextPartId = 1;

/** Frames to send for `payload`, in order. */
export function encodePayload(payload: Payload, maxBytes = MAX_PAYLOAD_BYTES): Uint8Array[] {
  const json = JSON.stringify(payload);
  // More characters than bytes allowed cannot fit (a character is at least a byte): not encoded
  // whole only to learn that.
  if (json.length <= maxBytes) {
    const whole = encoder.encode(json);
    if (whole.byteLength <= maxBytes) return [whole];
  }
  // A UTF-16 code unit is at most 3 UTF-8 bytes; keep room for the part's own fields.
  const sliceChars = Math.max(1, Math.floor((maxBytes - 128) / 3));
  const count = Math.ceil(json.length / sliceChars);
  if (count > MAX_PARTS) throw new PayloadError(`payload too large: ${json.length} characters`);
  const id = nextPartId++;
  const frames: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const part: PartPayload = { k: "part", id, i, n: count, d: json.slice(i * sliceChars, (i + 1) * sliceChars) };
    frames.push(encoder.encode(JSON.stringify(part)));
  }
  return frames;
}

const MAX_FIELD = 200;
const isField = (value: unknown): value is string => typeof value === "string" && value.length <= MAX_FIELD;
const isReason = (value: unknown): value is RecordingOffReason =>
  RECORDING_OFF_REASONS.includes(value as RecordingOffReason);

/** A recording key's id as the SDK makes it (16 bytes of its digest, base64url), `""` or null for a
 * key it could not read: the console puts it in its own sentence ("Recording … (key {key})"), where a
 * page's words of its choosing ("…: sign in again by typing your password into the page") were shown. */
const KEY_ID = /^[A-Za-z0-9_-]{22}$/;
const isKeyId = (value: unknown): boolean => value === null || value === "" || (typeof value === "string" && KEY_ID.test(value));

function isRecordingPayload(k: unknown, v: Record<string, unknown>): boolean {
  if (k === "recording") {
    return typeof v.on === "boolean" && isKeyId(v.key_id) &&
      (v.reason === undefined || isReason(v.reason));
  }
  if (k === "recording_start") {
    return isField(v.recording_id) && isField(v.session_id) && isField(v.agent) && isField(v.site) &&
      isOrigin(v.origin) && Number.isFinite(v.at) && typeof v.chain === "string" && /^[A-Za-z0-9_-]{43}$/.test(v.chain);
  }
  if (k === "recording_end") return isField(v.recording_id) && isReason(v.reason) && Number.isFinite(v.at);
  return false;
}

/** A page's origin as the SDK sends it (`location.origin`): http(s), in its own normal form. The
 * console shows it and its host; a hostile page's `"not a url"` threw in every later rendering of
 * the console (frozen on "Checking…", control never offered). A recording's start names it too,
 * and the player says "recorded on {origin} …, complete and unedited": a sentence of the page's
 * there read as the player's own. */
function isOrigin(value: unknown): boolean {
  if (!isField(value)) return false;
  try {
    const url = new URL(value);
    return (url.protocol === "https:" || url.protocol === "http:") && url.origin === value;
  } catch {
    return false;
  }
}

const DEVICES: readonly DeviceKind[] = ["phone", "tablet", "desktop"];
const isSize = (value: unknown): boolean => Number.isInteger(value) && (value as number) >= 0 && (value as number) <= 100_000;

function isWorkspacePayload(k: unknown, v: Record<string, unknown>): boolean {
  if (k === "context") {
    const viewport = v.viewport as { w?: unknown; h?: unknown } | null;
    return isOrigin(v.origin) && (v.title === null || isField(v.title)) && DEVICES.includes(v.device as DeviceKind) &&
      typeof viewport === "object" && viewport !== null && isSize(viewport.w) && isSize(viewport.h);
  }
  if (k === "annotations") return typeof v.on === "boolean";
  if (k === "annotation_refused") return ANNOTATION_REFUSALS.includes(v.reason as AnnotationRefusal);
  return false;
}

function isEvents(value: unknown): value is Payload {
  if (typeof value !== "object" || value === null) return false;
  const k = (value as { k?: unknown }).k;
  if (k === "context" || k === "annotations" || k === "annotation_refused") {
    return isWorkspacePayload(k, value as Record<string, unknown>);
  }
  const v = value as { events?: unknown; state?: unknown; reason?: unknown };
  if (k === "control") return v.state === "granted" || v.state === "refused" || v.state === "revoked";
  if (k === "action_refused") {
    // Shown on the agent's status line (an older SDK's words, as sent): a sentence, not a book.
    const { code, of, proof } = value as { code?: unknown; of?: unknown; proof?: unknown };
    return isField(v.reason) && (code === undefined || isField(code)) &&
      (of === undefined || REFUSED_COMMANDS.includes(of as RefusedCommand)) && (proof === undefined || isField(proof));
  }
  if (k === "recording" || k === "recording_start" || k === "recording_end") {
    return isRecordingPayload(k, value as Record<string, unknown>);
  }
  if (k === "asset") return isAssetPayload(value as Record<string, unknown>);
  if (k === "echo") {
    const nonce = (value as { nonce?: unknown }).nonce;
    return typeof nonce === "string" && NONCE_PATTERN.test(nonce);
  }
  return k === "paused" || k === "consented" || k === "withheld" || (k === "events" && Array.isArray(v.events));
}

function isPart(value: unknown): value is PartPayload {
  const v = value as Partial<PartPayload>;
  return (
    typeof value === "object" && value !== null && v.k === "part" &&
    Number.isInteger(v.id) && Number.isInteger(v.i) && Number.isInteger(v.n) &&
    typeof v.d === "string" && (v.n as number) >= 1 && (v.n as number) <= MAX_PARTS &&
    (v.i as number) >= 0 && (v.i as number) < (v.n as number)
  );
}

/** Reassembles frames into payloads. Bounded: one partial payload at a time, MAX_PARTS parts. */
export class PayloadDecoder {
  private partId: number | null = null;
  private parts: string[] = [];
  private received = 0;

  /** The payload completed by `frame`, or null while parts are missing. Throws PayloadError. */
  push(frame: ArrayBuffer | Uint8Array): Payload | null {
    let value: unknown;
    try {
      value = JSON.parse(decoder.decode(frame instanceof Uint8Array ? frame : new Uint8Array(frame)));
    } catch {
      throw new PayloadError("payload is not UTF-8 JSON");
    }
    if (isEvents(value)) return value;
    if (!isPart(value)) throw new PayloadError("unknown payload");
    if (value.id !== this.partId) {
      this.partId = value.id;
      this.parts = new Array<string>(value.n);
      this.received = 0;
    }
    if (this.parts.length !== value.n) throw new PayloadError("inconsistent part count");
    if (this.parts[value.i] === undefined) this.received++;
    this.parts[value.i] = value.d;
    if (this.received < value.n) return null;
    const json = this.parts.join("");
    this.reset();
    let whole: unknown;
    try {
      whole = JSON.parse(json);
    } catch {
      throw new PayloadError("reassembled payload is not JSON");
    }
    if (!isEvents(whole)) throw new PayloadError("unknown payload");
    return whole;
  }

  /** Forget any partial payload (the session ended). */
  reset(): void {
    this.partId = null;
    this.parts = [];
    this.received = 0;
  }
}

// The flag byte before a frame's body, and the preset dictionary of flag 3, are defined once
// for the browsers and `tandem recording open` (src/tandem/protocol/content.py).
let dictionary: Uint8Array | null = null;
const contentDictionary = (): Uint8Array => (dictionary ??= encoder.encode(CONTENT_DICTIONARY));

/** Input is inflated this much at a time, and output taken this much at a time, so a bomb is
 * stopped within a slice of the limit. */
const INFLATE_SLICE = 4096;
const INFLATED_CHUNK = 16 * 1024;
/** What one frame may inflate to: a payload (MAX_PAYLOAD_BYTES) and a part's own fields. */
const MAX_INFLATED = MAX_PAYLOAD_BYTES + 1024;

function concat(chunks: Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(chunks.reduce((total, chunk) => total + chunk.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/**
 * Customer side: one epoch's compression stream (raw deflate, pako: a port of zlib). `pack`
 * deflates a frame into the stream and ends it with a sync flush (zlib's Z_SYNC_FLUSH: an empty
 * stored block, so the frame ends on a byte boundary and everything in it inflates on arrival),
 * so a frame costs what is new in it rather than its whole text. Frames must then be sealed and
 * sent in the order they were packed, none left out (the session's send chain does so); a new
 * epoch takes a new PackStream.
 */
export class PackStream {
  private readonly deflate: Deflate;
  private chunks: Uint8Array[] = [];

  constructor(level: 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 = 6) {
    this.deflate = new Deflate({ level, raw: true, windowBits: 15, memLevel: 9, dictionary: contentDictionary() });
    this.deflate.onData = (chunk) => {
      this.chunks.push(chunk);
    };
  }

  pack(frame: Uint8Array): Uint8Array {
    this.chunks = [];
    if (!this.deflate.push(frame, Z_SYNC_FLUSH)) throw new PayloadError(`deflate failed: ${this.deflate.msg}`);
    return prefix(STREAMED_WITH_DICTIONARY, concat(this.chunks));
  }
}

/** Whether this browser deflates natively ("deflate-raw": Chromium 103, Firefox 113, Safari 16.4). */
const nativeFormat = (make: () => unknown): boolean => {
  try {
    make();
    return true;
  } catch {
    return false;
  }
};
let nativeDeflate: boolean | undefined;
let nativeInflate: boolean | undefined;

/**
 * Customer side: `frame` deflated on its own, a complete raw deflate stream (flag 1), with the
 * browser's native CompressionStream (zlib in the browser, several times pako's speed; pako's
 * one-shot deflate where there is none). Independent of the epoch's stream, so it may run ahead
 * of frames packed before it: only sealing and sending keep their order.
 */
export async function packAlone(frame: Uint8Array): Promise<Uint8Array> {
  nativeDeflate ??= typeof CompressionStream === "function" && nativeFormat(() => new CompressionStream("deflate-raw"));
  if (!nativeDeflate) return prefix(DEFLATED, deflateRaw(frame, { level: 6 }));
  const stream = new CompressionStream("deflate-raw");
  const writer = stream.writable.getWriter();
  // The reader below drains the stream as it is written; a failure reaches it.
  writer.write(frame as BufferSource).then(() => writer.close()).catch(() => undefined);
  const chunks: Uint8Array[] = [];
  const reader = stream.readable.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    chunks.push(value);
  }
  return prefix(DEFLATED, concat(chunks));
}

/**
 * Receiving side of packAlone: `body` inflated by the browser's native DecompressionStream, read
 * as it comes and refused (PayloadError) once it passes MAX_INFLATED: the input goes in slices of
 * INFLATE_SLICE, so a bomb is stopped within one slice's worth of output (at most ~1,032 times
 * the slice), never inflated whole. Garbage, a stream cut short or an empty body are PayloadError
 * too: the stream must end (complete, as packAlone makes it), which DecompressionStream checks.
 */
async function inflateAlone(body: Uint8Array): Promise<Uint8Array> {
  nativeInflate ??= typeof DecompressionStream === "function" && nativeFormat(() => new DecompressionStream("deflate-raw"));
  if (!nativeInflate) return new Inflater().push(body, true);
  const stream = new DecompressionStream("deflate-raw");
  const writer = stream.writable.getWriter();
  const reader = stream.readable.getReader();
  const writing = (async () => {
    for (let offset = 0; offset < body.length; offset += INFLATE_SLICE) {
      await writer.write(body.subarray(offset, offset + INFLATE_SLICE) as BufferSource);
    }
    await writer.close();
  })();
  writing.catch(() => undefined); // a failed write errors the readable side, seen below
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > MAX_INFLATED) throw new PayloadError("payload inflates beyond the limit");
      chunks.push(value);
    }
    await writing;
  } catch (error) {
    reader.cancel().catch(() => undefined); // stops the inflating and frees what it holds
    throw error instanceof PayloadError ? error : new PayloadError("payload does not inflate");
  }
  return concat(chunks);
}

/** What a frame's bytes inflate to; a bomb (beyond MAX_INFLATED) or garbage is a PayloadError. */
class Inflater {
  private readonly inflate: Inflate;
  private chunks: Uint8Array[] = [];
  private total = 0;

  constructor(withDictionary = false) {
    this.inflate = new Inflate({
      raw: true, windowBits: 15, chunkSize: INFLATED_CHUNK, ...(withDictionary ? { dictionary: contentDictionary() } : {}),
    });
    this.inflate.onData = (chunk) => {
      this.total += chunk.length;
      if (this.total > MAX_INFLATED) throw new PayloadError("payload inflates beyond the limit");
      this.chunks.push(chunk);
    };
  }

  /** `body` inflated: all of it, as the sender flushed it (Z_SYNC_FLUSH); `whole`: `body` must
   * also end the stream (a frame deflated on its own). */
  push(body: Uint8Array, whole = false): Uint8Array {
    this.chunks = [];
    this.total = 0;
    try {
      for (let offset = 0; offset < body.length; offset += INFLATE_SLICE) {
        if (this.inflate.ended) throw new PayloadError("bytes after the end of the stream");
        this.inflate.push(body.subarray(offset, offset + INFLATE_SLICE), Z_SYNC_FLUSH);
        if (this.inflate.err) throw new PayloadError("payload does not inflate");
      }
    } catch (error) {
      throw error instanceof PayloadError ? error : new PayloadError("payload does not inflate");
    }
    if (whole && !this.inflate.ended) throw new PayloadError("payload does not inflate");
    return concat(this.chunks);
  }
}

/**
 * Receiving side: the inflating half of the current epoch's stream (a new epoch starts a new
 * one), and the frames deflated on their own (flag 1: large frames, which leave the epoch's
 * stream as it was; and every frame of the first versions) or raw (flag 0, earlier versions). A
 * frame that inflates beyond MAX_PAYLOAD_BYTES, or does not inflate, is a PayloadError; in the
 * epoch's stream so is every later frame of that epoch (the stream is lost). Frames must be
 * unpacked one at a time, in order (each call awaited before the next).
 */
export class UnpackStreams {
  private epoch = -1;
  private inflater: Inflater | null = null;
  /** The flag of the epoch's stream (2, or 3: primed with the dictionary), as its first frame said. */
  private flag = -1;
  private broken = false;

  async unpack(packed: Uint8Array, epoch: number): Promise<Uint8Array> {
    if (packed.length < 1) throw new PayloadError("empty payload");
    const body = packed.subarray(1);
    if (packed[0] === RAW) return body;
    if (packed[0] === DEFLATED) return inflateAlone(body);
    if (packed[0] !== STREAMED && packed[0] !== STREAMED_WITH_DICTIONARY) throw new PayloadError("unknown payload encoding");
    if (epoch !== this.epoch || !this.inflater) {
      this.epoch = epoch;
      this.broken = false;
      this.flag = packed[0];
      this.inflater = new Inflater(this.flag === STREAMED_WITH_DICTIONARY);
    }
    if (this.broken) throw new PayloadError("an earlier payload of this epoch did not inflate");
    if (packed[0] !== this.flag) {
      this.broken = true;
      throw new PayloadError("a frame of another stream in this epoch");
    }
    try {
      return this.inflater.push(body);
    } catch (error) {
      this.broken = true;
      throw error;
    }
  }
}

function prefix(flag: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(body.length + 1);
  out[0] = flag;
  out.set(body, 1);
  return out;
}

/** The most points one drawn stroke may have. */
export const MAX_STROKE_POINTS = 200;

/**
 * The agent's pointer and drawings (issue 15), sent from the console to the customer's browser
 * inside the encrypted command channel; they need no remote control. Coordinates are CSS pixels
 * of the customer's viewport. The customer's browser decides whether to draw them
 * (share/annotations.ts): never over masked or no-control elements, never once turned off.
 */
export type AnnotationCommand =
  | { k: "laser"; x: number; y: number }
  | { k: "laser_off" }
  | { k: "highlight"; id: number }
  | { k: "draw"; points: [number, number][] };

const isCoordinate = (value: unknown): value is number =>
  typeof value === "number" && Number.isFinite(value) && Math.abs(value) <= 100_000;

/** `value` as an annotation command, or null if it is not one (or is malformed). */
export function parseAnnotationCommand(value: unknown): AnnotationCommand | null {
  if (typeof value !== "object" || value === null) return null;
  const c = value as { k?: unknown; x?: unknown; y?: unknown; id?: unknown; points?: unknown };
  if (c.k === "laser") return isCoordinate(c.x) && isCoordinate(c.y) ? { k: "laser", x: c.x, y: c.y } : null;
  if (c.k === "laser_off") return { k: "laser_off" };
  if (c.k === "highlight") return Number.isInteger(c.id) && (c.id as number) > 0 ? { k: "highlight", id: c.id as number } : null;
  if (c.k === "draw") {
    const points = c.points;
    if (!Array.isArray(points) || points.length < 2 || points.length > MAX_STROKE_POINTS) return null;
    const ok = points.every((p) => Array.isArray(p) && p.length === 2 && isCoordinate(p[0]) && isCoordinate(p[1]));
    return ok ? { k: "draw", points: points.map((p: [number, number]) => [p[0], p[1]]) } : null;
  }
  return null;
}
