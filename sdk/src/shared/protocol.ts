/** Control messages (docs/protocol.md). Mirrors src/tandem/protocol/messages.py. */

export const PROTOCOL_VERSION = 1;

export type SessionState = "waiting" | "pending_consent" | "sharing";
export type EndReason =
  | "declined" | "stopped" | "agent_left" | "code_expired" | "customer_lost" | "agent_lost"
  | "server_shutdown" | "key_mismatch" | "idle_timeout" | "max_duration" | "watch_ended";

export type ServerMessage =
  | { v: 1; type: "created"; session_id: string; code: string; resume_token: string; expires_in: number; policy?: unknown }
  | { v: 1; type: "resumed"; state: SessionState; agent: string | null; code: string | null; policy?: unknown; recording?: boolean; team_policies?: unknown[] }
  | { v: 1; type: "agent_joined"; agent: string }
  | { v: 1; type: "team_policy"; policies: unknown[] }
  | { v: 1; type: "joined"; session_id: string }
  | { v: 1; type: "consent"; granted: boolean }
  | { v: 1; type: "peer"; connected: boolean }
  | { v: 1; type: "error"; code: string; message: string }
  | { v: 1; type: "handshake"; data: string }
  | { v: 1; type: "ended"; reason: EndReason }
  | { v: 1; type: "watch_request"; watcher: string }
  | { v: 1; type: "watcher_left" }
  | { v: 1; type: "watch_handshake"; data: string }
  | { v: 1; type: "watching"; session_id: string }
  | { v: 1; type: "watcher_joined"; watcher: string }
  | { v: 1; type: "record_request"; agent: string; key: string; recording_id: string; site: string }
  | { v: 1; type: "recording"; on: boolean; reason?: RecordingReason | null };

export type RecordingReason =
  | "declined" | "stopped_by_customer" | "stopped_by_agent" | "size_limit" | "unavailable" | "session_ending";

export function parseServerMessage(text: string): ServerMessage | null {
  try {
    const value = JSON.parse(text) as { v?: unknown; type?: unknown };
    if (value && value.v === PROTOCOL_VERSION && typeof value.type === "string") {
      return value as ServerMessage;
    }
  } catch {
    // fall through
  }
  return null;
}

export function control(type: string, fields: Record<string, unknown> = {}): string {
  return JSON.stringify({ v: PROTOCOL_VERSION, type, ...fields });
}

/** "123456789" -> "123 456 789" */
export function formatCode(code: string): string {
  return code.replace(/(\d{3})(?=\d)/g, "$1 ");
}

/** Human words for a close code the server sent. */
export function describeClose(code: number, reason: string): string {
  if (code === 1000 || code === 1001) return "The session has ended.";
  if (reason) return `Connection closed: ${reason}`;
  return "The connection to the help server was lost.";
}
