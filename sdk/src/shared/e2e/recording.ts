/**
 * Recordings, end to end: the organisation's recording key pair, its passphrase-protected key
 * file, and opening a recording the server kept (in the auditor's browser, never on the server).
 *
 * Key file (JSON, made in the admin's browser; only the public key is sent to the server):
 *   { "tandem_recording_key": 1, "org", "key_id", "public_key",
 *     "kdf": { "name": "PBKDF2-SHA256", "iterations", "salt" }, "nonce", "sealed" }
 * `sealed` is AES-256-GCM(PBKDF2(passphrase), nonce, private key; additional data names the
 * key id). Every binary field is base64url. key_id = base64url(SHA-256(public key)[0:16]).
 *
 * Container (what the server returns): "TNDMREC1" | u32 header length | header JSON |
 * (u32 length | frame)*. Frames are exactly what the customer sent: content (0x01) and key
 * frames (0x02, 0x04: ignored here; 0x06: the content key wrapped for the recording key and
 * linked to the previous recorded epoch).
 *
 * A recording is one authenticated whole (docs/recordings.md): its first recorded frame is the
 * customer's `recording_start` (recording id, session, agent, site), each recorded epoch names
 * the one before it and how many frames it had, and the last frame is the customer's
 * `recording_end`. The server cannot cut out the start, a middle part, frames at the end of a
 * part or the tail, nor relabel the header, without playback saying so.
 *
 * Pins: the site's own page names the recording keys the SDK may wrap content keys for
 * (`recordingKeys`, key ids or public keys); the server cannot add one.
 */

import { x25519 } from "@noble/curves/ed25519.js";
import {
  ChannelError, EpochContent, KIND_CONTENT, KIND_RECORDING_KEY, KIND_RECORDING_LINK, RECORDING_LINK_FRAME_BYTES, decrypt,
  encrypt, importChainKey, readU64, recordingLinkAad, recordingLinkTagInput, recordingWrapKey,
} from "./channel.ts";
import { fromBase64Url, toBase64Url } from "./encoding.ts";
import { plainLine } from "../names.ts";
import {
  type AssetPayload, PayloadDecoder, PayloadError, type RecordingEndPayload, type RecordingStartPayload, UnpackStreams,
} from "../payload.ts";

const subtle = globalThis.crypto.subtle;
const encoder = new TextEncoder();
export const KEY_FILE_ITERATIONS = 600_000;
export const MIN_PASSPHRASE_LENGTH = 12;
const MAGIC = encoder.encode("TNDMREC1");

export class RecordingError extends Error {}

export interface KeyFile {
  tandem_recording_key: 1;
  org: string;
  key_id: string;
  public_key: string;
  kdf: { name: "PBKDF2-SHA256"; iterations: number; salt: string };
  nonce: string;
  sealed: string;
}

export interface RecordingKey {
  keyId: string;
  publicKey: string;
  privateKey: Uint8Array;
}

/** The id of a recording public key (as the server computes it). */
export async function recordingKeyId(publicKey: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await subtle.digest("SHA-256", publicKey as BufferSource));
  return toBase64Url(digest.subarray(0, 16));
}

async function passphraseKey(passphrase: string, salt: Uint8Array, iterations: number, usage: KeyUsage): Promise<CryptoKey> {
  const base = await subtle.importKey("raw", encoder.encode(passphrase) as BufferSource, "PBKDF2", false, ["deriveKey"]);
  return subtle.deriveKey(
    { name: "PBKDF2", hash: "SHA-256", salt: salt as BufferSource, iterations },
    base,
    { name: "AES-GCM", length: 256 },
    false,
    [usage],
  );
}

/** A new recording key pair for `org`, its private half sealed under `passphrase`. */
export async function newKeyFile(org: string, passphrase: string, iterations = KEY_FILE_ITERATIONS): Promise<KeyFile> {
  if (passphrase.length < MIN_PASSPHRASE_LENGTH) {
    throw new RecordingError(`the passphrase must have at least ${MIN_PASSPHRASE_LENGTH} characters`);
  }
  const privateKey = x25519.utils.randomSecretKey();
  try {
    const publicKey = x25519.getPublicKey(privateKey);
    const keyId = await recordingKeyId(publicKey);
    const salt = crypto.getRandomValues(new Uint8Array(16));
    const nonce = crypto.getRandomValues(new Uint8Array(12));
    const key = await passphraseKey(passphrase, salt, iterations, "encrypt");
    const sealed = await encrypt(key, nonce, encoder.encode(`tandem/v1/recording-key|${keyId}`), privateKey);
    return {
      tandem_recording_key: 1, org, key_id: keyId, public_key: toBase64Url(publicKey),
      kdf: { name: "PBKDF2-SHA256", iterations, salt: toBase64Url(salt) },
      nonce: toBase64Url(nonce), sealed: toBase64Url(sealed),
    };
  } finally {
    privateKey.fill(0);
  }
}

/** Open a key file with its passphrase. Throws RecordingError saying what is wrong. */
export async function openKeyFile(text: string, passphrase: string): Promise<RecordingKey> {
  let file: KeyFile;
  try {
    file = JSON.parse(text) as KeyFile;
  } catch {
    throw new RecordingError("this is not a Tandem recording key file");
  }
  if (
    !file || file.tandem_recording_key !== 1 || typeof file.public_key !== "string" || typeof file.sealed !== "string" ||
    file.kdf?.name !== "PBKDF2-SHA256" || !Number.isSafeInteger(file.kdf.iterations) ||
    file.kdf.iterations < 100_000 || file.kdf.iterations > 10_000_000
  ) {
    throw new RecordingError("this is not a Tandem recording key file");
  }
  let publicKey: Uint8Array;
  let privateKey: Uint8Array;
  try {
    publicKey = fromBase64Url(file.public_key);
    const key = await passphraseKey(passphrase, fromBase64Url(file.kdf.salt), file.kdf.iterations, "decrypt");
    const keyId = await recordingKeyId(publicKey);
    privateKey = await decrypt(key, fromBase64Url(file.nonce), encoder.encode(`tandem/v1/recording-key|${keyId}`), fromBase64Url(file.sealed));
  } catch {
    throw new RecordingError("wrong passphrase, or the key file is damaged");
  }
  if (privateKey.length !== 32 || toBase64Url(x25519.getPublicKey(privateKey)) !== file.public_key) {
    privateKey.fill(0);
    throw new RecordingError("the key file is damaged");
  }
  return { keyId: await recordingKeyId(publicKey), publicKey: file.public_key, privateKey };
}

/** The container's header: what the server says about the recording (checked against what the
 * customer's browser bound into it before it is believed). */
export interface RecordingHeader {
  format: number;
  recording_id: string;
  session_id: string;
  org_id: string;
  site_id: string;
  agent: string;
  key_id: string;
  started_at: number;
  ended_at: number | null;
  end_reason?: string | null;
}

/** Header and frames of a container. Throws RecordingError if it is not one. */
export function parseContainer(bytes: Uint8Array): { header: RecordingHeader; frames: Uint8Array[] } {
  if (bytes.length < MAGIC.length + 4 || !MAGIC.every((b, i) => bytes[i] === b)) {
    throw new RecordingError("not a Tandem recording");
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const chunks: Uint8Array[] = [];
  let offset = MAGIC.length;
  while (offset < bytes.length) {
    if (offset + 4 > bytes.length) throw new RecordingError("the recording is truncated");
    const length = view.getUint32(offset);
    offset += 4;
    if (offset + length > bytes.length) throw new RecordingError("the recording is truncated");
    chunks.push(bytes.subarray(offset, offset + length));
    offset += length;
  }
  const [head, ...frames] = chunks;
  let header: RecordingHeader;
  try {
    header = JSON.parse(new TextDecoder().decode(head)) as RecordingHeader;
  } catch {
    throw new RecordingError("the recording's header is damaged");
  }
  if (typeof header?.session_id !== "string" || typeof header.key_id !== "string") {
    throw new RecordingError("the recording's header is damaged");
  }
  return { header, frames };
}

/** What playback says when a recording is not the whole the customer's browser made. The same
 * words as tandem.recordings (Python), so the console and `tandem recording open` agree. */
export const BROKEN = {
  legacy: "this recording was made by an older version of Tandem, without integrity of the whole recording, so it cannot be played",
  firstMissing: "the start of the recording is missing",
  firstKey: (sessionId: string) =>
    `the recording's first key does not open for session ${JSON.stringify(sessionId)}: its header was changed or the frame altered`,
  middleMissing: (current: number, epoch: number) => `a part of the recording is missing between epochs ${current} and ${epoch}`,
  tailFrames: (epoch: number, here: number, sent: number) =>
    `frames are missing at the end of epoch ${epoch}: ${here} of ${sent} are here`,
  truncated: "the end of the recording is missing: it was cut short",
  afterEnd: "content follows the end of the recording",
  secondStart: "the recording starts twice: another recording was spliced in",
  forged: (epoch: number) => `epoch ${epoch} of the recording was not made by the customer's browser`,
  relabelled: (field: string, header: unknown, bound: string) =>
    `the recording's header was changed: its ${field} is ${JSON.stringify(header)}, but the recording was made for ${JSON.stringify(bound)}`,
  undecodable: "a payload of the recording does not decode",
} as const;

/**
 * Opens a recording's frames in order with the organisation's private recording key.
 * Epochs whose content key was not wrapped for recording (before the customer allowed it, after
 * it stopped) are skipped. Within a recorded epoch, counters must run 0, 1, 2…; each recorded
 * epoch must name the previous one and its frame count; nothing recorded may follow the end.
 * Anything else throws ChannelError with BROKEN's words (RecordingError for a Tandem 0.2
 * recording, which has no chain).
 */
export class RecordingOpener {
  private readonly content: EpochContent;
  /** Content frames skipped because their epoch's key was not wrapped for recording. */
  skipped = 0;
  private started = false;
  private ended = false;
  /** Content frames opened in the current recorded epoch. */
  private opened = 0;
  /** The recording's chain key (from its start payload), and the links read before it. */
  private chainKey: CryptoKey | null = null;
  private unchecked: { epoch: number; tag: Uint8Array; input: Uint8Array }[] = [];

  constructor(private readonly sessionId: string, private readonly privateKey: Uint8Array) {
    this.content = new EpochContent(sessionId);
  }

  /** Plaintext (still packed) of a content frame; null for key frames and skipped frames. */
  async open(bytes: Uint8Array): Promise<Uint8Array | null> {
    if (bytes.length < 17) throw new ChannelError("truncated frame");
    const kind = bytes[0];
    const epoch = readU64(bytes, 1);
    if (kind === KIND_RECORDING_KEY) throw new RecordingError(BROKEN.legacy);
    if (kind === KIND_RECORDING_LINK) {
      await this.link(bytes, epoch);
      return null;
    }
    if (kind !== KIND_CONTENT) return null; // keys wrapped for the agent or a supervisor
    if (!this.content.has(epoch)) {
      if (epoch > this.content.epoch) {
        this.skipped++;
        return null;
      }
      throw new ChannelError("content of an earlier part of the recording reappeared");
    }
    if (this.ended) throw new ChannelError(BROKEN.afterEnd);
    const plaintext = await this.content.open(bytes);
    this.opened++;
    return plaintext;
  }

  private async link(bytes: Uint8Array, epoch: number): Promise<void> {
    if (bytes.length !== RECORDING_LINK_FRAME_BYTES) throw new ChannelError("malformed recording key");
    if (this.ended) throw new ChannelError(BROKEN.afterEnd);
    if (epoch <= this.content.epoch) throw new ChannelError("an old key was replayed");
    const previousEpoch = readU64(bytes, 9);
    const previousCount = readU64(bytes, 17);
    const ephemeralPublic = bytes.subarray(25, 57);
    let shared: Uint8Array;
    try {
      shared = x25519.getSharedSecret(this.privateKey, ephemeralPublic);
    } catch {
      throw new ChannelError("malformed recording key");
    }
    const wrapKey = await recordingWrapKey(shared, ephemeralPublic, x25519.getPublicKey(this.privateKey), "decrypt");
    const aad = recordingLinkAad(this.sessionId, epoch, previousEpoch, previousCount);
    let wrapped: Uint8Array;
    try {
      wrapped = await decrypt(wrapKey, bytes.subarray(57, 69), aad, bytes.subarray(69));
    } catch (error) {
      throw this.started ? error : new ChannelError(BROKEN.firstKey(this.sessionId));
    }
    const raw = wrapped.slice(0, 32);
    const tag = wrapped.slice(32);
    wrapped.fill(0);
    // The link is authentic now (only the holder of the content key could have made it).
    if (!this.started) {
      if (previousEpoch !== 0) {
        raw.fill(0);
        throw new ChannelError(BROKEN.firstMissing);
      }
    } else if (previousEpoch === 0) {
      raw.fill(0);
      throw new ChannelError(BROKEN.secondStart);
    } else if (previousEpoch !== this.content.epoch) {
      raw.fill(0);
      throw new ChannelError(BROKEN.middleMissing(this.content.epoch, epoch));
    } else if (previousCount !== this.opened) {
      raw.fill(0);
      throw new ChannelError(BROKEN.tailFrames(this.content.epoch, this.opened, previousCount));
    }
    const input = await recordingLinkTagInput(this.sessionId, epoch, previousEpoch, previousCount, raw);
    await this.check({ epoch, tag, input });
    await this.content.install(epoch, raw);
    this.started = true;
    this.opened = 0;
  }

  /** A link's tag must be the chain key's (checked as soon as the start payload gave it). */
  private async check(link: { epoch: number; tag: Uint8Array; input: Uint8Array }): Promise<void> {
    if (!this.chainKey) {
      this.unchecked.push(link);
      return;
    }
    const valid = await subtle.verify("HMAC", this.chainKey, link.tag as BufferSource, link.input as BufferSource);
    if (!valid) throw new ChannelError(BROKEN.forged(link.epoch));
  }

  /** The start payload's chain key (base64url): every link so far and from now on must carry
   * its tag. Throws ChannelError. */
  async chain(chain: string): Promise<void> {
    if (this.chainKey) throw new ChannelError(BROKEN.secondStart);
    let raw: Uint8Array;
    try {
      raw = fromBase64Url(chain);
    } catch {
      throw new ChannelError(BROKEN.undecodable);
    }
    if (raw.length !== 32) throw new ChannelError(BROKEN.undecodable);
    this.chainKey = await importChainKey(raw, "verify");
    const unchecked = this.unchecked;
    this.unchecked = [];
    for (const link of unchecked) await this.check(link);
  }

  /** The payload just opened was the customer's end marker: nothing recorded may follow. */
  end(): void {
    this.ended = true;
  }

  /** After the last frame: throws ChannelError unless the recording began (with its chain key)
   * and ended (or, with `partial`, at least began). */
  finish(partial = false): void {
    if (!this.started || !this.chainKey) throw new ChannelError(BROKEN.firstMissing);
    if (!this.ended && !partial) throw new ChannelError(BROKEN.truncated);
  }
}

export interface OpenedRecording {
  header: RecordingHeader;
  /** rrweb events, in order. */
  events: unknown[];
  /** Page assets the customer's browser carried (issue 14, item 7), in order. */
  assets: AssetPayload[];
  /** Content frames of epochs that were not recorded (before consent, after it stopped). */
  skipped: number;
  /** What the customer's browser bound into the recording (its clock for `at`). */
  start: RecordingStartPayload;
  /** The customer's end marker; null when the recording was cut short and opened `partial`. */
  end: RecordingEndPayload | null;
}

/** The header fields a server could relabel, and the start payload's field that binds each. */
const BOUND_FIELDS = [
  ["recording_id", "recording_id"], ["session_id", "session_id"], ["agent", "agent"], ["site_id", "site"],
] as const;

/**
 * Open a whole recording (a container from the server or an export) with the unlocked key:
 * every frame authentic and in order, one chain from its start to its end, its header as the
 * customer's browser bound it. Throws RecordingError (not this key, not a recording, made by
 * an older version) or ChannelError (edited: BROKEN's words).
 */
export async function openRecording(
  bytes: Uint8Array, key: RecordingKey, options: { partial?: boolean } = {},
): Promise<OpenedRecording> {
  const { header, frames } = parseContainer(bytes);
  if (header.key_id !== key.keyId) {
    // The server's header: its key id shown as one plain line, whatever it holds.
    throw new RecordingError(`this recording was made with another recording key (${plainLine(header.key_id, 64)})`);
  }
  const opener = new RecordingOpener(header.session_id, key.privateKey);
  const decoder = new PayloadDecoder();
  const unpacking = new UnpackStreams();
  const events: unknown[] = [];
  const assets: AssetPayload[] = [];
  let start: RecordingStartPayload | null = null;
  let end: RecordingEndPayload | null = null;
  for (const frame of frames) {
    const plaintext = await opener.open(frame);
    if (!plaintext) continue;
    let payload;
    try {
      payload = decoder.push(await unpacking.unpack(plaintext, readU64(frame, 1)));
    } catch (error) {
      if (error instanceof PayloadError) throw new ChannelError(BROKEN.undecodable);
      throw error;
    }
    if (!start) {
      if (payload?.k !== "recording_start") throw new ChannelError(BROKEN.firstMissing);
      await opener.chain(payload.chain); // first: a made-up start cannot lead on to genuine links
      for (const [field, bound] of BOUND_FIELDS) {
        if (header[field] !== payload[bound]) throw new ChannelError(BROKEN.relabelled(field, header[field], payload[bound]));
      }
      start = payload;
      continue;
    }
    if (payload?.k === "recording_start") throw new ChannelError(BROKEN.secondStart);
    if (payload?.k === "recording_end") {
      if (payload.recording_id !== start.recording_id) {
        throw new ChannelError(BROKEN.relabelled("end's recording_id", payload.recording_id, start.recording_id));
      }
      end = payload;
      opener.end();
    } else if (payload?.k === "events") {
      events.push(...payload.events);
    } else if (payload?.k === "asset") {
      assets.push(payload);
    }
  }
  // `partial`: a recording cut short (a crash, storage failing: `interrupted`, `unavailable`) is
  // opened up to its last authentic frame; the caller must say it is incomplete. Nothing else is
  // relaxed: a missing start or middle, a forged or relabelled part still refuses playback.
  opener.finish(options.partial === true);
  if (!start) throw new ChannelError(BROKEN.firstMissing); // finish() threw already
  if (!end && !options.partial) throw new ChannelError(BROKEN.truncated);
  return { header, events, assets, skipped: opener.skipped, start, end };
}

const KEY_ID = /^[A-Za-z0-9_-]{22}$/;
const PUBLIC_KEY = /^[A-Za-z0-9_-]{43}$/;
export const MAX_PINS = 8;

/** The site's pins (`recordingKeys` / `recording_keys`): key ids or public keys, base64url.
 * Throws RecordingError for anything else, so a site notices a typo at once. */
export function validatePins(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || value.length > MAX_PINS) {
    throw new RecordingError(`recordingKeys: a list of at most ${MAX_PINS} recording key ids`);
  }
  return value.map((pin, i) => {
    if (typeof pin !== "string" || !(KEY_ID.test(pin) || PUBLIC_KEY.test(pin))) {
      throw new RecordingError(`recordingKeys[${i}]: a recording key id (22 characters) or public key (43), base64url`);
    }
    return pin;
  });
}

/** Whether the site pinned `publicKey` (base64url, from the server), and its id (null if it is
 * not a 32-byte key at all). */
export async function checkPin(publicKey: string, pins: readonly string[]): Promise<{ keyId: string | null; pinned: boolean }> {
  let raw: Uint8Array;
  try {
    raw = fromBase64Url(publicKey);
  } catch {
    return { keyId: null, pinned: false };
  }
  if (raw.length !== 32 || toBase64Url(raw) !== publicKey) return { keyId: null, pinned: false };
  const keyId = await recordingKeyId(raw);
  return { keyId, pinned: pins.includes(keyId) || pins.includes(publicKey) };
}
