/**
 * SPAKE2 (RFC 9382), ciphersuite SPAKE2-P256-SHA256-HKDF-HMAC, with key confirmation.
 *
 * The customer is party A, the agent party B. Both know the secret part of the help code; the
 * server relays the messages but never learns it. A man in the middle gets one online guess per
 * code: any other value makes the confirmation MACs disagree, and the session is aborted.
 *
 * Pure and synchronous (no I/O, no WebCrypto): the caller supplies randomness, so the RFC's test
 * vectors can be checked exactly (test/spake2.test.ts).
 */

import { p256 } from "@noble/curves/nist.js";
import { hkdf } from "@noble/hashes/hkdf.js";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";

const Point = p256.Point;
type P256Point = InstanceType<typeof Point>;
const ORDER = Point.Fn.ORDER;

/**
 * The generator, as a point of its own. noble-curves keeps a window table for `Point.BASE` and
 * builds it on its first multiplication: with the blinding of secret scalars, 2,080 points and
 * their normalisation, about four times the work of the one constant-time fixed-window
 * multiplication it then speeds up. A browser multiplies the generator once a pairing (once a
 * page load in practice), so the table never pays for itself: this copy, which has none, takes
 * the fixed-window path, blinded and constant-time all the same, with the same result.
 */
const G = Point.fromAffine(Point.BASE.toAffine());

/** RFC 9382 section 6: the fixed points for P-256 (nobody knows their discrete logs). */
export const M = Point.fromHex("02886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f");
export const N = Point.fromHex("03d8bbd6c639c62937b04d997f38c3770719c629d7014d49a24b4f98baa1292b49");

export const SHARE_BYTES = 65;
export const MAC_BYTES = 32;

export class Spake2Error extends Error {}

const encoder = new TextEncoder();

export function bytesToBigInt(bytes: Uint8Array): bigint {
  let value = 0n;
  for (const byte of bytes) value = (value << 8n) | BigInt(byte);
  return value;
}

function bigIntTo32Bytes(value: bigint): Uint8Array {
  const out = new Uint8Array(32);
  for (let i = 31; i >= 0; i--) {
    out[i] = Number(value & 0xffn);
    value >>= 8n;
  }
  return out;
}

/** The byte strings one after another. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** len(x) as 8 bytes little-endian, then x (RFC 9382 section 4). */
function lengthPrefixed(value: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + value.length);
  let length = value.length;
  for (let i = 0; i < 8; i++) {
    out[i] = length & 0xff;
    length = Math.floor(length / 256);
  }
  out.set(value, 8);
  return out;
}

/** Constant-time comparison of two byte strings. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/**
 * The password scalar w from the secret part of the help code, bound to the session.
 * 48 bytes of HKDF output reduced mod n keep w uniform (RFC 9382 section 3.2).
 */
export function passwordScalar(secret: string, context: string): bigint {
  if (!secret) throw new Spake2Error("empty secret");
  const okm = hkdf(sha256, encoder.encode(secret), encoder.encode("tandem/v1/spake2/w"), encoder.encode(context), 48);
  const w = bytesToBigInt(okm) % ORDER;
  okm.fill(0);
  if (w === 0n) throw new Spake2Error("degenerate password scalar");
  return w;
}

/** A uniformly random scalar in [1, n-1] from the caller's random source. */
export function randomScalar(random: (bytes: number) => Uint8Array): bigint {
  for (;;) {
    const candidate = bytesToBigInt(random(48)) % ORDER;
    if (candidate !== 0n) return candidate;
  }
}

export type Role = "A" | "B";

export interface Confirmed {
  /** Shared secret key Ke (16 bytes): the input to the session key schedule. */
  ke: Uint8Array;
  /** Our confirmation MAC, to send. */
  confirmation: Uint8Array;
  /** Checks the peer's confirmation MAC in constant time. */
  verifyPeer(mac: Uint8Array): boolean;
  transcript: Uint8Array;
}

export interface Spake2Options {
  role: Role;
  w: bigint;
  /** Our ephemeral scalar (x for A, y for B). */
  scalar: bigint;
  idA?: string;
  idB?: string;
  /** Additional authenticated data bound into the confirmation keys. */
  aad?: Uint8Array;
}

/** One side of one SPAKE2 exchange. Single use. */
export class Spake2 {
  readonly share: Uint8Array;
  private readonly role: Role;
  private readonly w: bigint;
  private scalar: bigint;
  private readonly idA: Uint8Array;
  private readonly idB: Uint8Array;
  private readonly aad: Uint8Array;
  private used = false;

  constructor(options: Spake2Options) {
    if (options.w <= 0n || options.w >= ORDER) throw new Spake2Error("w out of range");
    if (options.scalar <= 0n || options.scalar >= ORDER) throw new Spake2Error("scalar out of range");
    this.role = options.role;
    this.w = options.w;
    this.scalar = options.scalar;
    this.idA = encoder.encode(options.idA ?? "");
    this.idB = encoder.encode(options.idB ?? "");
    this.aad = options.aad ?? new Uint8Array(0);
    const mask = options.role === "A" ? M : N;
    this.share = G.multiply(this.scalar).add(mask.multiply(this.w)).toBytes(false);
  }

  /** Combine with the peer's share. Throws Spake2Error for a malformed or degenerate share. */
  finish(peerShare: Uint8Array): Confirmed {
    if (this.used) throw new Spake2Error("this exchange was already finished");
    this.used = true;
    if (!(peerShare instanceof Uint8Array) || peerShare.length !== SHARE_BYTES || peerShare[0] !== 0x04) {
      throw new Spake2Error("malformed share");
    }
    let peer: P256Point;
    try {
      peer = Point.fromBytes(peerShare);
      peer.assertValidity();
    } catch {
      throw new Spake2Error("share is not a point on P-256");
    }
    const peerMask = this.role === "A" ? N : M;
    const unmasked = peer.subtract(peerMask.multiply(this.w));
    if (unmasked.is0()) throw new Spake2Error("degenerate share");
    const k = unmasked.multiply(this.scalar); // cofactor h = 1 for P-256
    this.scalar = 0n;
    const [pA, pB] = this.role === "A" ? [this.share, peerShare] : [peerShare, this.share];
    const transcript = concat(
      lengthPrefixed(this.idA), lengthPrefixed(this.idB), lengthPrefixed(pA), lengthPrefixed(pB),
      lengthPrefixed(k.toBytes(false)), lengthPrefixed(bigIntTo32Bytes(this.w)),
    );
    const digest = sha256(transcript);
    const ke = digest.slice(0, 16);
    const ka = digest.slice(16, 32);
    const info = concat(encoder.encode("ConfirmationKeys"), this.aad);
    const kc = hkdf(sha256, ka, undefined, info, 32);
    const kcA = kc.slice(0, 16);
    const kcB = kc.slice(16, 32);
    const cA = hmac(sha256, kcA, transcript);
    const cB = hmac(sha256, kcB, transcript);
    digest.fill(0);
    ka.fill(0);
    kc.fill(0);
    kcA.fill(0);
    kcB.fill(0);
    const [mine, theirs] = this.role === "A" ? [cA, cB] : [cB, cA];
    return {
      ke,
      confirmation: mine,
      verifyPeer: (mac: Uint8Array) => mac instanceof Uint8Array && equalBytes(mac, theirs),
      transcript,
    };
  }
}
