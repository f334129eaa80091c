/**
 * Recording on the customer's side: what must hold before this browser wraps a single content
 * key for a recording key (docs/recordings.md).
 *
 * 1. The key is pinned by the site's own page (`Tandem.start({ recordingKeys })` or
 *    `recording_keys` in the page's `#tandem-policy` tag), never by anything from the server.
 * 2. The agent asked, inside the encrypted channel (a command only the paired console can make),
 *    and the server's `record_request` arrived too, within CONFIRM_WINDOW_MS of each other, in
 *    either order. A request from the server alone is refused without a dialog.
 * 3. The customer allowed it in a dialog that names the agent and says the key was verified.
 */

/** How far apart the server's `record_request` and the agent's encrypted request may arrive. */
export const CONFIRM_WINDOW_MS = 15_000;

/** What the server's `record_request` asks for. */
export interface ServerAsk {
  agent: string;
  key: string;
  keyId: string;
  recordingId: string;
  site: string;
}

/** What the agent's console asked, inside the encrypted channel. */
export interface AgentAsk {
  /** The agent's username (bound into the recording). */
  agent: string;
  /** The agent's display name, as its console says it (the question shows the name of the
   * agent the customer allowed instead: session.ts, askRecording). */
  name: string;
}

/** A running recording, kept in the session's storage across page loads. */
export interface RecordingState {
  /** The recording public key (base64url) and its id. */
  key: string;
  keyId: string;
  recordingId: string;
  agent: string;
  site: string;
  /** The last recorded epoch whose key went out, and how many content frames of it went out:
   * the next recorded epoch names both (the chain). Null before the first. */
  chain: { epoch: number; count: number } | null;
  /** The `recording_start` frame went out. */
  started: boolean;
  /** The recording's chain key (32 random bytes, base64url): tags every link, and goes to the
   * auditors inside `recording_start`. Kept here (like the resume token) until the session ends. */
  chainKey: string;
}

const MAX_NAME = 200;

/** The agent's encrypted command about recording, or null if `command` is not one. */
export function recordingCommand(command: unknown): { k: "record_request"; ask: AgentAsk } | { k: "record_stop" } | null {
  if (typeof command !== "object" || command === null) return null;
  const c = command as { k?: unknown; agent?: unknown; name?: unknown };
  if (c.k === "record_stop") return { k: "record_stop" };
  if (c.k !== "record_request") return null;
  if (typeof c.agent !== "string" || typeof c.name !== "string" || !c.agent || c.agent.length > MAX_NAME || c.name.length > MAX_NAME) {
    return null;
  }
  return { k: "record_request", ask: { agent: c.agent, name: c.name || c.agent } };
}

/**
 * Pairs the server's request with the agent's, in either order, within `windowMs`. A server
 * request left alone that long is handed to `unconfirmed` (the caller refuses it); an agent's
 * request left alone is dropped.
 */
export class RecordingAsk {
  private server: ServerAsk | null = null;
  private agent: AgentAsk | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly paired: (server: ServerAsk, agent: AgentAsk) => void,
    private readonly unconfirmed: (server: ServerAsk) => void,
    private readonly windowMs = CONFIRM_WINDOW_MS,
  ) {}

  fromServer(ask: ServerAsk): void {
    this.server = ask;
    this.match();
  }

  fromAgent(ask: AgentAsk): void {
    this.agent = ask;
    this.match();
  }

  private match(): void {
    clearTimeout(this.timer);
    const { server, agent } = this;
    if (server && agent) {
      this.reset();
      this.paired(server, agent);
      return;
    }
    this.timer = setTimeout(() => {
      const alone = this.server;
      this.reset();
      if (alone) this.unconfirmed(alone);
    }, this.windowMs);
  }

  /** Forget both halves (answered, or the session ended). */
  reset(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.server = null;
    this.agent = null;
  }
}

/** Every pin once, in order. */
export function unitePins(...lists: (readonly string[] | undefined)[]): string[] {
  return [...new Set(lists.flatMap((list) => list ?? []))];
}
