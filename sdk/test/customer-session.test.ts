// The customer session's shell (session.ts) driven through fake ports: a scripted server on the
// transport, an in-memory tab storage and key store, a recording UI, a manual clock, and the real
// pairing on the console's side. No browser: the module has no import-time side effects.
import assert from "node:assert/strict";
import { type TestContext, test } from "node:test";
import { CommandSender, ContentReceiver, KIND_EPOCH_KEY, KIND_FROM_WATCHER, type PairwiseKeys, derivePairwiseKeys, readU64 } from "../src/shared/e2e/channel.ts";
import { RECONNECT_MAX_MS, RESUME_WINDOW_MS } from "../src/shared/backoff.ts";
import { WATCHER_SUFFIX, randomBytes, toBase64Url } from "../src/shared/e2e/encoding.ts";
import { startPairing } from "../src/shared/e2e/pairing.ts";
import type { ConnectionEvents, CustomerView, Ports } from "../src/share/ports.ts";
import { BATCH_MS, ECHOES_PER_SECOND, isUrgent, Session, TandemSessionError } from "../src/share/session.ts";
import { ACTION_PROOF_MS, PayloadDecoder, UnpackStreams } from "../src/shared/payload.ts";
import { CONSOLE_SILENT, DISTRUST, MISMATCH, type Saved } from "../src/share/state.ts";
import { AGENT_QUIET_MS, AGENT_SILENT_MS, LOOK_EVERY_MS } from "../src/share/silence.ts";
import { x25519 } from "@noble/curves/ed25519.js";
import { RecordingOpener, recordingKeyId } from "../src/shared/e2e/recording.ts";
import { until } from "./until.ts";

const SECRET = "1234567";

/** One tab's ports; `keys` is the origin's key store (IndexedDB), shared by its tabs, and
 * `holds` the pages that hold it (the Web Lock). */
function fakes(
  stored: Saved | null = null, keys = new Map<string, PairwiseKeys>(), holds = new Set<object>(),
  clock: Ports["clock"] = { now: () => 0, after: () => () => undefined, every: () => () => undefined },
) {
  const page = {};
  const sent: (string | Uint8Array)[] = [];
  let events: ConnectionEvents | null = null;
  let closed: number | null = null;
  const ui: { name: string; args: unknown[] }[] = [];
  const store = { saved: stored as Saved | null };
  let keysCleared = false;
  /** What the widget answers (by method name; undefined for the rest). */
  const answers: Record<string, (...args: unknown[]) => unknown> = {};
  const view = new Proxy({}, {
    get: (_, name) => (...args: unknown[]) => {
      ui.push({ name: String(name), args });
      return answers[String(name)]?.(...args);
    },
  }) as CustomerView;
  const ports: Ports = {
    transport: (handlers) => {
      events = handlers;
      return {
        send: (data) => void sent.push(data),
        close: (code) => {
          closed = code;
        },
        isOpen: true,
        isClosed: false,
        bufferedAmount: 0,
      };
    },
    page: { policyTag: () => null, href: () => "https://shop.example/cart" },
    ui: view,
    store: { load: () => store.saved, save: (saved) => void (store.saved = saved ? structuredClone(saved) : null) },
    keys: {
      load: async (id) => keys.get(id) ?? null,
      save: async (id, value) => keys.set(id, value),
      delete: async (id) => void keys.delete(id),
      clear: async () => {
        keys.clear();
        keysCleared = true;
      },
      forget: async (ids) => {
        for (const id of ids) keys.delete(id);
        holds.delete(page);
        if (holds.size > 0) return;
        keys.clear();
        keysCleared = true;
      },
      hold: () => void holds.add(page),
      clearUnused: async () => {
        if (holds.size > 0) return;
        keys.clear();
        keysCleared = true;
      },
    },
    clock,
    random: { bytes: randomBytes, digits: () => SECRET },
  };
  const server = (message: Record<string, unknown>) => events?.text(JSON.stringify({ v: 1, ...message }));
  const control = () => sent.filter((m): m is string => typeof m === "string").map((m) => JSON.parse(m) as Record<string, unknown>);
  const binary = () => sent.filter((m) => typeof m !== "string");
  const called = (name: string) => ui.filter((call) => call.name === name);
  return {
    ports, server, control, binary, called, store, keys, answers,
    open: () => events?.open(),
    /** A binary frame from the server (an agent's command, or the relay's replay of one). */
    deliver: (frame: Uint8Array) => events?.binary(frame),
    /** The socket closes as the browser reports it (code, and the server's reason if any). */
    close: (code: number, reason = "") => events?.close(code, reason),
    get closed() {
      return closed;
    },
    get keysCleared() {
      return keysCleared;
    },
  };
}

/** Until the session has done all it will with what it got so far: every command delivered was
 * opened (or refused: a replay, a forgery) and acted on, the agent's and a supervisor's alike,
 * and everything that made it send went out. What it did not do is then known not to come,
 * without waiting on the clock. */
async function settled(session: Session): Promise<void> {
  type Queue = { queue: Promise<unknown> } | null;
  const inner = session as unknown as { commands: Queue; watcherCommands: Queue; outbox: Promise<void>; sendChain: Promise<void> };
  assert.ok(inner.outbox instanceof Promise && inner.sendChain instanceof Promise, "Session no longer has its outbox and sendChain");
  const now = () => [inner.commands?.queue, inner.watcherCommands?.queue, inner.outbox, inner.sendChain];
  for (let chains = now(); ; chains = now()) {
    // In order: what a command's opening made the session send goes after it.
    for (const chain of chains) await chain;
    if (now().every((chain, i) => chain === chains[i])) return;
  }
}

/** A session started, its socket open and the server's `created` (s1, code 12345) answered. */
async function created(f: ReturnType<typeof fakes>): Promise<Session> {
  const session = new Session(f.ports);
  const code = session.start();
  f.open();
  f.server({ type: "created", session_id: "s1", code: "12345", resume_token: "tok", expires_in: 600 });
  await code;
  return session;
}

test("a session pairs with the agent and asks for consent with nothing shared; Decline clears everything", async () => {
  const f = fakes();
  const session = new Session(f.ports);
  const code = session.start();
  f.open();
  assert.deepEqual(f.control(), [{ v: 1, type: "create" }]);
  f.server({ type: "created", session_id: "s1", code: "12345", resume_token: "tok", expires_in: 600 });
  assert.equal(await code, `12345${SECRET}`);
  assert.equal(f.store.saved?.secret, SECRET);
  assert.ok(!f.control().some((m) => JSON.stringify(m).includes(SECRET)), "the secret part never goes to the server");

  f.server({ type: "agent_joined", agent: "Ann" });
  await until(() => f.control().some((m) => m.type === "handshake"));
  const agent = startPairing({ side: "console", peer: "agent", secret: SECRET, sessionId: "s1", random: randomBytes });
  const opening = f.control().find((m) => m.type === "handshake")?.data as string;
  const reply = await agent.receive(opening);
  assert.equal(reply.kind, "reply");
  if (reply.kind !== "reply") return;
  f.server({ type: "handshake", data: reply.data });
  await until(() => f.called("askConsent").length === 1);
  const confirmation = f.control().filter((m) => m.type === "handshake")[1]?.data as string;
  assert.equal((await agent.receive(confirmation)).kind, "paired");
  assert.equal(f.called("askConsent")[0]?.args[0], "Ann");
  assert.equal(f.store.saved?.secret, null, "the key replaces the secret part");
  const handle = f.store.saved?.keyHandle;
  assert.ok(handle && handle !== "s1" && f.keys.has(handle), "stored under a handle of this tab's own");
  assert.ok(!f.keys.has("s1"), "never under the server's session id");
  assert.equal(f.binary().length, 0, "nothing of the page before Allow");
  assert.ok(!f.control().some((m) => m.type === "consent"));

  const decline = f.called("askConsent")[0]?.args[2] as () => void;
  decline();
  assert.deepEqual(f.control().at(-1), { v: 1, type: "consent", granted: false });
  assert.equal(session.state, "ended");
  assert.equal(f.store.saved, null);
  assert.ok(f.keysCleared);
  assert.equal(f.closed, 1000);
  assert.ok(f.called("remove").length > 0);
});

test("a stored session resumed into a `sharing` the customer never allowed ends, unshared and cleared", async () => {
  const saved: Saved = { sessionId: "s1", resumeToken: "tok", routing: "12345", secret: null, agent: "Ann", epoch: 0, sitePolicy: null };
  const f = fakes(saved);
  const session = new Session(f.ports);
  session.resume(saved);
  f.open();
  assert.deepEqual(f.control(), [{ v: 1, type: "resume", session_id: "s1", resume_token: "tok" }]);
  f.server({ type: "resumed", state: "sharing", agent: "Ann", code: null });
  assert.equal(session.state, "ended");
  assert.deepEqual(f.control().at(-1), { v: 1, type: "stop" });
  assert.match(String(f.called("showError")[0]?.args[0]), new RegExp(`^${DISTRUST}`));
  assert.equal(f.binary().length, 0);
  assert.equal(f.store.saved, null);
  assert.ok(f.keysCleared);
});

test("a `created` the page did not ask for, mid-session, ends it", async () => {
  const f = fakes();
  const session = await created(f);
  f.server({ type: "created", session_id: "s2", code: "99999", resume_token: "evil", expires_in: 600 });
  assert.equal(session.state, "ended");
  assert.equal(f.store.saved, null);
});

test("an agent with the wrong code is caught: abort, the customer is told, nothing kept", async () => {
  const f = fakes();
  const session = await created(f);
  f.server({ type: "agent_joined", agent: "Mallory" });
  await until(() => f.control().some((m) => m.type === "handshake"));
  const guess = startPairing({ side: "console", peer: "agent", secret: "7654321", sessionId: "s1", random: randomBytes });
  const reply = await guess.receive(f.control().find((m) => m.type === "handshake")?.data as string);
  assert.ok(reply.kind === "reply");
  f.server({ type: "handshake", data: reply.data });
  await until(() => session.state === "ended");
  assert.deepEqual(f.control().at(-1), { v: 1, type: "abort", reason: "key_mismatch" });
  assert.equal(f.called("showError")[0]?.args[0], MISMATCH);
  assert.equal(f.called("askConsent").length, 0);
  assert.equal(f.keys.size, 0);
  assert.equal(f.store.saved, null);
});

test("start() while a session runs shows that session and never opens a second (the ghost session)", async () => {
  const f = fakes();
  const session = new Session(f.ports);
  const first = session.start();
  const again = session.start(); // pressed twice before the server answered
  f.open();
  f.server({ type: "created", session_id: "s1", code: "12345", resume_token: "tok", expires_in: 600 });
  assert.equal(await first, `12345${SECRET}`);
  assert.equal(await again, `12345${SECRET}`);
  assert.equal(await session.start(), `12345${SECRET}`, "waiting: the same code");
  assert.equal(f.control().filter((m) => m.type === "create").length, 1);
  assert.equal(f.called("showCode").length, 1, "no second code panel");
  assert.ok(f.called("focusCurrent").length >= 2, "the running session is shown (focused) instead");
});

test("the customer is told that Stop sharing stopped it; a cancelled code is not a notice", async () => {
  const f = fakes();
  const session = await created(f);
  await session.stop();
  assert.equal(f.called("showStopped").length, 0, "nothing was shared: no notice");
  assert.equal(f.called("showError").length, 0);
});

test("a dropped socket shows Reconnecting… with Stop; Stop then tells the server on a fresh socket", async () => {
  const saved: Saved = { sessionId: "s1", resumeToken: "tok", routing: "12345", secret: SECRET, agent: null, epoch: 0, sitePolicy: null };
  const f = fakes(saved);
  const session = new Session(f.ports);
  session.resume(saved);
  f.open();
  f.server({ type: "resumed", state: "waiting", agent: null, code: "12345", resume_seconds: 30 });
  assert.equal(session.state, "waiting");
  f.close(1006);
  assert.equal(session.state, "waiting"); // kept: the server keeps it for 30 s
  const [reconnecting] = f.called("showReconnecting");
  assert.ok(reconnecting, "Reconnecting… shown (this page's own connection)");
  assert.ok(f.store.saved, "the session record stays for the next attempt");
  const before = f.control().length;
  (reconnecting?.args[0] as () => void)(); // Stop sharing, while the socket is down
  assert.equal(session.state, "ended");
  assert.equal(f.store.saved, null);
  f.open(); // the farewell socket
  assert.deepEqual(f.control().slice(before), [
    { v: 1, type: "resume", session_id: "s1", resume_token: "tok" }, { v: 1, type: "stop" },
  ]);
});

test("what the customer does goes at once; page changes wait at most 100 ms to share a frame", () => {
  assert.ok(BATCH_MS <= 100);
  const incremental = (source: number) => ({ type: 3, data: { source }, timestamp: 1 });
  // A full snapshot, a new page; input (typing), clicks and other mouse interactions, selection.
  for (const event of [{ type: 2 }, { type: 4 }, incremental(5), incremental(2), incremental(14)]) {
    assert.ok(isUrgent(event), JSON.stringify(event));
  }
  // DOM mutations, mouse moves, scrolling, viewport resizes wait for the batch.
  for (const source of [0, 1, 3, 4]) assert.ok(!isUrgent(incremental(source)), `source ${source}`);
  assert.ok(isUrgent(null), "anything unexpected is not held back");
});

/** A page the policy keeps private: sharing starts (keys, epoch, commands) but records nothing,
 * so no DOM is needed. */
const PRIVATE_CART = { version: 1, pages: { deny: ["/cart"] } };

/** A session of `f` started and answered `created` for `sessionId` (the server's choice). */
async function startedAs(f: ReturnType<typeof fakes>, sessionId: string): Promise<Session> {
  const session = new Session(f.ports);
  const code = session.start({ policy: PRIVATE_CART });
  f.open();
  f.server({ type: "created", session_id: sessionId, code: "12345", resume_token: "tok", expires_in: 600 });
  await code;
  return session;
}

/** The agent joins and pairs (the console's side of SPAKE2, with the code's secret part), the
 * customer allows, sharing begins; the console's keys. */
async function pairAndAllow(f: ReturnType<typeof fakes>, sessionId: string): Promise<PairwiseKeys> {
  f.server({ type: "agent_joined", agent: "Ann" });
  await until(() => f.control().some((m) => m.type === "handshake"));
  assert.equal(f.called("askConsent").length, 0, "no consent question before the pairing");
  const agent = startPairing({ side: "console", peer: "agent", secret: SECRET, sessionId, random: randomBytes });
  const reply = await agent.receive(f.control().find((m) => m.type === "handshake")?.data as string);
  assert.ok(reply.kind === "reply");
  f.server({ type: "handshake", data: reply.data });
  await until(() => f.called("askConsent").length === 1);
  const paired = await agent.receive(f.control().filter((m) => m.type === "handshake")[1]?.data as string);
  assert.ok(paired.kind === "paired");
  (f.called("askConsent")[0]?.args[1] as () => void)();
  await until(() => f.binary().length > 0);
  return paired.keys;
}

/** Remote control listens for Escape on the window: a stand-in in node, for one test. */
function windowEvents(t: TestContext): void {
  const scope = globalThis as { addEventListener?: unknown; removeEventListener?: unknown };
  if (scope.addEventListener) return;
  scope.addEventListener = scope.removeEventListener = () => undefined;
  t.after(() => {
    delete scope.addEventListener;
    delete scope.removeEventListener;
  });
}

const command = (sender: CommandSender, body: unknown) => sender.seal(new TextEncoder().encode(JSON.stringify(body)));

test("keys another tab stored are never used for a session this tab did not pair, even under the id the server names", async (t) => {
  windowEvents(t);
  const origin = new Map<string, PairwiseKeys>(); // the origin's key store, shared by its tabs
  // Tab A pairs with session s0, shares, and opens a command; then it is closed without Stop.
  const a = fakes(null, origin);
  await startedAs(a, "s0");
  const oldKeys = await pairAndAllow(a, "s0");
  const oldCommand = await command(new CommandSender("s0", oldKeys.agentToCustomer), { k: "control_request" });
  a.deliver(oldCommand);
  await until(() => a.store.saved?.commands === 1);
  origin.set("s0", oldKeys); // also where a store before handles kept them: the server's id
  const oldHandle = a.store.saved?.keyHandle;

  // Tab B (no record of its own): the server answers its `create` with the old session's id.
  const b = fakes(null, origin);
  const session = await startedAs(b, "s0");
  const keys = await pairAndAllow(b, "s0"); // asserts: a handshake first, consent only after it
  assert.equal(b.control().filter((m) => m.type === "handshake").length, 2, "SPAKE2 ran in tab B");
  assert.equal(session.state, "sharing");
  const handle = b.store.saved?.keyHandle;
  assert.ok(handle && handle !== oldHandle && handle !== "s0");

  // The relay replays tab A's command: under the old keys, it does not open.
  b.deliver(oldCommand);
  const fresh = await command(new CommandSender("s0", keys.agentToCustomer), { k: "control_request" });
  b.deliver(fresh);
  await until(() => b.store.saved?.commands === 1); // the agent's own command opens (its counter 1)
  b.deliver(oldCommand);
  await settled(session); // the replay was tried
  assert.equal(b.store.saved?.commands, 1);
});

test("after a navigation the command count goes on under the same keys: a replayed command is refused", async (t) => {
  windowEvents(t);
  const origin = new Map<string, PairwiseKeys>();
  const first = fakes(null, origin);
  await startedAs(first, "s1");
  const keys = await pairAndAllow(first, "s1");
  const agent = new CommandSender("s1", keys.agentToCustomer);
  const sent = [await command(agent, { k: "control_request" }), await command(agent, { k: "pointer", x: 1, y: 1 })];
  for (const frame of sent) first.deliver(frame);
  await until(() => first.store.saved?.commands === 2);

  // The next page of the same tab: its record and the origin's key store.
  const record = first.store.saved;
  assert.ok(record);
  const next = fakes(record, origin);
  const session = new Session(next.ports);
  session.resume(record);
  next.open();
  next.server({ type: "resumed", state: "sharing", agent: "Ann", code: null });
  await until(() => next.binary().length > 0);
  assert.equal(session.state, "sharing");
  for (const frame of sent) next.deliver(frame); // the relay replays both
  const third = await command(agent, { k: "pointer", x: 2, y: 2 });
  next.deliver(third);
  await until(() => next.store.saved?.commands === 3);
  for (const frame of sent) next.deliver(frame);
  await settled(session); // the replays were tried
  assert.equal(next.store.saved?.commands, 3);
});

test("a watching supervisor's key is kept under the tab's own handle and found again on its next page", async (t) => {
  windowEvents(t);
  const origin = new Map<string, PairwiseKeys>();
  const first = fakes(null, origin);
  await startedAs(first, "s1");
  await pairAndAllow(first, "s1");
  first.server({ type: "watch_request", watcher: "Sam" });
  (first.called("askWatch")[0]?.args[1] as () => void)();
  await until(() => first.control().some((m) => m.type === "watch_handshake"));
  const sam = startPairing({ side: "console", peer: "watcher", secret: SECRET, sessionId: "s1", random: randomBytes });
  const reply = await sam.receive(first.control().find((m) => m.type === "watch_handshake")?.data as string);
  assert.ok(reply.kind === "reply");
  first.server({ type: "watch_handshake", data: reply.data });
  await until(() => first.store.saved?.watcher === "Sam");
  const handle = first.store.saved?.keyHandle;
  assert.ok(handle && origin.has(handle + WATCHER_SUFFIX) && !origin.has("s1" + WATCHER_SUFFIX));

  const record = first.store.saved;
  assert.ok(record);
  const next = fakes(record, origin);
  new Session(next.ports).resume(record);
  next.open();
  next.server({ type: "resumed", state: "sharing", agent: "Ann", code: null });
  await until(() => next.binary().some((frame) => (frame as Uint8Array)[0] === 0x04)); // the watcher's epoch key
});

test("a tab's record left longer ago than the resume window is not resumed: it and the tab's keys are deleted, nothing is sent", async (t) => {
  windowEvents(t);
  const { clock, advance } = manualClock();
  const origin = new Map<string, PairwiseKeys>();
  const f = fakes(null, origin, new Set(), clock);
  const session = await startedAs(f, "s1");
  await pairAndAllow(f, "s1");
  const handle = f.store.saved?.keyHandle;
  assert.ok(handle && origin.has(handle));
  session.leave(); // pagehide: a navigation, or the tab closed without "Stop sharing"
  const record = f.store.saved;
  assert.ok(record);
  assert.equal(record.leftAt, clock.now());
  // The next page, within the window: it resumes (the stamp is not kept).
  advance(RESUME_WINDOW_MS - LOOK_EVERY_MS);
  const next = fakes(structuredClone(record), origin, new Set(), clock);
  new Session(next.ports).resume(structuredClone(record));
  next.open();
  assert.ok(next.control().some((m) => m.type === "resume"));
  assert.equal(next.store.saved?.leftAt, undefined);
  // The tab reopened later (Reopen closed tab: its sessionStorage is back, and its keys are still
  // in the site's store): nothing goes to the server, which would have to refuse it; the record
  // and the keys are deleted here.
  advance(2 * LOOK_EVERY_MS);
  const reopened = fakes(structuredClone(record), origin, new Set(), clock);
  const page = new Session(reopened.ports);
  page.resume(structuredClone(record));
  reopened.open();
  assert.deepEqual(reopened.control(), []);
  assert.equal(reopened.store.saved, null);
  await until(() => !origin.has(handle));
  assert.equal(page.state, "idle");
});

test("a session's end deletes this tab's keys and leaves those of another tab still sharing", async (t) => {
  windowEvents(t);
  const origin = new Map<string, PairwiseKeys>();
  const holds = new Set<object>(); // the pages holding the key store (Web Lock)
  const a = fakes(null, origin, holds);
  await startedAs(a, "s1");
  await pairAndAllow(a, "s1");
  const kept = a.store.saved?.keyHandle;
  const b = fakes(null, origin, holds);
  const ending = await startedAs(b, "s2");
  await pairAndAllow(b, "s2");
  const gone = b.store.saved?.keyHandle;
  assert.ok(kept && gone && origin.has(kept) && origin.has(gone));

  await ending.stop();
  await until(() => !origin.has(gone));
  assert.ok(origin.has(kept), "the sharing tab's keys stay");
  assert.ok(!b.keysCleared, "the store another tab holds is not deleted");

  // The sharing tab's next page finds its keys and shares.
  const record = a.store.saved;
  assert.ok(record);
  const next = fakes(record, origin, holds);
  const session = new Session(next.ports);
  session.resume(record);
  next.open();
  next.server({ type: "resumed", state: "sharing", agent: "Ann", code: null });
  await until(() => next.binary().length > 0);
  assert.equal(session.state, "sharing");
});

/** What the customer's browser sent (opened as the agent's console opens it), once `condition`
 * holds of it. */
async function sentOnce(
  keys: PairwiseKeys, f: ReturnType<typeof fakes>, condition: (all: Record<string, unknown>[]) => boolean,
): Promise<Record<string, unknown>[]> {
  await until(async () => condition(await opened(keys, f.binary())), "not sent");
  return opened(keys, f.binary());
}

/** What the customer's browser sent inside `frames`, opened as the agent's console opens it. */
async function opened(keys: PairwiseKeys, frames: (string | Uint8Array)[]): Promise<Record<string, unknown>[]> {
  const receiver = new ContentReceiver("s1", keys.customerToAgent);
  const unpacking = new UnpackStreams();
  const decoder = new PayloadDecoder();
  const payloads: Record<string, unknown>[] = [];
  for (const frame of frames as Uint8Array[]) {
    const plaintext = await receiver.open(frame);
    const payload = plaintext && decoder.push(await unpacking.unpack(plaintext, readU64(frame, 1)));
    if (payload) payloads.push(payload as unknown as Record<string, unknown>);
  }
  return payloads;
}

test("the agent's challenge is echoed inside the current epoch's content, a few a second at most, and nothing else", async (t) => {
  windowEvents(t);
  const f = fakes();
  const session = await startedAs(f, "s1"); // a private page: sharing runs, nothing of the page is recorded
  const keys = await pairAndAllow(f, "s1");
  const agent = new CommandSender("s1", keys.agentToCustomer);
  f.deliver(await command(agent, { k: "challenge", nonce: "not a nonce, or a long string to send back" }));
  const nonces = Array.from({ length: ECHOES_PER_SECOND + 2 }, (_, i) => String(i).repeat(22));
  for (const nonce of nonces) f.deliver(await command(agent, { k: "challenge", nonce }));
  await until(() => f.store.saved?.commands === nonces.length + 1); // every challenge was opened
  const echoCount = async () => (await opened(keys, f.binary())).filter((payload) => payload.k === "echo").length;
  await until(async () => (await echoCount()) >= ECHOES_PER_SECOND);
  await settled(session); // and no more come
  // The first ones (the clock stands still: the bucket does not refill), after the epoch's
  // `consented` and `paused`; no prose, no refusal, no more than the bucket allows.
  const payloads = await opened(keys, f.binary());
  assert.deepEqual(payloads.map((payload) => payload.k), ["consented", "paused", ...Array(ECHOES_PER_SECOND).fill("echo")]);
  assert.deepEqual(payloads.filter((payload) => payload.k === "echo"), nonces.slice(0, ECHOES_PER_SECOND).map((nonce) => ({ k: "echo", nonce })));
  assert.ok(!f.control().some((m) => m.type === "report" && m.event !== "page_paused"), "nothing for the server to see");
});

test("no echo says the view is current while a change too large to send is missing from it, until a full snapshot goes", async (t) => {
  windowEvents(t);
  const f = fakes();
  const session = await startedAs(f, "s1");
  const keys = await pairAndAllow(f, "s1");
  const agent = new CommandSender("s1", keys.agentToCustomer);
  const echoes = async () => (await opened(keys, f.binary())).filter((payload) => payload.k === "echo");
  const ask = async (nonce: string) => f.deliver(await command(agent, { k: "challenge", nonce }));
  await ask("a".repeat(22));
  await until(() => f.store.saved?.commands === 1);
  await until(async () => (await echoes()).length >= 1);
  assert.equal((await echoes()).length, 1, "a view that has everything is echoed");
  // The page makes a change larger than a payload may be (64 parts): it cannot go.
  const huge = { type: 3, timestamp: 0, data: { source: 0, texts: [{ id: 7, value: "x".repeat(33 * 1024 * 1024) }], attributes: [], removes: [], adds: [] } };
  (session as unknown as { sendEvents(events: unknown[]): void }).sendEvents([huge]);
  await ask("b".repeat(22));
  await until(() => f.store.saved?.commands === 2);
  await settled(session);
  assert.equal((await echoes()).length, 1, "no echo while the view lacks a change");
  // A full snapshot that goes repairs the view: the next challenge is echoed.
  const snapshot = { type: 2, timestamp: 0, data: { node: { type: 0, childNodes: [], id: 1 }, initialOffset: { left: 0, top: 0 } } };
  (session as unknown as { sendEvents(events: unknown[]): void }).sendEvents([snapshot]);
  await ask("c".repeat(22));
  await until(async () => (await echoes()).length >= 2);
  assert.deepEqual((await echoes()).map((echo) => echo.nonce), ["a".repeat(22), "c".repeat(22)]);
});

test("an acting command whose proof is of this page's previous epoch is refused as crossing a refresh, not as aimed at a page gone; nothing of it is applied", async (t) => {
  windowEvents(t);
  const f = fakes();
  const session = await startedAs(f, "s1");
  const keys = await pairAndAllow(f, "s1");
  const agent = new CommandSender("s1", keys.agentToCustomer);
  const untilPayloads = (condition: (all: Record<string, unknown>[]) => boolean) => sentOnce(keys, f, condition);
  const echoed = (nonce: string) => (all: Record<string, unknown>[]) => all.some((p) => p.k === "echo" && p.nonce === nonce);
  const refusals = (all: Record<string, unknown>[]) => all.filter((p) => p.k === "action_refused");
  const before = "a".repeat(22);
  f.deliver(await command(agent, { k: "challenge", nonce: before, proof: null }));
  await untilPayloads(echoed(before)); // echoed in the first epoch
  // The agent's console comes back (the server's `peer`): the same page, a new epoch.
  const epochKeys = () => f.binary().filter((frame) => (frame as Uint8Array)[0] === KIND_EPOCH_KEY).length;
  const keysBefore = epochKeys();
  f.server({ type: "peer", connected: true });
  await until(() => epochKeys() === keysBefore + 1);
  // The page is a shared one from here (this test's pages are private, where nothing acts).
  (session as unknown as { paused: boolean }).paused = false;
  // A click and a scroll the console sent before it knew: their proof is of the epoch before.
  f.deliver(await command(agent, { k: "click", id: 5, proof: before }));
  f.deliver(await command(agent, { k: "pointer", x: 1, y: 1, proof: before })); // pointing: quietly dropped
  f.deliver(await command(agent, { k: "scroll", x: 0, y: 10, proof: before }));
  let all = await untilPayloads((sent) => refusals(sent).length === 2);
  assert.deepEqual(refusals(all).map((p) => p.code), ["refreshed", "refreshed"]);
  assert.match(String(refusals(all)[0]?.reason), /refreshed/);
  // Each says what it refuses (the console asks again only a control request of its own).
  assert.deepEqual(refusals(all).map((p) => [p.of, p.proof]), [["click", before], ["scroll", before]]);
  // A proof this page never echoed (a page gone, as after a navigation) stays "gone".
  f.deliver(await command(agent, { k: "click", id: 5, proof: "z".repeat(22) }));
  all = await untilPayloads((sent) => refusals(sent).length === 3);
  assert.equal(refusals(all)[2]?.code, "gone");
  // The new epoch's own proof passes the check (and control, not granted, says so).
  const after = "b".repeat(22);
  f.deliver(await command(agent, { k: "challenge", nonce: after, proof: before }));
  await untilPayloads(echoed(after));
  f.deliver(await command(agent, { k: "click", id: 5, proof: after }));
  all = await untilPayloads((sent) => refusals(sent).length === 4);
  assert.equal(refusals(all)[3]?.code, "not_granted");
  assert.equal(f.called("askControl").length, 0);
});

/** Session "s1" of `f`, paired and allowed; the agent's challenge `proof` echoed, and the page a
 * shared one from here (this file's pages are private, where nothing acts). */
async function sharedAfterEcho(t: TestContext, f: ReturnType<typeof fakes>, proof: string) {
  windowEvents(t);
  const session = await startedAs(f, "s1");
  const keys = await pairAndAllow(f, "s1");
  const agent = new CommandSender("s1", keys.agentToCustomer);
  const untilPayloads = (condition: (all: Record<string, unknown>[]) => boolean) => sentOnce(keys, f, condition);
  f.deliver(await command(agent, { k: "challenge", nonce: proof, proof: null }));
  await untilPayloads((all) => all.some((p) => p.k === "echo" && p.nonce === proof));
  (session as unknown as { paused: boolean }).paused = false; // a shared page from here
  return { session, keys, agent, untilPayloads };
}

/** The next epoch's key of `session` held in the making (its key dropped, the load of it waiting)
 * until the function returned is called. */
function nextEpochKeyHeld(f: ReturnType<typeof fakes>, session: Session): () => void {
  let release = () => undefined as void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const load = f.ports.keys.load;
  f.ports.keys.load = async (id) => {
    await gate;
    return load(id);
  };
  (session as unknown as { keys: null }).keys = null;
  return release;
}

test("a control request that arrives while the next epoch's key is being made is refused as crossing a refresh in that epoch, never dropped unsaid", async (t) => {
  const f = fakes();
  const before = "a".repeat(22);
  const { session, keys, agent, untilPayloads } = await sharedAfterEcho(t, f, before);
  const payloads = () => opened(keys, f.binary());
  // The next epoch's key takes a while to make (a supervisor paired, on a busy machine): held
  // here until the agent's control request, sent before the console knew, has been opened.
  const release = nextEpochKeyHeld(f, session);
  const consentedBefore = (await payloads()).filter((p) => p.k === "consented").length;
  f.server({ type: "peer", connected: true }); // a new epoch of the same page begins
  const commandsBefore = f.store.saved?.commands ?? 0;
  f.deliver(await command(agent, { k: "control_request", proof: before }));
  await until(() => (f.store.saved?.commands ?? 0) === commandsBefore + 1);
  release();
  // Said in the new epoch, after its `consented`: the console asks again once that epoch is proven.
  const all = await untilPayloads((sent) => sent.some((p) => p.k === "action_refused"));
  const kinds = all.map((p) => p.k);
  assert.equal(all.filter((p) => p.k === "consented").length, consentedBefore + 1);
  assert.ok(kinds.lastIndexOf("consented") < kinds.indexOf("action_refused"), "refused in the new epoch");
  assert.equal(all.find((p) => p.k === "action_refused")?.code, "refreshed");
  // It names the request it refuses (its kind and proof): the console asks again only that one.
  assert.equal(all.find((p) => p.k === "action_refused")?.of, "control_request");
  assert.equal(all.find((p) => p.k === "action_refused")?.proof, before);
  assert.equal(f.called("askControl").length, 0, "nothing of it is applied");
});

test("between two epochs at most 8 refusals are kept, and a control request's is not crowded out by clicks refused before it", async (t) => {
  const f = fakes();
  const before = "a".repeat(22);
  const { session, agent, untilPayloads } = await sharedAfterEcho(t, f, before);
  const release = nextEpochKeyHeld(f, session);
  f.server({ type: "peer", connected: true }); // a new epoch of the same page begins
  // The agent clicked a dozen times in control, which the customer took back; then asked again.
  const commandsBefore = f.store.saved?.commands ?? 0;
  for (let i = 0; i < 12; i++) f.deliver(await command(agent, { k: "click", id: 5, proof: before }));
  f.deliver(await command(agent, { k: "control_request", proof: before }));
  await until(() => (f.store.saved?.commands ?? 0) === commandsBefore + 13);
  release();
  const all = await untilPayloads((sent) => sent.some((p) => p.k === "action_refused" && p.of === "control_request"));
  const refusals = all.filter((p) => p.k === "action_refused");
  assert.equal(refusals.length, 8);
  assert.equal(refusals.at(-1)?.of, "control_request", "said last, after the clicks refused before it");
});

/** Session "s1" of `f` with control granted to the agent (asked with the echoed `proof`). */
async function inControl(t: TestContext, f: ReturnType<typeof fakes>, proof: string) {
  const shared = await sharedAfterEcho(t, f, proof);
  f.deliver(await command(shared.agent, { k: "control_request", proof }));
  await until(() => f.called("askControl").length === 1);
  (f.called("askControl")[0]?.args[1] as () => void)(); // the customer allows it
  await shared.untilPayloads((all) => all.some((p) => p.k === "control" && p.state === "granted"));
  const control = (shared.session as unknown as { control: { revoke(): void; granted: boolean } }).control;
  return { ...shared, control };
}

for (const when of ["while the next epoch's key is being made", "queued as its epoch ends"]) {
  test(`control the customer takes back ${when} is said in the next epoch, never dropped unsaid`, async (t) => {
    const f = fakes();
    const { session, control, untilPayloads } = await inControl(t, f, "a".repeat(22));
    const release = nextEpochKeyHeld(f, session);
    // Between two epochs nothing can be sent; and a reply queued in an epoch that ends before it
    // is sealed went with that epoch's unsent frames (which the next full snapshot repairs: not
    // this). Unsaid, the agent's console went on showing the agent in control.
    if (when.startsWith("queued")) {
      control.revoke();
      f.server({ type: "peer", connected: true }); // a new epoch of the same page begins
    } else {
      f.server({ type: "peer", connected: true });
      control.revoke();
    }
    assert.equal(control.granted, false);
    release();
    const revoked = (p: Record<string, unknown>) => p.k === "control" && p.state === "revoked";
    const all = await untilPayloads((sent) => sent.some(revoked));
    const kinds = all.map((p) => p.k);
    assert.ok(kinds.lastIndexOf("consented") < all.findIndex(revoked), "said in the new epoch");
    assert.equal(all.filter(revoked).length, 1);
    // And not said as granted in it.
    assert.equal(all.slice(kinds.lastIndexOf("consented")).filter((p) => p.k === "control" && p.state === "granted").length, 0);
  });
}

test("a control grant dropped with its epoch is never said after the customer took control back", async (t) => {
  const f = fakes();
  const proof = "b".repeat(22);
  const { session, agent, untilPayloads } = await sharedAfterEcho(t, f, proof);
  f.deliver(await command(agent, { k: "control_request", proof }));
  await until(() => f.called("askControl").length === 1);
  const control = (session as unknown as { control: { revoke(): void; granted: boolean } }).control;
  const release = nextEpochKeyHeld(f, session);
  // The customer allows it (its `granted` queued, not yet sealed), the epoch ends, and the
  // customer takes control back before the next one begins: the grant, dropped with its epoch,
  // was held after the revocation (in place of it) and said alone in the next epoch, so the
  // agent's console showed the agent in control the customer had taken back.
  (f.called("askControl")[0]?.args[1] as () => void)();
  f.server({ type: "peer", connected: true });
  control.revoke();
  assert.equal(control.granted, false);
  release();
  const inNewEpoch = (sent: Record<string, unknown>[]) =>
    sent.filter((p) => p.k === "consented").length >= 2 ? sent.slice(sent.map((p) => p.k).lastIndexOf("consented")) : [];
  const all = await untilPayloads((sent) => inNewEpoch(sent).some((p) => p.k === "control"));
  assert.deepEqual(inNewEpoch(all).filter((p) => p.k === "control").map((p) => p.state), ["revoked"]);
});

test("an acting command the relay held past the bound is refused as late, not as aimed at a page gone; nothing of it is applied", async (t) => {
  const { clock, advance } = manualClock();
  const f = fakes(null, new Map(), new Set(), clock);
  const proof = "a".repeat(22);
  const { keys, agent } = await sharedAfterEcho(t, f, proof);
  const refusals = async () => (await opened(keys, f.binary())).filter((p) => p.k === "action_refused");
  const untilRefusals = async (count: number) => {
    await until(async () => (await refusals()).length >= count);
    const all = await refusals();
    assert.equal(all.length, count, "not sent");
    return all;
  };
  // Sealed while the view was live, naming that echo; the relay hands it over past the bound.
  const held = await command(agent, { k: "click", id: 5, proof });
  advance(ACTION_PROOF_MS + LOOK_EVERY_MS);
  f.deliver(held);
  f.deliver(await command(agent, { k: "laser", x: 1, y: 1, proof })); // pointing: quietly dropped
  const all = await untilRefusals(1);
  assert.equal(all[0]?.code, "late");
  assert.match(String(all[0]?.reason), /too late/);
  assert.equal(f.called("askControl").length, 0);
  // Within the bound, the same proof lets it through to control (not granted here: said so).
  const fresh = "b".repeat(22);
  f.deliver(await command(agent, { k: "challenge", nonce: fresh, proof }));
  await until(async () => (await opened(keys, f.binary())).some((p) => p.k === "echo" && p.nonce === fresh));
  advance(ACTION_PROOF_MS - LOOK_EVERY_MS);
  f.deliver(await command(agent, { k: "click", id: 5, proof: fresh }));
  assert.equal((await untilRefusals(2))[1]?.code, "not_granted");
});

test("a watching supervisor's challenges are echoed under an allowance of their own, and nothing else of it is taken", async (t) => {
  windowEvents(t);
  const f = fakes();
  const session = await startedAs(f, "s1");
  const keys = await pairAndAllow(f, "s1");
  f.server({ type: "watch_request", watcher: "Sam" });
  (f.called("askWatch")[0]?.args[1] as () => void)();
  await until(() => f.control().some((m) => m.type === "watch_handshake"));
  const sam = startPairing({ side: "console", peer: "watcher", secret: SECRET, sessionId: "s1", random: randomBytes });
  const reply = await sam.receive(f.control().find((m) => m.type === "watch_handshake")?.data as string);
  assert.ok(reply.kind === "reply");
  f.server({ type: "watch_handshake", data: reply.data });
  await until(() => f.control().filter((m) => m.type === "watch_handshake").length === 2);
  const paired = await sam.receive(f.control().filter((m) => m.type === "watch_handshake")[1]?.data as string);
  assert.ok(paired.kind === "paired");
  await until(() => f.binary().some((frame) => (frame as Uint8Array)[0] === 0x04)); // shared with Sam now

  const watcher = new CommandSender("s1", paired.keys.agentToCustomer, 0, KIND_FROM_WATCHER);
  const samNonces = Array.from({ length: ECHOES_PER_SECOND + 2 }, (_, i) => `s${i}`.repeat(11));
  for (const nonce of samNonces) f.deliver(await command(watcher, { k: "challenge", nonce }));
  f.deliver(await command(watcher, { k: "control_request" })); // a supervisor never commands
  // The supervisor's key under the agent's kind: refused (another key, another kind).
  f.deliver(await command(new CommandSender("s1", paired.keys.agentToCustomer), { k: "challenge", nonce: "F".repeat(22) }));
  // The agent's challenge: answered, whatever the supervisor used up.
  const agentNonce = "a".repeat(22);
  f.deliver(await command(new CommandSender("s1", keys.agentToCustomer), { k: "challenge", nonce: agentNonce }));
  await until(() => f.store.saved?.watcherCommands === samNonces.length + 1 && f.store.saved?.commands === 1);
  const echoes = async () => (await opened(keys, f.binary())).filter((payload) => payload.k === "echo");
  await until(async () => (await echoes()).length >= ECHOES_PER_SECOND + 1);
  await settled(session); // and no more come
  const nonces = (await echoes()).map((payload) => payload.nonce).sort();
  assert.deepEqual(nonces, [...samNonces.slice(0, ECHOES_PER_SECOND), agentNonce].sort());
  assert.equal(f.called("askControl").length, 0);
});

/** A clock that moves only when told: `advance` runs each timer as often as it falls due, in
 * steps of at most LOOK_EVERY_MS (a page whose timers run on time). */
function manualClock() {
  let now = 1_000_000;
  let nextId = 0;
  const timers = new Map<number, { due: number; every: number | null; fn: () => void }>();
  const add = (ms: number, fn: () => void, every: number | null) => {
    const id = nextId++;
    timers.set(id, { due: now + ms, every, fn });
    return () => void timers.delete(id);
  };
  const clock: Ports["clock"] = {
    now: () => now,
    after: (ms, fn) => add(ms, fn, null),
    every: (ms, fn) => add(ms, fn, ms),
  };
  const advance = (ms: number) => {
    const end = now + ms;
    while (now < end) {
      now = Math.min(end, now + LOOK_EVERY_MS);
      for (const [id, timer] of [...timers].sort((a, b) => a[1].due - b[1].due)) {
        while (timers.has(id) && timer.due <= now) {
          if (timer.every === null) timers.delete(id);
          else timer.due += timer.every;
          timer.fn();
        }
      }
    }
  };
  return { clock, advance };
}

/** The note the sharing banner shows last (ui.showSharing's sixth argument). */
const bannerNote = (f: ReturnType<typeof fakes>) => (f.called("showSharing").at(-1)?.args[5] ?? null) as { kind: string } | null;

test("the agent's console's silence warns the customer, then ends the session here with its own notice", async (t) => {
  windowEvents(t);
  const { clock, advance } = manualClock();
  const f = fakes(null, new Map(), new Set(), clock);
  const session = await startedAs(f, "s1");
  const keys = await pairAndAllow(f, "s1");
  // Watched from the start of sharing: a first challenge that is slow (the console's tab in the
  // background) is past the warning, and takes it back.
  advance(AGENT_QUIET_MS - 2 * LOOK_EVERY_MS);
  assert.equal(bannerNote(f), null);
  advance(2 * LOOK_EVERY_MS);
  assert.equal(bannerNote(f)?.kind, "agent_quiet");
  const agent = new CommandSender("s1", keys.agentToCustomer);
  const challenge = await command(agent, { k: "challenge", nonce: "a".repeat(22) });
  f.deliver(challenge);
  await until(() => f.store.saved?.commands === 1);
  assert.equal(bannerNote(f), null, "the warning taken back");
  assert.equal(f.store.saved?.agentSilentMs, 0, "kept for the session's next page");
  // A challenge now and then keeps it going.
  advance(AGENT_SILENT_MS - 5000);
  f.deliver(await command(agent, { k: "challenge", nonce: "b".repeat(22) }));
  await until(() => f.store.saved?.commands === 2);
  advance(AGENT_QUIET_MS - 2000);
  assert.equal(bannerNote(f), null);
  advance(2000 + LOOK_EVERY_MS);
  assert.equal(bannerNote(f)?.kind, "agent_quiet", "the customer is told the console stopped answering");
  assert.equal(session.state, "sharing");
  // The relay replays an earlier challenge, and forges one: neither opens, neither counts.
  f.deliver(challenge);
  const forged = new Uint8Array(challenge);
  forged[forged.length - 1] ^= 1;
  f.deliver(forged);
  await settled(session); // both were tried
  assert.equal(f.store.saved?.commands, 2);
  advance(AGENT_SILENT_MS - AGENT_QUIET_MS);
  await until(() => session.state === "ended");
  assert.deepEqual(f.control().at(-1), { v: 1, type: "stop" }, "the server is told, as Stop sharing tells it");
  assert.equal(f.called("showError").at(-1)?.args[0], CONSOLE_SILENT);
  assert.equal(f.store.saved, null);
  assert.equal(f.closed, 1000);
  const sent = f.binary().length;
  advance(10 * LOOK_EVERY_MS);
  assert.equal(f.binary().length, sent, "nothing more is sent");
});

test("with no challenge from the start of sharing (a relay that withholds them all), the customer is warned, then the session ends", async (t) => {
  windowEvents(t);
  const { clock, advance } = manualClock();
  const f = fakes(null, new Map(), new Set(), clock);
  const session = await startedAs(f, "s1");
  await pairAndAllow(f, "s1");
  // The relay can pass only what proves nothing: a challenge under keys of its own does not open.
  const other = await derivePairwiseKeys(randomBytes(32), "s1"); // not the pairing's keys
  const forged = await command(new CommandSender("s1", other.agentToCustomer), { k: "challenge", nonce: "f".repeat(22) });
  advance(AGENT_QUIET_MS - LOOK_EVERY_MS);
  f.deliver(forged);
  await settled(session); // it was tried
  assert.equal(f.store.saved?.commands ?? 0, 0, "a forged challenge does not open");
  assert.equal(bannerNote(f), null);
  advance(LOOK_EVERY_MS);
  assert.equal(bannerNote(f)?.kind, "agent_quiet");
  advance(AGENT_SILENT_MS - AGENT_QUIET_MS - LOOK_EVERY_MS);
  assert.equal(session.state, "sharing", "not before the bound");
  advance(LOOK_EVERY_MS);
  await until(() => session.state === "ended");
  assert.deepEqual(f.control().at(-1), { v: 1, type: "stop" });
  assert.equal(f.called("showError").at(-1)?.args[0], CONSOLE_SILENT);
  assert.equal(f.store.saved, null);
});

test("a relay that forces resumes, and new pages, never start the silence afresh: the time shared adds up", async (t) => {
  windowEvents(t);
  const origin = new Map<string, PairwiseKeys>();
  const { clock, advance } = manualClock();
  const f = fakes(null, origin, new Set(), clock);
  const session = await startedAs(f, "s1");
  await pairAndAllow(f, "s1");
  let shared = 0; // sharing time without a challenge (ms)
  // Three times: 50 s shared, then the relay closes the socket; the page reconnects (not counted,
  // however long: "Reconnecting…", nothing shared) and sharing comes back.
  for (let i = 0; i < 3; i++) {
    advance(50_000);
    shared += 50_000;
    f.close(1006);
    assert.ok(f.store.saved?.agentSilentMs !== undefined && f.store.saved.agentSilentMs >= shared - LOOK_EVERY_MS);
    advance(RECONNECT_MAX_MS); // the attempt
    f.open();
    advance(15_000); // the relay takes its time to answer: not counted
    const frames = f.binary().length;
    f.server({ type: "resumed", state: "sharing", agent: "Ann", code: null });
    await until(() => f.binary().length > frames); // sharing again, in a new epoch
    assert.equal(session.state, "sharing");
  }
  advance(10_000);
  shared += 10_000;
  assert.equal(bannerNote(f)?.kind, "agent_quiet", "warned: nothing started afresh");
  // A new page of the same tab goes on from the silence its record kept.
  const record = f.store.saved;
  assert.ok(record && record.agentSilentMs !== undefined && record.agentSilentMs >= shared - LOOK_EVERY_MS);
  session.leave();
  const next = fakes(record, origin, new Set(), clock);
  const page = new Session(next.ports);
  page.resume(record);
  next.open();
  next.server({ type: "resumed", state: "sharing", agent: "Ann", code: null });
  await until(() => next.binary().length > 0);
  advance(LOOK_EVERY_MS);
  assert.equal(bannerNote(next)?.kind, "agent_quiet", "warned on the new page at once");
  advance(AGENT_SILENT_MS - shared - 3 * LOOK_EVERY_MS);
  assert.equal(page.state, "sharing", "not before the bound");
  advance(3 * LOOK_EVERY_MS);
  await until(() => page.state === "ended");
  assert.equal(next.called("showError").at(-1)?.args[0], CONSOLE_SILENT);
  assert.equal(next.store.saved, null);
  // The page left behind did nothing more with the session meanwhile.
  assert.equal(session.state, "sharing");
  assert.equal(f.called("showError").length, 0);
});

test("a watching supervisor's challenges do not stand for the agent's console", async (t) => {
  windowEvents(t);
  const { clock, advance } = manualClock();
  const f = fakes(null, new Map(), new Set(), clock);
  const session = await startedAs(f, "s1");
  const keys = await pairAndAllow(f, "s1");
  f.deliver(await command(new CommandSender("s1", keys.agentToCustomer), { k: "challenge", nonce: "a".repeat(22) }));
  await until(() => f.store.saved?.commands === 1);
  // Under the agent's key but the supervisor's kind: not the agent's channel, not opened.
  const watcherKind = new CommandSender("s1", keys.agentToCustomer, 1, KIND_FROM_WATCHER);
  for (let i = 0; i < 3; i++) {
    advance(AGENT_SILENT_MS / 4);
    f.deliver(await command(watcherKind, { k: "challenge", nonce: String(i).repeat(22) }));
  }
  advance(AGENT_SILENT_MS / 4 + LOOK_EVERY_MS);
  await until(() => session.state === "ended");
  assert.equal(f.called("showError").at(-1)?.args[0], CONSOLE_SILENT);
});

test("a challenge the relay held back names an old echo: it does not stretch the silence", async (t) => {
  windowEvents(t);
  const { clock, advance } = manualClock();
  const f = fakes(null, new Map(), new Set(), clock);
  const session = await startedAs(f, "s1");
  const keys = await pairAndAllow(f, "s1");
  const agent = new CommandSender("s1", keys.agentToCustomer);
  const [a, b, c] = ["a", "b", "c"].map((x) => x.repeat(22));
  f.deliver(await command(agent, { k: "challenge", nonce: a, proof: null })); // a view's first: arms
  await until(() => f.store.saved?.commands === 1);
  advance(60_000);
  f.deliver(await command(agent, { k: "challenge", nonce: b, proof: a })); // the echo of a, a minute ago
  await until(() => f.store.saved?.commands === 2);
  advance(AGENT_QUIET_MS + LOOK_EVERY_MS);
  assert.equal(bannerNote(f)?.kind, "agent_quiet");
  // The relay held this one back since b's echo: it names b, sent long ago: nothing new.
  f.deliver(await command(agent, { k: "challenge", nonce: c, proof: b }));
  await until(() => f.store.saved?.commands === 3);
  advance(LOOK_EVERY_MS);
  assert.equal(bannerNote(f)?.kind, "agent_quiet");
  advance(AGENT_SILENT_MS - AGENT_QUIET_MS - 2 * LOOK_EVERY_MS);
  await until(() => session.state === "ended");
  assert.equal(f.called("showError").at(-1)?.args[0], CONSOLE_SILENT);
});

test("a page that cannot send its echoes (a change too large to send) is not live either: the bound ends it too", async (t) => {
  windowEvents(t);
  const { clock, advance } = manualClock();
  const f = fakes(null, new Map(), new Set(), clock);
  const session = await startedAs(f, "s1");
  const keys = await pairAndAllow(f, "s1");
  const agent = new CommandSender("s1", keys.agentToCustomer);
  const a = "a".repeat(22);
  f.deliver(await command(agent, { k: "challenge", nonce: a, proof: null }));
  await until(() => f.store.saved?.commands === 1);
  const huge = { type: 3, timestamp: 0, data: { source: 0, texts: [{ id: 7, value: "x".repeat(33 * 1024 * 1024) }], attributes: [], removes: [], adds: [] } };
  (session as unknown as { sendEvents(events: unknown[]): void }).sendEvents([huge]);
  // The console goes on asking, its proof the last echo it got (a's): no newer one can go, and a
  // relay could stage the same (it stops reading the page's socket), so they prove nothing new.
  for (let i = 0; session.state === "sharing" && i < 8; i++) {
    advance(30_000);
    f.deliver(await command(agent, { k: "challenge", nonce: String(i).repeat(22), proof: a }));
    await until(() => f.store.saved?.commands === i + 2 || session.state !== "sharing");
  }
  await until(() => session.state === "ended");
  assert.equal(f.called("showError").at(-1)?.args[0], CONSOLE_SILENT);
});

/** A recording key made here: its public key (base64url), its id and the private key. */
async function recordingKey(): Promise<{ key: string; keyId: string; privateKey: Uint8Array }> {
  const privateKey = x25519.utils.randomSecretKey();
  const publicKey = x25519.getPublicKey(privateKey);
  return { key: toBase64Url(publicKey), keyId: await recordingKeyId(publicKey), privateKey };
}

/** A private page's session (nothing of the page recorded: no browser here), paired and
 * allowed, that the customer then allowed to be recorded: its recorded epoch has begun. */
async function recordedSession(f: ReturnType<typeof fakes>) {
  const recording = await recordingKey();
  const session = new Session(f.ports);
  const code = session.start({ policy: PRIVATE_CART, recordingKeys: [recording.keyId] });
  f.open();
  f.server({ type: "created", session_id: "s1", code: "12345", resume_token: "tok", expires_in: 600 });
  await code;
  const keys = await pairAndAllow(f, "s1");
  const agent = new CommandSender("s1", keys.agentToCustomer);
  f.server({ type: "record_request", agent: "Ann", key: recording.key, recording_id: "r1", site: "demo" });
  f.deliver(await command(agent, { k: "record_request", agent: "ann", name: "Ann" }));
  await until(() => f.called("askRecording").length === 1);
  (f.called("askRecording")[0]?.args[2] as () => void)(); // Allow recording
  await until(() => f.store.saved?.recording?.started === true && (f.store.saved.recording.chain?.count ?? 0) >= 4);
  return { session, keys, agent, recording };
}

test("the recording question names the agent the customer allowed, never a name the agent's console makes up", async (t) => {
  windowEvents(t);
  const f = fakes();
  const recording = await recordingKey();
  const session = new Session(f.ports);
  const code = session.start({ policy: PRIVATE_CART, recordingKeys: [recording.keyId] });
  f.open();
  f.server({ type: "created", session_id: "s1", code: "12345", resume_token: "tok", expires_in: 600 });
  await code;
  const keys = await pairAndAllow(f, "s1"); // the customer allowed "Ann"
  const agent = new CommandSender("s1", keys.agentToCustomer);
  f.server({ type: "record_request", agent: "Ann", key: recording.key, recording_id: "r1", site: "demo" });
  // A modified console (the paired agent) names someone the customer has more reason to trust.
  const posing = "Your bank's fraud office (recording required by law)";
  f.deliver(await command(agent, { k: "record_request", agent: "ann", name: posing }));
  await until(() => f.called("askRecording").length === 1);
  assert.equal(f.called("askRecording")[0]?.args[0], "Ann");
  assert.ok(!JSON.stringify(f.called("askRecording")).includes("fraud office"));
  assert.equal(session.state, "sharing");
});

test("the relay's redraws leave the recording question as it is while it shows: its buttons keep their clicks, Allow its wait", async (t) => {
  windowEvents(t);
  const f = fakes();
  const recording = await recordingKey();
  const session = new Session(f.ports);
  const code = session.start({ policy: PRIVATE_CART, recordingKeys: [recording.keyId] });
  f.open();
  f.server({ type: "created", session_id: "s1", code: "12345", resume_token: "tok", expires_in: 600 });
  await code;
  const keys = await pairAndAllow(f, "s1");
  f.server({ type: "record_request", agent: "Ann", key: recording.key, recording_id: "r1", site: "demo" });
  f.deliver(await command(new CommandSender("s1", keys.agentToCustomer), { k: "record_request", agent: "ann", name: "Ann" }));
  await until(() => f.called("askRecording").length === 1);
  f.answers.asking = () => "tandem-record-title"; // the widget shows it
  for (let i = 0; i < 5; i++) f.server({ type: "peer", connected: i % 2 === 1 });
  f.server({ type: "link", state: "reconnecting" });
  assert.equal(f.called("askRecording").length, 1, "drawn once, not once per redraw the relay called for");
  // Another question took its place (a supervisor's): not while that one shows either...
  f.answers.asking = () => "tandem-watch-title";
  f.server({ type: "peer", connected: false });
  assert.equal(f.called("askRecording").length, 1);
  // ...and once that is answered (none shows), it comes back.
  f.answers.asking = () => null;
  f.server({ type: "peer", connected: true });
  assert.equal(f.called("askRecording").length, 2);
  assert.equal(session.state, "sharing");
});

/** The payloads a recording holds, from the frames the customer's browser sent (what the server
 * stores of them): opened as an auditor opens it, whole (the end marker last) or it throws. */
async function recorded(privateKey: Uint8Array, frames: Uint8Array[]): Promise<string[]> {
  const opener = new RecordingOpener("s1", privateKey);
  const unpacking = new UnpackStreams();
  const decoder = new PayloadDecoder();
  const kinds: string[] = [];
  for (const frame of frames) {
    const plaintext = await opener.open(frame);
    const payload = plaintext && decoder.push(await unpacking.unpack(plaintext, readU64(frame, 1)));
    if (!payload) continue;
    if (payload.k === "recording_start") await opener.chain(payload.chain);
    kinds.push(payload.k);
    if (payload.k === "recording_end") opener.end();
  }
  opener.finish();
  return kinds;
}

test("Stop sharing while recording ends the session here at the click: only the end marker follows, then `stop`", async (t) => {
  windowEvents(t);
  const f = fakes();
  const { session, keys, agent, recording } = await recordedSession(f);
  const before = f.binary().length;
  const controlBefore = f.control().length;
  const stopping = session.stop(); // the click
  // At once, before any of it went: the session is over here and the customer is told.
  assert.equal(session.state, "ended");
  assert.equal(f.called("showStopped").length, 1);
  assert.equal(f.store.saved, null);
  assert.equal(f.closed, null, "the socket stays open for the end marker");
  // An agent's command the relay passes on now is not even opened.
  f.deliver(await command(agent, { k: "control_request" }));
  await stopping;
  // Then, on the wire: the end marker (the agent told, and the recording's last frame), `stop`, the close.
  const after = f.binary().slice(before) as Uint8Array[];
  assert.deepEqual((await opened(keys, f.binary())).slice(-2).map((payload) => payload.k), ["recording", "recording_end"]);
  assert.equal(after.length, 2, "nothing but the end marker after the click");
  assert.deepEqual(f.control().slice(controlBefore), [{ v: 1, type: "stop" }]);
  assert.equal(f.closed, 1000);
  assert.equal(f.called("askControl").length, 0);
  const kinds = await recorded(recording.privateKey, f.binary() as Uint8Array[]); // whole
  assert.deepEqual(kinds, ["recording_start", "recording", "consented", "paused", "recording", "recording_end"]);
});

test("Stop recording ends the recording at the click: the marker is its last frame, then `record_stop`, then an unrecorded epoch", async (t) => {
  windowEvents(t);
  const f = fakes();
  const { session, keys, recording } = await recordedSession(f);
  const before = f.binary().length;
  const controlBefore = f.control().length;
  const stopRecording = f.called("showSharing").at(-1)?.args[4] as (() => void) | undefined;
  assert.ok(stopRecording, "the banner offers Stop recording");
  stopRecording();
  // At once: not recording any more, here and for the next page; the banner says so.
  assert.equal(f.store.saved?.recording, null);
  assert.equal(f.called("showSharing").at(-1)?.args[4], undefined, "the banner no longer says recording");
  await until(() => f.control().slice(controlBefore).some((m) => m.type === "record_stop"));
  await until(() => (f.store.saved?.epoch ?? 0) >= 3 && f.binary().length > before + 2);
  assert.equal(session.state, "sharing");
  const payloads = await opened(keys, f.binary());
  const end = payloads.findIndex((payload) => payload.k === "recording_end");
  assert.deepEqual(payloads.slice(end - 1, end + 1).map((payload) => payload.k), ["recording", "recording_end"]);
  // What the recording holds ends with the marker; the next epoch is not wrapped for its key.
  const kinds = await recorded(recording.privateKey, f.binary() as Uint8Array[]);
  assert.equal(kinds.at(-1), "recording_end");
  assert.ok(!kinds.slice(0, -1).includes("recording_end"));
});

test("a page that flickers Stop sharing out of reach at every other look does not have the whole page snapshotted and sent each time", async (t) => {
  windowEvents(t);
  const { clock, advance } = manualClock();
  const f = fakes(null, new Map(), new Set(), clock);
  let reachable = true;
  f.answers.reachable = () => reachable;
  const session = new Session(f.ports);
  // Each time sharing goes on, the recorder starts again with a full snapshot (counted here: the
  // recorder needs a page, tests/e2e has the real one).
  let snapshots = 0;
  (session as unknown as { record(): void }).record = () => void snapshots++;
  const code = session.start();
  f.open();
  f.server({ type: "created", session_id: "s1", code: "12345", resume_token: "tok", expires_in: 600 });
  await code;
  await pairAndAllow(f, "s1");
  assert.equal(session.state, "sharing");
  assert.equal(snapshots, 1);
  // 60 looks (300 ms each, 18 s): out of reach at one, within reach at the next.
  for (let look = 0; look < 60; look++) {
    reachable = look % 2 === 1;
    advance(300);
  }
  assert.ok(snapshots <= 3, `${snapshots - 1} full snapshots in 18 s of flicker`);
  // The page lets go: sharing goes on, within about 10 s (MAX_RESUME_LOOKS).
  const flickered = snapshots;
  reachable = true;
  advance(300 * 32);
  assert.equal(snapshots, flickered + 1, "sharing goes on once the page lets go");
  assert.notEqual(f.called("showSharing").at(-1)?.args[2], "controls_hidden");
});

test("while the page keeps Stop sharing from the customer nothing of the page goes and the agent's commands are not taken; the agent is told why", async (t) => {
  windowEvents(t);
  const { clock, advance } = manualClock();
  const f = fakes(null, new Map(), new Set(), clock);
  let reachable = false; // a page's modal layer keeps the widget out of reach as sharing begins
  f.answers.reachable = () => reachable;
  const session = new Session(f.ports);
  const code = session.start(); // a shared page (no private rule)
  f.open();
  f.server({ type: "created", session_id: "s1", code: "12345", resume_token: "tok", expires_in: 600 });
  await code;
  const keys = await pairAndAllow(f, "s1");
  const payloads = async () => (await opened(keys, f.binary())).map((payload) => payload.k === "paused" ? JSON.stringify(payload) : String(payload.k));
  await until(() => f.binary().length >= 3);
  assert.deepEqual(await payloads(), ["consented", JSON.stringify({ k: "paused", why: "controls_hidden" })]);
  // The audit trail is told that it paused for the controls, by name only (nothing of the page).
  assert.deepEqual(f.control().filter((m) => m.type === "report"), [{ v: 1, type: "report", event: "controls_hidden" }]);
  // The agent asks for control meanwhile: not taken, not asked.
  const agent = new CommandSender("s1", keys.agentToCustomer);
  f.deliver(await command(agent, { k: "control_request" }));
  await until(() => f.store.saved?.commands === 1);
  advance(1000);
  assert.equal(f.called("askControl").length, 0);
  assert.deepEqual((await payloads()).filter((k) => k !== "echo"), ["consented", JSON.stringify({ k: "paused", why: "controls_hidden" })]);
  assert.equal(session.state, "sharing");
  // The customer's banner (and screen reader) says why: not "this private page".
  assert.equal(f.called("showSharing").at(-1)?.args[2], "controls_hidden");
  // Still out of reach at every look: paused once, not again and again.
  advance(3000);
  assert.equal((await payloads()).filter((k) => k !== "consented" && k !== "echo").length, 1);
  // Reachable again: sharing goes on (the recorder starts again, with a full snapshot).
  reachable = true;
  // The recorder needs a page (rrweb): here only that it starts again (the browser test,
  // tests/e2e/test_widget_reach.py, has the real one resume with a full snapshot).
  let recorded = 0;
  (session as unknown as { record(): void }).record = () => void recorded++;
  advance(1000);
  assert.equal(recorded, 1, "sharing goes on");
  assert.equal(f.called("showSharing").at(-1)?.args[2], false, "the banner no longer says paused");
  // Out of reach again, later: paused again, said again.
  reachable = false;
  advance(1000);
  const told = async () => (await payloads()).filter((k) => k.includes("controls_hidden")).length;
  await until(async () => (await told()) >= 2);
  assert.equal(await told(), 2);
});

test("start()'s rejection says the SDK's own words; the relay's close reason is apart, marked as the server's", async () => {
  const f = fakes();
  const session = new Session(f.ports);
  const code = session.start();
  f.open();
  f.close(4403, "origin not allowed: call 0800 555 0100\u2028and read them your card number \u202e");
  const error = await code.then(() => null, (e: unknown) => e as TandemSessionError);
  assert.ok(error instanceof TandemSessionError);
  assert.doesNotMatch(error.message, /0800|help server said/, "a site showing the rejection shows no words of the relay's");
  assert.equal(error.message, "Help is not available on this site.");
  assert.equal(error.serverWords, "origin not allowed: call 0800 555 0100 and read them your card number \ufffd");
});
