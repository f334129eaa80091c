/**
 * Pairing: the one SPAKE2 exchange both browsers run over the untrusted relay, for the agent (the
 * help code's secret part) and for a supervisor (the short code the customer reads out). The
 * customer's browser is party A and speaks first; the console is party B.
 *
 *   customer → console   A's share                        (`handshake` / `watch_handshake`)
 *   console  → customer  B's share ‖ B's confirmation MAC
 *   customer → console   A's confirmation MAC
 *
 * Each side ends with the same pairwise keys, or with `mismatch` (wrong code, a forged or garbled
 * message, or a message out of turn): the server relays the messages but cannot learn the code or
 * the keys, nor make a wrong code pair.
 */

import { derivePairwiseKeys, type PairwiseKeys } from "./channel.ts";
import {
  IDENTITY_AGENT, IDENTITY_CUSTOMER, IDENTITY_WATCHER, WATCHER_SUFFIX, fromBase64Url, handshakeAad, toBase64Url,
} from "./encoding.ts";
import { type Confirmed, MAC_BYTES, SHARE_BYTES, Spake2, passwordScalar, randomScalar } from "./spake2.ts";

export interface PairingOptions {
  /** The customer's browser (party A, speaks first) or a console (party B). */
  side: "customer" | "console";
  /** With whom the customer pairs: the agent (session code) or a supervisor (watch code). */
  peer: "agent" | "watcher";
  /** The secret digits both people typed or read. */
  secret: string;
  sessionId: string;
  /** Random bytes (crypto.getRandomValues in browsers; injected so that tests can pair). */
  random: (bytes: number) => Uint8Array;
}

/** What to do with a message from the other side. */
export type PairingStep =
  /** Send `data` (base64url) and wait for the next message. */
  | { kind: "reply"; data: string }
  /** Paired: send `data` if there is one, and use `keys`. */
  | { kind: "paired"; keys: PairwiseKeys; data: string | null }
  /** Wrong code, forged, garbled or out of turn: abort and tell the person. */
  | { kind: "mismatch" };

export interface Pairing {
  /** The key-derivation id: the session id, or the session id with the watcher suffix. */
  readonly keyId: string;
  /** A's opening share (base64url) to send first; null for the console, which waits. */
  readonly opening: string | null;
  /** The other side's next message. Every pairing takes one or two; anything after is a mismatch. */
  receive(data: string): Promise<PairingStep>;
}

const MISMATCH: PairingStep = { kind: "mismatch" };

function decode(data: string): Uint8Array | null {
  try {
    return fromBase64Url(data);
  } catch {
    return null;
  }
}

/** Start one pairing. Throws nothing; every failure is a `mismatch` step. */
export function startPairing(options: PairingOptions): Pairing {
  const keyId = options.peer === "watcher" ? options.sessionId + WATCHER_SUFFIX : options.sessionId;
  const exchange = new Spake2({
    role: options.side === "customer" ? "A" : "B",
    w: passwordScalar(options.secret, keyId),
    scalar: randomScalar(options.random),
    idA: IDENTITY_CUSTOMER,
    idB: options.peer === "watcher" ? IDENTITY_WATCHER : IDENTITY_AGENT,
    aad: handshakeAad(keyId),
  });
  let done = false;
  let confirmed: Confirmed | null = null;
  const finish = (share: Uint8Array): Confirmed | null => {
    try {
      return exchange.finish(share);
    } catch {
      return null; // not a point on the curve, the identity, …
    }
  };

  const asCustomer = async (bytes: Uint8Array): Promise<PairingStep> => {
    done = true;
    if (bytes.length !== SHARE_BYTES + MAC_BYTES) return MISMATCH;
    const ours = finish(bytes.subarray(0, SHARE_BYTES));
    if (!ours || !ours.verifyPeer(bytes.subarray(SHARE_BYTES))) return MISMATCH;
    const keys = await derivePairwiseKeys(ours.ke, keyId);
    return { kind: "paired", keys, data: toBase64Url(ours.confirmation) };
  };

  const asConsole = async (bytes: Uint8Array): Promise<PairingStep> => {
    if (!confirmed) {
      confirmed = bytes.length === SHARE_BYTES ? finish(bytes) : null;
      if (!confirmed) {
        done = true;
        return MISMATCH;
      }
      const reply = new Uint8Array(SHARE_BYTES + MAC_BYTES);
      reply.set(exchange.share);
      reply.set(confirmed.confirmation, SHARE_BYTES);
      return { kind: "reply", data: toBase64Url(reply) };
    }
    done = true;
    if (bytes.length !== MAC_BYTES || !confirmed.verifyPeer(bytes)) return MISMATCH;
    return { kind: "paired", keys: await derivePairwiseKeys(confirmed.ke, keyId), data: null };
  };

  return {
    keyId,
    opening: options.side === "customer" ? toBase64Url(exchange.share) : null,
    async receive(data: string): Promise<PairingStep> {
      if (done) return MISMATCH;
      const bytes = decode(data);
      if (!bytes) {
        done = true;
        return MISMATCH;
      }
      return options.side === "customer" ? asCustomer(bytes) : asConsole(bytes);
    },
  };
}
