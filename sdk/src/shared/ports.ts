/**
 * The ports both browsers share: a socket to the server and a clock. The customer's session
 * (share/ports.ts) and the console's live session (console/live.ts) take them as arguments, so
 * that tests drive them with scripted ones. Nothing here runs on import.
 */

/** One socket to the server. */
export interface Connection {
  send(data: string | Uint8Array): void;
  close(code: number, reason: string): void;
  readonly isOpen: boolean;
  /** Closing or closed (not connecting, not open). */
  readonly isClosed: boolean;
  /** Bytes queued but not yet sent (back-pressure). */
  readonly bufferedAmount: number;
}

export interface ConnectionEvents {
  open(): void;
  text(data: string): void;
  binary(data: Uint8Array): void;
  close(code: number, reason: string): void;
}

export type Transport = (events: ConnectionEvents) => Connection;

export interface Clock {
  now(): number;
  /** Run `fn` once after `ms`; returns a cancel function. */
  after(ms: number, fn: () => void): () => void;
  /** Run `fn` every `ms`; returns a cancel function. */
  every(ms: number, fn: () => void): () => void;
}

/** A WebSocket to `url`, as a Transport. */
export function webSocketTransport(url: string): Transport {
  return (events) => {
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    ws.addEventListener("open", () => events.open());
    ws.addEventListener("message", (event) => {
      if (typeof event.data === "string") events.text(event.data);
      else events.binary(new Uint8Array(event.data as ArrayBuffer));
    });
    ws.addEventListener("close", (event) => events.close(event.code, event.reason));
    return {
      send: (data) => {
        if (ws.readyState === WebSocket.OPEN) ws.send(data);
      },
      close: (code, reason) => {
        if (ws.readyState <= WebSocket.OPEN) ws.close(code, reason);
      },
      get isOpen() {
        return ws.readyState === WebSocket.OPEN;
      },
      get isClosed() {
        return ws.readyState > WebSocket.OPEN;
      },
      get bufferedAmount() {
        return ws.bufferedAmount;
      },
    };
  };
}

export const browserClock: Clock = {
  now: () => Date.now(),
  after(ms, fn) {
    const timer = setTimeout(fn, ms);
    return () => clearTimeout(timer);
  },
  every(ms, fn) {
    const timer = setInterval(fn, ms);
    return () => clearInterval(timer);
  },
};

