/**
 * The encrypted channel between the customer's and the agent's browsers (AES-256-GCM, WebCrypto).
 *
 * Keys: SPAKE2's Ke goes through HKDF-SHA256 (salt: session id) into two pairwise keys, one per
 * direction. Page content is encrypted once per message under a random *content key* of the
 * current epoch (one epoch per page load of the customer); the content key travels to each agent
 * wrapped under that agent's customer-to-agent key, so fan-out cost does not grow with agents.
 * Every CryptoKey is non-extractable; raw key bytes are zeroed as soon as they are imported.
 *
 * Frames (all binary, all opaque to the server):
 *   content    0x01 | epoch u64 | counter u64 | AES-GCM(contentKey, nonce = 0^4 | counter)
 *   epoch key  0x02 | epoch u64 | nonce[12]   | AES-GCM(pairwise c2a, contentKey)
 *   to customer 0x03 | counter u64 | AES-GCM(pairwise a2c, nonce = 0^4 | counter)
 *   watcher key 0x04 | epoch u64 | nonce[12]   | AES-GCM(supervisor's c2a, contentKey)
 *   from watcher 0x07 | counter u64 | AES-GCM(supervisor's a2c, nonce = 0^4 | counter)
 *   recording link 0x06 | epoch u64 | previous recorded epoch u64 | its frame count u64
 *                 | ephemeral X25519 public key[32] | nonce[12]
 *                 | AES-GCM(HKDF(X25519(ephemeral, organisation's recording key)), contentKey | link tag)
 * While the customer allows recording, each epoch's content key is also wrapped for the
 * organisation's recording public key (kind 0x06, see recording.ts); only the holder of its
 * private key (an auditor's key file) can open the recording the server keeps. The frame names
 * the previous recorded epoch and how many content frames of it were sent (its additional data
 * binds both), so a recording is one chain: no epoch, first or middle, and no frame at the end
 * of an epoch can be cut out unnoticed. The link tag, an HMAC under the recording's chain key
 * (random, made by the customer's browser, inside the recording's first frame), proves each link
 * was made by that browser: the recording key is public, so without it a server could put an
 * epoch of its own making in place of one it cut. (Kind 0x05, the same without the link, was
 * made by Tandem 0.2 and is refused on playback.)
 * A watching supervisor pairs with the customer separately (its own code) and gets the epoch key
 * under kind 0x04; each receiver ignores the other kind, and the kind is in the additional data.
 * The additional data binds protocol, session id, kind, epoch and counter. Receivers require
 * counters to be exactly the next expected one, so a replayed, reordered, dropped or altered frame
 * ends the session with a ChannelError.
 */

import { x25519 } from "@noble/curves/ed25519.js";
import { concat } from "./spake2.ts";

export const KIND_CONTENT = 0x01;
export const KIND_EPOCH_KEY = 0x02;
export const KIND_TO_CUSTOMER = 0x03;
export const KIND_WATCHER_KEY = 0x04;
/** The unchained recording key of Tandem 0.2 recordings: recognised only to be refused. */
export const KIND_RECORDING_KEY = 0x05;
export const RECORDING_KEY_FRAME_BYTES = 1 + 8 + 32 + 12 + 32 + 16;
/** A recorded epoch's content key, wrapped for the recording key and linked to the previous
 * recorded epoch. */
export const KIND_RECORDING_LINK = 0x06;
export const RECORDING_LINK_FRAME_BYTES = 1 + 8 + 8 + 8 + 32 + 12 + 32 + 32 + 16;
/** A watching supervisor's commands to the customer (only its freshness challenges), under the
 * supervisor's own pairwise key: the kind tells the customer's browser which key opens it. */
export const KIND_FROM_WATCHER = 0x07;
export type KeyKind = typeof KIND_EPOCH_KEY | typeof KIND_WATCHER_KEY;
export type CommandKind = typeof KIND_TO_CUSTOMER | typeof KIND_FROM_WATCHER;

export class ChannelError extends Error {}

const encoder = new TextEncoder();
const subtle = globalThis.crypto.subtle;

export interface PairwiseKeys {
  customerToAgent: CryptoKey;
  agentToCustomer: CryptoKey;
}

/** Derive the two pairwise keys from SPAKE2's Ke; zeroes `ke`. */
export async function derivePairwiseKeys(ke: Uint8Array, sessionId: string): Promise<PairwiseKeys> {
  const base = await subtle.importKey("raw", ke as BufferSource, "HKDF", false, ["deriveKey"]);
  ke.fill(0);
  const derive = (label: string) =>
    subtle.deriveKey(
      { name: "HKDF", hash: "SHA-256", salt: encoder.encode(sessionId), info: encoder.encode(`tandem/v1/${label}`) },
      base,
      { name: "AES-GCM", length: 256 },
      false,
      ["encrypt", "decrypt"],
    );
  const [customerToAgent, agentToCustomer] = await Promise.all([derive("c2a"), derive("a2c")]);
  return { customerToAgent, agentToCustomer };
}

export function u64(value: number): Uint8Array {
  if (!Number.isSafeInteger(value) || value < 0) throw new ChannelError("counter out of range");
  const out = new Uint8Array(8);
  const view = new DataView(out.buffer);
  view.setUint32(0, Math.floor(value / 2 ** 32));
  view.setUint32(4, value >>> 0);
  return out;
}

export function readU64(bytes: Uint8Array, offset: number): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, 8);
  const value = view.getUint32(0) * 2 ** 32 + view.getUint32(4);
  if (!Number.isSafeInteger(value)) throw new ChannelError("counter out of range");
  return value;
}

export function counterNonce(counter: number): Uint8Array {
  const nonce = new Uint8Array(12);
  nonce.set(u64(counter), 4);
  return nonce;
}

export function additionalData(sessionId: string, kind: number, ...numbers: number[]): Uint8Array {
  const head = encoder.encode(`tandem/v1|${sessionId}|`);
  const out = new Uint8Array(head.length + 1 + numbers.length * 8);
  out.set(head, 0);
  out[head.length] = kind;
  numbers.forEach((n, i) => out.set(u64(n), head.length + 1 + i * 8));
  return out;
}


export async function encrypt(key: CryptoKey, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(
    await subtle.encrypt({ name: "AES-GCM", iv: nonce as BufferSource, additionalData: aad as BufferSource }, key, plaintext as BufferSource),
  );
}

export async function decrypt(key: CryptoKey, nonce: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array): Promise<Uint8Array> {
  try {
    return new Uint8Array(
      await subtle.decrypt({ name: "AES-GCM", iv: nonce as BufferSource, additionalData: aad as BufferSource }, key, ciphertext as BufferSource),
    );
  } catch {
    throw new ChannelError("a message was altered in transit");
  }
}

/** Customer side: encrypts page content for one epoch. Seal calls are numbered in call order. */
export class ContentSender {
  private counter = 0;

  private constructor(
    private readonly sessionId: string,
    readonly epoch: number,
    private readonly key: CryptoKey,
    /** The epoch-key frame for the agent(s), sent before any content of this epoch. */
    readonly epochKeyFrames: Uint8Array[],
    /** Whether this epoch's content key is also wrapped for the recording key. */
    readonly recorded = false,
  ) {}

  /** A fresh content key for `epoch`, wrapped for each recipient's customer-to-agent key: the
   * agent's (kind 0x02) and a watching supervisor's (kind 0x04), and, while the customer allows
   * recording, for the organisation's recording public key, linked to the previous recorded
   * epoch (kind 0x06). */
  static async create(
    sessionId: string, epoch: number, agents: CryptoKey[], watcher?: CryptoKey, recording?: RecordingLink,
  ): Promise<ContentSender> {
    const raw = crypto.getRandomValues(new Uint8Array(32));
    const recipients: [KeyKind, CryptoKey][] = agents.map((key) => [KIND_EPOCH_KEY, key]);
    if (watcher) recipients.push([KIND_WATCHER_KEY, watcher]);
    try {
      const key = await subtle.importKey("raw", raw as BufferSource, "AES-GCM", false, ["encrypt"]);
      const frames = await Promise.all(
        recipients.map(async ([kind, agentKey]) => {
          const nonce = crypto.getRandomValues(new Uint8Array(12));
          const aad = additionalData(sessionId, kind, epoch);
          return concat(Uint8Array.of(kind), u64(epoch), nonce, await encrypt(agentKey, nonce, aad, raw));
        }),
      );
      if (recording) frames.push(await wrapForRecording(sessionId, epoch, recording, raw));
      return new ContentSender(sessionId, epoch, key, frames, recording !== undefined);
    } finally {
      raw.fill(0);
    }
  }

  /** Encrypt one payload. The counter is taken synchronously, so frames are numbered in call order. */
  seal(plaintext: Uint8Array): Promise<Uint8Array> {
    const counter = this.counter++;
    const header = concat(Uint8Array.of(KIND_CONTENT), u64(this.epoch), u64(counter));
    return encrypt(this.key, counterNonce(counter), additionalData(this.sessionId, KIND_CONTENT, this.epoch, counter), plaintext).then(
      (ciphertext) => concat(header, ciphertext),
    );
  }
}

/** The content key of the current epoch and its frames, strictly in order: what an agent's
 * receiver and a recording's opener share. */
export class EpochContent {
  private key: CryptoKey | null = null;
  private expected = 0;

  /** `epoch`: the newest epoch already seen (-1: none); only a newer key is installed. */
  constructor(private readonly sessionId: string, public epoch = -1) {}

  /** Install the content key of a newer epoch (the caller checked it is newer); zeroes `raw`. */
  async install(epoch: number, raw: Uint8Array): Promise<void> {
    try {
      this.key = await subtle.importKey("raw", raw as BufferSource, "AES-GCM", false, ["decrypt"]);
    } finally {
      raw.fill(0);
    }
    this.epoch = epoch;
    this.expected = 0;
  }

  /** Whether content of `epoch` can be opened (its key is installed and current). */
  has(epoch: number): boolean {
    return this.key !== null && epoch === this.epoch;
  }

  /** The plaintext of a content frame of the current epoch; counters must run 0, 1, 2… */
  async open(bytes: Uint8Array): Promise<Uint8Array> {
    const epoch = readU64(bytes, 1);
    if (!this.key || epoch !== this.epoch) throw new ChannelError("content under an unknown key");
    const counter = readU64(bytes, 9);
    if (counter !== this.expected) {
      throw new ChannelError(counter < this.expected ? "a message was replayed" : "messages were dropped or reordered");
    }
    const plaintext = await decrypt(this.key, counterNonce(counter), additionalData(this.sessionId, KIND_CONTENT, epoch, counter), bytes.subarray(17));
    this.expected++;
    return plaintext;
  }

  close(): void {
    this.key = null;
  }
}

/** Agent side: installs epoch keys and opens content frames, strictly in order. */
export class ContentReceiver {
  private readonly content: EpochContent;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly sessionId: string,
    private readonly customerToAgent: CryptoKey,
    /** Which wrapped epoch keys are this receiver's: the agent's or the supervisor's. */
    private readonly keyKind: KeyKind = KIND_EPOCH_KEY,
    /** The newest epoch this console already opened (a reloaded console's record; -1: none):
     * the key of that epoch or an older one is a replay. */
    seen = -1,
  ) {
    this.content = new EpochContent(sessionId, seen);
  }

  /** The newest epoch whose key was installed (or the `seen` it started from). */
  get epoch(): number {
    return this.content.epoch;
  }

  /**
   * Plaintext of a content frame; null after installing an epoch key. Throws ChannelError.
   * Frames are processed one at a time in call order, however the caller awaits them.
   */
  open(bytes: Uint8Array): Promise<Uint8Array | null> {
    const result = this.queue.then(() => this.openNext(bytes));
    this.queue = result.catch(() => undefined);
    return result;
  }

  private async openNext(bytes: Uint8Array): Promise<Uint8Array | null> {
    if (bytes.length < 17) throw new ChannelError("truncated frame");
    const kind = bytes[0];
    const epoch = readU64(bytes, 1);
    if (kind === KIND_RECORDING_KEY || kind === KIND_RECORDING_LINK) return null; // for the recording
    if (kind === KIND_EPOCH_KEY || kind === KIND_WATCHER_KEY) {
      if (bytes.length !== 1 + 8 + 12 + 32 + 16) throw new ChannelError("malformed epoch key");
      if (kind !== this.keyKind) return null; // wrapped for the other recipient
      if (epoch <= this.content.epoch) throw new ChannelError("an old key was replayed");
      const nonce = bytes.subarray(9, 21);
      const raw = await decrypt(this.customerToAgent, nonce, additionalData(this.sessionId, kind, epoch), bytes.subarray(21));
      await this.content.install(epoch, raw);
      return null;
    }
    if (kind !== KIND_CONTENT) throw new ChannelError("unknown frame kind");
    return this.content.open(bytes);
  }

  /** Drop the keys (session over). */
  close(): void {
    this.content.close();
  }
}

/** Agent side: commands to the customer, under the agent-to-customer key, numbered from 1. */
export class CommandSender {
  /** `counter`: the last one used (a console that reloaded goes on after it: the customer's
   * browser refuses any counter it has seen). `kind`: the agent's (0x03) or a watching
   * supervisor's (0x07), in the frame and its additional data. */
  constructor(
    private readonly sessionId: string, private readonly agentToCustomer: CryptoKey, private counter = 0,
    private readonly kind: CommandKind = KIND_TO_CUSTOMER,
  ) {}

  /** The last counter sealed. */
  get last(): number {
    return this.counter;
  }

  /** Go on after `last` (counters reserved elsewhere up to it: never sealed here); never back. */
  skipTo(last: number): void {
    if (!Number.isSafeInteger(last) || last < 0) throw new ChannelError("counter out of range");
    this.counter = Math.max(this.counter, last);
  }

  seal(plaintext: Uint8Array): Promise<Uint8Array> {
    const counter = ++this.counter;
    const header = concat(Uint8Array.of(this.kind), u64(counter));
    return encrypt(this.agentToCustomer, counterNonce(counter), additionalData(this.sessionId, this.kind, counter), plaintext).then(
      (ciphertext) => concat(header, ciphertext),
    );
  }
}

/**
 * Customer side: opens commands. Counters must only grow: a replayed or reordered command is
 * refused. Gaps are allowed, because commands sent while the customer's page was loading are
 * lost by design (the relay has nowhere to deliver them). `last` survives page navigations.
 */
export class CommandReceiver {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly sessionId: string, private readonly agentToCustomer: CryptoKey, public last = 0,
    private readonly kind: CommandKind = KIND_TO_CUSTOMER,
  ) {}

  open(bytes: Uint8Array): Promise<Uint8Array> {
    const result = this.queue.then(() => this.openNext(bytes));
    this.queue = result.catch(() => undefined);
    return result;
  }

  private async openNext(bytes: Uint8Array): Promise<Uint8Array> {
    if (bytes.length < 9 + 16 || bytes[0] !== this.kind) throw new ChannelError("malformed command");
    const counter = readU64(bytes, 1);
    if (counter <= this.last) throw new ChannelError("a command was replayed");
    const plaintext = await decrypt(this.agentToCustomer, counterNonce(counter), additionalData(this.sessionId, this.kind, counter), bytes.subarray(9));
    this.last = counter;
    return plaintext;
  }
}

/** Where a recorded epoch sits in its recording: the organisation's recording public key, the
 * previous recorded epoch (0: this is the first) and how many content frames of it were sent. */
export interface RecordingLink {
  publicKey: Uint8Array;
  previousEpoch: number;
  previousCount: number;
  /** The recording's chain key (HMAC-SHA256, "sign"): tags each link. */
  chainKey: CryptoKey;
}

/** What a link tag covers: the link's numbers and the digest of the epoch's content key. */
export async function recordingLinkTagInput(
  sessionId: string, epoch: number, previousEpoch: number, previousCount: number, contentKey: Uint8Array,
): Promise<Uint8Array> {
  const digest = new Uint8Array(await subtle.digest("SHA-256", contentKey as BufferSource));
  return concat(encoder.encode(`tandem/v2/link|${sessionId}|`), u64(epoch), u64(previousEpoch), u64(previousCount), digest);
}

/** A recording's chain key from its 32 raw bytes (zeroed). */
export async function importChainKey(raw: Uint8Array, usage: "sign" | "verify"): Promise<CryptoKey> {
  try {
    return await subtle.importKey("raw", raw as BufferSource, { name: "HMAC", hash: "SHA-256" }, false, [usage]);
  } finally {
    raw.fill(0);
  }
}

/** The additional data of a recording link (kind 0x06): version 2, binding the chain. */
export function recordingLinkAad(sessionId: string, epoch: number, previousEpoch: number, previousCount: number): Uint8Array {
  const head = encoder.encode(`tandem/v2|${sessionId}|`);
  return concat(head, Uint8Array.of(KIND_RECORDING_LINK), u64(epoch), u64(previousEpoch), u64(previousCount));
}

/** HKDF of an X25519 shared secret into the AES-GCM key that wraps a content key for recording. */
export async function recordingWrapKey(
  shared: Uint8Array, ephemeralPublic: Uint8Array, recordingPublic: Uint8Array, usage: KeyUsage,
): Promise<CryptoKey> {
  try {
    const base = await subtle.importKey("raw", shared as BufferSource, "HKDF", false, ["deriveKey"]);
    return await subtle.deriveKey(
      { name: "HKDF", hash: "SHA-256", salt: concat(ephemeralPublic, recordingPublic) as BufferSource, info: encoder.encode("tandem/v2/recording") },
      base,
      { name: "AES-GCM", length: 256 },
      false,
      [usage],
    );
  } finally {
    shared.fill(0);
  }
}

/** The recording-link frame (kind 0x06) for one epoch: `raw` wrapped for the recording public key
 * under a fresh ephemeral X25519 key, which is dropped right after. */
export async function wrapForRecording(
  sessionId: string, epoch: number, link: RecordingLink, raw: Uint8Array,
): Promise<Uint8Array> {
  const { publicKey, previousEpoch, previousCount, chainKey } = link;
  if (publicKey.length !== 32) throw new ChannelError("the recording key must be 32 bytes");
  if (previousEpoch >= epoch) throw new ChannelError("a recording link must point back");
  const ephemeral = x25519.utils.randomSecretKey();
  try {
    const ephemeralPublic = x25519.getPublicKey(ephemeral);
    const wrapKey = await recordingWrapKey(
      x25519.getSharedSecret(ephemeral, publicKey), ephemeralPublic, publicKey, "encrypt",
    );
    const nonce = crypto.getRandomValues(new Uint8Array(12));
    const aad = recordingLinkAad(sessionId, epoch, previousEpoch, previousCount);
    const tagInput = await recordingLinkTagInput(sessionId, epoch, previousEpoch, previousCount, raw);
    const tag = new Uint8Array(await subtle.sign("HMAC", chainKey, tagInput as BufferSource));
    const wrapped = concat(raw, tag);
    try {
      return concat(
        Uint8Array.of(KIND_RECORDING_LINK), u64(epoch), u64(previousEpoch), u64(previousCount), ephemeralPublic, nonce,
        await encrypt(wrapKey, nonce, aad, wrapped),
      );
    } finally {
      wrapped.fill(0);
    }
  } finally {
    ephemeral.fill(0);
  }
}
