import assert from "node:assert/strict";
import { test } from "node:test";
import type { AgentInfo } from "../src/generated/rest.ts";
import {
  type ConsoleEvent, type ConsoleState, type LiveCard, type LiveEvent, controls, idleCard, initialState, reduce, reduceCard,
} from "../src/console/state.ts";

const agent = (role: string, extra: Partial<AgentInfo> = {}): AgentInfo => ({
  username: "ann", display_name: "Ann", role, org: "o", teams: [], needs_second_factor: false, must_change_password: false, ...extra,
});

function card(...events: LiveEvent[]): LiveCard {
  return events.reduce(reduceCard, idleCard);
}

function run(state: ConsoleState, ...events: ConsoleEvent[]): ConsoleState {
  return events.reduce(reduce, state);
}

test("signing in routes by role: agents and supervisors to the live card, others to their office", () => {
  assert.equal(run(initialState, { type: "signed_in", agent: agent("agent") }).screen, "live");
  assert.equal(run(initialState, { type: "signed_in", agent: agent("supervisor") }).screen, "live");
  assert.equal(run(initialState, { type: "signed_in", agent: agent("auditor") }).screen, "office");
  assert.equal(run(initialState, { type: "signed_in", agent: agent("admin") }).screen, "office");
});

test("an account without its required second factor sets it up before anything else", () => {
  const mfa = run(initialState, { type: "signed_in", agent: agent("agent", { needs_second_factor: true }) });
  assert.equal(mfa.screen, "mfa");
  const scanned = run(mfa, { type: "mfa_started", qr: "data:image/svg+xml,x", secret: "ABCDEFGH" });
  assert.ok(scanned.screen === "mfa" && scanned.step === "scan" && scanned.setup?.secret === "ABCDEFGH");
  const done = run(scanned, { type: "mfa_confirmed", recoveryCodes: ["a", "b"] });
  assert.ok(done.screen === "mfa" && done.step === "done");
  assert.equal(done.setup, null, "the secret is dropped once the factor is on");
  assert.deepEqual(done.recoveryCodes, ["a", "b"]);
  const home = run(done, { type: "mfa_continue" });
  assert.equal(home.screen, "live");
  assert.equal(run(mfa, { type: "mfa_continue" }).screen, "live");
});

test("signing out or an expired sign-in shows the sign-in form with its error", () => {
  const live = run(initialState, { type: "signed_in", agent: agent("agent") });
  assert.deepEqual(run(live, { type: "signed_out" }), { screen: "signin", error: null });
  assert.deepEqual(run(initialState, { type: "signed_out", error: "nope" }), { screen: "signin", error: "nope" });
  assert.deepEqual(run({ screen: "signin", error: null }, { type: "signin_failed", error: "Wrong password." }), { screen: "signin", error: "Wrong password." });
});

test("events for another screen change nothing", () => {
  const signin: ConsoleState = { screen: "signin", error: null };
  for (const event of [
    { type: "live", event: { type: "consented" } }, { type: "sessions", sessions: [] }, { type: "mfa_continue" },
    { type: "mfa_started", qr: "", secret: "" },
  ] as ConsoleEvent[]) {
    assert.equal(run(signin, event), signin);
  }
  const agentLive = run(initialState, { type: "signed_in", agent: agent("agent") });
  assert.equal(run(agentLive, { type: "sessions", sessions: [] }), agentLive, "only supervisors list sessions");
});

test("the controls that act on the customer's page appear only after the customer's browser confirmed consent", () => {
  const joined = card({ type: "connecting", watching: false }, { type: "joined" }, { type: "status", text: "Waiting…" });
  assert.equal(controls(joined).requestControl, true);
  assert.equal(controls(joined).record, true);
  // The server's word is not an event here at all; only the encrypted `consented` is.
  assert.equal(reduceCard(joined, { type: "control", on: true }).controlling, false, "no control before consent");
  const consented = reduceCard(joined, { type: "consented" });
  assert.equal(controls(consented).requestControl, false);
  assert.equal(controls(consented).record, false);
});

test("a supervisor never gets control or recording controls", () => {
  const watching = card({ type: "connecting", watching: true }, { type: "joined" }, { type: "watch_code" }, { type: "watch_code_entered" }, { type: "consented" });
  const shown = controls(reduceCard(watching, { type: "control", on: true }));
  assert.equal(shown.requestControl, true);
  assert.equal(shown.releaseControl, true);
  assert.equal(shown.record, true);
  assert.equal(shown.controlLayer, true);
  assert.equal(controls(reduceCard(watching, { type: "recording", server: true })).stopRecord, true);
});

test("the join form: hidden while joined, offered again for a supervisor's code, reset at the end", () => {
  const connecting = card({ type: "connecting", watching: true });
  assert.equal(controls(connecting).join.hidden, false, "a mistyped code can be typed again");
  const joined = reduceCard(connecting, { type: "joined" });
  assert.deepEqual(controls(joined).join, { hidden: true, label: "Join" });
  assert.equal(controls(joined).code.disabled, true);
  assert.equal(controls(joined).leave, false);
  const code = reduceCard(joined, { type: "watch_code" });
  assert.deepEqual(controls(code).join, { hidden: false, label: "Start watching" });
  assert.deepEqual(controls(code).code, { disabled: false, placeholder: "123 4567" });
  const ended = reduceCard(code, { type: "ended", text: "Watching ended" });
  assert.deepEqual(controls(ended).join, { hidden: false, label: "Join" });
  assert.equal(controls(ended).leave, true);
  assert.deepEqual(ended.status, { text: "Watching ended", tone: "bad" });
  assert.deepEqual(reduceCard(code, { type: "ended", text: "Session ended", tone: "" }).status.tone, "");
});

test("control: granted shows the layer and release; refused or revoked hides them and the typing box", () => {
  const consented = card({ type: "connecting", watching: false }, { type: "joined" }, { type: "consented" }, { type: "fresh", live: true });
  const granted = reduceCard(consented, { type: "control", on: true });
  assert.equal(controls(granted).controlLayer, false);
  assert.equal(controls(granted).releaseControl, false);
  assert.equal(controls(granted).requestControl, true);
  const typing = reduceCard(granted, { type: "typing", on: true });
  assert.equal(controls(typing).typing, false);
  const revoked = reduceCard(typing, { type: "control", on: false });
  assert.equal(controls(revoked).typing, true);
  assert.equal(controls(revoked).controlLayer, true);
  assert.equal(controls(revoked).requestControl, false);
  assert.equal(reduceCard(consented, { type: "typing", on: true }).typing, false, "no typing without control");
});

test("recording: asked once, offered again when the customer declines, stop offered when either side records", () => {
  const consented = card({ type: "connecting", watching: false }, { type: "joined" }, { type: "consented" });
  const asked = reduceCard(consented, { type: "record_asked" });
  assert.equal(controls(asked).record, true);
  const serverOnly = reduceCard(asked, { type: "recording", server: true });
  assert.equal(controls(serverOnly).stopRecord, false, "stopping is always safe");
  const recording = reduceCard(serverOnly, { type: "recording", customer: true });
  assert.equal(controls(recording).record, true);
  const declined = reduceCard(asked, { type: "recording", customer: false, server: false });
  assert.equal(controls(declined).record, false);
  assert.equal(controls(declined).stopRecord, true);
  assert.equal(controls(reduceCard(asked, { type: "record_refused" })).record, false);
});

test("nothing of a session survives its end", () => {
  const busy = card(
    { type: "connecting", watching: false }, { type: "joined" }, { type: "consented" }, { type: "control", on: true },
    { type: "typing", on: true }, { type: "recording", customer: true, server: true },
  );
  const ended = reduceCard(busy, { type: "ended", text: "Session ended" });
  assert.deepEqual({ ...ended, status: idleCard.status }, idleCard);
});

test("the server's `link` notice is a line of its own: it changes no control or status, and an end clears it", () => {
  const sharing = card(
    { type: "connecting", watching: false }, { type: "joined", sessionId: "s1" }, { type: "consented", at: 1 },
    { type: "control", on: true }, { type: "recording", customer: true, server: true },
    { type: "status", text: "Recording", tone: "good" },
  );
  const down = reduceCard(sharing, { type: "link", reconnecting: true });
  assert.deepEqual(down, { ...sharing, link: "reconnecting" });
  assert.deepEqual(controls(down), controls(sharing)); // nothing hidden or offered by the server's word
  const back = reduceCard(down, { type: "link", reconnecting: false });
  assert.deepEqual(back, { ...sharing, link: "restored" });
  assert.deepEqual(reduceCard(sharing, { type: "link", reconnecting: false }), sharing); // never down: nothing to restore
  // The session ends while the link is down: the end is shown, the link line goes.
  const ended = reduceCard(down, { type: "ended", text: "The session ended." });
  assert.equal(ended.link, "up");
  assert.deepEqual(ended.status, { text: "The session ended.", tone: "bad" });
  // Outside a session it is ignored.
  assert.deepEqual(reduceCard(idleCard, { type: "link", reconnecting: true }), idleCard);
});

test("a supervisor's view is marked not live once it is checked and until the customer's browser answers", () => {
  const watching = card({ type: "connecting", watching: true }, { type: "joined" }, { type: "watch_code" }, { type: "watch_code_entered" }, { type: "consented" });
  assert.equal(controls(watching).notLive, false, "nothing to mark before the check starts");
  const checking = reduceCard(watching, { type: "fresh", live: false });
  assert.equal(controls(checking).notLive, true);
  assert.equal(controls(reduceCard(checking, { type: "fresh", live: true })).notLive, false);
});

test("control and pointing are off, with the reason, while the agent's view is not proven live", () => {
  const consented = card({ type: "connecting", watching: false }, { type: "joined" }, { type: "consented" }, { type: "control", on: true });
  const notLive = controls(consented);
  assert.equal(notLive.acting, false);
  assert.equal(notLive.offWhileNotLive, true);
  assert.equal(notLive.controlLayer, true, "the control layer is off");
  assert.equal(controls(reduceCard(consented, { type: "tool", tool: "laser" })).toolLayer, true, "the tool layer is off");
  const live = reduceCard(consented, { type: "fresh", live: true });
  assert.equal(controls(live).acting, true);
  assert.equal(controls(live).offWhileNotLive, false);
  assert.equal(controls(live).controlLayer, false);
  assert.equal(controls(reduceCard(live, { type: "tool", tool: "laser" })).toolLayer, false);
  const stale = reduceCard(live, { type: "fresh", live: false });
  assert.equal(controls(stale).acting, false);
  assert.equal(controls(stale).controlLayer, true);
  assert.equal(controls(stale).releaseControl, false, "releasing control is always offered");
});
