// The console's live session (live.ts) up to the customer's consent, through fake ports: a
// scripted server on the socket and the real pairing on the customer's side. The mirror is not
// started here (it needs a DOM); what is checked is what the console believes and sends.
import assert from "node:assert/strict";
import { test } from "node:test";
import { randomBytes } from "../src/shared/e2e/encoding.ts";
import { startPairing } from "../src/shared/e2e/pairing.ts";
import type { ConnectionEvents } from "../src/shared/ports.ts";
import { LiveView } from "../src/console/live.ts";
import { cardUi } from "./live-ui.ts";
import { until } from "./until.ts";

// A production build's compile-time constant (sdk/build.mjs): encrypted, not the benchmark's plaintext.
(globalThis as Record<string, unknown>).__TANDEM_BENCH_PLAINTEXT__ = false;

const ROUTING = "12345";
const SECRET = "7654321";

function console_(code: string) {
  const sent: Record<string, unknown>[] = [];
  let events: ConnectionEvents | null = null;
  const ui = cardUi({ width: 1000, height: 800 });
  let closed = false;
  const view = new LiveView({ code }, ui, {
    transport: (handlers) => {
      events = handlers;
      return {
        send: (data) => void (typeof data === "string" && sent.push(JSON.parse(data))),
        close: () => {
          closed = true;
        },
        get isOpen() {
          return !closed;
        },
        get isClosed() {
          return closed;
        },
        bufferedAmount: 0,
      };
    },
    clock: { now: () => 0, after: () => () => undefined, every: () => () => undefined },
    random: randomBytes,
  });
  const server = (message: Record<string, unknown>) => events?.text(JSON.stringify({ v: 1, ...message }));
  return { view, sent, server, open: () => events?.open(), close: (code: number, reason: string) => events?.close(code, reason), get card() {
    return ui.card;
  } };
}

/** The console's handshake message (its share and confirmation) as sent. */
const handshake = (sent: Record<string, unknown>[]): string => sent.find((m) => m.type === "handshake")?.data as string;

test("the console joins with the routing part only, pairs, and waits for the customer's browser, not the server", async () => {
  const c = console_(`${ROUTING} ${SECRET}`);
  c.open();
  assert.deepEqual(c.sent, [{ v: 1, type: "join", code: ROUTING }]);
  c.server({ type: "joined", session_id: "s1" });
  assert.equal(c.card.phase, "joined");
  const customer = startPairing({ side: "customer", peer: "agent", secret: SECRET, sessionId: "s1", random: randomBytes });
  c.server({ type: "handshake", data: customer.opening });
  await until(() => c.sent.some((m) => m.type === "handshake"));
  const step = await customer.receive(handshake(c.sent));
  assert.ok(step.kind === "paired" && step.data);
  c.server({ type: "handshake", data: step.data });
  await until(() => c.card.status.text === "Waiting for the customer to allow sharing…");
  // The server says the customer allowed it: the console still shows and offers nothing.
  c.server({ type: "consent", granted: true });
  assert.equal(c.card.consented, false);
  assert.equal(c.card.recordOffered, false);
  assert.equal(c.card.status.text, "Waiting for the customer's browser to start sharing…");
  assert.ok(c.view.open);
});

test("a server saying `consent` before any pairing is treated as a mismatch", () => {
  const c = console_(`${ROUTING} ${SECRET}`);
  c.open();
  c.server({ type: "joined", session_id: "s1" });
  c.server({ type: "consent", granted: true });
  assert.deepEqual(c.sent.at(-1), { v: 1, type: "abort", reason: "key_mismatch" });
  assert.equal(c.card.phase, "idle");
  assert.match(c.card.status.text, /did not match/);
  assert.equal(c.view.open, false);
});

test("a customer with another code is caught by the console: abort, and the session ends", async () => {
  const c = console_(`${ROUTING} ${SECRET}`);
  c.open();
  c.server({ type: "joined", session_id: "s1" });
  const impostor = startPairing({ side: "customer", peer: "agent", secret: "1111111", sessionId: "s1", random: randomBytes });
  c.server({ type: "handshake", data: impostor.opening });
  await until(() => c.sent.some((m) => m.type === "handshake"));
  // The impostor cannot confirm; a relay replaying the console's own reply is no confirmation either.
  c.server({ type: "handshake", data: handshake(c.sent) });
  await until(() => !c.view.open);
  assert.deepEqual(c.sent.at(-1), { v: 1, type: "abort", reason: "key_mismatch" });
});

test("a code too short to hold the secret part is refused before anything is sent", () => {
  const c = console_("123");
  c.open();
  assert.deepEqual(c.sent, []);
  assert.equal(c.card.status.tone, "bad");
});

test("the server's `link` notice reaches the card as a line of its own, and nothing of it after the end", () => {
  const c = console_(`${ROUTING} ${SECRET}`);
  c.open();
  c.server({ type: "joined", session_id: "s1" });
  const status = c.card.status;
  c.server({ type: "link", state: "reconnecting" });
  assert.equal(c.card.link, "reconnecting");
  assert.deepEqual(c.card.status, status); // the status line is the console's own
  c.server({ type: "link", state: "restored" });
  assert.equal(c.card.link, "restored");
  c.server({ type: "link", state: "sideways" }); // not a link state: dropped by the decoder
  assert.equal(c.card.link, "restored");
  c.server({ type: "link", state: "reconnecting" });
  c.server({ type: "ended", reason: "agent_left" });
  assert.equal(c.card.phase, "idle");
  assert.equal(c.card.link, "up");
  c.server({ type: "link", state: "reconnecting" }); // after the end: ignored
  assert.equal(c.card.link, "up");
});

// Attack review of the strings the console shows: the relay writes `error` messages, close
// reasons and supervisors' names; what it writes must not read as the console's own words.

test("the relay's words in an `error` are not shown: the console says what the code means, in its own words", () => {
  const c = console_(`${ROUTING} ${SECRET}`);
  c.open();
  c.server({ type: "joined", session_id: "s1" });
  const forged = "The customer allowed control: you control the page now. Sign in again: type your password into the page.";
  c.server({ type: "error", code: "forbidden", message: forged });
  assert.equal(c.card.status.text, "Not allowed for your account.");
  c.server({ type: "error", code: "invalid_code", message: forged });
  assert.equal(c.card.status.text, "That code is not valid or has expired. Ask for a new code.");
  for (const code of ["made_up", "constructor", "__proto__", "toString", ""]) {
    c.server({ type: "error", code, message: forged });
    assert.equal(c.card.status.text, "The server refused that.", code);
  }
});

test("a supervisor's name the server's own rule refuses is not put in the console's sentence", () => {
  const c = console_(`${ROUTING} ${SECRET}`);
  c.open();
  c.server({ type: "joined", session_id: "s1" });
  c.server({ type: "watcher_joined", watcher: "Sam" });
  assert.equal(c.card.status.text, "Sam (supervisor) is watching too. The customer can see that.");
  // A right-to-left override turned the rest of the sentence around; a line separator split it.
  for (const watcher of ["Sam \u202e.taht ees nac remotsuc ehT", "Sam\u2028The customer allowed control.", "\u200b", "x".repeat(101)]) {
    c.server({ type: "watcher_joined", watcher });
    assert.equal(c.card.status.text, "A supervisor is watching too. The customer can see that.", JSON.stringify(watcher));
  }
});

test("a close is said in the console's own words for its code; the relay's reason only picks among them", () => {
  // The relay's words never reach the status line: "call 0800 555 0100" read as the console's.
  const cases: [number, string, string][] = [
    [4403, "your role no longer allows this", "Your role no longer allows this. Ask an admin if it should."],
    [4403, "your teams no longer serve this site", "None of your teams serves this site any more. Ask an admin if one should."],
    [4403, "your role\nno longer\u2029allows \u202ethis\u202c: call 0800 555 0100", "The server refused this connection: your account may not do this now."],
    [4408, "call 0800 555 0100 now", "The connection was closed after waiting too long for an answer."],
    [4429, "too many wrong codes: wait and sign in again", "Too many wrong codes. Wait a moment, then try again."],
    [4429, "your supervisor says: call 0800 555 0100", "Too many connections or attempts at once. Close other consoles, wait a moment, then try again."],
  ];
  for (const [code, reason, shown] of cases) {
    const c = console_(`${ROUTING} ${SECRET}`);
    c.open();
    c.server({ type: "joined", session_id: "s1" });
    c.close(code, reason);
    assert.equal(c.card.status.text, shown, `${code} ${reason}`);
    assert.doesNotMatch(c.card.status.text, /0800|\u202e/);
  }
});
