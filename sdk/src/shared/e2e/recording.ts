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
 * frames (0x02, 0x04: ignored here; 0x05: the content key wrapped for the recording key).
 */

import { x25519 } from "@noble/curves/ed25519.js";
import {
  ChannelError, EpochContent, KIND_CONTENT, KIND_RECORDING_KEY, RECORDING_KEY_FRAME_BYTES, additionalData, decrypt,
  encrypt, readU64, recordingWrapKey,
} from "./channel.ts";
import { fromBase64Url, toBase64Url } from "./encoding.ts";

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

export interface RecordingHeader {
  format: number;
  recording_id: string;
  session_id: string;
  org_id: string;
  key_id: string;
  started_at: number;
  ended_at: number | null;
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

/**
 * Opens a recording's frames in order with the organisation's private recording key.
 * Epochs whose content key was not wrapped for recording (before the customer allowed it) are
 * skipped. Within a recorded epoch, counters must run 0, 1, 2…: a dropped, reordered, replayed
 * or altered frame throws ChannelError (the server cannot edit a recording unnoticed).
 */
export class RecordingOpener {
  private readonly content: EpochContent;
  /** Content frames skipped because their epoch's key was not wrapped for recording. */
  skipped = 0;

  constructor(private readonly sessionId: string, private readonly privateKey: Uint8Array) {
    this.content = new EpochContent(sessionId);
  }

  /** Plaintext (still packed) of a content frame; null for key frames and skipped frames. */
  async open(bytes: Uint8Array): Promise<Uint8Array | null> {
    if (bytes.length < 17) throw new ChannelError("truncated frame");
    const kind = bytes[0];
    const epoch = readU64(bytes, 1);
    if (kind === KIND_RECORDING_KEY) {
      if (bytes.length !== RECORDING_KEY_FRAME_BYTES) throw new ChannelError("malformed recording key");
      if (epoch <= this.content.epoch) throw new ChannelError("an old key was replayed");
      const ephemeralPublic = bytes.subarray(9, 41);
      let shared: Uint8Array;
      try {
        shared = x25519.getSharedSecret(this.privateKey, ephemeralPublic);
      } catch {
        throw new ChannelError("malformed recording key");
      }
      const wrapKey = await recordingWrapKey(shared, ephemeralPublic, x25519.getPublicKey(this.privateKey), "decrypt");
      const aad = additionalData(this.sessionId, KIND_RECORDING_KEY, epoch);
      await this.content.install(epoch, await decrypt(wrapKey, bytes.subarray(41, 53), aad, bytes.subarray(53)));
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
    return this.content.open(bytes);
  }
}
