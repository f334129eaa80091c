/** base64url without padding, for key-exchange messages in JSON control frames. */

export function toBase64Url(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function fromBase64Url(text: string): Uint8Array {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) throw new Error("not base64url");
  const padded = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
  const binary = atob(padded);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

/** The identities and additional data both sides bind into SPAKE2 (RFC 9382 A, B, AAD). */
export const IDENTITY_CUSTOMER = "tandem customer";
export const IDENTITY_AGENT = "tandem agent";
export const SECRET_DIGITS = 7;

/** A watching supervisor pairs under its own identity and additional data, so its exchange can
 * never be confused with (or replayed into) the agent's. */
export const IDENTITY_WATCHER = "tandem supervisor";
export const WATCHER_SUFFIX = "|watcher";

export function handshakeAad(sessionId: string): Uint8Array {
  return new TextEncoder().encode(`tandem/v1|${sessionId}`);
}

/** A uniformly random string of `digits` decimal digits from the browser's CSPRNG. */
export function randomDigits(digits: number): string {
  let out = "";
  const buffer = new Uint32Array(1);
  while (out.length < digits) {
    crypto.getRandomValues(buffer);
    if (buffer[0] < 4_000_000_000) out += String(buffer[0] % 10); // reject the biased tail
  }
  return out;
}

export function randomBytes(n: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(n));
}
