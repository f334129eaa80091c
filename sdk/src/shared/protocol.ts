/**
 * Control messages (docs/protocol.md). Their types and schemas are generated from
 * src/tandem/protocol/messages.py into src/generated/protocol.ts; this module is how the browsers
 * read and write them.
 */

import {
  CLOSE_REASON_TOO_MANY_PRACTICE, PROTOCOL_VERSION, SERVER_MESSAGE_SCHEMAS, type ClientMessage, type Ended, type RecordingStatus, type Resumed, type ServerMessage,
} from "../generated/protocol.ts";
import { conforms } from "./schema.ts";

export { PROTOCOL_VERSION };
export type { ClientMessage, ServerMessage };
export type SessionState = Resumed["state"];
export type EndReason = Ended["reason"];
export type RecordingReason = NonNullable<RecordingStatus["reason"]>;

const has = (value: object, key: string) => Object.prototype.hasOwnProperty.call(value, key);

/**
 * A server message, or null for anything else: not JSON, another version, an unknown type, or
 * fields that do not match its type's schema. The server is not trusted: nothing it sends is
 * used before it has been checked here.
 */
export function parseServerMessage(text: string): ServerMessage | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return null;
  const { v, type } = value as { v?: unknown; type?: unknown };
  if (v !== PROTOCOL_VERSION || typeof type !== "string" || !has(SERVER_MESSAGE_SCHEMAS, type)) return null;
  return conforms(SERVER_MESSAGE_SCHEMAS[type], value) ? (value as ServerMessage) : null;
}

type Unversioned<M> = M extends unknown ? Omit<M, "v"> : never;
/** Any client message without its version (`control` adds it): a union discriminated by `type`. */
export type OutgoingMessage = Unversioned<ClientMessage>;
/** The client message of type `T`, without its version. */
export type Outgoing<T extends OutgoingMessage["type"]> = Extract<OutgoingMessage, { type: T }>;

/** The JSON text of a control message from this browser; its fields are checked by type. */
export function control(message: OutgoingMessage): string {
  return JSON.stringify({ v: PROTOCOL_VERSION, ...message });
}

/**
 * A code in groups of three or four digits for reading aloud, the longer groups last:
 * 12 digits -> "4829 1306 7125", 11 -> "482 9130 6712", 7 -> "482 9130", 9 -> "123 456 789".
 */
export function formatCode(code: string): string {
  return codeGroups(code).join(" ");
}

/** The groups formatCode shows (each 3 or 4 digits; a code of 4 or fewer is one group). */
export function codeGroups(code: string): string[] {
  const count = Math.max(1, Math.ceil(code.length / 4));
  const groups: string[] = [];
  let at = 0;
  for (let i = 0; i < count; i++) {
    const size = Math.floor((code.length + i) / count); // sizes differ by at most one, smaller first
    groups.push(code.slice(at, at + size));
    at += size;
  }
  return groups.filter(Boolean);
}

/** The SDK's own words for a help server that refused a new session: too many waiting from
 * this address or site (4429), or all sessions in use (4503). Plain, never the server's prose. */
export const TOO_MANY_WAITING = "Too many help requests are waiting right now. Please try again in a few minutes.";
export const SERVER_BUSY = "All helpers are busy right now. Please try again in a few minutes.";
/** 4429 for a practice session (the server's own practice pages): the trainee, not a customer,
 * has too many practice sessions open (max_waiting_practice_per_account). */
export const TOO_MANY_PRACTICE = "You have too many practice sessions open. Finish or close one, or try again in a few minutes.";

/** The site is not registered with the help server (4403: "origin not allowed"). */
export const NOT_AVAILABLE = "Help is not available on this site.";
/** The site's customer token was refused (4401). */
export const NOT_AUTHORISED = "Help could not start on this page. Reload the page and try again.";
export const START_FAILED = "Help could not start. Please try again.";

/**
 * The customer's words for a close code the server sent when a session could not start: plain,
 * never the server's prose or protocol words ("origin not allowed"). The server's reason is for
 * the site's developers: Session adds it to start()'s rejection, never to the widget.
 */
export function describeClose(code: number, reason = ""): string {
  // The reason picks which of the SDK's own texts, never adds to it: a server that lied could
  // only make a refusal read as the practice one.
  if (code === 4429) return reason.startsWith(CLOSE_REASON_TOO_MANY_PRACTICE) ? TOO_MANY_PRACTICE : TOO_MANY_WAITING;
  if (code === 4503 || code === 1013) return SERVER_BUSY;
  if (code === 4403) return NOT_AVAILABLE;
  if (code === 4401) return NOT_AUTHORISED;
  return START_FAILED;
}
