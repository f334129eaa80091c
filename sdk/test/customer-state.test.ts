import assert from "node:assert/strict";
import { test } from "node:test";
import {
  NOT_AUTHORISED, NOT_AVAILABLE, SERVER_BUSY, START_FAILED, type ServerMessage, TOO_MANY_PRACTICE, TOO_MANY_WAITING,
} from "../src/shared/protocol.ts";
import { CLOSE_REASON_TOO_MANY_PRACTICE } from "../src/generated/protocol.ts";
import {
  AGENT_ENDED, AGENT_LOST, CODE_EXPIRED, CONSOLE_SILENT, CONNECTION_LOST, IDLE_ENDED, MAX_DURATION_ENDED, SESSION_ENDED,
  CLOSED, DISTRUST, LOST, MISMATCH, RECONNECT_FIRST_MS, RECONNECT_MARGIN_MS, RECONNECT_MAX_MS, RESTARTING, RESUME_WINDOW_MS,
  SESSION_GONE, type PageSays, type Saved, type SessionEvent, type SessionState, UNREACHABLE,
  helpCode, initialState, leftTooLongAgo, plausibleName, reconnectDelay, reduce, SETTLED_MS,
} from "../src/share/state.ts";

const PAGE: PageSays = { sitePolicy: null, brokenPolicy: false, pins: [] };
const SECRET = "7654321";

function run(state: SessionState, ...events: SessionEvent[]) {
  const effects = [];
  for (const event of events) {
    const next = reduce(state, event);
    state = next.state;
    effects.push(...next.effects);
  }
  return { state, effects };
}

const server = (message: Record<string, unknown>): SessionEvent => ({
  type: "server", message: { v: 1, ...message } as unknown as ServerMessage, secret: SECRET,
});
const created = server({ type: "created", session_id: "s1", code: "12345", resume_token: "t", expires_in: 600 });
const create: SessionEvent = { type: "create", page: PAGE, message: { type: "create" } };
const createPractice: SessionEvent = { type: "create", page: PAGE, message: { type: "create", practice: "ticket" } };

function stored(extra: Partial<Saved> = {}): Saved {
  return { sessionId: "s1", resumeToken: "t", routing: "12345", secret: SECRET, agent: null, epoch: 0, sitePolicy: null, ...extra };
}
const resume = (saved: Saved): SessionEvent => ({ type: "resume", saved, page: PAGE });
const resumed = (state: string, extra: Record<string, unknown> = {}) =>
  server({ type: "resumed", state, agent: "Ann", code: null, ...extra });

/** The socket closed with `code` at `now` ms (this page's clock); `jitter` as the shell draws it. */
const closed = (code: number, now = 0, reason = "", jitter = 0.5): SessionEvent => ({ type: "closed", code, reason, now, jitter });

const ended = (effects: { type: string }[]) => effects.find((e) => e.type === "end") as { error: string | null } | undefined;
const sent = (effects: { type: string }[]) =>
  effects.filter((e): e is { type: "send"; message: { type: string } } => e.type === "send").map((e) => e.message.type);

test("start opens a socket with create and expects only `created`", () => {
  const { state, effects } = run(initialState, create);
  assert.deepEqual(state, { phase: "connecting", expecting: "created", practice: false, ...PAGE });
  assert.deepEqual(effects, [{ type: "connect", message: { type: "create" } }]);
});

test("`created` as the answer to create waits for an agent with a code whose secret part is made here", () => {
  const { state, effects } = run(initialState, create, created);
  assert.equal(state.phase, "waiting");
  assert.equal(helpCode(state), `12345${SECRET}`);
  assert.deepEqual(effects.slice(1), [
    { type: "persist" }, { type: "show_code", code: `12345${SECRET}` }, { type: "ready", code: `12345${SECRET}` },
  ]);
});

test("a `created` this page did not ask for ends the session (a second one, or one during a resume)", () => {
  for (const start of [run(initialState, create, created).state, run(initialState, resume(stored())).state]) {
    const { state, effects } = run(start, created);
    assert.equal(state.phase, "ended");
    assert.deepEqual(sent(effects), ["stop"]);
    assert.match(ended(effects)?.error ?? "", new RegExp(`^${DISTRUST}`));
  }
});

test("a `resumed` this page did not ask for ends the session", () => {
  const waiting = run(initialState, create, created).state;
  for (const claimed of ["waiting", "pending_consent", "sharing"]) {
    const { state, effects } = run(waiting, resumed(claimed));
    assert.equal(state.phase, "ended", claimed);
    assert.match(ended(effects)?.error ?? "", /a session state it never asked for/);
  }
});

test("a server claiming `sharing` without the customer's stored Allow ends the session; nothing is shared", () => {
  const { state, effects } = run(initialState, resume(stored({ agent: "Ann", secret: null })), resumed("sharing"));
  assert.equal(state.phase, "ended");
  assert.ok(!effects.some((e) => e.type === "begin_sharing"));
  assert.match(ended(effects)?.error ?? "", /claimed you allowed sharing, but you did not/);
  assert.deepEqual(sent(effects), ["stop"]);
});

test("a server claiming nobody joined after the key exchange ends the session", () => {
  for (const saved of [stored({ secret: null }), stored({ consented: true })]) {
    const { state, effects } = run(initialState, resume(saved), resumed("waiting"));
    assert.equal(state.phase, "ended");
    assert.match(ended(effects)?.error ?? "", /claimed no agent had joined/);
  }
});

test("`sharing` after the customer's own Allow resumes sharing on the next page", () => {
  const { state, effects } = run(initialState, resume(stored({ consented: true, secret: null })), resumed("sharing"));
  assert.equal(state.phase, "sharing");
  assert.ok(effects.some((e) => e.type === "begin_sharing"));
  assert.equal(ended(effects), undefined);
});

test("a recording the server claims but this browser never allowed is stopped, not believed", () => {
  const { state, effects } = run(initialState, resume(stored({ consented: true, secret: null })), resumed("sharing", { recording: true }));
  assert.equal(state.phase, "sharing");
  assert.deepEqual(sent(effects), ["record_stop"]);
  assert.ok(state.phase === "sharing" && !state.saved.recording);
});

test("an invalid policy from the server ends the session before anything is shared", () => {
  const bad = server({ type: "created", session_id: "s1", code: "12345", resume_token: "t", expires_in: 600, policy: { version: 99 } });
  const { state, effects } = run(initialState, create, bad);
  assert.equal(state.phase, "ended");
  assert.match(ended(effects)?.error ?? "", /privacy rules are invalid, so nothing was shared\. \(policy\.version: must be 1\)$/);
  const teams = run(initialState, resume(stored({ consented: true, secret: null })), resumed("sharing", { team_policies: [{ version: 1, mask: 5 }] }));
  assert.equal(teams.state.phase, "ended");
  assert.ok(!teams.effects.some((e) => e.type === "begin_sharing"));
});

test("a policy from the server that hides by what the customer did ends the session, a team's or the organisation's", () => {
  const state = { version: 1, hide: ["body:has(#yes:checked) #essay"] };
  const team = run(initialState, create, created, server({ type: "team_policy", policies: [state] }));
  assert.equal(team.state.phase, "ended");
  assert.match(ended(team.effects)?.error ?? "", /privacy rules are invalid, so nothing was shared\. \(policy\.hide\[0\]: .*never by what the customer did/);
  const org = server({ type: "created", session_id: "s1", code: "12345", resume_token: "t", expires_in: 600, policy: { version: 1, mask: ["#card[value^='4']"] } });
  assert.equal(run(initialState, create, org).state.phase, "ended");
  // By the page's markup: taken.
  const markup = run(initialState, create, created, server({ type: "team_policy", policies: [{ version: 1, hide: ["body:has(.pii) #essay", "input[name=ssn]"] }] }));
  assert.equal(markup.state.phase, "waiting");
});

test("a help code or an agent's name the honest server never sends is not shown: the session ends", () => {
  for (const code of ["Call 0800 555 0100 and read", "123", "1234567890123", "١٢٣٤٥"]) {
    const bad = server({ type: "created", session_id: "s1", code, resume_token: "t", expires_in: 600 });
    const { state, effects } = run(initialState, create, bad);
    assert.equal(state.phase, "ended", code);
    assert.ok(!effects.some((e) => e.type === "show_code"), code);
    assert.match(ended(effects)?.error ?? "", /help code that is not one/);
  }
  for (const agent of ["", "A".repeat(101), "Alice\nyour bank"]) {
    const joined = run(initialState, create, created, server({ type: "agent_joined", agent }));
    assert.equal(joined.state.phase, "ended", JSON.stringify(agent));
    assert.ok(!joined.effects.some((e) => e.type === "pair"));
    const resumed = run(initialState, resume(stored({ consented: true, secret: null, agent: null })),
      server({ type: "resumed", state: "sharing", agent, code: null }));
    assert.equal(resumed.state.phase, "ended", JSON.stringify(agent));
  }
  assert.equal(run(initialState, create, created, server({ type: "agent_joined", agent: "A".repeat(100) })).state.phase, "pending_consent");
});

test("a name the honest server's own rule refuses is the relay's text: reordered, split or invisible, the session ends", () => {
  // The server's rule for display names (src/tandem/names.py): no control character (C0, DEL,
  // C1), surrogate, private-use character, line or paragraph separator, bidirectional embedding,
  // override or isolate, and at least one visible character. A relay that sends one rewrites the
  // sentence the consent dialog shows around it ("<name> wants to see this page").
  const lies = [
    "Alice \u202Eegap siht ees ot tnaw t'nseod", // right-to-left override: the rest reads backwards
    "Alice\u2066 (your bank)\u2069", "Alice\u202A", "Alice\u200F\u202B",
    "Alice\u2028Your bank's fraud team", "Alice\u2029", // line and paragraph separators
    "Alice\u0085", "Alice\u009B", // C1 controls
    "Alice\uE000", "Alice\uD800", // private use, a lone surrogate
    "   ", "\u200B\u200B", "\u00A0\u3000", // nothing visible
    // Invisible: "Ann Smith" with one of these looks like another agent's "Ann Smith".
    "Alice\u200E", "Al\u200Bice", "Al\u200Dice", "Alice\u2060", "Alice\uFEFF", "Alice\u061C", "Alice\u180E",
    "Alice\u{E0041}", "\u3164", "\uFE0FAlice", `A${"\u0301".repeat(200)}`,
  ];
  for (const agent of lies) {
    const joined = run(initialState, create, created, server({ type: "agent_joined", agent }));
    assert.equal(joined.state.phase, "ended", JSON.stringify(agent));
    assert.ok(!joined.effects.some((e) => e.type === "pair" || e.type === "ask_consent"), JSON.stringify(agent));
    assert.match(ended(joined.effects)?.error ?? "", /agent's name that is not one/, JSON.stringify(agent));
    assert.equal(plausibleName(agent), false, JSON.stringify(agent));
  }
  // What the honest server does send: any script, spaces inside, emoji, right-to-left names.
  for (const agent of ["Zoë O'Brien-Łukasz", "أحمد", "李小龙", "Ann 👩‍💻", "A".repeat(100)]) {
    assert.equal(run(initialState, create, created, server({ type: "agent_joined", agent })).state.phase, "pending_consent", agent);
  }
});

test("an agent joining starts the pairing; consent is asked only once it paired", () => {
  const joined = run(initialState, create, created, server({ type: "agent_joined", agent: "Ann" }));
  assert.equal(joined.state.phase, "pending_consent");
  assert.deepEqual(joined.effects.slice(-2), [{ type: "persist" }, { type: "pair" }]);
  assert.ok(!joined.effects.some((e) => e.type === "ask_consent"));
  const paired = run(joined.state, { type: "paired", keyHandle: "h1" });
  assert.deepEqual(paired.effects, [{ type: "persist" }, { type: "ask_consent", agent: "Ann" }]);
  assert.equal(helpCode(paired.state), null, "the key replaces the secret part");
  assert.ok(paired.state.phase === "pending_consent" && paired.state.saved.keyHandle === "h1");
});

test("a session that answered `created` never takes stored keys for a pairing: only SPAKE2 pairs it", () => {
  // The server named an old session of this origin in `created`: its keys may be stored, but
  // this tab's record has its secret and no handle of its own.
  const joined = run(initialState, create, created, server({ type: "agent_joined", agent: "Ann" })).state;
  const { state, effects } = run(joined, { type: "paired", keyHandle: null });
  assert.equal(state.phase, "ended");
  assert.ok(!effects.some((e) => e.type === "ask_consent" || e.type === "begin_sharing"));
  assert.equal(ended(effects)?.error, MISMATCH);
  // Nor a record that never paired here (no handle), even without its secret.
  const noHandle = run(initialState, resume(stored({ secret: null, consented: true })), resumed("pending_consent"), {
    type: "paired", keyHandle: null,
  });
  assert.equal(noHandle.state.phase, "ended");
  assert.ok(!noHandle.effects.some((e) => e.type === "begin_sharing"));
});

test("fresh keys count commands from 0; keys found again keep the count their record kept", () => {
  const joined = run(initialState, create, created, server({ type: "agent_joined", agent: "Ann" })).state;
  const fresh = run(joined, { type: "paired", keyHandle: "h2" }).state;
  assert.ok(fresh.phase === "pending_consent" && fresh.saved.commands === 0);
  const found = run(initialState, resume(stored({ secret: null, keyHandle: "h1", commands: 7, agent: "Ann" })),
    resumed("pending_consent"), { type: "paired", keyHandle: null }).state;
  assert.ok(found.phase === "pending_consent" && found.saved.commands === 7 && found.saved.keyHandle === "h1");
  // A second key exchange over a record that already paired is refused, not a reset of the count.
  const again = run(found, { type: "paired", keyHandle: "h3" });
  assert.equal(again.state.phase, "ended");
});

test("`agent_joined` while sharing changes nothing", () => {
  const sharing = run(initialState, resume(stored({ consented: true, secret: null })), resumed("sharing")).state;
  const { state, effects } = run(sharing, server({ type: "agent_joined", agent: "Mallory" }));
  assert.equal(state, sharing);
  assert.deepEqual(effects, []);
});

test("Allow sends consent and starts sharing; Decline ends the session", () => {
  const asked = run(initialState, create, created, server({ type: "agent_joined", agent: "Ann" }), { type: "paired", keyHandle: "h1" }).state;
  const allow = run(asked, { type: "answer", granted: true });
  assert.equal(allow.state.phase, "sharing");
  assert.ok(allow.state.phase === "sharing" && allow.state.saved.consented);
  assert.deepEqual(allow.effects, [
    { type: "send", message: { type: "consent", granted: true } }, { type: "persist" }, { type: "begin_sharing" },
  ]);
  const decline = run(asked, { type: "answer", granted: false });
  assert.equal(decline.state.phase, "ended");
  assert.deepEqual(sent(decline.effects), ["consent"]);
});

test("an answer outside the consent question is ignored (no sharing without a question)", () => {
  const waiting = run(initialState, create, created).state;
  assert.deepEqual(run(waiting, { type: "answer", granted: true }), { state: waiting, effects: [] });
});

test("after a navigation the stored Allow stands once the key is found again", () => {
  const { state, effects } = run(
    initialState, resume(stored({ consented: true, agent: "Ann", secret: null, keyHandle: "h1" })), resumed("pending_consent"),
    { type: "paired", keyHandle: null },
  );
  assert.equal(state.phase, "sharing");
  assert.ok(!effects.some((e) => e.type === "ask_consent"));
  assert.ok(effects.some((e) => e.type === "begin_sharing"));
});

test("a pairing mismatch aborts and tells the customer", () => {
  const joined = run(initialState, create, created, server({ type: "agent_joined", agent: "Ann" })).state;
  const { state, effects } = run(joined, { type: "mismatch" });
  assert.equal(state.phase, "ended");
  assert.deepEqual(effects, [{ type: "send", message: { type: "abort", reason: "key_mismatch" } }, { type: "end", error: MISMATCH }]);
  assert.equal(ended(run(joined, server({ type: "ended", reason: "key_mismatch" })).effects)?.error, MISMATCH);
});

test("a server restart ends the session in the SDK's own words, not the server's", () => {
  const joined = run(initialState, create, created, server({ type: "agent_joined", agent: "Ann" })).state;
  const restarting = run(joined, server({ type: "restarting", reason: "server_shutdown", message: "<b>click here</b>" }));
  assert.equal(restarting.state.phase, joined.phase);
  const { state, effects } = run(restarting.state, server({ type: "ended", reason: "server_shutdown" }));
  assert.equal(state.phase, "ended");
  assert.equal(ended(effects)?.error, RESTARTING);
});

test("a close before `created` fails the start with a readable reason", () => {
  const connecting = run(initialState, create).state;
  assert.equal(ended(run(connecting, closed(1006)).effects)?.error, UNREACHABLE);
  // Plain words, never the server's protocol words ("origin not allowed").
  assert.equal(ended(run(connecting, closed(4403, 0, "origin not allowed")).effects)?.error, NOT_AVAILABLE);
  assert.equal(ended(run(connecting, closed(4401, 0, "customer token not accepted")).effects)?.error, NOT_AUTHORISED);
  assert.equal(ended(run(connecting, closed(4400, 0, "malformed message")).effects)?.error, START_FAILED);
});

test("a refused start (too many waiting, server busy) says so in the SDK's own plain words", () => {
  const connecting = run(initialState, create).state;
  const tooMany = run(connecting, closed(4429, 0, "too many help requests from this address"));
  assert.equal(ended(tooMany.effects)?.error, TOO_MANY_WAITING);
  const busy = run(connecting, closed(4503, 0, "<b>anything the server says</b>"));
  assert.equal(ended(busy.effects)?.error, SERVER_BUSY);
});

test("a practice session refused beyond its account's limit says so, in the SDK's own words", () => {
  // The trainee was told "too many help requests are waiting", a customer's words.
  const connecting = run(initialState, createPractice).state;
  const reason = `${CLOSE_REASON_TOO_MANY_PRACTICE}: use one or try again in a few minutes`;
  const practice = ended(run(connecting, closed(4429, 0, reason)).effects)?.error;
  assert.equal(practice, TOO_MANY_PRACTICE);
  assert.match(practice ?? "", /too many practice sessions open/);
  // Only 4429 with that reason: other codes keep their own words, the server's prose is never shown.
  assert.equal(ended(run(connecting, closed(4503, 0, reason)).effects)?.error, SERVER_BUSY);
  assert.equal(ended(run(connecting, closed(4429, 0, `x ${reason}`)).effects)?.error, TOO_MANY_WAITING);
});

test("a relay's practice reason never makes a customer's own session read as a practice one", () => {
  // A lying relay closing a bank customer's start with the practice reason: the widget told them
  // "You have too many practice sessions open". Only a session started with a ticket hears of it.
  const reason = `${CLOSE_REASON_TOO_MANY_PRACTICE}: use one or try again in a few minutes`;
  const connecting = run(initialState, create).state;
  assert.equal(ended(run(connecting, closed(4429, 0, reason)).effects)?.error, TOO_MANY_WAITING);
  // Nor a resumed one (a new page of a session already under way).
  const resuming = run(initialState, resume(stored())).state;
  const dropped = run(resuming, closed(4429, 0, reason)).effects;
  assert.notEqual(ended(dropped)?.error, TOO_MANY_PRACTICE);
});

const sharingNow = () => run(initialState, resume(stored({ consented: true, secret: null })), resumed("sharing")).state;
const delayOf = (effects: { type: string }[]) =>
  (effects.find((e) => e.type === "reconnect") as { delay: number } | undefined)?.delay;

test("back-off doubles from the first wait up to the cap, half of each wait random", () => {
  assert.equal(reconnectDelay(0, 0), RECONNECT_FIRST_MS / 2);
  assert.equal(reconnectDelay(0, 0.999), Math.round(RECONNECT_FIRST_MS / 2 + (RECONNECT_FIRST_MS / 2) * 0.999));
  assert.equal(reconnectDelay(1, 0), RECONNECT_FIRST_MS);
  assert.equal(reconnectDelay(2, 0), RECONNECT_FIRST_MS * 2);
  for (const attempt of [10, 50, 1000]) {
    assert.ok(reconnectDelay(attempt, 0.999) <= RECONNECT_MAX_MS);
    assert.ok(reconnectDelay(attempt, 0) >= RECONNECT_MAX_MS / 2);
  }
  assert.equal(reconnectDelay(3, -5), reconnectDelay(3, 0)); // a bad draw stays in range
  assert.equal(reconnectDelay(3, 7), reconnectDelay(3, 1));
});

test("a dropped network shows Reconnecting… once and retries with growing waits; `resumed` ends the drop", () => {
  const dropped = run(sharingNow(), closed(1006, 1000, "", 0));
  assert.equal(dropped.state.phase, "sharing");
  assert.deepEqual(dropped.effects, [{ type: "show_reconnecting" }, { type: "reconnect", delay: reconnectDelay(0, 0) }]);
  assert.ok("drop" in dropped.state && dropped.state.drop?.since === 1000);
  // The shell resumes after the wait; that attempt fails too, and so on: waits grow, no second banner.
  let state: SessionState = dropped.state;
  const delays: number[] = [];
  for (let i = 1; i <= 4; i++) {
    state = run(state, resume(stored({ consented: true, secret: null }))).state;
    assert.ok(state.phase === "connecting" && "drop" in state && state.drop?.since === 1000 && state.drop.attempt === i - 1);
    const again = run(state, closed(1006, 1000 + i * 2000, "", 0));
    assert.deepEqual(again.effects.map((e) => e.type), ["reconnect"]);
    delays.push(delayOf(again.effects) ?? -1);
    state = again.state;
  }
  assert.deepEqual(delays, [1, 2, 3, 4].map((i) => reconnectDelay(i, 0)));
  // The server answers: the session goes on, sharing starts again (a new epoch), the drop is over.
  const back = run(run(state, resume(stored({ consented: true, secret: null }))).state, resumed("sharing"));
  assert.equal(back.state.phase, "sharing");
  assert.ok("drop" in back.state && back.state.drop === null);
  assert.ok(back.effects.some((e) => e.type === "begin_sharing"));
  // A later drop starts afresh: the banner again, the first wait again.
  assert.deepEqual(run(back.state, closed(1006, 90_000, "", 0)).effects[0], { type: "show_reconnecting" });
  assert.equal(delayOf(run(back.state, closed(1006, 9000 + SETTLED_MS, "", 0)).effects), reconnectDelay(0, 0));
  // One soon after the socket came back goes on with that drop's back-off (a relay that closes
  // the socket as each resume is answered: each one a new epoch, a full snapshot).
  const soon = run(back.state, closed(1006, 9500, "", 0));
  assert.deepEqual(soon.effects, [{ type: "show_reconnecting" }, { type: "reconnect", delay: reconnectDelay(5, 0) }]);
  assert.ok("drop" in soon.state && soon.state.drop?.since === 9500, "the server's window starts again");
});

test("a relay that closes the socket as each resume is answered gets resumes at growing waits", () => {
  let state: SessionState = sharingNow();
  let now = 1000;
  const delays: number[] = [];
  for (let i = 0; i < 8; i++) {
    const dropped = run(state, closed(1012, now, "", 0));
    const delay = delayOf(dropped.effects) ?? -1;
    delays.push(delay);
    now += delay;
    const back = run(run(dropped.state, resume(stored({ consented: true, secret: null }))).state, resumed("sharing"));
    assert.ok(back.effects.some((e) => e.type === "begin_sharing"));
    state = back.state;
    now += 50; // the relay closes it at once
  }
  assert.deepEqual(delays, [0, 1, 2, 3, 4, 5, 6, 7].map((attempt) => reconnectDelay(attempt, 0)));
});

test("every way a socket can drop without the server ending the session is retried", () => {
  for (const code of [1001, 1005, 1006, 1011, 1012, 1013]) {
    assert.equal(delayOf(run(sharingNow(), closed(code)).effects), reconnectDelay(0, 0.5), String(code));
  }
  // Also a new page whose first resume meets a dropped network, and a waiting session.
  const resuming = run(initialState, resume(stored())).state;
  assert.deepEqual(run(resuming, closed(1006)).effects.map((e) => e.type), ["show_reconnecting", "reconnect"]);
  const waiting = run(initialState, create, created).state;
  assert.equal(run(waiting, closed(1006)).state.phase, "waiting");
});

test("a server restart that hands the session over keeps it: the close (1012) is retried, and it resumes", () => {
  const restarting = run(sharingNow(), server({ type: "restarting", reason: "reconnect", message: "<b>click here</b>" }));
  assert.equal(restarting.state.phase, "sharing");
  assert.deepEqual(restarting.effects, []); // nothing of the server's prose, nothing ends
  const dropped = run(restarting.state, closed(1012, 0, "server restarting: reconnect"));
  assert.deepEqual(dropped.effects.map((e) => e.type), ["show_reconnecting", "reconnect"]);
  const back = run(run(dropped.state, resume(stored({ consented: true, secret: null }))).state, resumed("sharing"));
  assert.equal(back.state.phase, "sharing");
  assert.ok(back.effects.some((e) => e.type === "begin_sharing"));
});

test("the attempts stop within the server's resume window, and the customer is told plainly", () => {
  let state: SessionState = sharingNow();
  let now = 0;
  let attempts = 0;
  for (;;) {
    const next = run(state, closed(1006, now, "", 0.999));
    if (next.state.phase === "ended") {
      assert.equal(ended(next.effects)?.error, LOST);
      break;
    }
    attempts++;
    now += delayOf(next.effects) ?? 0; // the next attempt fails at once
    assert.ok(now <= RESUME_WINDOW_MS - RECONNECT_MARGIN_MS, `attempt at ${now} ms is past the window`);
    state = run(next.state, resume(stored({ consented: true, secret: null }))).state;
  }
  assert.ok(attempts >= 5, `only ${attempts} attempts in the window`);
  assert.ok(now > RESUME_WINDOW_MS - RECONNECT_MARGIN_MS - RECONNECT_MAX_MS, `gave up early, at ${now} ms`);
});

test("the window is the one the server said (created's or resumed's resume_seconds)", () => {
  const short = run(initialState, create, server({
    type: "created", session_id: "s1", code: "12345", resume_token: "t", expires_in: 600, resume_seconds: 3,
  })).state;
  assert.ok("saved" in short && short.saved.resumeWindowMs === 3000);
  const first = run(short, closed(1006, 0, "", 0));
  assert.equal(first.state.phase, "waiting");
  // 2.5 s later the next wait would end past 3 s minus the margin: given up.
  const later = run(run(first.state, resume(stored({ resumeWindowMs: 3000 }))).state, closed(1006, 2500, "", 0));
  assert.equal(ended(later.effects)?.error, LOST);
  const longer = run(initialState, resume(stored({ consented: true, secret: null })), resumed("sharing", { resume_seconds: 120 })).state;
  assert.ok("saved" in longer && longer.saved.resumeWindowMs === 120_000);
  // Nonsense from the server keeps the default.
  const odd = run(initialState, resume(stored({ consented: true, secret: null })), resumed("sharing", { resume_seconds: -4 })).state;
  assert.ok("saved" in odd && odd.saved.resumeWindowMs === undefined);
  // A relay naming a window of days keeps the page trying no longer than a server may say.
  const endless = run(initialState, resume(stored({ consented: true, secret: null })), resumed("sharing", { resume_seconds: 86_400 * 30 })).state;
  assert.ok("saved" in endless && endless.saved.resumeWindowMs === 600_000);
});

test("the server closing a live session says so; a reconnect that finds it gone says so; so does a new page whose resume fails", () => {
  for (const code of [1000, 4000, 4410]) assert.equal(ended(run(sharingNow(), closed(code)).effects)?.error, CLOSED);
  // Another page of this tab took the session over: this one goes quietly.
  assert.equal(ended(run(sharingNow(), closed(4409)).effects)?.error, null);
  const dropped = run(run(sharingNow(), closed(1006)).state, resume(stored({ consented: true, secret: null }))).state;
  assert.equal(ended(run(dropped, closed(4404, 3000, "session not found")).effects)?.error, SESSION_GONE);
  assert.equal(ended(run(dropped, closed(4403, 3000, "origin not allowed")).effects)?.error, NOT_AVAILABLE); // plain words
  const resuming = run(initialState, resume(stored())).state;
  const failed = run(resuming, closed(4404));
  assert.equal(failed.state.phase, "ended");
  assert.equal(ended(failed.effects)?.error, CONNECTION_LOST);
});

test("every end the server announces is told to the customer in plain words", () => {
  const sharing = run(initialState, resume(stored({ consented: true, secret: null })), resumed("sharing")).state;
  const expected: Record<string, string> = {
    agent_left: AGENT_ENDED, agent_lost: AGENT_LOST, code_expired: CODE_EXPIRED, idle_timeout: IDLE_ENDED,
    max_duration: MAX_DURATION_ENDED, customer_lost: SESSION_ENDED, stopped: SESSION_ENDED,
  };
  for (const [reason, notice] of Object.entries(expected)) {
    assert.equal(ended(run(sharing, server({ type: "ended", reason })).effects)?.error, notice, reason);
  }
});

test("Stop while reconnecting ends here at once and tells the server on a fresh socket", () => {
  const dropped = run(sharingNow(), closed(1006)).state;
  const stopped = run(dropped, { type: "stop" });
  assert.equal(stopped.state.phase, "ended");
  assert.deepEqual(stopped.effects, [{ type: "stop_offline", sessionId: "s1", resumeToken: "t" }, { type: "end", error: null }]);
  const connecting = run(dropped, resume(stored({ consented: true, secret: null }))).state;
  assert.deepEqual(run(connecting, { type: "stop" }).effects.map((e) => e.type), ["stop_offline", "end"]);
  // Nothing of the old session comes back: a late answer or close is ignored.
  assert.deepEqual(run(stopped.state, resumed("sharing")).effects, []);
  assert.deepEqual(run(stopped.state, closed(1006)).effects, []);
  // Connected, Stop goes on the open socket.
  assert.deepEqual(sent(run(sharingNow(), { type: "stop" }).effects), ["stop"]);
});

test("`ended` from the server while reconnecting ends with its reason", () => {
  const connecting = run(run(sharingNow(), closed(1006)).state, resume(stored({ consented: true, secret: null }))).state;
  const shutdown = run(connecting, server({ type: "ended", reason: "server_shutdown" }));
  assert.equal(ended(shutdown.effects)?.error, RESTARTING);
});

test("the agent's console's silence ends a sharing session as Stop does, with its own notice; nothing else", () => {
  const silent = run(sharingNow(), { type: "agent_silent" });
  assert.equal(silent.state.phase, "ended");
  assert.deepEqual(silent.effects, [{ type: "send", message: { type: "stop" } }, { type: "end", error: CONSOLE_SILENT }]);
  const dropped = run(sharingNow(), closed(1006)).state;
  assert.deepEqual(run(dropped, { type: "agent_silent" }).effects.map((e) => e.type), ["stop_offline", "end"]);
  // Before sharing nothing watches the console, and an ended session stays as it is.
  const waiting = run(initialState, create, created).state;
  assert.deepEqual(run(waiting, { type: "agent_silent" }).effects, []);
  assert.deepEqual(run(silent.state, { type: "agent_silent" }).effects, []);
});

test("stop tells the server and ends; nothing happens after the end", () => {
  const waiting = run(initialState, create, created).state;
  const stopped = run(waiting, { type: "stop" });
  assert.deepEqual(stopped.effects, [{ type: "send", message: { type: "stop" } }, { type: "end", error: null }]);
  for (const event of [created, resumed("sharing"), { type: "answer", granted: true } as SessionEvent, { type: "stop" } as SessionEvent]) {
    assert.deepEqual(run(stopped.state, event).effects, []);
  }
});

const DENY = { version: 1, pages: { deny: ["/reset*"] } };
const teamPolicy = (policies: unknown[]) => server({ type: "team_policy", policies });

test("team policies before the Allow are checked when they come and are the ones the Allow fixes", () => {
  const joining = run(initialState, create, created, teamPolicy([{ version: 1, hide: [".secret"] }])).state;
  assert.ok(joining.phase === "waiting" && joining.teamPolicies.length === 1);
  const allowed = run(joining, server({ type: "agent_joined", agent: "Ann" }), { type: "paired", keyHandle: "h1" }, { type: "answer", granted: true }).state;
  assert.ok(allowed.phase === "sharing");
  assert.deepEqual(allowed.saved.allowedPolicies?.teams.map((p) => p.hide), [[".secret"]]);
  assert.equal(run(joining, teamPolicy([{ version: 1, hide: 3 }])).state.phase, "ended");
});

test("a team policy after the Allow ends the session, whatever it says (no page is checked against it)", () => {
  const sharing = run(initialState, resume(stored({ consented: true, secret: null })), resumed("sharing")).state;
  for (const policies of [[DENY], [], [{ version: 1, pages: { deny: ["/nothing-like-it*"] } }]]) {
    const { state, effects } = run(sharing, teamPolicy(policies));
    assert.equal(state.phase, "ended");
    assert.deepEqual(sent(effects), ["stop"]);
    assert.match(ended(effects)?.error ?? "", /changed the privacy rules after you allowed sharing/);
  }
  // Also on a later page before its key is found again (pending_consent with the stored Allow).
  const later = run(initialState, resume(stored({ consented: true, agent: "Ann", secret: null })), resumed("pending_consent")).state;
  assert.equal(run(later, teamPolicy([DENY])).state.phase, "ended");
});

test("after the Allow a `resumed` with other team policies ends the session; the same ones go on", () => {
  const allowedPolicies = { org: null, teams: [] };
  const page = resume(stored({ consented: true, agent: "Ann", secret: null, allowedPolicies }));
  const same = run(initialState, page, resumed("sharing"));
  assert.equal(same.state.phase, "sharing");
  const changed = run(initialState, page, resumed("sharing", { team_policies: [DENY] }));
  assert.equal(changed.state.phase, "ended");
  assert.ok(!changed.effects.some((e) => e.type === "begin_sharing"));
  assert.match(ended(changed.effects)?.error ?? "", /changed the privacy rules/);
});

test("after the Allow the organisation's policy is the one it was then, whatever `resumed` says", () => {
  const org = { version: 1, mask: [".org"] };
  const asked = run(initialState, create, server({
    type: "created", session_id: "s1", code: "12345", resume_token: "t", expires_in: 600, policy: org,
  }), server({ type: "agent_joined", agent: "Ann" }), { type: "paired", keyHandle: "h1" });
  const allowed = run(asked.state, { type: "answer", granted: true }).state;
  assert.ok(allowed.phase === "sharing" && allowed.saved.allowedPolicies);
  const next = run(initialState, resume(allowed.saved), resumed("sharing", { policy: { version: 1, pages: { deny: ["/*"] } } }));
  assert.ok(next.state.phase === "sharing");
  assert.deepEqual(next.state.orgPolicy?.mask, [".org"]);
  assert.deepEqual(next.state.orgPolicy?.pages.deny, []);
  assert.ok(next.effects.some((e) => e.type === "begin_sharing"));
});

test("the agent's name is fixed once known: a `resumed` or `agent_joined` naming another ends the session", () => {
  const renamed = run(initialState, resume(stored({ consented: true, agent: "Ann", secret: null })), resumed("sharing", { agent: "Fraud Prevention Team" }));
  assert.equal(renamed.state.phase, "ended");
  assert.ok(!renamed.effects.some((e) => e.type === "begin_sharing"));
  assert.match(ended(renamed.effects)?.error ?? "", /named another agent than the one who joined/);
  // Before the Allow too: the question names whom the customer allows.
  const joined = run(initialState, create, created, server({ type: "agent_joined", agent: "Ann" })).state;
  const swapped = run(joined, server({ type: "agent_joined", agent: "Mallory" }));
  assert.equal(swapped.state.phase, "ended");
  assert.ok(!swapped.effects.some((e) => e.type === "ask_consent"));
  const unnamed = run(initialState, resume(stored({ agent: "Ann" })), resumed("pending_consent", { agent: null }));
  assert.equal(unnamed.state.phase, "ended");
  // The same name again (a new page while the question is open) goes on.
  const again = run(initialState, resume(stored({ agent: "Ann" })), resumed("pending_consent"), server({ type: "agent_joined", agent: "Ann" }));
  assert.equal(again.state.phase, "pending_consent");
});

test("a session an earlier version named its agent in goes on when the server shows that name by the rule", () => {
  // The tab stored the name an earlier server sent (an invisible U+200E in it); the server now
  // sends it as the rule shows it (U+FFFD in its place). The same name, shown visibly: the
  // session the customer shares goes on (it ended, "named another agent"), and any other name
  // still ends it.
  const old = stored({ consented: true, agent: "Ann Smith\u200e", secret: null });
  const shown = run(initialState, resume(old), resumed("sharing", { agent: "Ann Smith\ufffd" }));
  assert.equal(shown.state.phase, "sharing");
  assert.ok(shown.state.phase === "sharing" && shown.state.saved.agent === "Ann Smith\ufffd");
  const other = run(initialState, resume(old), resumed("sharing", { agent: "Ann Smith" }));
  assert.equal(other.state.phase, "ended");
});

test("a tab's record whose stamp of leaving is no time, or whose window is no server's, is not resumed", () => {
  const now = 1_000_000_000_000;
  assert.equal(leftTooLongAgo(stored(), now), false); // a record of an earlier version: no stamp
  assert.equal(leftTooLongAgo(stored({ leftAt: now - RESUME_WINDOW_MS + 1 }), now), false);
  assert.equal(leftTooLongAgo(stored({ leftAt: now - RESUME_WINDOW_MS - 1 }), now), true);
  assert.equal(leftTooLongAgo(stored({ leftAt: now + RESUME_WINDOW_MS + 1 }), now), true); // clock set back
  // What the SDK never writes (the page's own script wrote it, or the record is damaged): a
  // stamp that is no time (JSON has NaN as null) was taken for no stamp, and the record resumed.
  for (const leftAt of [null, "0", "", {}, [], true]) {
    assert.equal(leftTooLongAgo(stored({ leftAt } as unknown as Partial<Saved>), now), true, JSON.stringify(leftAt));
  }
  // A window longer than any server's (its settings stop at 600 s), or one that is no number,
  // kept a record left a day ago resumable.
  const dayAgo = now - 86_400_000;
  for (const resumeWindowMs of [1e300, Infinity, "99999999999"]) {
    const record = stored({ leftAt: dayAgo, resumeWindowMs } as unknown as Partial<Saved>);
    assert.equal(leftTooLongAgo(record, now), true, String(resumeWindowMs));
  }
});

test("a resume carries this page's pins, not the server's", () => {
  const { state } = run(initialState, { type: "resume", saved: stored({ recordingPins: ["old"] }), page: { ...PAGE, pins: ["old", "new"] } });
  assert.ok(state.phase === "connecting" && state.expecting === "resumed");
  assert.deepEqual(state.saved.recordingPins, ["old", "new"]);
});

// issue 13: the server says the link between its processes is down (`link`), then back.
const link = (state: "reconnecting" | "restored") => server({ type: "link", state });

test("`link` reconnecting while sharing is a note on the banner; restored takes it away; nothing else changes", () => {
  const sharing = run(initialState, resume(stored({ consented: true, secret: null })), resumed("sharing")).state;
  const down = run(sharing, link("reconnecting"));
  assert.equal(down.state.phase, "sharing");
  assert.deepEqual(down.state, { ...sharing, linkDown: true }); // no consent, policy or phase change
  assert.deepEqual(down.effects, [{ type: "show_link" }]);
  assert.deepEqual(run(down.state, link("reconnecting")).effects, []); // said twice: drawn once
  const back = run(down.state, link("restored"));
  assert.deepEqual(back.state, { ...sharing, linkDown: false });
  assert.deepEqual(back.effects, [{ type: "show_link" }]);
});

test("`link` can neither hide an end nor start anything: an `ended` after it ends at once, before a session it is ignored", () => {
  const sharing = run(initialState, resume(stored({ consented: true, secret: null })), resumed("sharing")).state;
  const lost = run(sharing, link("reconnecting"), server({ type: "ended", reason: "agent_lost" }));
  assert.equal(lost.state.phase, "ended");
  assert.equal(ended(lost.effects)?.error, AGENT_LOST);
  assert.deepEqual(run(lost.state, link("restored")), { state: { phase: "ended" }, effects: [] });
  for (const before of [initialState, run(initialState, create).state]) {
    assert.deepEqual(run(before, link("reconnecting")), { state: before, effects: [] });
  }
  // Waiting for an agent: noted, but nothing shown or asked, and no sharing begins.
  const waiting = run(initialState, create, created).state;
  const noted = run(waiting, link("reconnecting"), link("restored"));
  assert.equal(noted.state.phase, "waiting");
  assert.ok(noted.effects.every((e) => e.type === "show_link"));
});
