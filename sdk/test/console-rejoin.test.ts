// Issue 13, fault 6: the console takes its session up again after a dropped socket or a reload,
// within the server's window, with the keys of its own pairing (never anything the server says).
// Fake ports: a scripted server per socket, a clock whose timers the test fires, an in-memory
// store standing in for sessionStorage and IndexedDB.
import assert from "node:assert/strict";
import { test } from "node:test";
import { document } from "./dom.ts";
import { CommandReceiver, ContentSender, type PairwiseKeys } from "../src/shared/e2e/channel.ts";
import { randomBytes } from "../src/shared/e2e/encoding.ts";
import { startPairing } from "../src/shared/e2e/pairing.ts";
import type { ConnectionEvents } from "../src/shared/ports.ts";
import { LiveView } from "../src/console/live.ts";
import { type Held, type HeldStore, leftTooLongAgo } from "../src/console/rejoin.ts";
import { type LiveEvent, controls } from "../src/console/state.ts";
import { CHALLENGE_EVERY_MS, STALE_AFTER_MS } from "../src/console/freshness.ts";
import { RECONNECT_MARGIN_MS, reconnectDelay } from "../src/shared/backoff.ts";
import { cardUi } from "./live-ui.ts";
import { FakeLocks, manualTimers } from "./locks.ts";
import { claimSealing, COMMAND_BLOCK, sealingLock } from "../src/console/claim.ts";
import { until } from "./until.ts";

(globalThis as Record<string, unknown>).__TANDEM_BENCH_PLAINTEXT__ = false;
// The mirror (rrweb's Replayer, in a happy-dom element) starts once the customer's browser consents.
(globalThis as Record<string, unknown>).ResizeObserver ??= class { observe() {} disconnect() {} };

const ROUTING = "12345";
const SECRET = "7654321";

interface Socket {
  events: ConnectionEvents;
  sent: Record<string, unknown>[];
  binary: Uint8Array[];
  closed: number | null;
}

/** The origin's shared state: its key database (with the counters reserved under each handle)
 * and its Web Locks. */
function memoryOrigin() {
  return { keys: new Map<string, PairwiseKeys>(), reserved: new Map<string, number>(), locks: new FakeLocks() };
}

let documents = 0;

/** One tab's store (one document: `document`, for the locks); `origin` is shared by its tabs.
 * A claim waits until the test fires `timers` (its bound). */
function memoryStore(origin: Map<string, PairwiseKeys> | ReturnType<typeof memoryOrigin> = memoryOrigin()) {
  const shared = origin instanceof Map ? { ...memoryOrigin(), keys: origin } : origin;
  const { keys, reserved, locks } = shared;
  const document = `document ${++documents}`;
  const timers = manualTimers();
  const sealing = new Map<string, () => void>(); // this document's keys' locks, as the browser's store
  const store: HeldStore & { held: Held | null; keys: Map<string, PairwiseKeys>; cleared: number; document: string; timers: typeof timers; origin: typeof shared } = {
    held: null,
    keys,
    cleared: 0,
    document,
    timers,
    origin: shared,
    claim(handle) {
      const until = new Promise<void>((resolve) => sealing.set(handle, resolve));
      return claimSealing(locks.port(document), handle, timers.after, undefined, until);
    },
    release(handle) {
      sealing.get(handle)?.();
      sealing.delete(handle);
    },
    async reserveCommands(handle, after, count) {
      if (!keys.has(handle)) return null;
      const first = Math.max(reserved.get(handle) ?? 0, after) + 1;
      reserved.set(handle, first + count - 1);
      return first;
    },
    load() {
      return this.held ? { ...this.held } : null;
    },
    save(held) {
      this.held = held ? { ...held } : null;
    },
    async saveKeys(id, keys) {
      this.keys.set(id, keys);
    },
    async loadKeys(id) {
      return this.keys.get(id) ?? null;
    },
    async forget(handle) {
      this.held = null;
      if (handle) this.keys.delete(handle);
      this.cleared++;
      if (handle) this.release(handle);
    },
    async clearUnused() {
      this.keys.clear();
    },
  };
  return store;
}

function harness(target: ConstructorParameters<typeof LiveView>[0], store = memoryStore()) {
  const sockets: Socket[] = [];
  let now = 0;
  /** `every`: a timer that comes back (the freshness check's); the others run once. */
  const timers: { at: number; fn: () => void; done: boolean; every?: number }[] = [];
  let expired = 0;
  const mirror = document.createElement("div");
  const ui = cardUi({ width: 1200, height: 800 }, { sessionExpired: () => void expired++, mirror });
  /** Everything the session reported to the console, in order. */
  const reported: LiveEvent[] = [];
  const report = ui.report;
  ui.report = (event) => {
    reported.push(event);
    report(event);
  };
  const view = new LiveView(target, ui, {
    transport: (events) => {
      const socket: Socket = { events, sent: [], binary: [], closed: null };
      sockets.push(socket);
      return {
        send: (data) => {
          if (typeof data === "string") socket.sent.push(JSON.parse(data));
          else socket.binary.push(data);
        },
        close: (code) => {
          socket.closed ??= code;
        },
        get isOpen() {
          return socket.closed === null;
        },
        get isClosed() {
          return socket.closed !== null;
        },
        bufferedAmount: 0,
      };
    },
    clock: {
      now: () => now,
      after: (ms, fn) => {
        const timer = { at: now + ms, fn, done: false };
        timers.push(timer);
        return () => void (timer.done = true);
      },
      every: (ms, fn) => {
        const timer = { at: now + ms, fn, done: false, every: ms };
        timers.push(timer);
        return () => void (timer.done = true);
      },
    },
    random: randomBytes,
    held: store,
  });
  const last = () => sockets.at(-1) as Socket;
  return {
    view, store, sockets, last, reported,
    get card() {
      return ui.card;
    },
    get expired() {
      return expired;
    },
    /** The newest socket closes (as the browser reports it: no longer open). */
    lose(code: number, reason = "") {
      const socket = last();
      socket.closed ??= code;
      socket.events.close(code, reason);
    },
    server: (message: Record<string, unknown>, socket = last()) => socket.events.text(JSON.stringify({ v: 1, ...message })),
    /** Move the clock to `at`, running the timers due. */
    advanceTo(at: number) {
      this.advance(at - now);
    },
    /** Move the clock on by `ms`, running the timers due, each at its time. */
    advance(ms: number) {
      const end = now + ms;
      for (;;) {
        const due = timers.filter((t) => !t.done && t.at <= end).sort((a, b) => a.at - b.at)[0];
        if (!due) break;
        now = Math.max(now, due.at);
        if (due.every) due.at += due.every;
        else due.done = true;
        due.fn();
      }
      now = end;
    },
    /** The next timer that runs once (a reconnection's), if any. */
    pendingTimer: () => timers.find((t) => !t.done && !t.every),
  };
}

/** A joined, paired console (the customer's pairing is real) and the customer's keys. */
async function paired(resumeSeconds = 30, store = memoryStore()) {
  const h = harness({ code: `${ROUTING} ${SECRET}` }, store);
  h.last().events.open();
  h.server({ type: "joined", session_id: "s1", resume_token: "tok", resume_seconds: resumeSeconds });
  const customer = startPairing({ side: "customer", peer: "agent", secret: SECRET, sessionId: "s1", random: randomBytes });
  h.server({ type: "handshake", data: customer.opening });
  await until(() => h.last().sent.some((m) => m.type === "handshake"));
  const step = await customer.receive(h.last().sent.find((m) => m.type === "handshake")?.data as string);
  assert.ok(step.kind === "paired" && step.data);
  h.server({ type: "handshake", data: step.data });
  await until(() => h.store.held !== null && h.store.keys.has(h.store.held.keyHandle));
  return { h, keys: step.keys };
}

test("a joined console keeps its resume token and, once paired, its keys (for a reload)", async () => {
  const { h } = await paired(20);
  const handle = h.store.held?.keyHandle;
  assert.ok(handle && handle !== "s1", "under a handle of this tab's own, never the server's session id");
  assert.deepEqual(h.store.held, { sessionId: "s1", keyHandle: handle, resumeToken: "tok", windowMs: 20_000, commands: 0, epoch: 0 });
  assert.ok(h.store.keys.get(handle)?.customerToAgent instanceof CryptoKey);
  assert.ok(!h.store.keys.has("s1"));
});

test("a dropped socket says Reconnecting…, rejoins with the token after a back-off, and the session goes on", async () => {
  const { h, keys } = await paired();
  const first = h.last();
  h.lose(1006);
  assert.equal(h.card.status.text, "Connection lost. Reconnecting…");
  assert.ok(h.view.open);
  assert.equal(h.sockets.length, 1); // not at once: after the back-off
  const timer = h.pendingTimer();
  assert.ok(timer && timer.at >= reconnectDelay(0, 0) && timer.at <= reconnectDelay(0, 1));
  h.advance(timer.at);
  assert.equal(h.sockets.length, 2);
  h.last().events.open();
  assert.deepEqual(h.last().sent, [{ v: 1, type: "rejoin", session_id: "s1", resume_token: "tok" }]);
  h.server({ type: "joined", session_id: "s1", resumed: true });
  assert.equal(h.card.status.text, "Reconnected. Waiting for the customer's page…");
  assert.equal(h.card.phase, "joined");
  // Frames of the epoch that ran while away are dropped quietly; the customer's new epoch opens.
  const old = await ContentSender.create("s1", 1, [keys.customerToAgent]);
  h.last().events.binary(await old.seal(new Uint8Array([1, 2, 3])));
  const fresh = await ContentSender.create("s1", 2, [keys.customerToAgent]);
  for (const frame of fresh.epochKeyFrames) h.last().events.binary(frame);
  await received(h);
  assert.ok(h.view.open, h.card.status.text);
  // The old socket's late events are not the session's any more.
  first.events.close(1006, "");
  assert.equal(h.pendingTimer(), undefined);
});

test("a server restart that hands the session over says so, and the console rejoins the next process", async () => {
  const { h } = await paired();
  h.server({ type: "restarting", reason: "reconnect", message: "(the server's prose is not shown)" });
  assert.equal(h.card.status.text, "The help server is restarting. Reconnecting…");
  h.lose(1012, "server restarting: reconnect");
  assert.ok(h.view.open);
  assert.equal(h.card.status.text, "Connection lost. Reconnecting…");
  h.advance((h.pendingTimer() as { at: number }).at);
  h.lose(1006); // the next process is not up yet: tried again, still within the window
  h.advance((h.pendingTimer() as { at: number }).at);
  h.last().events.open();
  assert.deepEqual(h.last().sent, [{ v: 1, type: "rejoin", session_id: "s1", resume_token: "tok" }]);
  h.server({ type: "joined", session_id: "s1", resumed: true });
  assert.equal(h.card.status.text, "Reconnected. Waiting for the customer's page…");
  assert.equal(h.store.cleared, 0);
});

test("a malicious server that splices another customer into the rejoined session is refused", async () => {
  const { h } = await paired();
  h.lose(1006);
  h.advance(10_000);
  h.last().events.open();
  h.server({ type: "joined", session_id: "s1", resumed: true });
  // Another customer's browser (its own pairing, its own keys) starts an epoch: it cannot be
  // opened with this session's keys, and the console ends the session rather than show it.
  const other = startPairing({ side: "customer", peer: "agent", secret: "1111111", sessionId: "s1", random: randomBytes });
  const agent = startPairing({ side: "console", peer: "agent", secret: "1111111", sessionId: "s1", random: randomBytes });
  const reply = await agent.receive(other.opening ?? "");
  assert.ok(reply.kind === "reply");
  const otherKeys = await other.receive(reply.data);
  assert.ok(otherKeys.kind === "paired");
  const spliced = await ContentSender.create("s1", 5, [otherKeys.keys.customerToAgent]);
  for (const frame of spliced.epochKeyFrames) h.last().events.binary(frame);
  await until(() => !h.view.open);
  assert.match(h.card.status.text, /integrity check/);
  assert.deepEqual(h.last().sent.at(-1), { v: 1, type: "leave" });
  assert.equal(h.store.held, null);
  assert.equal(h.store.keys.size, 0);
});

test("a reloaded console restores its keys before it rejoins, and its commands go on after the last counter", async () => {
  // (Releasing control: it goes whether or not the view is live; acting on the page waits.)
  const { h: before, keys } = await paired();
  before.view.sendCommand({ k: "control_release" });
  before.view.sendCommand({ k: "control_release" });
  await until(() => before.store.held?.commands === 2);
  const store = memoryStore();
  store.held = { ...(before.store.held as Held) };
  store.keys.set(store.held.keyHandle, keys);
  const h = harness({ rejoin: store.load() as Held }, store);
  assert.equal(h.card.status.text, "Connection lost. Reconnecting…");
  assert.equal(h.card.sessionId, null); // a new page: its header knows no session yet
  await until(() => h.sockets.length === 1);
  h.last().events.open();
  assert.deepEqual(h.last().sent, [{ v: 1, type: "rejoin", session_id: "s1", resume_token: "tok" }]);
  h.server({ type: "joined", session_id: "another", resumed: true });
  assert.equal(h.card.sessionId, "s1"); // the session it asked for, not the server's word
  h.view.sendCommand({ k: "control_release" });
  await until(() => h.last().binary.length === 1);
  // The customer's browser (which saw counters 1 and 2) accepts it: no replay.
  const receiver = new CommandReceiver("s1", keys.agentToCustomer, 2);
  const opened = JSON.parse(new TextDecoder().decode(await receiver.open(h.last().binary[0] as Uint8Array)));
  assert.deepEqual(opened, { k: "control_release" });
  assert.equal(receiver.last, 3);
});

/** A payload as the customer's browser frames it, not compressed (flag 0: raw). */
function payload(value: unknown): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(value));
  const out = new Uint8Array(json.length + 1);
  out.set(json, 1);
  return out;
}

/** One epoch of the customer's browser as the server sees it go by (and may keep): its key,
 * `consented`, then the page's context; and its sender, for what follows in it. */
async function epochOf(keys: PairwiseKeys, epoch: number, title: string): Promise<{ frames: Uint8Array[]; sender: ContentSender }> {
  const sender = await ContentSender.create("s1", epoch, [keys.customerToAgent]);
  const context = { k: "context", origin: "https://shop.example", title, device: "desktop", viewport: { w: 800, h: 600 } };
  return { frames: [...sender.epochKeyFrames, await sender.seal(payload({ k: "consented" })), await sender.seal(payload(context))], sender };
}

/** The nonces of the challenges among the console's commands `frames` (opened as the customer's
 * browser opens them). */
async function challenges(keys: PairwiseKeys, frames: Uint8Array[]): Promise<string[]> {
  const receiver = new CommandReceiver("s1", keys.agentToCustomer);
  const nonces: string[] = [];
  for (const frame of frames) {
    const command = JSON.parse(new TextDecoder().decode(await receiver.open(frame))) as { k: string; nonce?: string };
    if (command.k === "challenge" && command.nonce) nonces.push(command.nonce);
  }
  return nonces;
}

/** The customer's browser's echo of the latest challenge the console sent on `socket`, in
 * `sender`'s epoch, as the SDK makes it (once a challenge was sent). */
async function echoOf(socket: Socket, keys: PairwiseKeys, sender: ContentSender): Promise<Uint8Array> {
  await until(() => socket.binary.length > 0);
  const nonce = (await challenges(keys, socket.binary)).at(-1);
  assert.ok(nonce, "no challenge among the console's commands");
  return sender.seal(payload({ k: "echo", nonce }));
}

/** Once everything the console queued to send is sealed and sent (or dropped): its commands are
 * sealed one after another on one chain, so a challenge a timer just fired is not on the socket
 * yet (and one the test reads then is an older one). */
async function sealed(h: ReturnType<typeof harness>): Promise<void> {
  const view = h.view as unknown as { commandChain: Promise<void> };
  assert.ok(view.commandChain instanceof Promise, "LiveView no longer has its commandChain");
  for (let chain = view.commandChain; ; chain = view.commandChain) {
    await chain;
    if (chain === view.commandChain) return;
  }
}

/** Until every frame passed to the console so far was opened and acted on (its receiving chain
 * has nothing more to do): what it does with them is known, not waited for by the clock. */
async function received(h: ReturnType<typeof harness>): Promise<void> {
  const view = h.view as unknown as { chain: Promise<void> };
  assert.ok(view.chain instanceof Promise, "LiveView no longer has its chain");
  for (let chain = view.chain; ; chain = view.chain) {
    await chain;
    if (chain === view.chain) return;
  }
}

/** The same, passed to the console: an echo of the newest challenge it sent. */
async function echoLatest(h: ReturnType<typeof harness>, keys: PairwiseKeys, sender: ContentSender): Promise<Uint8Array> {
  await sealed(h);
  const socket = h.last();
  const frame = await echoOf(socket, keys, sender);
  socket.events.binary(frame);
  return frame;
}

const LIVE = "Connected. You are seeing the customer's page live.";
const CHECKING = "Connected. Checking that this is the customer's page now…";

/** A paired console showing the customer's first epoch ("page 1") live, with its echo. */
async function liveInFirstEpoch() {
  const { h, keys } = await paired();
  h.server({ type: "consent", granted: true });
  const first = await epochOf(keys, 1, "page 1");
  for (const frame of first.frames) h.last().events.binary(frame);
  await echoLatest(h, keys, first.sender);
  await until(() => h.card.status.text === LIVE);
  return { h, keys, first };
}

/** A console that showed the customer's epochs 1 and 2 live, then reloaded and rejoined; and the
 * frames of both epochs, as a malicious server could have kept them. */
async function reloadedAfterTwoEpochs() {
  const { h, keys } = await paired();
  h.server({ type: "consent", granted: true });
  const epochs = [await epochOf(keys, 1, "page 1"), await epochOf(keys, 2, "page 2")];
  const recorded = epochs.map((epoch) => epoch.frames);
  for (const [index, [key, ...content]] of recorded.entries()) {
    h.last().events.binary(key as Uint8Array);
    await until(() => h.store.held?.epoch === index + 1); // kept before any of its content shows
    for (const frame of content) h.last().events.binary(frame);
    await until(() => h.card.context?.title === `page ${index + 1}`);
  }
  assert.equal(h.card.status.text, CHECKING); // not called live on the strength of content alone
  await echoLatest(h, keys, (epochs[1] as { sender: ContentSender }).sender);
  await until(() => h.card.status.text === LIVE);
  const store = memoryStore();
  store.held = { ...(h.store.held as Held) };
  store.keys.set(store.held.keyHandle, keys);
  const reloaded = harness({ rejoin: store.load() as Held }, store);
  await until(() => reloaded.sockets.length === 1);
  reloaded.last().events.open();
  reloaded.server({ type: "joined", session_id: "s1", resumed: true });
  assert.equal(reloaded.card.status.text, "Reconnected. Waiting for the customer's page…");
  return { h: reloaded, keys, recorded, before: h };
}

for (const replayed of [1, 2]) {
  test(`a reloaded console refuses epoch ${replayed} the server kept and replays as the live page: nothing of it shows, the session ends`, async () => {
    const { h, recorded } = await reloadedAfterTwoEpochs();
    // The customer moved on or pressed Stop while the console reloaded; the server hides it
    // behind a page of the session it kept (the last one shown, or an older one).
    for (const frame of recorded[replayed - 1] as Uint8Array[]) h.last().events.binary(frame);
    const shown = () => h.reported.filter((event) => event.type === "consented" || event.type === "context");
    await until(() => !h.view.open || shown().length > 0);
    assert.deepEqual(shown(), []);
    assert.equal(h.view.open, false);
    assert.match(h.card.status.text, /integrity check/);
    assert.deepEqual(h.last().sent.at(-1), { v: 1, type: "leave" });
    assert.equal(h.store.held, null);
    assert.equal(h.store.keys.size, 0);
  });
}

test("a reloaded console shows the customer's next epoch live once it echoed the console's challenge, and keeps it as the newest", async () => {
  const { h, keys } = await reloadedAfterTwoEpochs();
  const { frames, sender } = await epochOf(keys, 3, "page 3");
  for (const frame of frames) h.last().events.binary(frame);
  await until(() => h.card.context?.title === "page 3");
  assert.ok(h.view.open);
  assert.equal(h.card.consented, true);
  assert.equal(h.card.status.text, CHECKING);
  assert.equal(h.card.fresh, false);
  assert.equal(h.store.held?.epoch, 3);
  await echoLatest(h, keys, sender); // the customer's browser is on epoch 3 now
  await until(() => h.card.status.text === LIVE);
  assert.equal(h.card.fresh, true);
});

test("each challenge names the newest echo the console got (none before the first): the customer's browser dates the console's life by it", async () => {
  const { h, keys } = await paired();
  h.server({ type: "consent", granted: true });
  const { frames, sender } = await epochOf(keys, 1, "page 1");
  for (const frame of frames) h.last().events.binary(frame);
  await until(() => h.last().binary.length >= 1);
  const proofs = async () => {
    const receiver = new CommandReceiver("s1", keys.agentToCustomer);
    const out: unknown[] = [];
    for (const frame of h.last().binary) {
      const command = JSON.parse(new TextDecoder().decode(await receiver.open(frame as Uint8Array))) as { k: string; proof?: unknown };
      if (command.k === "challenge") out.push(command.proof);
    }
    return out;
  };
  assert.deepEqual(await proofs(), [null]);
  const first = (await challenges(keys, h.last().binary))[0];
  await echoLatest(h, keys, sender);
  await until(() => h.card.status.text === LIVE);
  h.advance(CHALLENGE_EVERY_MS);
  await until(() => h.last().binary.length >= 2);
  assert.deepEqual(await proofs(), [null, first]);
});

test("a relay that stops passing the customer's frames leaves the view live for the bound only: then it says Not live, until an echo of a new challenge", async () => {
  const { h, keys } = await paired();
  h.server({ type: "consent", granted: true });
  const { frames, sender } = await epochOf(keys, 1, "page 1");
  for (const frame of frames) h.last().events.binary(frame);
  await until(() => h.card.status.text === CHECKING);
  assert.ok(controls(h.card).notLive);
  await echoLatest(h, keys, sender);
  await until(() => h.card.status.text === LIVE);
  assert.ok(!controls(h.card).notLive);
  // Still live within the bound (the customer's browser answered the challenge sent at 0)...
  h.advance(STALE_AFTER_MS);
  assert.equal(h.card.status.text, LIVE);
  // ...and the relay passes nothing more: the console keeps asking, and says so.
  h.advance(1000);
  assert.equal(h.card.status.text, "Not live: no word from the customer's browser for 10 s. What you see may be out of date.");
  assert.equal(h.card.fresh, false);
  assert.ok(controls(h.card).notLive);
  await until(() => h.last().binary.length >= 4); // sealed one after the other, each once reserved
  assert.ok((await challenges(keys, h.last().binary)).length >= 4, "a challenge every interval");
  h.advance(5000);
  assert.match(h.card.status.text, /for 15 s/);
  // The relay passes frames again: the customer's browser answers the latest challenge.
  await echoLatest(h, keys, sender);
  await until(() => h.card.status.text === LIVE);
  assert.equal(h.card.fresh, true);
});

test("right after the customer's browser began a new epoch (a supervisor came) the view is not live: acting is held and said, a control request waits for that epoch's echo and names it", async () => {
  const { h, keys, first } = await liveInFirstEpoch();
  // The customer granted control (in the first epoch).
  h.last().events.binary(await first.sender.seal(payload({ k: "control", state: "granted" })));
  await until(() => h.card.controlling);
  const commands = async () => {
    const receiver = new CommandReceiver("s1", keys.agentToCustomer);
    const out: { k: string; nonce?: string; proof?: unknown }[] = [];
    for (const frame of h.last().binary) out.push(JSON.parse(new TextDecoder().decode(await receiver.open(frame as Uint8Array))));
    return out;
  };
  const untilSent = async (condition: (all: { k: string; nonce?: string; proof?: unknown }[]) => boolean) => {
    await until(async () => condition(await commands()));
    const all = await commands();
    assert.ok(condition(all), "not sent");
    return all;
  };
  const challengesIn = (all: { k: string }[]) => all.filter((command) => command.k === "challenge").length;
  const acting = (all: { k: string }[]) => all.filter((command) => command.k !== "challenge");
  // The same page under a new key (the customer's browser rekeys when a supervisor pairs, and
  // rrweb numbers its nodes afresh): the proof was echoed under the key before, which the
  // customer's browser no longer takes. Within the bound, yet not live: the stage says so.
  const second = await epochOf(keys, 2, "page 1");
  for (const frame of second.frames) h.last().events.binary(frame);
  await until(() => h.reported.filter((event) => event.type === "context").length === 2);
  const asked = challengesIn(await untilSent((all) => challengesIn(all) === 2)); // the new epoch's, at once
  const REFRESHING = "The customer's page is being refreshed — try again in a moment.";
  assert.equal(h.card.fresh, false);
  assert.ok(controls(h.card).notLive, "the stage is marked as not live");
  assert.ok(controls(h.card).controlLayer, "the mirror takes no clicks");
  assert.equal(h.card.status.text, "You have control: point, scroll, click, and type straight into fields you can see.", "news stays until the agent acts");
  // The agent acts all the same (a click, a scroll, typing, a shortcut for control): nothing
  // that aims at a node goes, now or later; the agent is told plainly.
  h.view.onStageClick(); // on the mirror, the control layer being off
  assert.equal(h.card.status.text, REFRESHING);
  h.card.status.text = "";
  const mouse = { clientX: 10, clientY: 10, deltaY: 40, preventDefault: () => undefined };
  h.view.onLayerClick(mouse as unknown as MouseEvent); // straight into the layer
  assert.equal(h.card.status.text, REFRESHING);
  h.view.onLayerWheel(mouse as unknown as WheelEvent);
  h.view.onTyping();
  h.view.requestControl();
  assert.equal(h.card.status.text, REFRESHING);
  // The next challenge leaves; commands are sealed in order, so anything sent at once is before it.
  h.advance(CHALLENGE_EVERY_MS);
  let all = await untilSent((sent) => challengesIn(sent) === asked + 1);
  assert.deepEqual(acting(all), [], "sent on a proof of the epoch before");
  // The customer's browser echoes the latest challenge, in the new epoch: live again, and the
  // held control request goes, naming it; the click is not sent late.
  const proven = all.filter((command) => command.k === "challenge").at(-1)?.nonce;
  h.last().events.binary(await second.sender.seal(payload({ k: "echo", nonce: proven })));
  all = await untilSent((sent) => sent.some((command) => command.k === "control_request"));
  assert.equal(h.card.fresh, true);
  assert.ok(!controls(h.card).notLive);
  assert.deepEqual(acting(all), [{ k: "control_request", proof: proven }]);
});

test("a control request the customer's browser refused as crossing a new epoch (sent before the console knew of it) is asked again once that epoch is proven, naming its echo", async () => {
  const { h, keys } = await liveInFirstEpoch();
  const requests = async () => {
    const receiver = new CommandReceiver("s1", keys.agentToCustomer);
    const out: { k: string; proof?: unknown }[] = [];
    for (const frame of h.last().binary) out.push(JSON.parse(new TextDecoder().decode(await receiver.open(frame as Uint8Array))));
    return out.filter((command) => command.k === "control_request");
  };
  const untilRequests = async (count: number) => {
    await until(async () => (await requests()).length >= count);
    const all = await requests();
    assert.equal(all.length, count, "not sent");
    return all;
  };
  // Asked while live in the first epoch; meanwhile the customer's browser rekeyed (a supervisor
  // paired), so the request names an echo of the key before, and is refused as such.
  h.view.requestControl();
  const [asked] = await untilRequests(1);
  const second = await epochOf(keys, 2, "page 1");
  for (const frame of second.frames) h.last().events.binary(frame);
  const reason = "The customer's page was refreshed before that arrived: try again in a moment.";
  // It names what it refuses (the customer's browser says so): this console's request, by its proof.
  h.last().events.binary(await second.sender.seal(payload({ k: "action_refused", reason, code: "refreshed", of: "control_request", proof: asked?.proof })));
  await until(() => h.card.fresh === false);
  // The new epoch's echo: the request goes again, on its proof; the agent did nothing more.
  await echoLatest(h, keys, second.sender);
  await until(() => h.card.fresh === true);
  const all = await untilRequests(2);
  assert.notEqual(all[1]?.proof, asked?.proof);
  assert.equal(h.card.status.text, "Waiting for the customer to allow control…");
});

/** The control requests among the console's commands (opened as the customer's browser opens them). */
async function controlRequests(h: ReturnType<typeof harness>, keys: PairwiseKeys): Promise<{ k: string; proof?: string }[]> {
  const receiver = new CommandReceiver("s1", keys.agentToCustomer);
  const out: { k: string; proof?: string }[] = [];
  for (const frame of h.last().binary) out.push(JSON.parse(new TextDecoder().decode(await receiver.open(frame as Uint8Array))));
  return out.filter((command) => command.k === "control_request");
}

const CONTROL_LAPSED = "Control was not asked for: the view stopped being live first. Ask again if you still need it.";
const REFRESHED = "The customer's page was refreshed before that arrived: try again in a moment.";

/** The agent asked for control while live in the first epoch, and the request is on the socket. */
async function askedInFirstEpoch() {
  const live = await liveInFirstEpoch();
  live.h.view.requestControl();
  await until(async () => (await controlRequests(live.h, live.keys)).length === 1);
  const [asked] = await controlRequests(live.h, live.keys);
  assert.ok(typeof asked?.proof === "string");
  return { ...live, asked: asked.proof };
}

/** The customer's second epoch of the same page passed to the console, a refusal `refused` said
 * first in it, then its echo: whatever the console asks again on it is on the socket after. */
async function refusedInSecondEpoch(h: ReturnType<typeof harness>, keys: PairwiseKeys, refused: Record<string, unknown>) {
  const second = await epochOf(keys, 2, "page 1");
  for (const frame of second.frames) h.last().events.binary(frame);
  h.last().events.binary(await second.sender.seal(payload({ k: "action_refused", reason: REFRESHED, code: "refreshed", ...refused })));
  await received(h); // its `consented` challenged at once: the echo below is of that challenge
  await echoLatest(h, keys, second.sender);
  await until(() => h.card.fresh === true);
  await received(h);
  await sealed(h); // a control request asked again on that echo would be on the socket now
}

test("a control request the relay held until the view went stale is not asked again when its refusal comes: never sent late", async () => {
  const { h, keys, asked } = await askedInFirstEpoch();
  // The relay holds the request, and so every later command and the customer's answers: past the
  // bound the view is stale, and the agent is told. Then it makes the customer's browser rekey
  // (a `peer` it says is back), passes the request, which is refused as crossing that epoch...
  h.advance(STALE_AFTER_MS + 1000);
  assert.match(h.card.status.text, /^Not live/);
  await refusedInSecondEpoch(h, keys, { of: "control_request", proof: asked });
  // ...and the console does not ask it again, however long after the agent asked.
  assert.equal((await controlRequests(h, keys)).length, 1, "asked again on a view gone stale");
});

test("a control request refused as crossing a new epoch is not asked again once a new policy waits for the agent's acknowledgement", async () => {
  const { h, keys, asked } = await askedInFirstEpoch();
  h.server({ type: "error", code: "policy_changed", message: "" });
  await refusedInSecondEpoch(h, keys, { of: "control_request", proof: asked });
  assert.equal((await controlRequests(h, keys)).length, 1, "asked while the policy waits");
  assert.match(h.card.status.text, /^Not done: The customer's page was refreshed/, "the agent is told it did not go");
});

for (const [what, refused] of [
  ["a click's (sent while in control, which the customer took back since)", { of: "click" }],
  ["another control request's (an earlier one)", { of: "control_request", proof: "b".repeat(22) }],
  ["one that does not say what it refuses (an older SDK's)", {}],
] as const) {
  test(`a refusal as crossing a new epoch that is ${what} is not taken for the waiting control request's: it is not asked again`, async () => {
    const { h, keys, first } = await liveInFirstEpoch();
    // In control, then not (the customer took it back): the agent asks again.
    h.last().events.binary(await first.sender.seal(payload({ k: "control", state: "granted" })));
    await until(() => h.card.controlling);
    h.last().events.binary(await first.sender.seal(payload({ k: "control", state: "revoked" })));
    await until(() => !h.card.controlling);
    h.view.requestControl();
    await until(async () => (await controlRequests(h, keys)).length === 1);
    const [asked] = await controlRequests(h, keys);
    await refusedInSecondEpoch(h, keys, "of" in refused && !("proof" in refused) ? { ...refused, proof: asked?.proof } : refused);
    assert.equal((await controlRequests(h, keys)).length, 1, "a control request the agent did not ask for");
    assert.match(h.card.status.text, /refreshed/);
  });
}

test("a control request held while a new epoch comes in is dropped if the view goes stale first: never sent late, and the agent is told once live", async () => {
  const { h, keys } = await liveInFirstEpoch();
  const second = await epochOf(keys, 2, "page 1");
  for (const frame of second.frames) h.last().events.binary(frame);
  await until(() => h.card.fresh === false);
  h.view.requestControl();
  assert.equal(h.card.status.text, "The customer's page is being refreshed — try again in a moment.");
  // No echo within the bound (a relay holds the epoch's frames back): stale, the request dropped.
  h.advance(STALE_AFTER_MS + 1000);
  assert.match(h.card.status.text, /^Not live/);
  await echoLatest(h, keys, second.sender);
  await until(() => h.card.fresh);
  await sealed(h); // a control request sent on that echo would be on the socket now
  const receiver = new CommandReceiver("s1", keys.agentToCustomer);
  const sent: string[] = [];
  for (const frame of h.last().binary) sent.push((JSON.parse(new TextDecoder().decode(await receiver.open(frame))) as { k: string }).k);
  assert.ok(!sent.includes("control_request"), "sent late");
  const sentBefore = h.last().binary.length;
  // Not left waiting for a question the customer never sees: the agent may ask again.
  assert.equal(h.card.status.text, CONTROL_LAPSED);
  assert.equal(h.card.status.tone, "bad");
  assert.equal(controls(h.card).requestControl, false, "the button is shown");
  assert.equal(controls(h.card).acting, true, "and enabled");
  h.view.requestControl();
  await sealed(h);
  const again: string[] = [];
  for (const frame of h.last().binary.slice(sentBefore)) again.push((JSON.parse(new TextDecoder().decode(await receiver.open(frame))) as { k: string }).k);
  assert.deepEqual(again.filter((k) => k === "control_request"), ["control_request"]);
  assert.equal(h.card.status.text, "Waiting for the customer to allow control…");
});

test("a relay that replays the customer's echo ends the session (content counters), it proves nothing", async () => {
  const { h, keys } = await paired();
  h.server({ type: "consent", granted: true });
  const { frames, sender } = await epochOf(keys, 1, "page 1");
  for (const frame of frames) h.last().events.binary(frame);
  const echo = await echoLatest(h, keys, sender);
  await until(() => h.card.status.text === LIVE);
  h.advance(STALE_AFTER_MS + 1000);
  h.last().events.binary(echo); // the same frame again
  await until(() => !h.view.open);
  assert.match(h.card.status.text, /integrity check/);
});

test("a reloaded console never calls live an epoch the relay held back, even with an echo in it of a challenge from before the reload", async () => {
  const { h, keys, before } = await reloadedAfterTwoEpochs();
  // While the first console still ran, the customer moved to page 3 and echoed its challenge
  // there; the relay kept that epoch from it, and hands it to the reloaded console instead of
  // the customer's page now (the reloaded console's challenges go unanswered).
  const { frames, sender } = await epochOf(keys, 3, "page 3");
  const oldEcho = await echoOf(before.last(), keys, sender);
  for (const frame of [...frames, oldEcho]) h.last().events.binary(frame);
  await until(() => h.card.context?.title === "page 3");
  await received(h); // the echo was opened too
  assert.ok(h.view.open);
  assert.equal(h.card.status.text, CHECKING);
  assert.equal(h.card.fresh, false);
  h.advance(STALE_AFTER_MS + 1000);
  assert.match(h.card.status.text, /^Not live: no word from the customer's browser for 10 s/);
  assert.ok(controls(h.card).notLive);
  assert.ok(!h.reported.some((event) => event.type === "fresh" && event.live), "never live");
});

test("a reloaded console without its keys cannot go on: it says so and leaves the session", async () => {
  const store = memoryStore();
  store.held = { sessionId: "s1", keyHandle: "handle", resumeToken: "tok", windowMs: 30_000, commands: 0, epoch: 0 };
  const h = harness({ rejoin: store.load() as Held }, store);
  await until(() => !h.view.open);
  assert.match(h.card.status.text, /cannot be taken up again/);
  // Only a farewell: the session is left, so the customer does not wait out the window.
  assert.equal(h.sockets.length, 1);
  h.last().events.open();
  assert.deepEqual(h.last().sent, [
    { v: 1, type: "rejoin", session_id: "s1", resume_token: "tok" }, { v: 1, type: "leave" },
  ]);
  assert.equal(store.held, null);
});

test("the attempts stop within the server's window, and the agent is told", async () => {
  const { h } = await paired(10);
  h.lose(1006);
  let attempts = 0;
  while (h.view.open) {
    const timer = h.pendingTimer();
    assert.ok(timer, "no retry scheduled while open");
    assert.ok(timer.at <= 10_000 - RECONNECT_MARGIN_MS, `an attempt at ${timer.at} ms is past the window`);
    h.advanceTo(timer.at);
    attempts++;
    h.lose(1006); // the network is still down
  }
  assert.ok(attempts >= 3, `${attempts}`);
  assert.equal(h.card.status.text, "The connection could not be restored in time, so the session ended.");
  assert.equal(h.store.held, null);
});

test("a session gone while reconnecting, or a revoked sign-in, ends the retries", async () => {
  const gone = (await paired()).h;
  gone.lose(1006);
  gone.advance(10_000);
  gone.lose(4404, "session not found");
  assert.equal(gone.view.open, false);
  assert.equal(gone.card.status.text, "The session ended while you were reconnecting.");
  const revoked = (await paired()).h;
  revoked.lose(1006);
  revoked.advance(10_000);
  revoked.lose(4401, "signed out");
  assert.equal(revoked.view.open, false);
  assert.equal(revoked.expired, 1);
  assert.equal(revoked.pendingTimer(), undefined);
});

test("the server ending the session (1000, 4xxx) is not retried; Leave while reconnecting tells the server on a fresh socket", async () => {
  const ended = (await paired()).h;
  ended.lose(1000, "");
  assert.equal(ended.view.open, false);
  assert.equal(ended.sockets.length, 1);
  const leaving = (await paired()).h;
  leaving.lose(1006);
  leaving.view.leave();
  assert.equal(leaving.view.open, false);
  leaving.last().events.open();
  assert.deepEqual(leaving.last().sent, [
    { v: 1, type: "rejoin", session_id: "s1", resume_token: "tok" }, { v: 1, type: "leave" },
  ]);
  assert.equal(leaving.store.held, null);
});

test("a supervisor's watch keeps nothing for a rejoin", () => {
  const h = harness({ watch: "s1" });
  h.last().events.open();
  h.server({ type: "watching", session_id: "s1" });
  h.lose(1006);
  assert.equal(h.view.open, false);
  assert.equal(h.store.held, null);
});

test("a console tab's session ends with its own keys only: another tab's session, in the same key database, rejoins after a reload", async () => {
  const origin = new Map<string, PairwiseKeys>(); // the origin's key database, shared by the tabs
  const one = await paired(30, memoryStore(origin));
  const other = await paired(30, memoryStore(origin));
  assert.equal(origin.size, 2);
  const otherHandle = other.h.store.held?.keyHandle;
  one.h.view.leave(); // the first tab's session ends
  await until(() => origin.size === 1);
  assert.ok(otherHandle && origin.has(otherHandle), "the other tab's keys stay");
  // The other tab reloads and finds its keys.
  const store = memoryStore(origin);
  store.held = { ...(other.h.store.held as Held) };
  const reloaded = harness({ rejoin: store.load() as Held }, store);
  await until(() => reloaded.sockets.length === 1);
  assert.ok(reloaded.view.open);
  reloaded.last().events.open();
  assert.deepEqual(reloaded.last().sent, [{ v: 1, type: "rejoin", session_id: "s1", resume_token: "tok" }]);
});

/** The counter of a command frame (kind 0x03). */
const counterOf = (frame: Uint8Array) => new DataView(frame.buffer, frame.byteOffset + 1, 8).getBigUint64(0);

test("a joined console holds its keys' lock from before its record is saved", async () => {
  const origin = memoryOrigin();
  const { h } = await paired(30, memoryStore(origin));
  const handle = h.store.held?.keyHandle as string;
  assert.equal(origin.locks.holder(sealingLock(handle)), h.store.document);
});

test("a console whose session ends lets go of its keys' lock once the keys are deleted: nothing held names the ended session", async () => {
  const origin = memoryOrigin();
  const { h } = await paired(30, memoryStore(origin));
  const handle = h.store.held?.keyHandle as string;
  assert.equal(origin.locks.holder(sealingLock(handle)), h.store.document);
  h.view.leave();
  await until(() => origin.locks.holder(sealingLock(handle)) === undefined);
  assert.equal(origin.keys.has(handle), false);
});

test("a duplicated console tab (its record copied) waits for the lock, then forgets the copy, says why, and neither rejoins nor seals", async () => {
  const origin = memoryOrigin();
  const { h: original, keys } = await paired(30, memoryStore(origin));
  original.view.sendCommand({ k: "control_release" });
  await until(() => original.last().binary.length === 1);
  const handle = original.store.held?.keyHandle as string;
  // "Duplicate tab": the same record, in a document of its own.
  const store = memoryStore(origin);
  store.held = { ...(original.store.held as Held) };
  const duplicate = harness({ rejoin: store.load() as Held }, store);
  await until(() => store.timers.pending.length === 1); // its claim of the keys' lock waits
  assert.equal(duplicate.sockets.length, 0, "no rejoin while it waits for the lock");
  assert.ok(duplicate.view.open);
  store.timers.fire(); // the bound passes: the original still holds the lock
  await until(() => !duplicate.view.open);
  assert.match(duplicate.card.status.text, /open in another tab of this browser/);
  assert.equal(store.held, null, "the copied record is forgotten");
  assert.equal(duplicate.sockets.length, 0, "nothing sent: not even a farewell (the session is the original's)");
  assert.ok(origin.keys.has(handle), "the keys are the original's: they stay");
  assert.equal(origin.reserved.get(handle), COMMAND_BLOCK, "no counter reserved by the duplicate");
  // The original goes on, its counters its own.
  original.view.sendCommand({ k: "control_release" });
  await until(() => original.last().binary.length === 2);
  const receiver = new CommandReceiver("s1", keys.agentToCustomer);
  for (const frame of original.last().binary) await receiver.open(frame);
  assert.equal(receiver.last, 2);
  assert.equal(origin.locks.holder(sealingLock(handle)), original.store.document);
});

test("Leave in a duplicate that waits for the lock does not end the original's session", async () => {
  const origin = memoryOrigin();
  const { h: original } = await paired(30, memoryStore(origin));
  const store = memoryStore(origin);
  store.held = { ...(original.store.held as Held) };
  const duplicate = harness({ rejoin: store.load() as Held }, store);
  duplicate.view.leave();
  assert.equal(duplicate.sockets.length, 0, "no rejoin-and-leave on a fresh socket");
  assert.equal(store.held, null);
  assert.ok(origin.keys.has(original.store.held?.keyHandle as string));
});

test("a duplicate whose original closes while it waits takes the session on after every counter the original reserved", async () => {
  const origin = memoryOrigin();
  const { h: original, keys } = await paired(30, memoryStore(origin));
  original.view.sendCommand({ k: "control_release" });
  await until(() => original.store.held?.commands === 1);
  const store = memoryStore(origin);
  store.held = { ...(original.store.held as Held) }; // copied at counter 1…
  original.view.sendCommand({ k: "control_release" });
  original.view.sendCommand({ k: "control_release" });
  await until(() => original.last().binary.length === 3); // …then the original sealed 2 and 3
  const duplicate = harness({ rejoin: store.load() as Held }, store);
  origin.locks.go(original.store.document); // the original tab is closed within the bound
  await until(() => duplicate.sockets.length === 1);
  duplicate.last().events.open();
  duplicate.server({ type: "joined", session_id: "s1", resumed: true });
  duplicate.view.sendCommand({ k: "control_release" });
  await until(() => duplicate.last().binary.length === 1);
  const frame = duplicate.last().binary[0] as Uint8Array;
  assert.equal(counterOf(frame), BigInt(COMMAND_BLOCK + 1), "after the original's reserved block, not after the copied counter");
  const receiver = new CommandReceiver("s1", keys.agentToCustomer, 3);
  assert.deepEqual(JSON.parse(new TextDecoder().decode(await receiver.open(frame))), { k: "control_release" });
});

test("a reloaded console reserves its counters before it seals: each document at most one block apart", async () => {
  const origin = memoryOrigin();
  const { h: before, keys } = await paired(30, memoryStore(origin));
  before.view.sendCommand({ k: "control_release" });
  await until(() => before.store.held?.commands === 1);
  const handle = before.store.held?.keyHandle as string;
  assert.equal(origin.reserved.get(handle), COMMAND_BLOCK);
  origin.locks.go(before.store.document); // reloaded
  const store = memoryStore(origin);
  store.held = { ...(before.store.held as Held) };
  const h = harness({ rejoin: store.load() as Held }, store);
  await until(() => h.sockets.length === 1);
  h.last().events.open();
  h.server({ type: "joined", session_id: "s1", resumed: true });
  h.view.sendCommand({ k: "control_release" });
  h.view.sendCommand({ k: "control_release" });
  await until(() => h.last().binary.length === 2);
  assert.deepEqual(h.last().binary.map(counterOf), [BigInt(COMMAND_BLOCK + 1), BigInt(COMMAND_BLOCK + 2)]);
  assert.equal(origin.reserved.get(handle), 2 * COMMAND_BLOCK);
  assert.equal(store.held?.commands, COMMAND_BLOCK + 2);
  await new CommandReceiver("s1", keys.agentToCustomer, 1).open(h.last().binary[0] as Uint8Array);
});

test("a new policy published during the session: the console says so and asks for no control nor recording", async () => {
  const { h, keys } = await liveInFirstEpoch();
  h.server({ type: "error", code: "policy_changed", message: "Call 0800 555 0100 to keep your job." });
  const POLICY = /^Your organisation published a new privacy and security policy\. This session goes on/;
  assert.match(h.card.status.text, POLICY); // its own words: the relay's message is not shown
  assert.ok(h.card.fresh, "the session goes on");
  h.view.requestControl();
  assert.match(h.card.status.text, POLICY);
  h.view.askToRecord();
  assert.match(h.card.status.text, POLICY);
  await sealed(h); // anything to seal was sealed
  const receiver = new CommandReceiver("s1", keys.agentToCustomer);
  const sent: string[] = [];
  for (const frame of h.last().binary) sent.push((JSON.parse(new TextDecoder().decode(await receiver.open(frame))) as { k: string }).k);
  assert.ok(!sent.includes("control_request") && !sent.includes("record_request"), sent.join(", "));
  assert.ok(!h.last().sent.some((m) => m.type === "record"), "no record asked of the server");
});

test("a console tab's record left a day ago is not rejoined, whatever window the record names", () => {
  const now = 1_000_000_000_000;
  const held = (windowMs: number, leftAt?: number): Held =>
    ({ sessionId: "s1", resumeToken: "t", keyHandle: "h", commands: 0, epoch: 0, windowMs, leftAt }) as Held;
  assert.equal(leftTooLongAgo(held(30_000), now), false); // never left (an earlier version's)
  assert.equal(leftTooLongAgo(held(30_000, now - 29_000), now), false);
  assert.equal(leftTooLongAgo(held(30_000, now + 31_000), now), true); // the clock set back
  // More than any server may say (600 s): written to the tab's storage, not said by a server.
  assert.equal(leftTooLongAgo(held(Infinity, now - 86_400_000), now), true);
  assert.equal(leftTooLongAgo(held(1e300, now - 86_400_000), now), true);
});
